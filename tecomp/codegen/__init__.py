"""Code generators: loop IR to machine code (LLVM, for CPUs) and to CUDA C.

Importing this package must stay cheap and must not import llvmlite: the
backends are loaded when a build asks for them, so that loading a compiled
library needs only numpy.
"""

from __future__ import annotations

from typing import Any, Sequence


def build_llvm(funcs: Sequence[Any], target: Any = None) -> Any:
    """Compile lowered PrimFuncs for an llvm target and load them as a runtime Module.

    See :func:`tecomp.codegen.build.build_llvm`.
    """
    from .build import build_llvm as _build_llvm
    return _build_llvm(funcs, target)
