"""ONNX converters for elementwise math (with Mod, integer Pow, IsNaN/IsInf, rounding), activations,
comparisons and logic, casts, reductions (with ArgMax/ArgMin), LpNormalization and softmax: each
becomes one library operator or a short composition of them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .common import axes, axes_operand, binary, same_dtype, scalar_of
from .importer import DTYPES, NodeContext, Value, dtype_of
from .registry import converter

# ONNX op -> (library operator, schema versions). The listed versions differ only in the
# types they allow, so one conversion covers all of them.
UNARY = {
    "Relu": ("relu", (13, 14)), "Sqrt": ("sqrt", (13,)), "Erf": ("erf", (13,)), "Exp": ("exp", (13,)),
    "Log": ("log", (13,)), "Tanh": ("tanh", (13,)), "Sigmoid": ("sigmoid", (13,)), "Neg": ("negative", (13,)),
    "Abs": ("abs", (13,)), "Not": ("logical_not", (1,)), "IsNaN": ("isnan", (13, 20)), "Floor": ("floor", (13,)),
    "Ceil": ("ceil", (13,)), "Round": ("round", (11, 22)), "Sign": ("sign", (13,)),
    "Softplus": ("softplus", (1, 22)), "Mish": ("mish", (18, 22)),
}
BINARY = {
    "Add": ("add", (13, 14)), "Sub": ("subtract", (13, 14)), "Mul": ("multiply", (13, 14)),
    "Div": ("divide", (13, 14)), "Equal": ("equal", (13, 19)), "Less": ("less", (13,)),
    "Greater": ("greater", (13,)), "LessOrEqual": ("less_equal", (12, 16)),
    "GreaterOrEqual": ("greater_equal", (12, 16)), "And": ("logical_and", (7,)), "Or": ("logical_or", (7,)),
    "Xor": ("logical_xor", (7,)),
}
VARIADIC = {"Max": "maximum", "Min": "minimum", "Sum": "add", "Mean": "add"}


def _unary(op: str) -> Callable[[NodeContext], Value]:
    def convert(n: NodeContext) -> Value:
        return n.emit(op, n.input(0))
    return convert


def _binary(op: str) -> Callable[[NodeContext], Value]:
    def convert(n: NodeContext) -> Value:
        return binary(n, op, n.input(0), n.input(1))
    return convert


for _onnx_op, (_op, _versions) in UNARY.items():
    converter(_onnx_op, versions=_versions)(_unary(_op))
for _onnx_op, (_op, _versions) in BINARY.items():
    converter(_onnx_op, versions=_versions)(_binary(_op))


@converter("Max", "Min", "Sum", "Mean", versions=(13,))
def _variadic(n: NodeContext) -> Value:
    values = n.inputs()
    same_dtype(n, values)
    op = VARIADIC[n.op_type]
    out = values[0]
    for v in values[1:]:
        out = binary(n, op, out, v)
    if n.op_type == "Mean" and len(values) > 1:
        out = n.emit("divide", out, b=float(len(values)))
    return out


def _is_float(value: Value) -> bool:
    return np.dtype(value.dtype).kind == "f"


@converter("Pow", versions=(13, 15))
def _pow(n: NodeContext) -> Value:
    base, exponent = n.input(0), n.input(1)
    if not _is_float(base) and _is_float(exponent):
        # an integer to a float power: the float64 power truncated to the base's type
        wide = binary(n, "power", _cast_to(n, base, "float64"), _cast_to(n, exponent, "float64"))
        return n.emit("cast", wide, dtype=base.dtype)
    # ONNX lets the exponent have its own type; the result has the base's
    return binary(n, "power", base, _cast_to(n, exponent, base.dtype))


@converter("Mod", versions=(13, 28))
def _mod(n: NodeContext) -> Value:
    # Mod-13 asks for fmod=1 with floats; fmod=0 there gets the floor semantics Mod-28 defines for them
    fmod = n.choice("fmod", 0, (0, 1))
    a, b = n.input(0), n.input(1)
    same_dtype(n, [a, b])
    return n.emit("mod", a, b, fmod=bool(fmod))


@converter("IsInf", versions=(10, 20))
def _isinf(n: NodeContext) -> Value:
    return n.emit("isinf", n.input(0), detect_positive=bool(n.choice("detect_positive", 1, (0, 1))),
                  detect_negative=bool(n.choice("detect_negative", 1, (0, 1))))


@converter("Identity", versions=(13, 14, 16, 19, 21, 23, 24, 25))
def _identity(n: NodeContext) -> Value:
    return n.input(0)


@converter("Cast", versions=(13, 19, 21, 23, 24, 25, 28))
def _cast(n: NodeContext) -> Value:
    n.ignore("saturate", "round_mode")  # they apply to float8/float4 targets only, which are rejected
    dtype = dtype_of(n.attr("to"), f"ONNX node {n.name!r} (Cast) attribute to")
    return _cast_to(n, n.input(0), dtype)


@converter("CastLike", versions=(15, 19, 21, 23, 24, 25))
def _cast_like(n: NodeContext) -> Value:
    n.ignore("saturate", "round_mode")
    return _cast_to(n, n.input(0), n.input(1).dtype)


def _cast_to(n: NodeContext, x: Value, dtype: str) -> Value:
    if dtype not in DTYPES:
        raise n.error(f"cast to {dtype} is not supported")
    return x if x.dtype == dtype else n.emit("cast", x, dtype=dtype)


@converter("Where", versions=(9, 16))
def _where(n: NodeContext) -> Value:
    return n.emit("where", n.input(0), n.input(1), n.input(2))


@converter("Clip", versions=(13,))
def _clip(n: NodeContext) -> Value:
    x, lo, hi = n.input(0), n.optional(1), n.optional(2)
    if all(b is None or b.const is not None for b in (lo, hi)):
        a_min, a_max = (None if b is None else scalar_of(b) for b in (lo, hi))
        if a_min is not None and a_max is not None and a_min > a_max:
            a_min = a_max  # ONNX: every element becomes max when min > max
        if a_min is None and a_max is None:
            return x
        return n.emit("clip", x, a_min=a_min, a_max=a_max)
    out = x
    if lo is not None:
        out = binary(n, "maximum", out, lo)
    if hi is not None:
        out = binary(n, "minimum", out, hi)
    return out


@converter("LeakyRelu", versions=(6, 16))
def _leaky_relu(n: NodeContext) -> Value:
    return n.emit("leaky_relu", n.input(0), alpha=float(n.attr("alpha", 0.01)))


@converter("Gelu", versions=(20,))
def _gelu(n: NodeContext) -> Value:
    return n.emit("gelu", n.input(0), approximate=n.choice("approximate", "none", ("none", "tanh")))


def _hard_sigmoid(n: NodeContext, x: Value, alpha: float, beta: float) -> Value:
    return n.emit("clip", n.emit("add", n.emit("multiply", x, b=alpha), b=beta), a_min=0.0, a_max=1.0)


@converter("HardSigmoid", versions=(6, 22))
def _hard_sigmoid_op(n: NodeContext) -> Value:
    return _hard_sigmoid(n, n.input(0), float(n.attr("alpha", 0.2)), float(n.attr("beta", 0.5)))


@converter("HardSwish", versions=(14, 22))
def _hard_swish(n: NodeContext) -> Value:
    x = n.input(0)
    return n.emit("multiply", x, _hard_sigmoid(n, x, 1.0 / 6.0, 0.5))


@converter("PRelu", versions=(9, 16))
def _prelu(n: NodeContext) -> Value:
    x, slope = n.input(0), n.input(1)
    negative = n.emit("less", x, b=0.0)
    return n.emit("where", negative, binary(n, "multiply", x, slope), x)


def _elu_core(n: NodeContext, x: Value, alpha: float) -> tuple[Value, Value]:
    """(x < 0, alpha * (exp(x) - 1))."""
    return n.emit("less", x, b=0.0), n.emit("multiply", n.emit("subtract", n.emit("exp", x), b=1.0), b=alpha)


@converter("Elu", versions=(6, 22))
def _elu(n: NodeContext) -> Value:
    x = n.input(0)
    negative, curve = _elu_core(n, x, float(n.attr("alpha", 1.0)))
    return n.emit("where", negative, curve, x)


@converter("Selu", versions=(6, 22))
def _selu(n: NodeContext) -> Value:
    x = n.input(0)
    alpha, gamma = float(n.attr("alpha", 1.67326319217681884765625)), float(n.attr("gamma", 1.05070102214813232421875))
    negative, curve = _elu_core(n, x, alpha)
    return n.emit("multiply", n.emit("where", negative, curve, x), b=gamma)


@converter("Reciprocal", versions=(13,))
def _reciprocal(n: NodeContext) -> Value:
    x = n.input(0)
    return n.emit("divide", n.constant(1, x.dtype), x)


@converter("Softsign", versions=(1, 22))
def _softsign(n: NodeContext) -> Value:
    x = n.input(0)
    return n.emit("divide", x, n.emit("add", n.emit("abs", x), b=1.0))


@converter("Softmax", "LogSoftmax", versions=(13,))
def _softmax(n: NodeContext) -> Value:
    x = n.input(0)
    op = "softmax" if n.op_type == "Softmax" else "log_softmax"
    return n.emit(op, x, axis=axes(n, [n.attr("axis", -1)], x.rank, "axis")[0])


# ONNX reduction -> (library reduction, elementwise op before it, elementwise op after it,
# version from which the axes are an input rather than an attribute).
REDUCTIONS = {
    "ReduceSum": ("sum", None, None, 13), "ReduceMean": ("mean", None, None, 18),
    "ReduceMax": ("max", None, None, 18), "ReduceMin": ("min", None, None, 18),
    "ReduceL1": ("sum", "abs", None, 18), "ReduceL2": ("sum", "square", "sqrt", 18),
    "ReduceSumSquare": ("sum", "square", None, 18), "ReduceLogSum": ("sum", None, "log", 18),
    "ReduceProd": ("prod", None, None, 18), "ReduceLogSumExp": ("logsumexp", None, None, 18),
}


def _elementwise(n: NodeContext, op: str | None, x: Value) -> Value:
    if op is None:
        return x
    if op == "square":
        return n.emit("multiply", x, x)
    if not _is_float(x):  # sqrt/log of an integer reduction: in float64, truncated back (as ONNX's reference)
        return n.emit("cast", n.emit(op, n.emit("cast", x, dtype="float64")), dtype=x.dtype)
    return n.emit(op, x)


@converter("ReduceSum", versions=(13,))
@converter("ReduceMean", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceProd", versions=(13, 18))
@converter("ReduceLogSum", "ReduceLogSumExp", versions=(13, 18, 28))
@converter("ReduceMax", "ReduceMin", versions=(13, 18, 20))
def _reduce(n: NodeContext) -> Value:
    op, before, after, axes_since = REDUCTIONS[n.op_type]
    x = n.input(0)
    keepdims = bool(n.attr("keepdims", 1))
    which = axes_operand(n, 1, "axes", axes_since)
    noop = bool(n.attr("noop_with_empty_axes", 0)) if n.version >= axes_since else False
    if not which:
        if noop:
            return x
        which = None
    else:
        which = axes(n, which, x.rank)
    if op in ("max", "min"):
        return _extremum(n, op, x, list(range(x.rank)) if which is None else which, keepdims)
    out = n.emit(op, _elementwise(n, before, x), axis=which, keepdims=keepdims)
    return _elementwise(n, after, out)


def _extremum(n: NodeContext, op: str, x: Value, which: list[int], keepdims: bool) -> Value:
    """ReduceMax/ReduceMin: an empty reduction is the constant -inf/+inf (the type's lowest/highest
    integer), which static shapes know at import; bool (opset 20) goes through uint8."""
    if any(x.shape[a] == 0 for a in which):
        shape = [1 if k in which else d for k, d in enumerate(x.shape) if keepdims or k not in which]
        dtype = np.dtype(x.dtype)
        info = np.finfo(dtype) if dtype.kind == "f" else np.iinfo(dtype if dtype.kind != "b" else "uint8")
        fill = (-np.inf if op == "max" else np.inf) if dtype.kind == "f" else (info.min if op == "max" else info.max)
        return n.constant(np.full(shape, fill).astype(dtype))
    if x.dtype == "bool":
        return n.emit("cast", n.emit(op, n.emit("cast", x, dtype="uint8"), axis=which, keepdims=keepdims),
                      dtype="bool")
    return n.emit(op, x, axis=which, keepdims=keepdims)


@converter("ArgMax", "ArgMin", versions=(13,))
def _arg_extremum(n: NodeContext) -> Value:
    x = n.input(0)
    last = bool(n.choice("select_last_index", 0, (0, 1)))
    return n.emit(n.op_type.lower(), x, axis=axes(n, [n.attr("axis", 0)], x.rank, "axis")[0],
                  keepdims=bool(n.attr("keepdims", 1)), select_last_index=last)


@converter("LpNormalization", versions=(1, 22))
def _lp_normalization(n: NodeContext) -> Value:
    x = n.input(0)
    ax = axes(n, [n.attr("axis", -1)], x.rank, "axis")[0]
    p = n.choice("p", 2, (1, 2))
    if p == 1:
        norm = n.emit("sum", n.emit("abs", x), axis=[ax], keepdims=True)
    else:
        norm = n.emit("sqrt", n.emit("sum", n.emit("multiply", x, x), axis=[ax], keepdims=True))
    # a zero norm gives zeros (as ONNX's reference), not 0 / 0
    return n.emit("where", n.emit("equal", norm, b=0.0), n.constant(0, x.dtype), n.emit("divide", x, norm))
