"""Unroll: loops of kind UNROLLED become a sequence of copies of their body.

This pass owns the rewrite of a ``For`` of kind UNROLLED with a constant
extent into ``seq(body[v := min], body[v := min+1], ...)``. Every variable
and buffer the body binds (nested loop vars, let vars, allocations) is
fresh in each copy, so no Var is ever bound twice. With ``auto_max_extent``
> 0, a nest of SERIAL/UNROLLED loops whose total number of iterations (the
product of their constant extents, like TVM's ``auto_max_step``) is at most
that bound is unrolled too. A loop with a symbolic extent, or one too large to unroll sensibly,
stays SERIAL. This pass must not change what the code computes, nor touch
loops of any other kind.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from ..tir import expr as E
from ..tir import op as _op
from ..tir import stmt as S
from ..tir.buffer import Buffer
from ..tir.functor import Mutator, post_order_visit
from ..tir.simplify import simplify

# Unrolling past these only bloats code: LLVM re-rolls or spills, compile time grows.
MAX_UNROLL_EXTENT = 1024
MAX_UNROLLED_STMTS = 16384


def unroll_loops(stmt: S.Stmt, auto_max_extent: int = 0) -> S.Stmt:
    """``stmt`` with UNROLLED loops, and serial nests of at most ``auto_max_extent`` steps, unrolled."""
    return _Unroller(auto_max_extent).visit(stmt)


class _Unroller(Mutator):
    def __init__(self, auto_max_extent: int):
        self.auto_max_extent = auto_max_extent

    def visit_For(self, node: S.For) -> Any:
        auto = (self.auto_max_extent > 0 and node.kind is S.ForKind.SERIAL
                and _steps(node) <= self.auto_max_extent)
        node = self.generic(node)
        if node.kind is S.ForKind.UNROLLED or auto:
            return _unroll(node)
        return node


def _unroll(loop: S.For) -> S.Stmt:
    if not isinstance(loop.extent, E.IntImm):
        return dataclasses.replace(loop, kind=S.ForKind.SERIAL)
    n = loop.extent.value
    if n > MAX_UNROLL_EXTENT or n * _count_stmts(loop.body) > MAX_UNROLLED_STMTS:
        return dataclasses.replace(loop, kind=S.ForKind.SERIAL)
    copies = []
    for k in range(n):
        body = _Specialize(loop.loop_var, _op.add(loop.min, _op.const(k, loop.loop_var.dtype))).visit(loop.body)
        copies.append(_Freshen().visit(body))
    return S.seq(*copies)


class _Specialize(Mutator):
    """Substitutes the loop variable, and of a select whose condition thereby becomes a constant
    visits only the branch taken: a table of expressions selected by an unrolled index (a
    Winograd transform's) costs one entry per copy, not the whole table."""

    def __init__(self, var: E.Var, value: E.PrimExpr):
        self.var, self.value = var, value

    def visit_Var(self, node: E.Var) -> Any:
        return self.value if node is self.var else node

    def visit_Select(self, node: E.Select) -> Any:
        condition = self.visit(node.condition)
        known = _truth(condition) if condition is not node.condition else None
        if known is None:
            return E.Select(condition, self.visit(node.true_value), self.visit(node.false_value))
        return self.visit(node.true_value if known else node.false_value)


def _truth(condition: E.PrimExpr) -> Optional[bool]:
    """The value of a condition that simplifies to a constant (scalar or broadcast), else None."""
    folded = simplify(condition)
    if isinstance(folded, E.Broadcast):
        folded = folded.value
    return bool(folded.value) if isinstance(folded, E.IntImm) else None


def _steps(loop: S.For) -> float:
    """Iterations of the nest under ``loop`` if unrolled whole (inf when it cannot be)."""
    if loop.kind not in (S.ForKind.SERIAL, S.ForKind.UNROLLED) or not isinstance(loop.extent, E.IntImm):
        return math.inf
    inner = []
    post_order_visit(loop.body, lambda n: inner.append(n) if isinstance(n, S.For) else None)
    return loop.extent.value * max((_steps(x) for x in inner), default=1)


def _count_stmts(s: S.Stmt) -> int:
    count = [0]

    def f(n: Any) -> None:
        if isinstance(n, S.Stmt) and not isinstance(n, S.SeqStmt):
            count[0] += 1

    post_order_visit(s, f)
    return count[0]


class _Freshen(Mutator):
    """Gives every variable and buffer bound inside a copied body a new identity."""

    def __init__(self) -> None:
        self.vars: dict[E.Var, E.Var] = {}
        self.buffers: dict[Buffer, Buffer] = {}

    def fresh_var(self, v: E.Var) -> E.Var:
        new = type(v)(v.name, v.dtype)
        self.vars[v] = new
        return new

    def visit_Var(self, node: E.Var) -> Any:
        return self.vars.get(node, node)

    visit_SizeVar = visit_Var

    def visit_For(self, node: S.For) -> Any:
        var = self.fresh_var(node.loop_var)
        return dataclasses.replace(node, loop_var=var, min=self.visit(node.min),
                                   extent=self.visit(node.extent), body=self.visit(node.body))

    def visit_LetStmt(self, node: S.LetStmt) -> Any:
        value = self.visit(node.value)
        return S.LetStmt(self.fresh_var(node.var), value, self.visit(node.body))

    def visit_Let(self, node: E.Let) -> Any:
        value = self.visit(node.value)
        return E.Let(self.fresh_var(node.var), value, self.visit(node.body))

    def visit_Allocate(self, node: S.Allocate) -> Any:
        self.fresh_var(node.buffer.data)
        return S.Allocate(self.buffer(node.buffer), self.visit(node.body))

    def buffer(self, buf: Buffer) -> Buffer:
        """The copy's buffer: a new Buffer when its memory (data var) was freshened."""
        if buf in self.buffers:
            return self.buffers[buf]
        if buf.data not in self.vars:
            return buf
        new = dataclasses.replace(buf, data=self.vars[buf.data],
                                  shape=tuple(self.visit(x) for x in buf.shape),
                                  strides=tuple(self.visit(x) for x in buf.strides))
        self.buffers[buf] = new
        return new

    def visit_BufferLoad(self, node: E.BufferLoad) -> Any:
        return E.BufferLoad(self.buffer(node.buffer), tuple(self.visit(i) for i in node.indices))

    def visit_BufferStore(self, node: S.BufferStore) -> Any:
        return S.BufferStore(self.buffer(node.buffer), self.visit(node.value),
                             tuple(self.visit(i) for i in node.indices))
