"""Loop partitioning: peel the iterations of a loop in which a guard inside it may fail.

A split that does not divide leaves a guard such as ``xo*8 + xi < 1000``
around the body. For all but the last few values of the outer loop the guard
holds for every value of the inner loops, so the loop is cut in two: a main
part without the guard (where the inner loop can then be vectorized) and a
tail that keeps it. A boundary condition of an ``if_then_else`` on a
vectorized loop (a stencil's ``0 < j`` and ``j < n - 1``, a padding) would
keep that loop serial; it is used the same way, a lower bound peeling a head
and an upper bound a tail, so the main part runs on vectors. Only guards of
that shape are used: a comparison that depends on the partitioned loop and on
loops inside it, affine in the partitioned loop. A guard that holds for the
whole loop is dropped without cutting. The peeled part gets a fresh loop
variable so every variable stays bound by exactly one loop.
"""

from __future__ import annotations

from typing import Any, Optional

from ..tir import op as _op
from ..tir.expr import LE, LT, And, Call, IntImm, Let, PrimExpr, Var
from ..tir.functor import Mutator, collect_vars, post_order_visit, structural_equal, substitute
from ..tir.interval import Interval, eval_interval
from ..tir.simplify import Analyzer
from ..tir.stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt, SeqStmt,
                        Stmt, seq)

_PARTITIONABLE = (ForKind.SERIAL, ForKind.PARALLEL)


def _conjuncts(cond: PrimExpr) -> list[PrimExpr]:
    if isinstance(cond, And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]


def _and_all(parts: list[PrimExpr]) -> PrimExpr:
    cond = _op.const(True)
    for p in parts:
        cond = _op.logical_and(cond, p)
    return cond


def _is_ite(e: Any) -> bool:
    return isinstance(e, Call) and e.op == "if_then_else"


def _guards_below(body: Stmt) -> list[tuple[PrimExpr, dict]]:
    """(conjunct, ranges of the loops enclosing it inside ``body``) for every IfThenElse guard and
    every ``if_then_else`` conjunct on a vectorized loop's variable; not those reading a variable
    let-bound inside ``body`` (its range is unknown here)."""
    found: list[tuple[PrimExpr, dict]] = []

    def add(conds: list[PrimExpr], loops: dict, lets: frozenset, lanes: frozenset = frozenset(),
            lane_only: bool = False) -> None:
        for c in conds:
            used = collect_vars(c)
            if not used & lets and (not lane_only or used & lanes):
                found.append((c, loops))

    def lane_guards(e: Any, loops: dict, lets: frozenset, lanes: frozenset) -> None:
        if not lanes:
            return
        nodes: list = []
        post_order_visit(e, nodes.append)
        lets = lets | {n.var for n in nodes if isinstance(n, Let)}
        for n in nodes:
            if _is_ite(n):
                add(_conjuncts(n.args[0]), loops, lets, lanes, True)

    def walk(s: Any, loops: dict, lets: frozenset, lanes: frozenset) -> None:
        if isinstance(s, For):
            inner_lanes = lanes | {s.loop_var} if s.kind is ForKind.VECTORIZED else lanes
            walk(s.body, {**loops, s.loop_var: (s.min, s.extent)}, lets, inner_lanes)
        elif isinstance(s, IfThenElse):
            add(_conjuncts(s.condition), loops, lets)
            walk(s.then_case, loops, lets, lanes)
            if s.else_case is not None:
                walk(s.else_case, loops, lets, lanes)
        elif isinstance(s, SeqStmt):
            for child in s.seq:
                walk(child, loops, lets, lanes)
        elif isinstance(s, LetStmt):
            lane_guards(s.value, loops, lets, lanes)
            walk(s.body, loops, lets | {s.var}, lanes)
        elif isinstance(s, (Allocate, AttrStmt)):
            walk(s.body, loops, lets, lanes)
        elif isinstance(s, (BufferStore, Evaluate)):
            lane_guards(s, loops, lets, lanes)

    walk(body, {}, frozenset(), frozenset())
    return found


class _ReplaceCondition(Mutator):
    """Replace one guard conjunct (structurally) by true, in IfThenElse and ``if_then_else`` conditions."""

    def __init__(self, target: PrimExpr):
        self.target = target

    def _without(self, cond: PrimExpr) -> Optional[PrimExpr]:
        """``cond`` without the target conjunct (None if it has none)."""
        parts = _conjuncts(cond)
        kept = [c for c in parts if not structural_equal(c, self.target)]
        return None if len(kept) == len(parts) else _and_all(kept)

    def visit_IfThenElse(self, node: IfThenElse) -> Any:
        node = self.generic(node)
        cond = self._without(node.condition)
        if cond is None:
            return node
        if isinstance(cond, IntImm) and cond.value:
            return node.then_case
        return IfThenElse(cond, node.then_case, node.else_case)

    def visit_Call(self, node: Call) -> Any:
        node = self.generic(node)
        cond = self._without(node.args[0]) if _is_ite(node) else None
        if cond is None:
            return node
        if isinstance(cond, IntImm) and cond.value:
            return node.args[1]
        return Call(node.dtype, node.op, (cond,) + node.args[1:])


class _Partitioner(Mutator):
    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer

    def visit_For(self, loop: For) -> Any:
        if not (loop.kind in _PARTITIONABLE and isinstance(loop.min, IntImm) and loop.min.value == 0):
            return self.generic(loop)
        found = self._split_point(loop)
        if found is None:
            return self.generic(loop)
        guard, point, peel_head = found
        body = _ReplaceCondition(guard).visit(loop.body)
        if point is None:  # the guard holds for the whole loop
            return self.visit(For(loop.loop_var, loop.min, loop.extent, loop.kind, body, loop.thread_tag,
                                  loop.annotations))
        # the part that keeps the guard: [0, point) for a head, [point, extent) for a tail
        if peel_head:
            kept = self._loop(loop, loop.loop_var, point, loop.body)
            main_var = Var(loop.loop_var.name, loop.loop_var.dtype)
            main = self._loop(loop, main_var, _op.sub(loop.extent, point),
                              substitute(body, {loop.loop_var: _op.add(main_var, point)}))
            return seq(self.generic(kept), self.visit(main))
        main = self._loop(loop, loop.loop_var, point, body)
        tail_var = Var(loop.loop_var.name, loop.loop_var.dtype)
        tail = self._loop(loop, tail_var, _op.sub(loop.extent, point),
                          substitute(loop.body, {loop.loop_var: _op.add(tail_var, point)}))
        return seq(self.visit(main), self.generic(tail))

    def _loop(self, like: For, var: Var, extent: PrimExpr, body: Stmt) -> For:
        return For(var, _op.const(0, var.dtype), self.analyzer.simplify(extent), like.kind, body, like.thread_tag,
                   like.annotations)

    def _split_point(self, loop: For) -> Optional[tuple[PrimExpr, Optional[PrimExpr], bool]]:
        """(guard, point, head): the guard holds for ``v >= point`` (head) or ``v < point`` (tail);
        point None: it holds for every ``v`` of the loop."""
        v = loop.loop_var
        for cond, inner in _guards_below(loop.body):
            found = self._guard_point(cond, v, inner, loop.extent)
            if found is not None:
                return (cond,) + found
        return None

    def _guard_point(self, cond: PrimExpr, v: Var, inner: dict,
                     extent: PrimExpr) -> Optional[tuple[Optional[PrimExpr], bool]]:
        """Where ``cond`` starts (head) or stops (tail) holding for every inner iteration, as a
        value of ``v``; None if it is not affine in ``v``, or holds for no whole iteration of it."""
        if not isinstance(cond, (LT, LE)):
            return None
        used = collect_vars(cond)
        if v not in used or not any(u in inner for u in used):
            return None
        if any(v in (collect_vars(lo) | collect_vars(ext)) for lo, ext in inner.values()):
            return None
        diff = _op.sub(cond.a, cond.b) if isinstance(cond, LT) else _op.sub(_op.sub(cond.a, cond.b), -1)
        dom = {u: Interval.from_range(lo, ext, self.analyzer) for u, (lo, ext) in inner.items()}
        hi = eval_interval(diff, dom, self.analyzer).max
        if hi is None:
            return None
        at0 = self.analyzer.simplify(substitute(hi, {v: _op.const(0, v.dtype)}))
        coef = self.analyzer.simplify(_op.sub(substitute(hi, {v: _op.const(1, v.dtype)}), at0))
        if not isinstance(coef, IntImm) or coef.value == 0:
            return None
        linear = self.analyzer.simplify(_op.sub(hi, _op.add(at0, _op.mul(coef, v))))
        if not (isinstance(linear, IntImm) and linear.value == 0):
            return None
        c, head = abs(coef.value), coef.value < 0
        if head:  # at0 - c*v < 0  <=>  v >= floor(at0 / c) + 1
            point = _op.add(_op.floordiv(at0, _op.const(c, v.dtype)), 1)
        else:     # c*v + at0 < 0  <=>  v < ceil(-at0 / c)
            point = _op.floordiv(_op.sub(_op.const(c - 1, v.dtype), at0), _op.const(c, v.dtype))
        point = self.analyzer.simplify(_op.min_expr(_op.max_expr(point, 0), extent))
        if isinstance(point, IntImm):
            always = point.value == 0 if head else isinstance(extent, IntImm) and point.value >= extent.value
            never = (isinstance(extent, IntImm) and point.value >= extent.value) if head else point.value == 0
            if always:
                return None, head
            if never:
                return None
        return point, head


def partition_loops(stmt: Stmt, analyzer: Optional[Analyzer] = None) -> Stmt:
    """Split loops at the guards of non-dividing splits and vectorized boundary conditions (see the
    module docstring)."""
    return _Partitioner(analyzer or Analyzer()).visit(stmt)
