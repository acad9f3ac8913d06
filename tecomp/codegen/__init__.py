"""Code generators: loop IR to machine code (LLVM, for CPUs) and to CUDA C.

Importing this package must stay cheap and must not import llvmlite: the
backends are loaded when a build asks for them, so that loading a compiled
library needs only numpy.
"""

from __future__ import annotations

from typing import Any, Sequence


def build_llvm(funcs: Sequence[Any], target: Any = None, bound_check: bool = False) -> Any:
    """Compile lowered PrimFuncs for an llvm target and load them as a runtime Module.

    See :func:`tecomp.codegen.build.build_llvm`.
    """
    from .build import build_llvm as _build_llvm
    return _build_llvm(funcs, target, bound_check)


def compile_library(funcs: Sequence[Any], target: Any, bound_check: bool = False, keep_blocks: bool = True) -> Any:
    """Compile lowered PrimFuncs into a library file for ``target`` (a ``CompiledLibrary``, not
    loaded): LLVM for ``llvm``, CUDA C and nvcc for ``cuda``. ``bound_check``: every buffer
    access of CPU code checks its index (see :mod:`tecomp.codegen.llvm_checks`).
    ``keep_blocks=False``: CPU code frees its heap buffers after every call instead of keeping
    them for the next (for code that runs briefly, as tuning candidates do)."""
    if target.kind == "cuda":
        if bound_check:
            from ..error import BuildError
            raise BuildError("bound_check=True is supported for the llvm target only")
        from .cuda_build import compile_cuda_library
        return compile_cuda_library(funcs, target)
    from .build import compile_llvm
    return compile_llvm(funcs, target, bound_check, keep_blocks=keep_blocks)


def build_cuda(funcs: Sequence[Any], target: Any, fast_math: bool = False) -> Any:
    """Compile lowered PrimFuncs for a cuda target (nvcc) and load them as a runtime Module.

    See :func:`tecomp.codegen.cuda_build.build_cuda`.
    """
    from .cuda_build import build_cuda as _build_cuda
    return _build_cuda(funcs, target, fast_math)
