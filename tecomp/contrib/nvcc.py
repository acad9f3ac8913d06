"""``tvm.contrib.nvcc``: compile CUDA C source with nvcc (TVM's ``compile_cuda``)."""

from __future__ import annotations

from typing import Optional

from ..codegen import nvcc as _nvcc
from ..error import BuildError


def compile_cuda(code: str, target: str = "ptx", arch: Optional[str] = None) -> bytes:
    """``code`` compiled to ``target`` ("ptx", "cubin" or "fatbin"); BuildError when nvcc is missing
    or fails."""
    if target not in ("ptx", "cubin", "fatbin"):
        raise BuildError(f"compile_cuda: target must be ptx, cubin or fatbin, not {target!r}")
    return _nvcc.compile_cuda(code, arch, fmt=target)


find_cuda_path = _nvcc.find_nvcc

__all__ = ["compile_cuda", "find_cuda_path"]
