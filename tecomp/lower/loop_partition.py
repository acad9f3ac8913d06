"""Loop partitioning: peel the tail of a non-dividing split off its main part.

A split that does not divide leaves a guard such as ``xo*8 + xi < 1000``
around the body. For all but the last few values of the outer loop the guard
holds for every value of the inner loops, so the loop is cut in two: a main
part without the guard (where the inner loop can then be vectorized) and a
tail that keeps it. Only guards of that shape are used: a comparison that
depends on the partitioned loop and on loops inside it, affine in the
partitioned loop with a positive coefficient. The tail gets a fresh loop
variable so every variable stays bound by exactly one loop.
"""

from __future__ import annotations

from typing import Any, Optional

from ..tir import op as _op
from ..tir.expr import LE, LT, And, IntImm, PrimExpr, Var
from ..tir.functor import Mutator, collect_vars, structural_equal, substitute
from ..tir.interval import Interval, eval_interval
from ..tir.simplify import Analyzer
from ..tir.stmt import Allocate, AttrStmt, For, ForKind, IfThenElse, LetStmt, SeqStmt, Stmt, seq

_PARTITIONABLE = (ForKind.SERIAL, ForKind.PARALLEL)


def _conjuncts(cond: PrimExpr) -> list[PrimExpr]:
    if isinstance(cond, And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]


def _guards_below(body: Stmt) -> list[tuple[PrimExpr, dict]]:
    """(conjunct, ranges of the loops enclosing it inside ``body``) for every IfThenElse guard."""
    found: list[tuple[PrimExpr, dict]] = []

    def walk(s: Any, loops: dict) -> None:
        if isinstance(s, For):
            walk(s.body, {**loops, s.loop_var: (s.min, s.extent)})
        elif isinstance(s, IfThenElse):
            found.extend((c, loops) for c in _conjuncts(s.condition))
            walk(s.then_case, loops)
            if s.else_case is not None:
                walk(s.else_case, loops)
        elif isinstance(s, SeqStmt):
            for child in s.seq:
                walk(child, loops)
        elif isinstance(s, (Allocate, AttrStmt, LetStmt)):
            walk(s.body, loops)

    walk(body, {})
    return found


class _ReplaceCondition(Mutator):
    """Replace one guard conjunct (structurally) by true."""

    def __init__(self, target: PrimExpr):
        self.target = target

    def visit_IfThenElse(self, node: IfThenElse) -> Any:
        node = self.generic(node)
        parts = [c for c in _conjuncts(node.condition) if not structural_equal(c, self.target)]
        if len(parts) == len(_conjuncts(node.condition)):
            return node
        cond = _op.const(True)
        for p in parts:
            cond = _op.logical_and(cond, p)
        if isinstance(cond, IntImm) and cond.value:
            return node.then_case
        return IfThenElse(cond, node.then_case, node.else_case)


class _Partitioner(Mutator):
    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer

    def visit_For(self, loop: For) -> Any:
        if loop.kind in _PARTITIONABLE and isinstance(loop.min, IntImm) and loop.min.value == 0:
            found = self._split_point(loop)
            if found is not None:
                guard, point = found
                main = For(loop.loop_var, loop.min, point, loop.kind,
                           _ReplaceCondition(guard).visit(loop.body), loop.thread_tag, loop.annotations)
                tail_var = Var(loop.loop_var.name, loop.loop_var.dtype)
                tail_body = substitute(loop.body, {loop.loop_var: _op.add(tail_var, point)})
                tail = For(tail_var, _op.const(0, point.dtype),
                           self.analyzer.simplify(_op.sub(loop.extent, point)), loop.kind,
                           tail_body, loop.thread_tag, loop.annotations)
                return seq(self.visit(main), self.generic(tail))
        return self.generic(loop)

    def _split_point(self, loop: For) -> Optional[tuple[PrimExpr, PrimExpr]]:
        v = loop.loop_var
        for cond, inner in _guards_below(loop.body):
            point = self._guard_point(cond, v, inner, loop.extent)
            if point is not None:
                return cond, point
        return None

    def _guard_point(self, cond: PrimExpr, v: Var, inner: dict, extent: PrimExpr) -> Optional[PrimExpr]:
        """The first value of ``v`` from which ``cond`` may fail for some inner iteration."""
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
        if not isinstance(coef, IntImm) or coef.value <= 0:
            return None
        linear = self.analyzer.simplify(_op.sub(hi, _op.add(at0, _op.mul(coef, v))))
        if not (isinstance(linear, IntImm) and linear.value == 0):
            return None
        # coef*v + at0 < 0  <=>  v < ceil(-at0 / coef)
        point = _op.floordiv(_op.sub(_op.const(coef.value - 1, v.dtype), at0), coef)
        point = self.analyzer.simplify(_op.min_expr(_op.max_expr(point, 0), extent))
        if isinstance(point, IntImm) and (point.value == 0 or
                                          (isinstance(extent, IntImm) and point.value >= extent.value)):
            return None
        return point


def partition_loops(stmt: Stmt, analyzer: Optional[Analyzer] = None) -> Stmt:
    """Split loops whose guards come from non-dividing splits (see the module docstring)."""
    return _Partitioner(analyzer or Analyzer()).visit(stmt)
