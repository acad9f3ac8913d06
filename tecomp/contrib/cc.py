"""``tvm.contrib.cc``: compile and link C sources or objects into a shared library with the host compiler."""

from __future__ import annotations

import shutil
import subprocess
from typing import Optional, Sequence, Union

from ..codegen.thread_pool import pool_object
from ..error import BuildError


def create_shared(output: str, objects: Union[str, Sequence[str]], options: Optional[Sequence[str]] = None,
                  cc: str = "gcc") -> None:
    """Link ``objects`` (object files or C sources) into the shared library ``output``."""
    compiler = shutil.which(cc)
    if compiler is None:
        raise BuildError(f"create_shared: the compiler {cc!r} is not on PATH")
    files = [objects] if isinstance(objects, str) else list(objects)
    # tecomp's objects run parallel loops on its thread pool (libgomp's thread count) and call libm
    cmd = [compiler, "-shared", "-fPIC", "-o", output, *files, *(options or []), str(pool_object(compiler)),
           "-pthread", "-lgomp", "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"create_shared {output} failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")


create_shared.output_format = "so"  # type: ignore[attr-defined]
