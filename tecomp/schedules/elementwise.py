"""Elementwise operators: broadcasting arithmetic, comparisons and logic, activations, math, where, cast.

Binary operators follow numpy/ONNX multidirectional broadcasting and accept a
tensor and a Python scalar on either side. Every operator returns a te tensor;
schedule it (and anything built from it) with ``schedule_injective``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from .. import te
from ..error import ExprError
from ..tir import dtype as dt
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail, schedule_injective

Operand = te.Tensor | int | float | bool
INT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
NUMERIC_DTYPES = ("float16", "float32", "float64") + INT_DTYPES
FLOATS = ("float32", "float64")
ALL_FLOATS = ("float16",) + FLOATS


def broadcast_shape(a_shape: Sequence[int], b_shape: Sequence[int],
                    op_name: str = "broadcast_shape") -> tuple[int, ...]:
    """The numpy-style broadcast of two shapes: align right, sizes equal or one of them 1."""
    ndim = max(len(a_shape), len(b_shape))
    a = (1,) * (ndim - len(a_shape)) + tuple(a_shape)
    b = (1,) * (ndim - len(b_shape)) + tuple(b_shape)
    out = []
    for k, (da, db) in enumerate(zip(a, b)):
        if da != db and 1 not in (da, db):
            raise fail(op_name, "shape", f"shapes {tuple(a_shape)} and {tuple(b_shape)} do not broadcast "
                                         f"(dimension {k}: {da} vs {db})")
        out.append(db if da == 1 else da)
    return tuple(out)


def broadcast_load(t: te.Tensor, shape: tuple[int, ...], out_shape: tuple[int, ...],
                   indices: Sequence[PrimExpr]) -> PrimExpr:
    """Load ``t`` (of constant ``shape``) at the output ``indices`` of a broadcast to ``out_shape``."""
    offset = len(out_shape) - len(shape)
    idx = [0 if d == 1 and out_shape[offset + k] != 1 else indices[offset + k] for k, d in enumerate(shape)]
    return t[tuple(idx)]


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float)) and not isinstance(v, te.Tensor)


def _loader(name: str, argument: str, v: Operand, dtype: str,
            out_shape: tuple[int, ...]) -> Callable[[Sequence[PrimExpr]], PrimExpr]:
    if _is_scalar(v):
        value = te.const(v, dtype)
        return lambda idx: value
    shape = const_shape(v, name, argument)
    return lambda idx: broadcast_load(v, shape, out_shape, idx)


def _operand_shape(name: str, argument: str, v: Operand) -> tuple[int, ...]:
    if _is_scalar(v):
        return ()
    if not isinstance(v, te.Tensor):
        raise fail(name, argument, f"expected a tensor or a Python scalar, got {type(v).__name__}")
    return const_shape(v, name, argument)


def _common_dtype(name: str, operands: dict[str, Operand]) -> str:
    dtypes = {arg: v.dtype for arg, v in operands.items() if isinstance(v, te.Tensor)}
    if not dtypes:
        raise fail(name, ", ".join(operands), "at least one operand must be a tensor")
    first_arg, first = next(iter(dtypes.items()))
    for arg, d in dtypes.items():
        if d != first:
            raise fail(name, arg, f"dtype {d} differs from {first_arg}'s dtype {first}")
    return first


def broadcast_compute(name: str, operands: dict[str, Operand], fcombine: Callable[..., PrimExpr],
                      allowed: Sequence[str] = NUMERIC_DTYPES) -> te.Tensor:
    """A tensor over the broadcast shape of ``operands``; ``fcombine`` gets one expression per operand."""
    shapes = [_operand_shape(name, arg, v) for arg, v in operands.items()]
    dtype = _common_dtype(name, operands)
    for arg, v in operands.items():
        if isinstance(v, te.Tensor):
            check_dtype(v, name, arg, allowed)
    out_shape: tuple[int, ...] = ()
    for s in shapes:
        out_shape = broadcast_shape(out_shape, s, name)
    loaders = [_loader(name, arg, v, dtype, out_shape) for arg, v in operands.items()]
    return te.compute(out_shape, lambda *i: fcombine(*[load(i) for load in loaders]), name=name)


def _unary(name: str, x: te.Tensor, f: Callable[[PrimExpr], PrimExpr],
           allowed: Sequence[str] = NUMERIC_DTYPES) -> te.Tensor:
    if not isinstance(x, te.Tensor):
        raise fail(name, "x", f"expected a tensor, got {type(x).__name__}")
    check_dtype(x, name, "x", allowed)
    return te.compute(x.shape, lambda *i: f(x[i]), name=name)


def add(a: Operand, b: Operand) -> te.Tensor:
    """``a + b`` with broadcasting (ONNX Add)."""
    return broadcast_compute("add", {"a": a, "b": b}, lambda x, y: x + y)


def subtract(a: Operand, b: Operand) -> te.Tensor:
    """``a - b`` with broadcasting (ONNX Sub)."""
    return broadcast_compute("subtract", {"a": a, "b": b}, lambda x, y: x - y)


def multiply(a: Operand, b: Operand) -> te.Tensor:
    """``a * b`` with broadcasting (ONNX Mul)."""
    return broadcast_compute("multiply", {"a": a, "b": b}, lambda x, y: x * y)


def _trunc_div(x: PrimExpr, y: PrimExpr) -> PrimExpr:
    q = te.floordiv(x, y)
    inexact = te.floormod(x, y) != 0
    signs_differ = (x < 0) != (y < 0)
    return te.select(te.all(inexact, signs_differ), q + 1, q)


def divide(a: Operand, b: Operand) -> te.Tensor:
    """``a / b`` with broadcasting (ONNX Div): true division for floats, truncation toward zero for ints."""
    return broadcast_compute("divide", {"a": a, "b": b},
                             lambda x, y: x / y if dt.is_float(x.dtype) else _trunc_div(x, y))


def power(a: Operand, b: Operand) -> te.Tensor:
    """``a ** b`` with broadcasting (ONNX Pow, float dtypes)."""
    return broadcast_compute("power", {"a": a, "b": b}, te.power, allowed=ALL_FLOATS)


def maximum(a: Operand, b: Operand) -> te.Tensor:
    """Elementwise maximum with broadcasting (ONNX Max of two inputs)."""
    return broadcast_compute("maximum", {"a": a, "b": b}, tir_op.max_expr)


def minimum(a: Operand, b: Operand) -> te.Tensor:
    """Elementwise minimum with broadcasting (ONNX Min of two inputs)."""
    return broadcast_compute("minimum", {"a": a, "b": b}, tir_op.min_expr)


def relu(x: te.Tensor) -> te.Tensor:
    """``max(x, 0)`` (ONNX Relu)."""
    return _unary("relu", x, lambda v: tir_op.max_expr(v, te.const(0, v.dtype)))


def clip(x: te.Tensor, a_min: float | None = None, a_max: float | None = None) -> te.Tensor:
    """``min(max(x, a_min), a_max)`` (ONNX Clip); a bound of None is no bound."""
    if a_min is not None and a_max is not None and a_min > a_max:
        raise fail("clip", "a_min", f"a_min {a_min} is greater than a_max {a_max}")

    def f(v: PrimExpr) -> PrimExpr:
        if a_min is not None:
            v = tir_op.max_expr(v, te.const(a_min, v.dtype))
        if a_max is not None:
            v = tir_op.min_expr(v, te.const(a_max, v.dtype))
        return v

    return _unary("clip", x, f)



def sigmoid(x: te.Tensor) -> te.Tensor:
    """``1 / (1 + exp(-x))`` (ONNX Sigmoid)."""
    return _unary("sigmoid", x, te.sigmoid, ALL_FLOATS)


def tanh(x: te.Tensor) -> te.Tensor:
    """Hyperbolic tangent (ONNX Tanh)."""
    return _unary("tanh", x, te.tanh, ALL_FLOATS)


def exp(x: te.Tensor) -> te.Tensor:
    """``e ** x`` (ONNX Exp)."""
    return _unary("exp", x, te.exp, ALL_FLOATS)


def log(x: te.Tensor) -> te.Tensor:
    """Natural logarithm (ONNX Log)."""
    return _unary("log", x, te.log, ALL_FLOATS)


def sqrt(x: te.Tensor) -> te.Tensor:
    """Square root (ONNX Sqrt)."""
    return _unary("sqrt", x, te.sqrt, ALL_FLOATS)


def erf(x: te.Tensor) -> te.Tensor:
    """Gauss error function (ONNX Erf)."""
    return _unary("erf", x, te.erf, ALL_FLOATS)


def _gelu_erf(v: PrimExpr) -> PrimExpr:
    return 0.5 * v * (1.0 + te.erf(v * (1.0 / math.sqrt(2.0))))


def _gelu_tanh(v: PrimExpr) -> PrimExpr:
    inner = math.sqrt(2.0 / math.pi) * (v + 0.044715 * v * v * v)
    return 0.5 * v * (1.0 + te.tanh(inner))


def gelu(x: te.Tensor, approximate: str = "none") -> te.Tensor:
    """ONNX Gelu: ``0.5 x (1 + erf(x / sqrt 2))``, or its tanh approximation with ``approximate="tanh"``."""
    forms = {"none": _gelu_erf, "tanh": _gelu_tanh}
    if approximate not in forms:
        raise fail("gelu", "approximate", f"{approximate!r} is not one of 'none', 'tanh'")
    form = forms[approximate]
    # float16: the whole formula in float32, rounded once
    return _unary("gelu", x, lambda v: tir_op.cast(form(tir_op.cast(v, "float32")), v.dtype)
                  if v.dtype == "float16" else form(v), ALL_FLOATS)


def where(cond: te.Tensor, x: Operand, y: Operand) -> te.Tensor:
    """``x`` where ``cond`` else ``y``, all three broadcast together (ONNX Where)."""
    if not isinstance(cond, te.Tensor):
        raise fail("where", "cond", f"expected a bool tensor, got {type(cond).__name__}")
    check_dtype(cond, "where", "cond", ("bool",))
    shapes = [_operand_shape("where", arg, v) for arg, v in (("cond", cond), ("x", x), ("y", y))]
    dtype = _common_dtype("where", {"x": x, "y": y})
    out_shape: tuple[int, ...] = ()
    for s in shapes:
        out_shape = broadcast_shape(out_shape, s, "where")
    load_c = _loader("where", "cond", cond, "bool", out_shape)
    load_x = _loader("where", "x", x, dtype, out_shape)
    load_y = _loader("where", "y", y, dtype, out_shape)
    return te.compute(out_shape, lambda *i: te.select(load_c(i), load_x(i), load_y(i)), name="where")


def cast(x: te.Tensor, dtype: str) -> te.Tensor:
    """``x`` converted to ``dtype`` (ONNX Cast)."""
    try:
        dt.parse(dtype)
    except ExprError as e:
        raise fail("cast", "dtype", str(e)) from None
    return _unary("cast", x, lambda v: tir_op.cast(v, dtype), NUMERIC_DTYPES + ("bool",))


def negative(x: te.Tensor) -> te.Tensor:
    """``-x`` (ONNX Neg)."""
    return _unary("negative", x, lambda v: -v)


def abs(x: te.Tensor) -> te.Tensor:
    """``|x|`` (ONNX Abs); integers stay integers."""
    return _unary("abs", x, te.abs)


def leaky_relu(x: te.Tensor, alpha: float = 0.01) -> te.Tensor:
    """``x`` where ``x >= 0``, else ``alpha * x`` (ONNX LeakyRelu)."""
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise fail("leaky_relu", "alpha", f"expected a number, got {alpha!r}")
    return _unary("leaky_relu", x, lambda v: te.select(v < te.const(0, v.dtype), v * te.const(alpha, v.dtype), v),
                  ALL_FLOATS)


def _compare(name: str, kind: str, a: Operand, b: Operand) -> te.Tensor:
    return broadcast_compute(name, {"a": a, "b": b}, lambda x, y: tir_op.cmp(kind, x, y),
                             NUMERIC_DTYPES + ("bool",))


def equal(a: Operand, b: Operand) -> te.Tensor:
    """``a == b`` with broadcasting, a bool tensor (ONNX Equal)."""
    return _compare("equal", "==", a, b)


def less(a: Operand, b: Operand) -> te.Tensor:
    """``a < b`` with broadcasting, a bool tensor (ONNX Less)."""
    return _compare("less", "<", a, b)


def less_equal(a: Operand, b: Operand) -> te.Tensor:
    """``a <= b`` with broadcasting, a bool tensor (ONNX LessOrEqual)."""
    return _compare("less_equal", "<=", a, b)


def greater(a: Operand, b: Operand) -> te.Tensor:
    """``a > b`` with broadcasting, a bool tensor (ONNX Greater)."""
    return _compare("greater", ">", a, b)


def greater_equal(a: Operand, b: Operand) -> te.Tensor:
    """``a >= b`` with broadcasting, a bool tensor (ONNX GreaterOrEqual)."""
    return _compare("greater_equal", ">=", a, b)


def logical_and(a: Operand, b: Operand) -> te.Tensor:
    """``a and b`` of bool tensors with broadcasting (ONNX And)."""
    return broadcast_compute("logical_and", {"a": a, "b": b}, tir_op.logical_and, ("bool",))


def logical_or(a: Operand, b: Operand) -> te.Tensor:
    """``a or b`` of bool tensors with broadcasting (ONNX Or)."""
    return broadcast_compute("logical_or", {"a": a, "b": b}, tir_op.logical_or, ("bool",))


def logical_xor(a: Operand, b: Operand) -> te.Tensor:
    """``a != b`` of bool tensors with broadcasting (ONNX Xor)."""
    return broadcast_compute("logical_xor", {"a": a, "b": b}, lambda x, y: tir_op.cmp("!=", x, y), ("bool",))


def logical_not(x: te.Tensor) -> te.Tensor:
    """``not x`` of a bool tensor (ONNX Not)."""
    return _unary("logical_not", x, tir_op.logical_not, ("bool",))


# The graph compiler schedules an operator missing from its fusion-pattern table with schedule_<op>.
schedule_leaky_relu = schedule_equal = schedule_less = schedule_less_equal = schedule_greater = \
    schedule_greater_equal = schedule_logical_and = schedule_logical_or = schedule_logical_xor = \
    schedule_logical_not = schedule_injective
