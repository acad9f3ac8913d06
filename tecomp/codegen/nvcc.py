"""Running nvcc: CUDA C source to a fatbin (SASS for the target's GPU plus PTX) or to PTX text.

Owns finding nvcc, the command lines, temporary files and turning every
failure (nvcc missing, a compile error) into a ``BuildError`` that names the
cause and carries nvcc's own message. Compiling needs the CUDA toolkit only,
not a GPU or a driver.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Optional

from ..error import BuildError

_FALLBACK_PATHS = ("/usr/local/cuda/bin/nvcc",)
_ARCH = re.compile(r"^sm_(\d+)[a-z]?$")
COMPILE_TIMEOUT_S = 300


def find_nvcc() -> Optional[str]:
    """The nvcc executable: the one on PATH, else the CUDA toolkit's default location; None if absent."""
    found = shutil.which("nvcc")
    if found:
        return found
    return next((p for p in _FALLBACK_PATHS if os.access(p, os.X_OK)), None)


def _require_nvcc() -> str:
    nvcc = find_nvcc()
    if nvcc is None:
        raise BuildError("cannot compile CUDA kernels: nvcc was not found on PATH nor in /usr/local/cuda/bin; "
                         "install the CUDA toolkit (nvcc) or put it on PATH")
    return nvcc


def arch_flags(arch: Optional[str], fmt: str) -> list[str]:
    """nvcc flags for ``arch`` ("sm_90"); for a fatbin, SASS for it and PTX for newer GPUs."""
    if arch is None:
        return []
    m = _ARCH.match(arch)
    if m is None:
        raise BuildError(f"invalid CUDA architecture {arch!r}: expected sm_XY such as sm_80 or sm_90")
    if fmt == "fatbin":
        compute = "compute_" + arch[3:]
        return ["-gencode", f"arch={compute},code=[{arch},{compute}]"]
    return [f"-arch={arch}"]


def compile_cuda(source: str, arch: Optional[str], fmt: str = "fatbin", fast_math: bool = False,
                 name: str = "kernels") -> bytes:
    """Compile ``source`` with nvcc to ``fmt`` ("fatbin", "cubin" or "ptx"); BuildError with nvcc's message."""
    if fmt not in ("fatbin", "cubin", "ptx"):
        raise BuildError(f"unknown nvcc output format {fmt!r}; use fatbin, cubin or ptx")
    nvcc = _require_nvcc()
    with tempfile.TemporaryDirectory(prefix="tecomp-nvcc-") as tmp:
        src, out = Path(tmp) / f"{name}.cu", Path(tmp) / f"{name}.{fmt}"
        src.write_text(source)
        cmd = [nvcc, f"-{fmt}", "-O3", *arch_flags(arch, fmt), "-o", str(out), str(src)]
        if fast_math:
            cmd.insert(2, "--use_fast_math")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise BuildError(f"nvcc did not finish compiling {name} within {COMPILE_TIMEOUT_S} s") from None
        except OSError as exc:
            raise BuildError(f"cannot run nvcc ({nvcc}): {exc}") from None
        if proc.returncode != 0:
            message = (proc.stderr or proc.stdout).strip()
            raise BuildError(f"nvcc failed (exit {proc.returncode}) compiling the CUDA source of {name} "
                             f"for {arch or 'its default architecture'}:\n{message}")
        return out.read_bytes()
