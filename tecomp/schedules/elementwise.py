"""Elementwise operators: broadcasting arithmetic (with ONNX Mod and integer Pow), comparisons and
logic, NaN/infinity tests, rounding and sign, activations (softplus, mish, ...), math, where, cast,
and ``trilu`` (a triangle of the last two axes).

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


def _int_power(x: PrimExpr, y: PrimExpr) -> PrimExpr:
    # float64 pow is exact for integer results below 2**53; rounding absorbs a vector libm's last-ulp error
    wide = te.power(tir_op.cast(x, "float64"), tir_op.cast(y, "float64"))
    return tir_op.cast(te.round(wide), x.dtype)


def power(a: Operand, b: Operand) -> te.Tensor:
    """``a ** b`` with broadcasting (ONNX Pow). int32/int64 operands give the integer power, exact
    while the result's magnitude is below 2**53 (a negative exponent gives 0 unless ``|a| == 1``).
    A constant float exponent of 2, 3 or 4 multiplies (GPT-2's GELU cubes its input)."""
    return broadcast_compute("power", {"a": a, "b": b},
                             lambda x, y: _float_power(x, y) if dt.is_float(x.dtype) else _int_power(x, y),
                             allowed=ALL_FLOATS + ("int32", "int64"))


def _float_power(x: PrimExpr, y: PrimExpr) -> PrimExpr:
    """``x ** y``; products for the small integer exponents: a vector ``pow`` takes libm's slow
    path for every negative base (70 ns an element against 1 for the product)."""
    exponent = getattr(y, "value", None)
    if exponent in (2.0, 3.0, 4.0):
        square = x * x
        return {2.0: square, 3.0: square * x, 4.0: square * square}[exponent]
    return te.power(x, y)


def _int_mod(x: PrimExpr, y: PrimExpr, fmod: bool) -> PrimExpr:
    """The integer remainder: the sign of ``y`` (floor), or of ``x`` with ``fmod`` (C's ``%``). The
    hardware never divides by 0 or -1 (both trap on x86 for some ``x``): ``x % 0`` is 0 (as numpy),
    ``x % -1`` is 0 anyway, so both divide by 1 instead."""
    one, zero = te.const(1, y.dtype), te.const(0, y.dtype)
    trap = y == zero if dt.parse(y.dtype).is_uint else te.any(y == zero, y == te.const(-1, y.dtype))
    r = te.floormod(x, te.select(trap, one, y))
    if fmod and not dt.parse(x.dtype).is_uint:
        r = te.select(te.all(r != zero, (x < zero) != (y < zero)), r - y, r)
    return r


def _float_fmod(x: PrimExpr, y: PrimExpr) -> PrimExpr:
    """C's ``fmod`` in the operands' wider type: ``x - trunc(x / y) * y`` (computed in float64 for
    float16/float32, where it is exact while the quotient is below 2**29)."""
    wide = "float64"
    xw, yw = tir_op.cast(x, wide), tir_op.cast(y, wide)
    r = xw - te.trunc(xw / yw) * yw
    finite_x = te.all(xw == xw, te.abs(xw) != te.const(math.inf, wide))
    r = te.select(te.all(te.abs(yw) == te.const(math.inf, wide), finite_x), xw, r)  # fmod(x, +-inf) = x
    return tir_op.cast(r, x.dtype)


def _floor_mod_float(x: PrimExpr, y: PrimExpr) -> PrimExpr:
    """Python's ``x % y`` of floats: fmod, moved by ``y`` when its sign differs from ``y``'s."""
    r = _float_fmod(x, y)
    zero = te.const(0, x.dtype)
    return te.select(te.all(r != zero, (r < zero) != (y < zero)), r + y, r)


def mod(a: Operand, b: Operand, fmod: bool = False) -> te.Tensor:
    """The remainder of ``a / b`` with broadcasting (ONNX Mod). ``fmod=False``: the sign of ``b``
    (Python's ``%``); ``fmod=True``: the sign of ``a`` (C's ``fmod`` / ``%``). An integer remainder
    by zero is 0, as in numpy."""
    if dt.is_float(_common_dtype("mod", {"a": a, "b": b})):
        combine = _float_fmod if fmod else _floor_mod_float
    else:
        def combine(x: PrimExpr, y: PrimExpr) -> PrimExpr:
            return _int_mod(x, y, fmod)
    return broadcast_compute("mod", {"a": a, "b": b}, combine)


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


def isnan(x: te.Tensor) -> te.Tensor:
    """Whether each element is NaN, a bool tensor (ONNX IsNaN)."""
    return _unary("isnan", x, lambda v: tir_op.cmp("!=", v, v), ALL_FLOATS)


def isinf(x: te.Tensor, detect_positive: bool = True, detect_negative: bool = True) -> te.Tensor:
    """Whether each element is +inf (``detect_positive``) or -inf (``detect_negative``), a bool
    tensor (ONNX IsInf)."""

    def f(v: PrimExpr) -> PrimExpr:
        hits = [tir_op.cmp("==", v, te.const(sign * math.inf, v.dtype))
                for sign, wanted in ((1, detect_positive), (-1, detect_negative)) if wanted]
        return te.any(*hits)

    return _unary("isinf", x, f, ALL_FLOATS)


def floor(x: te.Tensor) -> te.Tensor:
    """The largest integer not above each element (ONNX Floor)."""
    return _unary("floor", x, te.floor, ALL_FLOATS)


def ceil(x: te.Tensor) -> te.Tensor:
    """The smallest integer not below each element (ONNX Ceil)."""
    return _unary("ceil", x, te.ceil, ALL_FLOATS)


def round(x: te.Tensor) -> te.Tensor:  # noqa: A001 - the ONNX operator's name
    """The nearest integer, halves to even (ONNX Round)."""
    return _unary("round", x, te.round, ALL_FLOATS)


def _sign(v: PrimExpr) -> PrimExpr:
    one, zero = te.const(1, v.dtype), te.const(0, v.dtype)
    if dt.parse(v.dtype).is_uint:
        return te.select(v > zero, one, zero)
    # a zero or NaN is its own sign
    return te.select(v > zero, one, te.select(v < zero, te.const(-1, v.dtype), v))


def sign(x: te.Tensor) -> te.Tensor:
    """-1, 0 or 1 by the sign of each element; NaN stays NaN (ONNX Sign)."""
    return _unary("sign", x, _sign)


def _wide_float(v: PrimExpr) -> PrimExpr:
    """float16/float32 values as float64 (so log1p-like terms keep their precision)."""
    return tir_op.cast(v, "float64")


def _softplus(w: PrimExpr) -> PrimExpr:
    """``log(1 + exp(w))`` without overflow: ``max(w, 0) + log(1 + exp(-|w|))``."""
    zero = te.const(0, w.dtype)
    return tir_op.max_expr(w, zero) + te.log(te.exp(-te.abs(w)) + te.const(1, w.dtype))


def softplus(x: te.Tensor) -> te.Tensor:
    """``log(1 + exp(x))`` (ONNX Softplus), computed in float64."""
    return _unary("softplus", x, lambda v: tir_op.cast(_softplus(_wide_float(v)), v.dtype), ALL_FLOATS)


def mish(x: te.Tensor) -> te.Tensor:
    """``x * tanh(softplus(x))`` (ONNX Mish), computed in float64."""

    def f(v: PrimExpr) -> PrimExpr:
        w = _wide_float(v)
        return tir_op.cast(w * te.tanh(_softplus(w)), v.dtype)

    return _unary("mish", x, f, ALL_FLOATS)


def trilu(x: te.Tensor, k: int = 0, upper: bool = True) -> te.Tensor:
    """The upper (``j - i >= k``) or lower (``j - i <= k``) triangle of the last two axes of ``x``,
    zeros elsewhere (ONNX Trilu)."""
    if not isinstance(x, te.Tensor):
        raise fail("trilu", "x", f"expected a tensor, got {type(x).__name__}")
    check_dtype(x, "trilu", "x", NUMERIC_DTYPES + ("bool",))
    if len(x.shape) < 2:
        raise fail("trilu", "x", f"needs rank 2 or more, got rank {len(x.shape)}")
    if not isinstance(k, int) or isinstance(k, bool):
        raise fail("trilu", "k", f"expected an int, got {k!r}")

    def f(*i: PrimExpr) -> PrimExpr:
        diagonal = i[-1] - i[-2]
        keep = diagonal >= k if upper else diagonal <= k
        return te.select(keep, x[i], te.const(0, x.dtype))

    return te.compute(x.shape, f, name="trilu")


# The graph compiler schedules an operator missing from its fusion-pattern table with schedule_<op>.
schedule_leaky_relu = schedule_equal = schedule_less = schedule_less_equal = schedule_greater = \
    schedule_greater_equal = schedule_logical_and = schedule_logical_or = schedule_logical_xor = \
    schedule_logical_not = schedule_injective
