"""``exp`` of float32 vectors as inline LLVM IR: range reduction, a polynomial, two exponent scalings.

Used by ``vecmath`` for vectors of 16 lanes or more and widths libmvec has no
variant for: libmvec's calls split a 32-lane value in two calls and a 24- or
7-lane one into a scalar call per lane, where this sequence keeps whole
vectors (and, for 32 lanes, two independent chains) in flight. SiLU, sigmoid
and softmax epilogues spend most of their time here.

``exp(x) = 2^n * exp(r)`` with ``n = round(x / ln 2)`` and ``r = x - n ln 2`` (ln 2 in two parts,
so ``r`` is exact), ``exp(r)`` on ``|r| <= ln 2 / 2`` by Cephes' degree-6 minimax polynomial
(about 1 ulp). ``2^n`` is applied as two factors ``2^(n >> 1)`` and ``2^(n - (n >> 1))``, each a
normal float built in its exponent bits, so results down to the subnormals and up to infinity
come out as the product rounds them; ``x`` is clamped to [-104, 89] first (beyond, the result is
0 or infinity already) and a NaN is passed through.
"""

from __future__ import annotations

from typing import Callable

from llvmlite import ir

from .llvm_ops import llvm_intrinsic

_LOG2E = 1.44269504088896341
_LN2_HI = 0.693359375  # exact in float32: n * _LN2_HI has no rounding error for |n| < 2^15
_LN2_LO = -2.12194440e-4
_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_LOW, _HIGH = -104.0, 89.0
_SIGMOID_BOUND = 87.0  # exp(87) = 6e37: 1 + e and its reciprocal stay finite floats


def splat(vty: ir.VectorType, value: float) -> ir.Constant:
    """The float vector of type ``vty`` with ``value`` in every lane."""
    return ir.Constant(vty, [ir.Constant(vty.element, value)] * vty.count)


def fma(b: ir.IRBuilder, a: ir.Value, c: ir.Value, d: ir.Value) -> ir.Value:
    """``a * c + d`` rounded once."""
    return llvm_intrinsic(b, "llvm.fma", [a, c, d])


def clamp(b: ir.IRBuilder, x: ir.Value, low: float, high: float) -> ir.Value:
    """``x`` limited to [low, high] lane by lane (a NaN lane comes out as a bound: callers keep NaNs)."""
    return llvm_intrinsic(b, "llvm.minnum", [llvm_intrinsic(b, "llvm.maxnum", [x, splat(x.type, low)]),
                                             splat(x.type, high)])


def _isplat(vty: ir.VectorType, value: int) -> ir.Constant:
    """The int32 vector as wide as ``vty`` with ``value`` in every lane."""
    return ir.Constant(ir.VectorType(ir.IntType(32), vty.count), [ir.Constant(ir.IntType(32), value)] * vty.count)


def _reduced(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """``(exp(r), n)`` with ``exp(x) = 2^n exp(r)``, ``n`` as int32 lanes, for ``x`` already clamped."""
    vty = x.type
    n = llvm_intrinsic(b, "llvm.rint", [b.fmul(x, splat(vty, _LOG2E))])
    r = fma(b, n, splat(vty, -_LN2_LO), fma(b, n, splat(vty, -_LN2_HI), x))
    # p(r) by Estrin's scheme: a chain of 3 dependent multiply-adds instead of 6
    c0, c1, c2, c3, c4, c5 = (splat(vty, c) for c in _POLY)
    r2 = b.fmul(r, r)
    p = fma(b, fma(b, fma(b, c0, r, c1), r2, fma(b, c2, r, c3)), r2, fma(b, c4, r, c5))
    y = fma(b, p, r2, b.fadd(r, splat(vty, 1.0)))  # 1 + r + r^2 p(r)
    return y, b.fptosi(n, ir.VectorType(ir.IntType(32), vty.count))


def _power_of_two(b: ir.IRBuilder, n: ir.Value, vty: ir.VectorType) -> ir.Value:
    """``2^n`` for int32 lanes ``n`` in [-126, 127], built in the exponent bits."""
    return b.bitcast(b.shl(b.add(n, _isplat(vty, 127)), _isplat(vty, 23)), vty)


def exp_f32(b: ir.IRBuilder, x: ir.Value) -> ir.Value:
    """``exp`` of each lane of the float32 vector ``x``."""
    vty = x.type
    y, n = _reduced(b, clamp(b, x, _LOW, _HIGH))
    half = b.ashr(n, _isplat(vty, 1))
    result = b.fmul(b.fmul(y, _power_of_two(b, half, vty)), _power_of_two(b, b.sub(n, half), vty))
    return b.select(b.fcmp_unordered("uno", x, x), x, result)


def sigmoid_f32(b: ir.IRBuilder, x: ir.Value, reciprocal: Callable[[ir.Value], ir.Value]) -> ir.Value:
    """``1 / (1 + exp(-x))`` of each lane of the float32 vector ``x``, about 2 ulp.

    ``reciprocal`` is the CPU's estimate (12 or 14 bits), refined by one Newton step instead
    of a division (whose throughput bounded SiLU epilogues: a 16 -> 96 channel 1x1 conv on a
    112x112 map spent 0.68 of its 1.23 ms in them; 0.58 now). ``x`` is clamped to +-87 first,
    so ``exp(-x)`` needs one exponent scaling and ``1 + exp(-x)`` has a normal reciprocal: below
    -87 the result stays sigmoid(-87) = 1.6e-38, above 87 it is 1 - 1 ulp; a NaN is passed
    through."""
    vty = x.type
    y, n = _reduced(b, clamp(b, b.fneg(x), -_SIGMOID_BOUND, _SIGMOID_BOUND))
    d = fma(b, y, _power_of_two(b, n, vty), splat(vty, 1.0))  # 1 + exp(-x)
    r0 = reciprocal(d)
    result = fma(b, r0, fma(b, b.fneg(d), r0, splat(vty, 1.0)), r0)  # r0 (2 - d r0)
    return b.select(b.fcmp_unordered("uno", x, x), x, result)
