"""Building expressions: constant conversion, dtype promotion, intrinsics.

Every Python operator on an expression lands here. Operands are converted
(Python ints/floats become constants of the other operand's type) and
promoted to a common dtype; integer constants are folded on the spot so that
trivially constant shapes stay plain numbers. Heavier rewriting belongs to
:mod:`tecomp.tir.simplify`.
"""

from __future__ import annotations

import math
import operator
from typing import Any

import numpy as np

from ..error import ExprError
from . import dtype as dt
from .expr import (EQ, GE, GT, LE, LT, NE, Add, And, Broadcast, Call, Cast, Div,
                   FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or,
                   PrimExpr, Select, StringImm, Sub)

MATH_INTRINSICS = ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf",
                   "fabs", "floor", "ceil", "pow", "exp2", "log2", "log10",
                   "sin", "cos", "trunc", "round")


def const(value: Any, dtype: str | None = None) -> PrimExpr:
    """A constant; dtype defaults to int32 for ints, float32 for floats, bool for bools."""
    if dtype is None:
        if isinstance(value, (bool, np.bool_)):
            dtype = "bool"
        elif isinstance(value, (int, np.integer)):
            dtype = "int32" if -2**31 <= int(value) < 2**31 else "int64"
        elif isinstance(value, (float, np.floating)):
            dtype = "float32"
        else:
            raise ExprError(f"cannot make a constant from {value!r}")
    t = dt.parse(dtype)
    dtype = str(t)
    if t.lanes != 1:
        return Broadcast(const(value, str(t.element())), t.lanes)
    if t.is_float:
        return FloatImm(dtype, float(value))
    if t.is_bool:
        return IntImm("bool", int(bool(value)))
    if t.code == "handle":
        raise ExprError("cannot make a constant of dtype handle")
    return IntImm(dtype, _wrap_int(int(value), t))


def _wrap_int(v: int, t: dt.DataType) -> int:
    """Two's-complement wrap of v into t's range (as the machine would)."""
    mask = (1 << t.bits) - 1
    v &= mask
    if t.is_int and v >= 1 << (t.bits - 1):
        v -= 1 << t.bits
    return v


def convert(value: Any) -> PrimExpr:
    """Turn a Python number, IterVar or expression into a PrimExpr."""
    if isinstance(value, PrimExpr):
        return value
    var = getattr(value, "var", None)  # te.IterVar
    if isinstance(var, PrimExpr):
        return var
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return const(value)
    raise ExprError(f"cannot use {value!r} (of type {type(value).__name__}) in a tensor expression")


def _convert_pair(a: Any, b: Any) -> tuple[PrimExpr, PrimExpr]:
    a_is_py = not isinstance(a, PrimExpr) and not hasattr(a, "var")
    b_is_py = not isinstance(b, PrimExpr) and not hasattr(b, "var")
    if a_is_py and not b_is_py:
        b = convert(b)
        a = _const_like(a, b.dtype)
    elif b_is_py and not a_is_py:
        a = convert(a)
        b = _const_like(b, a.dtype)
    else:
        a, b = convert(a), convert(b)
    target = dt.promote(a.dtype, b.dtype)
    return cast(a, target), cast(b, target)


def _const_like(value: Any, like: str) -> PrimExpr:
    """A Python number as a constant of dtype ``like``, or of float32 when a float meets an int."""
    if isinstance(value, (float, np.floating)) and not dt.is_float(like):
        return const(value, dt.with_lanes("float32", dt.lanes(like)) if dt.lanes(like) > 1 else "float32")
    if isinstance(value, (bool, np.bool_)) and not dt.is_bool(like):
        value = int(value)
    return const(value, like)


def _promote_float(a: PrimExpr, b: PrimExpr) -> tuple[PrimExpr, PrimExpr]:
    target = dt.promote(a.dtype, b.dtype)
    return cast(a, target), cast(b, target)


def cast(value: Any, dtype: str) -> PrimExpr:
    """``value`` converted to ``dtype`` (constants are converted on the spot)."""
    value = convert(value)
    t = dt.parse(dtype)
    dtype = str(t)  # the canonical name ("float" is float32)
    if value.dtype == dtype:
        return value
    src = dt.parse(value.dtype)
    if src.lanes == 1 and t.lanes > 1:
        return Broadcast(cast(value, str(t.element())), t.lanes)
    if isinstance(value, IntImm) and t.lanes == 1:
        return const(value.value, dtype)
    if isinstance(value, FloatImm) and t.lanes == 1:
        if t.is_float:
            return const(value.value, dtype)
        if t.is_bool:
            return const(value.value != 0, dtype)
        if math.isfinite(value.value):
            return const(int(value.value), dtype)
    return Cast(dtype, value)


_FOLD = {Add: operator.add, Sub: operator.sub, Mul: operator.mul}


def _binary(cls, a: Any, b: Any) -> PrimExpr:
    a, b = _convert_pair(a, b)
    if cls in _FOLD:
        if isinstance(a, IntImm) and isinstance(b, IntImm):
            return const(_FOLD[cls](a.value, b.value), a.dtype)
        if isinstance(a, FloatImm) and isinstance(b, FloatImm):
            return const(_FOLD[cls](a.value, b.value), a.dtype)
        if cls is Add:
            if _is_zero(b):
                return a
            if _is_zero(a):
                return b
        if cls is Sub and _is_zero(b):
            return a
        if cls is Mul:
            if _is_one(b):
                return a
            if _is_one(a):
                return b
    return cls(a, b)


def _is_zero(e: PrimExpr) -> bool:
    return isinstance(e, IntImm) and e.value == 0


def _is_one(e: PrimExpr) -> bool:
    return isinstance(e, IntImm) and e.value == 1


def add(a: Any, b: Any) -> PrimExpr:
    return _binary(Add, a, b)


def sub(a: Any, b: Any) -> PrimExpr:
    return _binary(Sub, a, b)


def mul(a: Any, b: Any) -> PrimExpr:
    return _binary(Mul, a, b)


def neg(a: Any) -> PrimExpr:
    a = convert(a)
    return sub(const(0, a.dtype), a)


def div(a: Any, b: Any) -> PrimExpr:
    """True division. Integer operands are an error, as in TVM: say // or / on floats."""
    a, b = _convert_pair(a, b)
    if dt.is_integral(a.dtype):
        raise ExprError(
            f"'/' between integer expressions ({a} / {b}) is ambiguous; use // for floor "
            "division, or cast to a float type for true division")
    return Div(a, b)


def _int_operands(name: str, a: Any, b: Any) -> tuple[PrimExpr, PrimExpr]:
    a, b = _convert_pair(a, b)
    if not dt.is_integral(a.dtype):
        raise ExprError(f"{name} needs integer operands, got {a.dtype} ({a} and {b})")
    return a, b


def floordiv(a: Any, b: Any) -> PrimExpr:
    a, b = _int_operands("floordiv (//)", a, b)
    if isinstance(a, IntImm) and isinstance(b, IntImm) and b.value != 0:
        return const(a.value // b.value, a.dtype)
    if _is_one(b):
        return a
    return FloorDiv(a, b)


def floormod(a: Any, b: Any) -> PrimExpr:
    a, b = _int_operands("floormod (%)", a, b)
    if isinstance(a, IntImm) and isinstance(b, IntImm) and b.value != 0:
        return const(a.value % b.value, a.dtype)
    if _is_one(b):
        return const(0, a.dtype)
    return FloorMod(a, b)


def min_expr(a: Any, b: Any) -> PrimExpr:
    a, b = _convert_pair(a, b)
    if isinstance(a, IntImm) and isinstance(b, IntImm):
        return const(min(a.value, b.value), a.dtype)
    return Min(a, b)


def max_expr(a: Any, b: Any) -> PrimExpr:
    a, b = _convert_pair(a, b)
    if isinstance(a, IntImm) and isinstance(b, IntImm):
        return const(max(a.value, b.value), a.dtype)
    return Max(a, b)


_CMP = {"<": LT, "<=": LE, ">": GT, ">=": GE, "==": EQ, "!=": NE}
_CMP_FN = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
           "==": operator.eq, "!=": operator.ne}


def cmp(kind: str, a: Any, b: Any) -> PrimExpr:
    a, b = _convert_pair(a, b)
    if isinstance(a, (IntImm, FloatImm)) and isinstance(b, (IntImm, FloatImm)):
        return const(_CMP_FN[kind](a.value, b.value), "bool")
    return _CMP[kind](a, b)


def _as_bool(e: Any) -> PrimExpr:
    e = convert(e)
    if not dt.is_bool(e.dtype):
        raise ExprError(f"expected a boolean condition, got {e} of dtype {e.dtype}")
    return e


def logical_and(a: Any, b: Any) -> PrimExpr:
    a, b = _as_bool(a), _as_bool(b)
    if isinstance(a, IntImm):
        return b if a.value else a
    if isinstance(b, IntImm):
        return a if b.value else b
    return And(a, b)


def logical_or(a: Any, b: Any) -> PrimExpr:
    a, b = _as_bool(a), _as_bool(b)
    if isinstance(a, IntImm):
        return a if a.value else b
    if isinstance(b, IntImm):
        return b if b.value else a
    return Or(a, b)


def logical_not(a: Any) -> PrimExpr:
    a = _as_bool(a)
    if isinstance(a, IntImm):
        return const(not a.value, "bool")
    return Not(a)


def all_of(*conds: Any) -> PrimExpr:
    """te.all: the conjunction of the conditions (true when none)."""
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = tuple(conds[0])
    result: PrimExpr = const(True)
    for c in conds:
        result = logical_and(result, c)
    return result


def any_of(*conds: Any) -> PrimExpr:
    """te.any: the disjunction of the conditions (false when none)."""
    if len(conds) == 1 and isinstance(conds[0], (list, tuple)):
        conds = tuple(conds[0])
    result: PrimExpr = const(False)
    for c in conds:
        result = logical_or(result, c)
    return result


def select(cond: Any, t: Any, f: Any) -> PrimExpr:
    cond = _as_bool(cond)
    t, f = _convert_pair(t, f)
    return Select(cond, t, f)


def if_then_else(cond: Any, t: Any, f: Any) -> PrimExpr:
    """A guarded choice: only the branch taken is evaluated (safe for padding loads)."""
    cond = _as_bool(cond)
    t, f = _convert_pair(t, f)
    if isinstance(cond, IntImm):
        return t if cond.value else f
    return Call(t.dtype, "if_then_else", (cond, t, f))


def call_intrin(name: str, *args: Any) -> PrimExpr:
    """A math intrinsic on floating-point arguments (integers are cast to float32)."""
    if name not in MATH_INTRINSICS:
        raise ExprError(f"unknown intrinsic {name!r}; known: {', '.join(MATH_INTRINSICS)}")
    conv = [convert(a) for a in args]
    if len(conv) == 2:
        conv = list(_convert_pair(*args))
    conv = [cast(a, "float32") if not dt.is_float(a.dtype) else a for a in conv]
    return Call(conv[0].dtype, name, tuple(conv))


def call_builtin(dtype: str, func_name: str, *args: Any) -> PrimExpr:
    """TVM's ``tir.call_intrin(dtype, "tir.name", *args)``: a call of a builtin by name, ``tir.``
    dropped (``tir.exp`` is tecomp's ``exp``); a string argument (a layout) is a StringImm. A name
    the code generator does not know is reported by ``build``."""
    name = func_name[len("tir."):] if func_name.startswith("tir.") else func_name
    return Call(str(dt.parse(dtype)), name, tuple(StringImm(a) if isinstance(a, str) else convert(a) for a in args))


def intrinsic(name: str) -> Any:
    """The elementwise function ``name(x, ...)`` building :func:`call_intrin` (``te.exp`` and friends)."""
    def f(x: Any, *rest: Any) -> PrimExpr:
        return call_intrin(name, x, *rest)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise {name} (a math intrinsic; integers are cast to float32)."
    return f


def fabs(x: Any) -> PrimExpr:
    """Absolute value; integers stay integers."""
    x = convert(x)
    if dt.is_integral(x.dtype):
        return select(x < 0, neg(x), x)
    return Call(x.dtype, "fabs", (x,))


def max_value(dtype: str) -> PrimExpr:
    t = dt.parse(dtype)
    if t.is_float:
        return const(float(np.finfo(dt.numpy_name(dtype)).max), dtype)
    if t.is_bool:
        return const(True)
    return const(int(np.iinfo(dt.numpy_name(dtype)).max), dtype)


def min_value(dtype: str) -> PrimExpr:
    t = dt.parse(dtype)
    if t.is_float:
        return const(float(np.finfo(dt.numpy_name(dtype)).min), dtype)
    if t.is_bool:
        return const(False)
    return const(int(np.iinfo(dt.numpy_name(dtype)).min), dtype)


def truncdiv(a: Any, b: Any) -> PrimExpr:
    """Integer division rounding toward zero (C's ``/``), built from floor division."""
    a, b = _int_operands("truncdiv", a, b)
    if isinstance(a, IntImm) and isinstance(b, IntImm) and b.value != 0:
        q = abs(a.value) // abs(b.value)
        return const(-q if (a.value < 0) != (b.value < 0) else q, a.dtype)
    q = floordiv(a, b)
    inexact = logical_and(cmp("!=", floormod(a, b), 0), cmp("!=", cmp("<", a, 0), cmp("<", b, 0)))
    return select(inexact, add(q, 1), q)


def truncmod(a: Any, b: Any) -> PrimExpr:
    """The remainder of :func:`truncdiv` (C's ``%``: it takes the sign of ``a``)."""
    a, b = _int_operands("truncmod", a, b)
    return sub(a, mul(truncdiv(a, b), b))


def c_div(a: Any, b: Any) -> PrimExpr:
    """``a / b`` with C semantics (TVM's ``te.div``): true division on floats, truncdiv on integers."""
    a, b = _convert_pair(a, b)
    return truncdiv(a, b) if dt.is_integral(a.dtype) else Div(a, b)


def popcount(x: Any) -> PrimExpr:
    """The number of set bits of an integer."""
    x = convert(x)
    if not dt.is_integral(x.dtype) or dt.is_bool(x.dtype):
        raise ExprError(f"popcount needs an integer argument, got {x} of dtype {x.dtype}")
    return Call(x.dtype, "popcount", (x,))


def call_extern(dtype: str, func_name: str, *args: Any) -> PrimExpr:
    """A call of the C function ``func_name`` (resolved when the library is linked) returning ``dtype``."""
    dt.parse(dtype)
    if not isinstance(func_name, str) or not func_name.isidentifier():
        raise ExprError(f"call_extern: the function name must be a C identifier, got {func_name!r}")
    return Call(dtype, "call_extern", (StringImm(func_name),) + tuple(convert(a) for a in args))


call_pure_extern = call_extern


def call_llvm_intrin(dtype: str, name: str, num_signature: Any, *args: Any) -> PrimExpr:
    """A call of the LLVM intrinsic ``name`` (``llvm.ctpop``) returning ``dtype``; the types of the
    first ``num_signature`` arguments complete an overloaded name (llvm target only)."""
    dt.parse(dtype)
    if not isinstance(name, str) or not name.startswith("llvm."):
        raise ExprError(f"call_llvm_intrin: {name!r} is not an LLVM intrinsic name (llvm.*)")
    count = int(num_signature.value if isinstance(num_signature, IntImm) else num_signature)
    return Call(dtype, "call_llvm_intrin", (StringImm(name), const(count)) + tuple(convert(a) for a in args))


call_llvm_pure_intrin = call_llvm_intrin


def fmod(a: Any, b: Any) -> PrimExpr:
    """The remainder of ``a / b`` rounded toward zero (C's ``fmod``; ``truncmod`` on integers)."""
    a, b = _convert_pair(a, b)
    if dt.is_integral(a.dtype):
        return truncmod(a, b)
    return sub(a, mul(call_intrin("trunc", div(a, b)), b))


def call_packed(func_name: str, *args: Any) -> PrimExpr:
    """A call of the function registered as ``func_name`` (``tecomp.register_func``) with buffers
    (passed as arrays) and scalars, from compiled CPU code."""
    from .buffer import Buffer
    if not isinstance(func_name, str) or not func_name:
        raise ExprError(f"call_packed: the function name must be a non-empty string, got {func_name!r}")
    return Call("int32", "tvm_call_packed",
                (StringImm(func_name),) + tuple(a if isinstance(a, Buffer) else convert(a) for a in args))
