"""``tvm.contrib.clang``: find clang and compile C source to LLVM IR text."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional, Sequence

from ..error import BuildError


def find_clang(required: bool = True) -> list[str]:
    """The clang executables on PATH (``clang`` and versioned ``clang-N``), newest first; BuildError
    when none is found and ``required``."""
    found = [c for c in ["clang", *(f"clang-{v}" for v in range(20, 9, -1))] if shutil.which(c)]
    if not found and required:
        raise BuildError("find_clang: no clang on PATH")
    return found


def create_llvm(inputs: str, output: Optional[str] = None, options: Optional[Sequence[str]] = None,
                cc: Optional[str] = None) -> str:
    """The LLVM IR text of the C source ``inputs`` (written to ``output`` too when given)."""
    compiler = cc or find_clang()[0]
    with tempfile.TemporaryDirectory(prefix="tecomp-clang-") as tmp:
        src = Path(tmp) / "input.cc"
        src.write_text(inputs)
        out = Path(output) if output else Path(tmp) / "output.ll"
        cmd = [compiler, "-O2", "-S", "-emit-llvm", *(options or []), "-o", str(out), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"create_llvm failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
        return out.read_text()


__all__ = ["create_llvm", "find_clang"]
