"""Vectorize: loops of kind VECTORIZED become lane-wise vector code.

This pass owns the rewrite of a ``For`` of kind VECTORIZED (constant extent
of at most ``MAX_LANES``) into its body evaluated on lanes: the loop var
becomes ``Ramp(min, 1, n)``, loop-invariant scalars meet vectors through
``Broadcast``, and index arithmetic is folded so that contiguous accesses
are stride-1 ramps (``i*1024 + ramp(0, 1, 8)`` -> ``ramp(i*1024, 1, 8)``),
which the LLVM backend turns into plain vector loads and stores. A loop of
more than ``SPLIT_ABOVE`` lanes, not a power of two, becomes consecutive
vector pieces of power-of-two lanes (24 -> 16 + 8), each vectorized alike.

A loop it cannot vectorize comes back as a SERIAL loop with the same body:
a body over tensors of a vector dtype (``float32x4``), an inner loop or
allocation, a branch on a lane-dependent condition, a
floordiv/floormod of the lane var that does not fold, a store whose lanes
are not provably distinct (no index is a ramp with a constant stride: a
reduction over the lanes, or a scatter), or a buffer written at one index
and read at another within the body (the lanes would then not be
independent). Apart from those pieces, this pass must not split, reorder or
otherwise restructure loops.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from ..tir import dtype as dt
from ..tir import expr as E
from ..tir import op as _op
from ..tir import stmt as S
from ..tir.functor import Mutator, find_handler, post_order_visit, structural_equal, substitute
from ..tir.simplify import Analyzer

MAX_LANES = 64
# Vectors wider than this whose lane count is not a power of two run as power-of-two pieces: x86
# backends legalize a <24 x float> or <21 x float> into code over ten times slower than 16 + 8 lanes.
SPLIT_ABOVE = 16


class _Unvectorizable(Exception):
    """The body cannot be run on lanes; the loop stays serial."""


def vectorize_loops(stmt: S.Stmt, enabled: bool = True) -> S.Stmt:
    """``stmt`` with every VECTORIZED loop vectorized or, failing that (or not ``enabled``), made SERIAL."""
    return _LoopVectorizer(enabled).visit(stmt)


class _LoopVectorizer(Mutator):
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def visit_For(self, node: S.For) -> Any:
        node = self.generic(node)
        if node.kind is not S.ForKind.VECTORIZED:
            return node
        return _vectorize_loop(node) if self.enabled else dataclasses.replace(node, kind=S.ForKind.SERIAL)


def _vectorize_loop(loop: S.For) -> S.Stmt:
    serial = dataclasses.replace(loop, kind=S.ForKind.SERIAL)
    if not isinstance(loop.extent, E.IntImm) or not 1 <= loop.extent.value <= MAX_LANES \
            or _has_vector_elements(loop.body):
        return serial
    n = loop.extent.value
    one = _op.const(1, loop.loop_var.dtype)
    chunks = []
    try:
        for offset, width in _power_of_two_chunks(n):
            start = _op.add(loop.min, _op.const(offset, loop.loop_var.dtype)) if offset else loop.min
            if width == 1:
                chunks.append(substitute(loop.body, {loop.loop_var: start}))
                continue
            body = _LaneRewriter(loop.loop_var, _ramp(start, one, width), width).stmt(loop.body)
            _check_lanes_independent(body)
            chunks.append(body)
    except _Unvectorizable:
        return serial
    return S.seq(*chunks)


def _has_vector_elements(body: S.Stmt) -> bool:
    """Whether ``body`` already computes on vectors (tensors of a vector dtype such as float32x4):
    such a loop stays serial rather than becoming vectors of vectors."""
    found = False

    def visit(node: Any) -> None:
        nonlocal found
        if isinstance(node, (E.BufferLoad, S.BufferStore)) and dt.lanes(node.buffer.dtype) > 1:
            found = True

    post_order_visit(body, visit)
    return found


def _power_of_two_chunks(n: int) -> list[tuple[int, int]]:
    """(offset, lanes) pieces of ``n`` lanes: one piece for a power of two or up to
    ``SPLIT_ABOVE`` lanes, else the binary digits of ``n``, widest first (24 -> 16 + 8)."""
    if n & (n - 1) == 0 or n <= SPLIT_ABOVE:
        return [(0, n)]
    chunks, offset = [], 0
    for bit in reversed(range(n.bit_length())):
        width = 1 << bit
        if n & width:
            chunks.append((offset, width))
            offset += width
    return chunks


def _ramp(base: E.PrimExpr, stride: E.PrimExpr, n: int) -> E.PrimExpr:
    """A ramp, or a broadcast when the stride is zero."""
    if isinstance(stride, E.IntImm) and stride.value == 0:
        return E.Broadcast(base, n)
    return E.Ramp(base, stride, n)


def _lanes(e: E.PrimExpr) -> int:
    return dt.lanes(e.dtype)


def _scalar(e: E.PrimExpr) -> Optional[E.PrimExpr]:
    """The scalar an expression stands for on every lane, if it is one."""
    if isinstance(e, E.Broadcast):
        return e.value
    return e if _lanes(e) == 1 else None


# ---------------------------------------------------------------- index algebra

def _add(a: E.PrimExpr, b: E.PrimExpr, n: int) -> E.PrimExpr:
    sa, sb = _scalar(a), _scalar(b)
    if sa is not None and sb is not None:
        return E.Broadcast(_op.add(sa, sb), n)
    if isinstance(a, E.Ramp) and sb is not None:
        return _ramp(_op.add(a.base, sb), a.stride, n)
    if isinstance(b, E.Ramp) and sa is not None:
        return _ramp(_op.add(sa, b.base), b.stride, n)
    if isinstance(a, E.Ramp) and isinstance(b, E.Ramp):
        return _ramp(_op.add(a.base, b.base), _op.add(a.stride, b.stride), n)
    return E.Add(_bcast(a, n), _bcast(b, n))


def _sub(a: E.PrimExpr, b: E.PrimExpr, n: int) -> E.PrimExpr:
    sa, sb = _scalar(a), _scalar(b)
    if sa is not None and sb is not None:
        return E.Broadcast(_op.sub(sa, sb), n)
    if isinstance(a, E.Ramp) and sb is not None:
        return _ramp(_op.sub(a.base, sb), a.stride, n)
    if isinstance(b, E.Ramp) and sa is not None:
        return _ramp(_op.sub(sa, b.base), _op.neg(b.stride), n)
    if isinstance(a, E.Ramp) and isinstance(b, E.Ramp):
        return _ramp(_op.sub(a.base, b.base), _op.sub(a.stride, b.stride), n)
    return E.Sub(_bcast(a, n), _bcast(b, n))


def _mul(a: E.PrimExpr, b: E.PrimExpr, n: int) -> E.PrimExpr:
    sa, sb = _scalar(a), _scalar(b)
    if sa is not None and sb is not None:
        return E.Broadcast(_op.mul(sa, sb), n)
    if isinstance(a, E.Ramp) and sb is not None:
        return _ramp(_op.mul(a.base, sb), _op.mul(a.stride, sb), n)
    if isinstance(b, E.Ramp) and sa is not None:
        return _ramp(_op.mul(sa, b.base), _op.mul(sa, b.stride), n)
    return E.Mul(_bcast(a, n), _bcast(b, n))


def _div_mod(cls: type, a: E.PrimExpr, b: E.PrimExpr, n: int) -> E.PrimExpr:
    """floordiv/floormod of a ramp by a positive constant, when it folds to a ramp or broadcast."""
    sa, sb = _scalar(a), _scalar(b)
    fold = _op.floordiv if cls is E.FloorDiv else _op.floormod
    if sa is not None and sb is not None:
        return E.Broadcast(fold(sa, sb), n)
    if not (isinstance(a, E.Ramp) and isinstance(sb, E.IntImm) and sb.value > 0
            and isinstance(a.stride, E.IntImm) and a.stride.value >= 0):
        raise _Unvectorizable(f"{cls.__name__} of {a} by {b}")
    c, s = sb.value, a.stride.value
    if s % c == 0:
        if cls is E.FloorDiv:
            return _ramp(_op.floordiv(a.base, sb), _op.const(s // c, a.stride.dtype), n)
        return E.Broadcast(_op.floormod(a.base, sb), n)
    split = _split_multiple(a.base, c)
    if split is None or split[1] + s * (n - 1) >= c:
        # base a multiple of m, m dividing c, and the ramp shorter than m: it stays inside one
        # block of c (the lanes of a blocked-layout copy, e.g. (cc*32 + lane) // 64)
        m = math.gcd(_known_multiple(a.base), c)
        if s * (n - 1) >= m:
            raise _Unvectorizable(f"{cls.__name__} of {a} by {c} crosses a multiple of {c}")
        if cls is E.FloorDiv:
            return E.Broadcast(_op.floordiv(a.base, sb), n)
        return _ramp(_op.floormod(a.base, sb), a.stride, n)
    q, r = split
    if cls is E.FloorDiv:
        return E.Broadcast(q, n)
    return _ramp(_op.const(r, a.base.dtype), a.stride, n)


def _known_multiple(e: E.PrimExpr) -> int:
    """A positive constant that ``e`` is provably a multiple of (1 when its form shows none)."""
    if isinstance(e, E.IntImm):
        return abs(e.value) or 1 << 30
    if isinstance(e, E.Mul):
        return _known_multiple(e.a) * _known_multiple(e.b)
    if isinstance(e, (E.Add, E.Sub)):
        return math.gcd(_known_multiple(e.a), _known_multiple(e.b))
    return 1


def _split_multiple(e: E.PrimExpr, c: int) -> Optional[tuple[E.PrimExpr, int]]:
    """(q, r) with ``e == q*c + r`` and a constant ``0 <= r < c``, when ``e``'s form shows one."""
    if isinstance(e, E.IntImm):
        return _op.const(e.value // c, e.dtype), e.value % c
    if isinstance(e, E.Mul):
        for x, k in ((e.a, e.b), (e.b, e.a)):
            if isinstance(k, E.IntImm) and k.value % c == 0:
                return _op.mul(x, _op.const(k.value // c, k.dtype)), 0
        return None
    if isinstance(e, (E.Add, E.Sub)):
        left, right = _split_multiple(e.a, c), _split_multiple(e.b, c)
        if left is None or right is None:
            return None
        combine = _op.add if isinstance(e, E.Add) else _op.sub
        r = left[1] + right[1] if isinstance(e, E.Add) else left[1] - right[1]
        q = _op.add(combine(left[0], right[0]), _op.const(r // c, e.dtype))
        return q, r % c
    return None


def _bcast(e: E.PrimExpr, n: int) -> E.PrimExpr:
    return e if _lanes(e) == n else E.Broadcast(e, n)


def _rebuild(e: E.PrimExpr, parts: tuple, old: tuple) -> E.PrimExpr:
    """``e`` with its operands ``old`` replaced by ``parts`` (``e`` itself if none changed)."""
    return e if all(p is o for p, o in zip(parts, old)) else type(e)(*parts)


_ALGEBRA = {E.Add: _add, E.Sub: _sub, E.Mul: _mul}


# ---------------------------------------------------------------- the lane rewriter

class _LaneRewriter:
    """Rewrites a loop body so that it computes all ``n`` lanes of ``var`` at once."""

    def __init__(self, var: E.Var, lanes: E.PrimExpr, n: int):
        self.n = n
        self.vmap: dict[E.Var, E.PrimExpr] = {var: lanes}

    # ------------------------------------------------------------ expressions
    def expr(self, e: E.PrimExpr) -> E.PrimExpr:
        method = find_handler(self, "e_", e)
        if method is None:
            raise _Unvectorizable(type(e).__name__)
        return method(e)

    def e_Var(self, e: E.Var) -> E.PrimExpr:
        return self.vmap.get(e, e)

    e_SizeVar = e_Var

    def e_IntImm(self, e: E.PrimExpr) -> E.PrimExpr:
        return e

    e_FloatImm = e_StringImm = e_IntImm

    def e_binary(self, e: E.BinaryOp) -> E.PrimExpr:
        a, b = self.expr(e.a), self.expr(e.b)
        if _lanes(a) == _lanes(b) == 1:
            return _rebuild(e, (a, b), (e.a, e.b))
        cls = type(e)
        if cls in _ALGEBRA:
            return _ALGEBRA[cls](a, b, self.n)
        if cls in (E.FloorDiv, E.FloorMod):
            return _div_mod(cls, a, b, self.n)
        return self.lanewise(cls, a, b)

    def lanewise(self, cls: type, *parts: E.PrimExpr) -> E.PrimExpr:
        """``cls`` on lanes: one scalar node broadcast when every part is uniform."""
        scalars = [_scalar(p) for p in parts]
        if all(s is not None for s in scalars):
            return E.Broadcast(cls(*scalars), self.n)
        return cls(*(_bcast(p, self.n) for p in parts))

    def e_cmp(self, e: E.CmpOp) -> E.PrimExpr:
        return self.generic(e, (e.a, e.b))

    def e_And(self, e: E.And) -> E.PrimExpr:
        return self.generic(e, (e.a, e.b))

    e_Or = e_And

    def e_Not(self, e: E.Not) -> E.PrimExpr:
        return self.generic(e, (e.a,))

    def e_Select(self, e: E.Select) -> E.PrimExpr:
        return self.generic(e, (e.condition, e.true_value, e.false_value))

    def generic(self, e: E.PrimExpr, old: tuple) -> E.PrimExpr:
        parts = tuple(self.expr(p) for p in old)
        if all(_lanes(p) == 1 for p in parts):
            return _rebuild(e, parts, old)
        return self.lanewise(type(e), *parts)

    def e_Cast(self, e: E.Cast) -> E.PrimExpr:
        v = self.expr(e.value)
        if _lanes(v) == 1:
            return e if v is e.value else E.Cast(e.dtype, v)
        if isinstance(v, E.Broadcast):
            return E.Broadcast(E.Cast(e.dtype, v.value), self.n)
        return E.Cast(dt.with_lanes(e.dtype, self.n), v)

    def e_Call(self, e: E.Call) -> E.PrimExpr:
        args = tuple(self.expr(a) for a in e.args)
        if all(_lanes(a) == 1 for a in args):
            return e if all(a is o for a, o in zip(args, e.args)) else E.Call(e.dtype, e.op, args)
        if e.op == "if_then_else":
            if _lanes(args[0]) != 1:
                raise _Unvectorizable(f"if_then_else on the lane-dependent condition {e.args[0]}")
            return E.Call(dt.with_lanes(e.dtype, self.n), e.op,
                          (args[0],) + tuple(_bcast(a, self.n) for a in args[1:]))
        if e.op not in _op.MATH_INTRINSICS:
            raise _Unvectorizable(f"call to {e.op} on lanes")
        return E.Call(dt.with_lanes(e.dtype, self.n), e.op, tuple(_bcast(a, self.n) for a in args))

    def e_Let(self, e: E.Let) -> E.PrimExpr:
        var, value = self.bind(e.var, e.value)
        body = self.expr(e.body)
        return e if var is e.var and value is e.value and body is e.body else E.Let(var, value, body)

    def bind(self, var: E.Var, value: E.PrimExpr) -> tuple[E.Var, E.PrimExpr]:
        """A let-bound var, renamed to a vector var when its value has lanes."""
        v = self.expr(value)
        if _lanes(v) == 1:
            return var, v
        lane_var = E.Var(var.name, dt.with_lanes(var.dtype, self.n))
        self.vmap[var] = lane_var
        return lane_var, v

    def e_BufferLoad(self, e: E.BufferLoad) -> E.PrimExpr:
        indices = tuple(self.expr(i) for i in e.indices)
        if all(_lanes(i) == 1 for i in indices):
            return e if all(i is o for i, o in zip(indices, e.indices)) else E.BufferLoad(e.buffer, indices)
        uniform = [_scalar(i) for i in indices]
        if all(u is not None for u in uniform):  # one element for every lane
            return E.Broadcast(E.BufferLoad(e.buffer, tuple(uniform)), self.n)
        return E.BufferLoad(e.buffer, tuple(_bcast(i, self.n) for i in indices))

    # ------------------------------------------------------------ statements
    def stmt(self, s: S.Stmt) -> S.Stmt:
        method = getattr(self, "s_" + type(s).__name__, None)
        if method is None:
            raise _Unvectorizable(f"{type(s).__name__} in the body")
        return method(s)

    def s_BufferStore(self, s: S.BufferStore) -> S.Stmt:
        indices = tuple(self.expr(i) for i in s.indices)
        if not any(isinstance(i, E.Ramp) and isinstance(i.stride, E.IntImm) for i in indices):
            # Lanes could then collide on one element (a reduction, or a scatter with repeats).
            raise _Unvectorizable(f"store to {s.buffer.name} at indices not distinct per lane")
        value = _bcast(self.expr(s.value), self.n)
        return S.BufferStore(s.buffer, value, tuple(_bcast(i, self.n) for i in indices))

    def s_SeqStmt(self, s: S.SeqStmt) -> S.Stmt:
        return S.SeqStmt(tuple(self.stmt(c) for c in s.seq))

    def s_IfThenElse(self, s: S.IfThenElse) -> S.Stmt:
        cond = self.expr(s.condition)
        if _lanes(cond) != 1:
            raise _Unvectorizable(f"branch on the lane-dependent condition {s.condition}")
        other = None if s.else_case is None else self.stmt(s.else_case)
        return S.IfThenElse(cond, self.stmt(s.then_case), other)

    def s_LetStmt(self, s: S.LetStmt) -> S.Stmt:
        var, value = self.bind(s.var, s.value)
        return S.LetStmt(var, value, self.stmt(s.body))

    def s_AttrStmt(self, s: S.AttrStmt) -> S.Stmt:
        if _lanes(self.expr(s.value)) != 1:
            raise _Unvectorizable(f"attribute {s.attr_key} depends on the lane")
        return dataclasses.replace(s, body=self.stmt(s.body))

    def s_Evaluate(self, s: S.Evaluate) -> S.Stmt:
        value = self.expr(s.value)
        return s if value is s.value else S.Evaluate(value)


def _check_lanes_independent(body: S.Stmt) -> None:
    """Every buffer the body writes must be stored at one index, and read there or where no lane
    reads what another lane of the same vector writes.

    Then lane ``l`` only ever touches its own element, or elements the serial
    loop also reads before they are written (a later lane's, a lane's of an
    earlier vector: the previous row of a scan state), so running the lanes
    together gives the serial loop's result.
    """
    stores: dict[E.Var, tuple] = {}

    def check_store(node: Any) -> None:
        if isinstance(node, S.BufferStore):
            first = stores.setdefault(node.buffer.data, node.indices)
            if not structural_equal(first, node.indices):
                raise _Unvectorizable(f"{node.buffer.name} is stored at different indices")

    def check_load(node: Any) -> None:
        if isinstance(node, E.BufferLoad) and node.buffer.data in stores:
            stored = stores[node.buffer.data]
            if not structural_equal(stored, node.indices) and not _reads_before_writes(stored, node.indices):
                raise _Unvectorizable(f"{node.buffer.name} is accessed at different indices")

    post_order_visit(body, check_store)
    post_order_visit(body, check_load)


def _reads_before_writes(stored: tuple, loaded: tuple) -> bool:
    """Whether a load at ``loaded`` never reads an element an earlier lane of the vector stores at
    ``stored`` (both one ramp of one stride: the load is ahead of the store or a whole vector behind)."""
    if len(stored) != 1 or len(loaded) != 1:
        return False
    (st,), (ld,) = stored, loaded
    if not (isinstance(st, E.Ramp) and isinstance(ld, E.Ramp) and isinstance(st.stride, E.IntImm)
            and isinstance(ld.stride, E.IntImm) and st.stride.value == ld.stride.value > 0 and st.lanes == ld.lanes):
        return False
    gap = Analyzer().simplify(_op.sub(ld.base, st.base))
    return isinstance(gap, E.IntImm) and (gap.value >= 0 or gap.value <= -st.lanes * st.stride.value)
