"""Barrier placement: ``__syncthreads()`` where threads of a block hand memory to each other.

``insert_barriers`` takes the body every thread of a kernel runs (launch form,
see :mod:`.launch`) and inserts ``tvm_storage_sync("shared")`` statements so
that no thread reads an element another thread writes, or overwrites one
another thread still reads, without a barrier in between. Only shared and
global memory is tracked; local memory is private to a thread.

The planner walks statements in program order keeping the accesses made
since the last barrier. Before a statement whose accesses conflict with
them it puts a barrier (before a whole loop when the conflict is with the
loop as a whole). A loop body is planned again with the accesses left at its
end, so a value read in one iteration and overwritten in the next gets a
barrier too ("the next overwrite"). Barriers only go where every thread of
the block arrives: never inside a branch or loop whose condition or extent
depends on the thread index (or on loaded data); a conflict *inside* such a
region cannot be fixed by a barrier and is a ``GPUScheduleError``.

Two accesses conflict when they touch one buffer, one reads and the other
writes, and they may come from different threads. A tensor core fragment store
(``tvm_store_matrix_sync``) writes the element its pointer addresses, and the tile from it. They provably do not when both run in
one thread (a ``threadIdx == 0`` guard on every thread index), or when they
have the same index and that index separates threads: it is
``sum(c_i * thread_i) + rest`` with the thread part injective over the block
and ``rest`` either free of loop variables or a multiple of the thread
part's span.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from ..tir import op as _op
from ..tir.expr import EQ, And, BufferLoad, Call, IntImm, PrimExpr, StringImm, Var
from ..tir.functor import collect_vars, post_order_visit, structural_equal, substitute
from ..tir.simplify import Analyzer
from ..tir.stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, IfThenElse, LetStmt, SeqStmt,
                        Stmt, seq)
from ..tir.wmma import written_pointer
from .gpu_verify import GPUScheduleError, stage_of

_MAX_LOOP_PASSES = 4


def barrier() -> Stmt:
    """The statement every thread of a block waits at (``__syncthreads()``)."""
    return Evaluate(Call("handle", "tvm_storage_sync", (StringImm("shared"),)))


def insert_barriers(body: Stmt, threads: dict) -> Stmt:
    """``body`` with barriers placed (see the module docstring).

    ``threads`` maps each launched ``threadIdx`` variable to its (constant) extent.
    """
    if not threads:
        return body
    planner = _Planner(threads)
    planner.taint(body)
    new_body, _ = planner.stmt(body, [], frozenset())
    return new_body


@dataclass(frozen=True)
class _Access:
    stmt: int            # id of the statement (a store, or an if/loop run as a whole) making it
    node: int            # id of the load/store node: stable across planning passes
    data: Var            # the buffer's memory
    name: str
    write: bool
    index: tuple
    varying: frozenset   # thread variables not pinned to 0 by an enclosing guard


class _Planner:
    def __init__(self, threads: dict):
        self.threads = threads
        self.tainted: set = set(threads)  # variables that may differ between threads of a block
        self.analyzer = Analyzer()
        for var, extent in threads.items():
            self.analyzer.bind(var, (_op.const(0, var.dtype), extent))
        self.loop_extents: dict = {}  # loop variable -> constant extent (loops starting at 0)

    # ------------------------------------------------------------ facts
    def taint(self, body: Stmt) -> None:
        """Find the variables that depend on the thread index, and the loop variables."""
        def visit(n: Any) -> None:
            if isinstance(n, LetStmt) and self.depends(n.value):
                self.tainted.add(n.var)
            elif isinstance(n, For):
                if self.depends(n.min) or self.depends(n.extent):
                    self.tainted.add(n.loop_var)
                elif isinstance(n.extent, IntImm) and isinstance(n.min, IntImm) and n.min.value == 0:
                    self.loop_extents[n.loop_var] = n.extent.value

        # Bindings come before their uses in program order, which a pre-order walk follows.
        _pre_order(body, visit)

    def depends(self, e: PrimExpr) -> bool:
        """Whether ``e`` may differ between the threads of a block."""
        loads: list = []
        post_order_visit(e, lambda n: loads.append(n) if isinstance(n, BufferLoad) else None)
        return bool(loads) or bool(collect_vars(e) & self.tainted)

    def divergent(self, s: Stmt) -> bool:
        if isinstance(s, IfThenElse):
            return self.depends(s.condition)
        if isinstance(s, For):
            return self.depends(s.min) or self.depends(s.extent)
        return False

    # ------------------------------------------------------------ accesses
    def accesses(self, s: Stmt, pinned: frozenset, unit: Optional[int] = None) -> list[_Access]:
        """Shared/global accesses of ``s``; ``unit`` is the statement they are attributed to."""
        found: list[_Access] = []

        def record(node: Any, write: bool, owner: int, pins: frozenset) -> None:
            if node.buffer.scope == "local":
                return
            varying = frozenset(v for v in self.threads if v not in pins)
            found.append(_Access(owner, id(node), node.buffer.data, node.buffer.name, write,
                                 node.indices, varying))

        def loads(e: Any, owner: int, pins: frozenset) -> None:
            post_order_visit(e, lambda n: record(n, False, owner, pins) if isinstance(n, BufferLoad) else None)

        def walk(x: Stmt, pins: frozenset) -> None:
            owner = unit if unit is not None else id(x)
            if isinstance(x, BufferStore):
                loads(x.value, owner, pins)
                for i in x.indices:
                    loads(i, owner, pins)
                record(x, True, owner, pins)
            elif isinstance(x, IfThenElse):
                loads(x.condition, owner, pins)
                walk(x.then_case, pins | self.pinned_by(x.condition))
                if x.else_case is not None:
                    walk(x.else_case, pins)
            elif isinstance(x, SeqStmt):
                for c in x.seq:
                    walk(c, pins)
            elif isinstance(x, For):
                loads(x.min, owner, pins)
                loads(x.extent, owner, pins)
                walk(x.body, pins)
            elif isinstance(x, LetStmt):
                loads(x.value, owner, pins)
                walk(x.body, pins)
            elif isinstance(x, (Allocate, AttrStmt)):
                walk(x.body, pins)
            elif isinstance(x, Evaluate):
                written = written_pointer(x.value)  # a fragment store writes through its pointer
                if written is None:
                    loads(x.value, owner, pins)
                else:
                    for e in (*x.value.args[1:5], written.indices[0], x.value.args[6]):
                        loads(e, owner, pins)
                    record(written, True, owner, pins)

        walk(s, pinned)
        return found

    def pinned_by(self, cond: PrimExpr) -> frozenset:
        """Thread variables a condition pins to 0 (conjuncts ``t == 0``)."""
        pins = set()
        todo = [cond]
        while todo:
            c = todo.pop()
            if isinstance(c, And):
                todo += [c.a, c.b]
            elif isinstance(c, EQ) and c.a in self.threads and isinstance(c.b, IntImm) and c.b.value == 0:
                pins.add(c.a)
        return frozenset(pins)

    def conflict(self, a: _Access, b: _Access) -> bool:
        # Only a read after a write or a write after a read: two threads writing one element
        # without a read between is a race no barrier placement would resolve (as in TVM).
        if a.data is not b.data or a.write == b.write:
            return False
        if not a.varying and not b.varying:
            return False  # both run in thread 0 only
        same = a.varying == b.varying and len(a.index) == 1 and structural_equal(a.index, b.index)
        return not (same and self.separates(a.index[0], a.varying))

    def separates(self, index: PrimExpr, varying: frozenset) -> bool:
        """Whether two threads that differ in ``varying`` never meet at ``index``, in any iterations.

        True when the index is affine in the thread and loop variables with
        positive constant coefficients that form a mixed radix (each larger
        than the span of the smaller ones): then equal indices mean equal
        variables, so the same thread.
        """
        az = self.analyzer
        pinned = {v: _op.const(0, v.dtype) for v in self.threads if v not in varying}
        index = az.simplify(substitute(index, pinned)) if pinned else index
        used = collect_vars(index)
        moving = [v for v in used if v in self.threads or v in self.loop_extents]
        if used & (self.tainted - set(self.threads)) or not varying <= used:
            return False
        zero = {v: _op.const(0, v.dtype) for v in moving}
        rest = az.simplify(substitute(index, zero))
        linear: PrimExpr = rest
        terms = []
        for v in moving:
            unit = dict(zero)
            unit[v] = _op.const(1, v.dtype)
            c = az.simplify(_op.sub(substitute(index, unit), rest))
            if not isinstance(c, IntImm) or c.value <= 0:
                return False
            extent = self.threads[v].value if v in self.threads else self.loop_extents[v]
            terms.append((c.value, extent))
            linear = _op.add(linear, _op.mul(_op.const(c.value, index.dtype), _op.cast(v, index.dtype)))
        if not az.can_prove(_op.cmp("==", index, linear)):
            return False
        span = 0
        for c, extent in sorted(terms):
            if c <= span:
                return False
            span += c * (extent - 1)
        return True

    def conflicts(self, pending: list[_Access], new: list[_Access]) -> Optional[tuple]:
        for b in new:
            for a in pending:
                if self.conflict(a, b):
                    return a, b
        return None

    # ------------------------------------------------------------ planning
    def stmt(self, s: Stmt, pending: list[_Access], pinned: frozenset) -> tuple[Stmt, list[_Access]]:
        """``s`` with barriers placed after ``pending`` accesses, and the accesses pending after it."""
        if isinstance(s, SeqStmt):
            out = []
            for c in s.seq:
                c2, pending = self.stmt(c, pending, pinned)
                out.append(c2)
            return seq(*out), pending
        if isinstance(s, (LetStmt, Allocate, AttrStmt)):
            body, after = self.stmt(s.body, pending, pinned)
            return dataclasses.replace(s, body=body), after
        if isinstance(s, IfThenElse) and not self.divergent(s):
            then_case, p1 = self.stmt(s.then_case, pending, pinned)
            other, p2 = (None, pending) if s.else_case is None else self.stmt(s.else_case, pending, pinned)
            return IfThenElse(s.condition, then_case, other), _union(p1, p2)
        if isinstance(s, For) and not self.divergent(s):
            return self.loop(s, pending, pinned)
        acc = self.accesses(s, pinned, id(s))
        if isinstance(s, (IfThenElse, For)):
            self.check_inside(s, self.accesses(s, pinned))
        if self.conflicts(pending, acc):
            return seq(barrier(), s), acc
        return s, pending + acc

    def loop(self, s: For, pending: list[_Access], pinned: frozenset) -> tuple[Stmt, list[_Access]]:
        whole = self.accesses(s, pinned, id(s))
        prefix = None
        if self.conflicts(pending, whole):
            prefix, pending = barrier(), []
        start = list(pending)
        body, end = s.body, pending
        for _ in range(_MAX_LOOP_PASSES):
            body, end = self.stmt(s.body, start, pinned)
            known = {(a.node, a.stmt) for a in start}
            fresh = [a for a in end if (a.node, a.stmt) not in known]
            if not fresh:
                break
            start = start + fresh
        loop = dataclasses.replace(s, body=body)
        return seq(prefix, loop), _union(end, pending)

    def check_inside(self, s: Stmt, acc: list[_Access]) -> None:
        """A branch or loop that threads take differently must not need a barrier inside."""
        for i, a in enumerate(acc):
            for b in acc[i + 1:]:
                if a.stmt != b.stmt and self.conflict(a, b):
                    what = "branch" if isinstance(s, IfThenElse) else "loop"
                    raise GPUScheduleError(
                        f"stage {stage_of(s)}: buffer {a.name} is written and read by different threads "
                        f"inside a {what} that depends on the thread index, where no barrier can be "
                        "placed; compute the stage so that every thread reaches the same barriers "
                        "(split by factors that divide, or stage it through another buffer)")


def _union(a: list[_Access], b: list[_Access]) -> list[_Access]:
    seen = {(x.node, x.stmt) for x in a}
    return a + [x for x in b if (x.node, x.stmt) not in seen]


def _pre_order(s: Any, fn: Any) -> None:
    fn(s)
    if isinstance(s, SeqStmt):
        for c in s.seq:
            _pre_order(c, fn)
    elif isinstance(s, IfThenElse):
        _pre_order(s.then_case, fn)
        if s.else_case is not None:
            _pre_order(s.else_case, fn)
    elif isinstance(s, (For, LetStmt, Allocate, AttrStmt)):
        _pre_order(s.body, fn)
