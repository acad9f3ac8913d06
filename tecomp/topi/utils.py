"""TVM's ``topi.utils`` shape helpers: the constant value of a dimension, or the expression."""

from __future__ import annotations

from typing import Any, Union

from ..error import ExprError
from ..tir.expr import IntImm, PrimExpr
from ..tir.simplify import simplify


def get_const_int(expr: Any) -> int:
    """The integer value of ``expr`` (an int or an expression that simplifies to a constant)."""
    value = _const_or_expr(expr)
    if not isinstance(value, int):
        raise ExprError(f"get_const_int: {expr} is not a constant integer")
    return value


def get_const_tuple(in_tuple: Any) -> tuple[Union[int, PrimExpr], ...]:
    """Each element as an int where it is constant, else the (simplified) expression, as TVM does
    for shapes with variables."""
    return tuple(_const_or_expr(e) for e in in_tuple)


def _const_or_expr(expr: Any) -> Union[int, PrimExpr]:
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr
    if not isinstance(expr, PrimExpr):
        raise ExprError(f"expected an integer or an integer expression, got {expr!r}")
    if not expr.dtype.startswith(("int", "uint")):
        raise ExprError(f"expected an integer expression, got {expr} of dtype {expr.dtype}")
    value = simplify(expr)
    return value.value if isinstance(value, IntImm) else value


__all__ = ["get_const_int", "get_const_tuple"]
