"""``tvm.target.codegen``: what classic scripts ask of the LLVM backend (its version)."""

from __future__ import annotations


def llvm_version_major() -> int:
    """The major version of the LLVM that builds tecomp's CPU code (llvmlite's)."""
    import llvmlite.binding as llvm

    return int(llvm.llvm_version_info[0])


__all__ = ["llvm_version_major"]
