"""Vector math for the LLVM backend through glibc's libmvec.

LLVM lowers a vector ``llvm.exp`` (and ``tanh``, ``log``, ...) to one scalar
libm call per lane, which made softmax, sigmoid and GELU an order of magnitude
slower than their peers. glibc ships vectorized versions of these functions
(libmvec, with the x86-64 vector function ABI: ``_ZGV<isa>N<lanes><v..>_<name>``,
isa ``b`` SSE, ``d`` AVX2, ``e`` AVX-512). ``VectorMath.call`` emits a call to the
variant whose register width matches the value (splitting wider vectors in
halves) when the target has that ISA and the host's libmvec exports it, and
returns None otherwise so the caller falls back to the LLVM intrinsic.
Libraries that call libmvec are linked with ``-lmvec`` (see ``needs_libmvec``).
The exception is ``exp`` of float32 vectors of 16 lanes or more, or of a width
libmvec has no variant for (24, 7): inline IR (``vector_exp``), which keeps two
chains in flight where libmvec makes two calls (32 lanes: 1.3-2.2x faster
alone; EfficientNet-B0 3% and MobileViT-xxs 7% faster whole, 1 thread), and ``erf`` of any
float32 vector (``vector_erf``: GELU's). ``sigmoid`` of float32 vectors that fill whole x86
registers is inline too (``sigmoid_f32``), dividing by the CPU's reciprocal estimate and a
Newton step (EfficientNet-B0 2.5% faster whole).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Optional

from llvmlite import ir

from ..tir import dtype as dt
from .llvm_ops import I32, declare
from .vector_erf import erf_f32
from .vector_exp import exp_f32, sigmoid_f32

# tecomp intrinsic -> (libmvec base name, arity)
_FUNCTIONS = {"exp": ("exp", 1), "exp2": ("exp2", 1), "log": ("log", 1), "log2": ("log2", 1),
              "log10": ("log10", 1), "tanh": ("tanh", 1), "erf": ("erf", 1), "sin": ("sin", 1),
              "cos": ("cos", 1), "pow": ("pow", 2)}
# (ISA letter, LLVM feature that enables it, register width in bits), widest first
_ISAS = (("e", "avx512f", 512), ("d", "avx2", 256), ("b", "sse4.2", 128))


@functools.cache
def _libmvec_symbols(names: frozenset) -> frozenset:
    """Which of ``names`` the host's libmvec exports (none without libmvec)."""
    path = ctypes.util.find_library("mvec")
    if path is None:
        return frozenset()
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return frozenset()
    return frozenset(n for n in names if hasattr(lib, n))


def _all_names() -> frozenset:
    return frozenset(f"_ZGV{isa}N{width // bits}{'v' * arity}_{base}{'f' if bits == 32 else ''}"
                     for base, arity in _FUNCTIONS.values() for isa, _, width in _ISAS for bits in (32, 64))


def needs_libmvec(llvm_ir: str) -> bool:
    """Whether the IR text calls a libmvec function (so linking needs ``-lmvec``)."""
    return "@_ZGV" in llvm_ir


class VectorMath:
    """libmvec calls for the vector ISAs that a target's feature string enables."""

    def __init__(self, features: str) -> None:
        enabled = {f[1:] for f in features.split(",") if f.startswith("+")}
        self._isas = [(isa, width) for isa, feature, width in _ISAS if feature in enabled]

    def call(self, b: ir.IRBuilder, op: str, args: list, dtype: str) -> Optional[ir.Value]:
        """``op`` on the vector ``args`` through libmvec, or None when libmvec cannot do it."""
        t = dt.parse(dtype)
        if op == "sigmoid" and t.bits == 32 and self._estimate_width(t.lanes):
            return sigmoid_f32(b, args[0], lambda v: self._reciprocal(b, v))
        if op == "sigmoid":
            e = self.call(b, "exp", [b.fneg(args[0])], dtype)
            if e is None:
                return None
            one = ir.Constant(args[0].type, [ir.Constant(args[0].type.element, 1.0)] * t.lanes)
            return b.fdiv(one, b.fadd(one, e))
        if op not in _FUNCTIONS or t.lanes == 1 or not t.is_float or t.bits not in (32, 64):
            return None
        if op == "erf" and t.bits == 32:
            return erf_f32(b, args[0])
        inline_exp = op == "exp" and t.bits == 32
        found = None if inline_exp and t.lanes >= 16 else self._call(b, op, args, t.bits, t.lanes)
        return exp_f32(b, args[0]) if found is None and inline_exp else found

    def _estimate_width(self, lanes: int) -> int:
        """Lanes of the widest reciprocal estimate whose width divides ``lanes`` float32 lanes (0: none)."""
        return next((width // 32 for _, width in self._isas if lanes % (width // 32) == 0), 0)

    def _reciprocal(self, b: ir.IRBuilder, v: ir.Value) -> ir.Value:
        """The CPU's reciprocal estimate of each lane (rcpps, or AVX-512's 14-bit rcp14), by pieces
        of its register width."""
        piece = self._estimate_width(v.type.count)
        pty = ir.VectorType(v.type.element, piece)
        if piece == 16:
            rcp = declare(b.module, "llvm.x86.avx512.rcp14.ps.512", ir.FunctionType(pty, [pty, pty, ir.IntType(16)]))
            estimate = lambda p: b.call(rcp, [p, ir.Constant(pty, None), ir.Constant(ir.IntType(16), -1)])  # noqa: E731
        else:
            name = "llvm.x86.avx.rcp.ps.256" if piece == 8 else "llvm.x86.sse.rcp.ps"
            rcp = declare(b.module, name, ir.FunctionType(pty, [pty]))
            estimate = lambda p: b.call(rcp, [p])  # noqa: E731
        parts = [estimate(_shuffle(b, v, list(range(k, k + piece)))) for k in range(0, v.type.count, piece)]
        while len(parts) > 1:
            parts = [_concat(b, parts[k], parts[k + 1]) for k in range(0, len(parts), 2)]
        return parts[0]

    def _call(self, b: ir.IRBuilder, op: str, args: list, bits: int, lanes: int) -> Optional[ir.Value]:
        base, arity = _FUNCTIONS[op]
        for isa, width in self._isas:
            if lanes * bits == width:
                name = f"_ZGV{isa}N{lanes}{'v' * arity}_{base}{'f' if bits == 32 else ''}"
                if name not in _libmvec_symbols(_all_names()):
                    return None
                ty = args[0].type
                return b.call(declare(b.module, name, ir.FunctionType(ty, [ty] * arity)), args)
        if not self._isas or lanes * bits < self._isas[0][1] or lanes % 2:
            return None
        half = lanes // 2
        lo_idx, hi_idx = list(range(half)), list(range(half, lanes))
        lo = self._call(b, op, [_shuffle(b, a, lo_idx) for a in args], bits, half)
        hi = self._call(b, op, [_shuffle(b, a, hi_idx) for a in args], bits, half)
        if lo is None or hi is None:
            return None
        return _concat(b, lo, hi)


def _shuffle(b: ir.IRBuilder, v: ir.Value, lanes: list) -> ir.Value:
    return b.shuffle_vector(v, v, ir.Constant(ir.VectorType(I32, len(lanes)), lanes))


def _concat(b: ir.IRBuilder, lo: ir.Value, hi: ir.Value) -> ir.Value:
    """The vector of ``lo``'s lanes followed by ``hi``'s (of equal width)."""
    lanes = 2 * lo.type.count
    return b.shuffle_vector(lo, hi, ir.Constant(ir.VectorType(I32, lanes), list(range(lanes))))
