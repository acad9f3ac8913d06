"""LLVM types, constants, conversions and math intrinsics for the LLVM backend.

This module owns how a tecomp dtype maps to an LLVM type (``bool`` is ``i1``
in registers and ``i8`` in memory, as numpy stores it), how values convert
between dtypes, and how each math intrinsic becomes LLVM IR. It builds
instructions through an ``llvmlite.ir.IRBuilder`` handed in by the caller and
must not walk the loop IR or decide control flow.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir

from ..error import BuildError
from ..tir import dtype as dt

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
PTR = ir.PointerType()
VOID = ir.VoidType()

# Float ops may be contracted into FMAs (as TVM does); no other fast-math flag.
FLOAT_FLAGS = ("contract",)

_FLOAT_TYPES = {16: ir.HalfType(), 32: ir.FloatType(), 64: ir.DoubleType()}

# tecomp intrinsic -> LLVM intrinsic family with the same semantics
_LLVM_INTRINSICS = {
    "exp": "llvm.exp", "exp2": "llvm.exp2", "log": "llvm.log", "log2": "llvm.log2",
    "log10": "llvm.log10", "sqrt": "llvm.sqrt", "tanh": "llvm.tanh", "fabs": "llvm.fabs",
    "floor": "llvm.floor", "ceil": "llvm.ceil", "trunc": "llvm.trunc", "sin": "llvm.sin",
    "cos": "llvm.cos", "pow": "llvm.pow",
    # numpy rounds half to even, unlike llvm.round
    "round": "llvm.roundeven",
}
MATH_OPS = frozenset(_LLVM_INTRINSICS) | {"rsqrt", "sigmoid", "erf"}


# ---------------------------------------------------------------- types

def scalar_type(t: dt.DataType, in_memory: bool = False) -> ir.Type:
    """The LLVM type of one element of ``t``."""
    if t.is_bool:
        return I8 if in_memory else I1
    if t.code == "bfloat":  # stored as its 16 bits; arithmetic is legalized to float32
        return ir.IntType(16)
    if t.is_float:
        return _FLOAT_TYPES[t.bits]
    if t.code == "handle":
        return PTR
    return ir.IntType(t.bits)


def llvm_type(dtype: str, in_memory: bool = False) -> ir.Type:
    """The LLVM type of a value of ``dtype`` (a vector type when it has lanes)."""
    t = dt.parse(dtype)
    elem = scalar_type(t, in_memory)
    return elem if t.lanes == 1 else ir.VectorType(elem, t.lanes)


def byte_size(dtype: str) -> int:
    """Bytes one element of ``dtype`` occupies in memory."""
    t = dt.parse(dtype)
    return max(1, t.bits // 8) * t.lanes


def const(dtype: str, value) -> ir.Constant:
    """A constant of a scalar or vector ``dtype`` (vectors splat ``value``)."""
    t = dt.parse(dtype)
    elem = scalar_type(t)
    if t.code == "bfloat":
        c = ir.Constant(elem, int(_bfloat16_bits(np.array([value], "float32"))[0]))
    elif t.is_float:
        if t.bits == 16:  # llvmlite cannot encode halves out of range; numpy rounds them to inf
            with np.errstate(over="ignore"):
                value = np.float16(value)
        c = ir.Constant(elem, float(value))
    elif t.is_bool:
        c = ir.Constant(I1, int(bool(value)))
    else:
        c = ir.Constant(elem, _signed(int(value), t.bits))
    return c if t.lanes == 1 else ir.Constant(ir.VectorType(elem, t.lanes), [c] * t.lanes)


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def splat(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """A vector of ``lanes`` copies of the scalar ``value``."""
    vty = ir.VectorType(value.type, lanes)
    if isinstance(value, ir.Constant):
        return ir.Constant(vty, [value] * lanes)
    one = b.insert_element(ir.Constant(vty, ir.Undefined), value, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vty, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


# ---------------------------------------------------------------- casts

def _bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 values as bfloat16 bit patterns, rounded to nearest even (as the kernels do)."""
    bits = values.astype("float32").view("uint32").astype("uint64")
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("uint16")


def _lane_type(elem: ir.Type, lanes: int) -> ir.Type:
    return elem if lanes == 1 else ir.VectorType(elem, lanes)


def _from_bfloat16(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """bfloat16 bits to float32: the bits are the float's upper half."""
    wide = b.zext(value, _lane_type(ir.IntType(32), lanes))
    shifted = b.shl(wide, _splat_int(32, 16, lanes))
    return b.bitcast(shifted, _lane_type(ir.FloatType(), lanes))


def _to_bfloat16(b: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """float32 to bfloat16 bits, rounded to nearest even."""
    bits = b.bitcast(value, _lane_type(ir.IntType(32), lanes))
    odd = b.and_(b.lshr(bits, _splat_int(32, 16, lanes)), _splat_int(32, 1, lanes))
    rounded = b.add(b.add(bits, _splat_int(32, 0x7FFF, lanes)), odd)
    return b.trunc(b.lshr(rounded, _splat_int(32, 16, lanes)), _lane_type(ir.IntType(16), lanes))


def _splat_int(bits: int, value: int, lanes: int) -> ir.Constant:
    c = ir.Constant(ir.IntType(bits), value)
    return c if lanes == 1 else ir.Constant(ir.VectorType(c.type, lanes), [c] * lanes)


def cast(b: ir.IRBuilder, value: ir.Value, src: str, dst: str) -> ir.Value:
    """``value`` of dtype ``src`` converted to ``dst`` with numpy's semantics on x86."""
    s, d = dt.parse(src), dt.parse(dst)
    if s.lanes == 1 and d.lanes > 1:
        return splat(b, cast(b, value, src, str(d.element())), d.lanes)
    if s.lanes != d.lanes:
        raise BuildError(f"cannot cast {src} to {dst}: lane counts differ")
    if (s.code, s.bits) == (d.code, d.bits):
        return value
    f32 = dt.with_lanes("float32", s.lanes)
    if s.code == "bfloat":  # through float32
        return cast(b, _from_bfloat16(b, value, s.lanes), f32, dst)
    if d.code == "bfloat":
        return _to_bfloat16(b, cast(b, value, src, f32), s.lanes)
    to = llvm_type(dst)
    if d.is_bool:
        zero = ir.Constant(value.type, None)
        if s.is_float:
            return b.fcmp_unordered("!=", value, zero)  # NaN is true, as in numpy
        return b.icmp_unsigned("!=", value, zero)
    if s.is_float and d.is_float:
        return b.fpext(value, to) if d.bits > s.bits else b.fptrunc(value, to)
    if s.is_float:
        return _float_to_int(b, value, d, dst)
    if d.is_float:
        return b.sitofp(value, to) if s.is_int else b.uitofp(value, to)
    if d.bits == s.bits:
        return value  # int <-> uint of one width: the same bits
    if d.bits < s.bits:
        return b.trunc(value, to)
    return b.sext(value, to) if s.is_int else b.zext(value, to)


def _float_to_int(b: ir.IRBuilder, value: ir.Value, d: dt.DataType, dst: str) -> ir.Value:
    # Narrow results go through a wide signed conversion and wrap, as numpy's
    # C casts do on x86 (-1.0 -> uint8 255), instead of LLVM's poison.
    if d.bits < 64 and (d.is_uint or d.bits < 32):
        wide = "int64" if d.is_uint and d.bits == 32 else "int32"
        wide_t = llvm_type(dt.with_lanes(wide, d.lanes) if d.lanes > 1 else wide)
        return b.trunc(b.fptosi(value, wide_t), llvm_type(dst))
    to = llvm_type(dst)
    return b.fptosi(value, to) if d.is_int else b.fptoui(value, to)


# ---------------------------------------------------------------- math

def _type_suffix(ty: ir.Type) -> str:
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_type_suffix(ty.element)}"
    names = {ir.HalfType: "f16", ir.FloatType: "f32", ir.DoubleType: "f64"}
    return names[type(ty)]


def declare(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    """The function ``name`` in ``module``, declared on first use."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, fnty, name)
    return fn


def llvm_intrinsic(b: ir.IRBuilder, family: str, args: list) -> ir.Value:
    """A call of the LLVM intrinsic ``family`` (``llvm.fma``...) overloaded on ``args``' type."""
    ty = args[0].type
    fn = declare(b.module, f"{family}.{_type_suffix(ty)}", ir.FunctionType(ty, [ty] * len(args)))
    return b.call(fn, args)


def math_call(b: ir.IRBuilder, op: str, args: list, dtype: str) -> ir.Value:
    """The intrinsic ``op`` applied to float ``args`` of ``dtype`` (scalar or vector)."""
    t = dt.parse(dtype)
    if not t.is_float:
        return _int_math(b, op, args, dtype)
    family = _LLVM_INTRINSICS.get(op)
    if family is not None:
        return llvm_intrinsic(b, family, args)
    one = const(dtype, 1.0)
    if op == "rsqrt":
        return b.fdiv(one, llvm_intrinsic(b, "llvm.sqrt", args))
    if op == "sigmoid":
        e = llvm_intrinsic(b, "llvm.exp", [b.fneg(args[0])])
        return b.fdiv(one, b.fadd(one, e))
    if op == "erf":
        return _erf(b, args[0], t)
    raise BuildError(f"unknown math intrinsic {op!r}")


def _int_math(b: ir.IRBuilder, op: str, args: list, dtype: str) -> ir.Value:
    if op != "fabs":
        raise BuildError(f"math intrinsic {op} needs a float argument, got {dtype}")
    x = args[0]
    if dt.parse(dtype).is_int:
        neg = b.sub(ir.Constant(x.type, None), x)
        return b.select(b.icmp_signed("<", x, ir.Constant(x.type, None)), neg, x)
    return x


def _erf(b: ir.IRBuilder, x: ir.Value, t: dt.DataType) -> ir.Value:
    """libm erf/erff, one call per lane (LLVM has no erf intrinsic); half goes through float."""
    libm_ty = _FLOAT_TYPES[64] if t.bits == 64 else _FLOAT_TYPES[32]
    fn = declare(b.module, "erf" if t.bits == 64 else "erff", ir.FunctionType(libm_ty, [libm_ty]))
    elem = scalar_type(t)

    def one(v: ir.Value) -> ir.Value:
        if t.bits == 16:
            return b.fptrunc(b.call(fn, [b.fpext(v, libm_ty)]), elem)
        return b.call(fn, [v])

    if t.lanes == 1:
        return one(x)
    out = ir.Constant(x.type, ir.Undefined)
    for lane in range(t.lanes):
        idx = ir.Constant(I32, lane)
        out = b.insert_element(out, one(b.extract_element(x, idx)), idx)
    return out
