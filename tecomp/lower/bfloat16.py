"""bfloat16 legalization: arithmetic on bfloat16 values is done in float32.

bfloat16 is a storage type here, as in TVM's BF16Legalize: loads, stores, selects and moves
keep it (16-bit memory), and every operation that computes (arithmetic, min/max, comparisons,
math intrinsics) gets its bfloat16 operands converted to float32, with a result that is
bfloat16 converted back (rounded to nearest even by the code generator's cast). The pass must
not change anything that has no bfloat16 in it.
"""

from __future__ import annotations

from typing import Any

from ..tir import dtype as dt
from ..tir.expr import BinaryOp, Call, Cast, CmpOp, PrimExpr
from ..tir.functor import Mutator
from ..tir.op import MATH_INTRINSICS
from ..tir.stmt import PrimFunc


def _is_bf16(dtype: str) -> bool:
    return dt.parse(dtype).code == "bfloat"


def _widen(e: PrimExpr) -> PrimExpr:
    return Cast(dt.with_lanes("float32", dt.lanes(e.dtype)), e) if _is_bf16(e.dtype) else e


class _Legalize(Mutator):
    def generic(self, node: Any) -> Any:
        node = super().generic(node)
        if isinstance(node, BinaryOp) and _is_bf16(node.dtype):
            return Cast(node.dtype, type(node)(_widen(node.a), _widen(node.b)))
        if isinstance(node, CmpOp) and _is_bf16(node.a.dtype):
            return type(node)(_widen(node.a), _widen(node.b))
        if isinstance(node, Call) and node.op in MATH_INTRINSICS and _is_bf16(node.dtype):
            wide = dt.with_lanes("float32", dt.lanes(node.dtype))
            return Cast(node.dtype, Call(wide, node.op, tuple(_widen(a) for a in node.args)))
        return node


def legalize_bfloat16(func: PrimFunc) -> PrimFunc:
    """``func`` with its bfloat16 computations done in float32."""
    return func.with_body(_Legalize().visit(func.body))


__all__ = ["legalize_bfloat16"]
