"""``tvm.contrib.utils.tempdir``: a temporary directory removed when its object goes away."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from typing import Optional


class TempDirectory:
    """A directory for build artifacts; ``relpath(name)`` is a path inside it."""

    def __init__(self, custom_path: Optional[str] = None, keep_for_debug: bool = False):
        if custom_path is not None:
            os.makedirs(custom_path, exist_ok=True)
            self.temp_dir = os.path.abspath(custom_path)
        else:
            self.temp_dir = tempfile.mkdtemp(prefix="tecomp-tmp-")
        self._finalizer = None if keep_for_debug or custom_path is not None else \
            weakref.finalize(self, shutil.rmtree, self.temp_dir, True)

    def relpath(self, name: str) -> str:
        return os.path.join(self.temp_dir, name)

    def listdir(self) -> list[str]:
        return os.listdir(self.temp_dir)

    def remove(self) -> None:
        if self._finalizer is not None:
            self._finalizer()


def tempdir(custom_path: Optional[str] = None, keep_for_debug: bool = False) -> TempDirectory:
    """A new temporary directory (or ``custom_path``, which is kept)."""
    return TempDirectory(custom_path, keep_for_debug)
