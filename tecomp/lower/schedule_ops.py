"""Building loop nests from a schedule whose bounds are known.

Each stage becomes a nest of ``For`` loops over its leaf variables, in leaf
order, around a store of its body. Stages computed at a loop are emitted
inside that loop, before the rest of its body, with their allocation there.
A reduction gets an init store just outside its outermost reduction loop
(with its own small nest over the data-parallel loops inside it, and over a
loop fused from both kinds, which covers output elements too); one whose
reduction axis is bound to a GPU thread index becomes a cross-thread
reduction (register partials, a tree in shared memory).
Guards are added only where a split does not provably divide.
Accesses are still multi-dimensional here; ``flatten`` comes next.
"""

from __future__ import annotations

from typing import Any, Optional

from ..error import LoweringError
from ..te.operation import ComputeOp, ExternOp, ScanOp
from ..te.relations import mixed_axes
from ..te.schedule import Split, Stage
from ..te.tensor import IterVar
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import BufferLoad, PrimExpr, ProducerLoad, Reduce, Var
from ..tir.functor import Mutator, substitute
from ..tir.simplify import Analyzer
from ..tir.stmt import Allocate, BufferStore, For, ForKind, IfThenElse, LetStmt, Stmt, seq
from .bound import StageBounds, loop_chain


class StorageMap:
    """Where each tensor lives: its Buffer, the region offset, whether it is a parameter, and for a
    double-buffered stage the leading index (its loop's parity) that picks one of its two halves."""

    def __init__(self) -> None:
        self.buffers: dict[tuple, Buffer] = {}
        self.offsets: dict[tuple, tuple] = {}
        self.params: set = set()
        self.halves: dict[tuple, PrimExpr] = {}

    def key(self, stage: Stage, value_index: int) -> tuple:
        return (id(stage), value_index)

    def add(self, stage: Stage, value_index: int, buf: Buffer, offsets: tuple, is_param: bool) -> None:
        k = self.key(stage, value_index)
        self.buffers[k] = buf
        self.offsets[k] = offsets
        if is_param:
            self.params.add(k)

    def buffer(self, stage: Stage, value_index: int) -> Buffer:
        return self.buffers[self.key(stage, value_index)]

    def is_param(self, stage: Stage, value_index: int) -> bool:
        return self.key(stage, value_index) in self.params

    def local_indices(self, stage: Stage, value_index: int, indices: tuple) -> tuple:
        key = self.key(stage, value_index)
        local = tuple(_op.sub(i, o) for i, o in zip(indices, self.offsets[key]))
        return (self.halves[key],) + local if key in self.halves else local


class _LoadsToBuffers(Mutator):
    def __init__(self, schedule: Any, storage: StorageMap):
        self.schedule = schedule
        self.storage = storage

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        node = self.generic(node)
        stage = self.schedule[node.producer]
        vi = node.producer.value_index
        return BufferLoad(self.storage.buffer(stage, vi),
                          self.storage.local_indices(stage, vi, node.indices))


class NestBuilder:
    """Emits the statement for every stage; see the module docstring."""

    def __init__(self, schedule: Any, stages: list[Stage], bodies: dict,
                 bounds: dict[Stage, StageBounds], storage: StorageMap, analyzer: Analyzer):
        self.schedule = schedule
        self.stages = stages
        self.bodies = bodies
        self.bounds = bounds
        self.storage = storage
        self.analyzer = analyzer
        self.loads = _LoadsToBuffers(schedule, storage)
        self.attached: dict[tuple, list[Stage]] = {}
        for st in stages:
            if st.attach_type == "scope":
                self.attached.setdefault((id(st.attach_stage), id(st.attach_ivar)), []).append(st)

    def build(self) -> Stmt:
        roots = [st for st in self.stages if st.attach_type == "root"]
        return self._produce(roots, None)

    def _produce(self, stages: list[Stage], rest: Optional[Stmt]) -> Stmt:
        """The nests of ``stages`` in order, then ``rest``, each internal buffer allocated around its uses."""
        acc = rest
        for st in reversed(stages):
            acc = seq(self._stage_nest(st), acc)
            acc = self._allocate(st, acc, double_buffered=False)
        return acc

    def _allocate(self, st: Stage, body: Stmt, double_buffered: bool) -> Stmt:
        """``body`` inside the allocations of ``st``'s internal buffers: the double-buffered ones
        around the loop they alternate over, the others around the stage's own uses."""
        for vi in range(st.op.num_outputs):
            key = self.storage.key(st, vi)
            if not self.storage.is_param(st, vi) and (key in self.storage.halves) == double_buffered:
                body = Allocate(self.storage.buffer(st, vi), body)
        return body

    def _stage_nest(self, st: Stage) -> Stmt:
        sb = self.bounds[st]
        if isinstance(st.op, ScanOp):  # one serial loop over the scan axis; the body stages are attached there
            return self._loops(st, sb, [st.op.scan_axis], None)
        if isinstance(st.op, ExternOp):  # its hand-written body, on the real buffers
            from .extern import extern_stmt
            return extern_stmt(self.schedule, st, self.storage)
        op: ComputeOp = st.op
        root_vmap = {iv.var: sb.root_index(iv) for iv in sb.root_ranges}
        out_indices = tuple(sb.root_index(iv) for iv in op.axis)
        dp_guard = self._guard(st, sb, reduce=False)
        store_guard = dp_guard if st.store_predicate is None else _op.logical_and(dp_guard, self._store_predicate(st))
        leaves = st.leaf_iter_vars
        body = self.bodies[st]
        for pos, iv in enumerate(leaves):
            intrin = getattr(st.iter_var_attrs.get(iv), "tensor_intrin", None)
            if intrin is not None:
                from .tensorize import tensorized_nest
                return tensorized_nest(self, st, sb, pos, intrin)
        if not isinstance(body[0], Reduce):
            stores = [self._store(st, vi, self.loads.visit(substitute(b, root_vmap)), out_indices)
                      for vi, b in enumerate(body)]
            return self._loops(st, sb, leaves, _guarded(store_guard, seq(*stores)))
        red = substitute(body[0], root_vmap)  # source, condition and the combiner's identity and rule
        bound = [iv for iv in leaves if iv.is_reduce and self._kind(st, iv) is ForKind.THREAD_BINDING]
        if bound:
            return self._cross_thread_nest(st, sb, red, bound, out_indices, dp_guard, store_guard)
        core, init, first_red = self._reduction(st, sb, red, out_indices, store_guard)
        if first_red is None:
            return seq(init, self._loops(st, sb, leaves, core))
        inner = seq(init, self._loops(st, sb, leaves[first_red:], core))
        return self._loops(st, sb, leaves[:first_red], inner)

    def _loops(self, st: Stage, sb: StageBounds, ivs: list[IterVar], body: Stmt,
               unlooped: Optional[IterVar] = None) -> Stmt:
        """``body`` inside the loops of ``ivs`` (outermost first), each loop's attached stages
        produced at its top; ``unlooped`` gets its attached stages but no loop (one placed elsewhere)."""
        for iv in reversed(ivs):
            attached = self.attached.get((id(st), id(iv)), [])
            body = self._produce(attached, body)
            if iv is not unlooped:
                body = self._make_for(st, iv, sb.extents[iv], body)
            for other in attached:
                body = self._allocate(other, body, double_buffered=True)
        return body

    def _store(self, st: Stage, vi: int, value: PrimExpr, indices: tuple) -> Stmt:
        buf = self.storage.buffer(st, vi)
        return BufferStore(buf, value, self.storage.local_indices(st, vi, indices))

    def _reduction(self, st: Stage, sb: StageBounds, red: Reduce, out_indices: tuple, dp_guard: PrimExpr) -> tuple:
        outs = [(self.storage.buffer(st, k), self.storage.local_indices(st, k, out_indices))
                for k in range(len(red.source))]  # a tuple reducer (argmax) has one output per value
        core = self._update(st, sb, red, dp_guard, outs)
        leaves = st.leaf_iter_vars
        reduce_pos = [k for k, iv in enumerate(leaves) if iv.is_reduce]
        first_red = reduce_pos[0] if reduce_pos else None
        mixed = mixed_axes(st.relations)  # loops over output elements too: the init loops over them
        inner_dp = [iv for k, iv in enumerate(leaves) if (not iv.is_reduce or iv in mixed) and
                    first_red is not None and k >= first_red]
        fresh = {iv.var: Var(iv.var.name + ".init", iv.var.dtype) for iv in inner_dp}
        init: Stmt = _guarded(substitute(dp_guard, fresh), seq(*(
            BufferStore(buf, substitute(self.loads.visit(red.combiner.identity[k]), fresh),
                        tuple(substitute(i, fresh) for i in local)) for k, (buf, local) in enumerate(outs))))
        for iv in reversed(inner_dp):
            kind = self._kind(st, iv)
            init = For(fresh[iv.var], _op.const(0, iv.var.dtype), sb.extents[iv],
                       ForKind.SERIAL if kind is ForKind.THREAD_BINDING else kind, init)
        return core, init, first_red

    def _update(self, st: Stage, sb: StageBounds, red: Reduce, dp_guard: PrimExpr, outs: list) -> Stmt:
        """``buf[indices] = combine(buf[indices], source)`` for each (buf, indices) of ``outs`` (one per
        reduced value, all combined before any is stored), guarded by the splits and the condition."""
        sources = tuple(self.loads.visit(s) for s in red.source)
        cond = self.loads.visit(red.condition)
        values = red.combiner.combine(tuple(BufferLoad(buf, idx) for buf, idx in outs), sources)
        guard = _op.logical_and(_op.logical_and(dp_guard, self._guard(st, sb, reduce=True)), cond)
        if len(outs) == 1:
            return _guarded(guard, BufferStore(outs[0][0], values[0], outs[0][1]))
        temps = [Var(f"{st.name}.acc{k}", v.dtype) for k, v in enumerate(values)]
        body: Stmt = seq(*(BufferStore(buf, t, idx) for t, (buf, idx) in zip(temps, outs)))
        for t, v in reversed(list(zip(temps, values))):
            body = LetStmt(t, v, body)
        return _guarded(guard, body)

    def _cross_thread_nest(self, st: Stage, sb: StageBounds, red: Reduce, bound: list[IterVar],
                           out_indices: tuple, dp_guard: PrimExpr, store_guard: PrimExpr) -> Stmt:
        """A reduction whose axis is bound to a thread index: every thread of the group folds its
        share into a register, the partials meet in shared memory and are combined by a tree
        (log2 steps, barriers placed by thread_sync), and the group's result is stored once (a store
        predicate of the stage guards only that store)."""
        leaves = st.leaf_iter_vars
        if len(bound) != 1:
            raise LoweringError(f"stage {st.name}: reduction axes {', '.join(iv.name for iv in bound)} are all "
                                "bound to threads; bind one reduction axis per stage")
        (tr,) = bound
        first_red = next(k for k, iv in enumerate(leaves) if iv.is_reduce)
        if any(not iv.is_reduce for iv in leaves[first_red:]):
            raise LoweringError(f"stage {st.name}: a reduction bound to {self._tag(st, tr)} needs every "
                                "data-parallel axis outside the reduction axes (reorder them first)")
        threads = self._constant_extent(st, sb, tr)
        dtype = st.op.output(0).dtype
        combine = red.combiner.combine
        partial = Buffer(f"{st.name}.thread_acc", dtype, (1,), "local")
        zero = (_op.const(0, "int32"),)
        slot, groups = tr.var, 1
        for iv in reversed(leaves[:first_red]):  # one row of partials per thread of the other axes
            if self._tag(st, iv).startswith("threadIdx"):
                slot = _op.add(slot, _op.mul(iv.var, threads * groups))
                groups *= self._constant_extent(st, sb, iv)
        shared = Buffer(f"{st.name}.red_buf", dtype, (threads * groups,), "shared")
        base = _op.sub(slot, tr.var)

        fold = self._update(st, sb, red, dp_guard, [(partial, zero)])
        fold = self._loops(st, sb, leaves[first_red:], fold, unlooped=tr)
        steps = []
        offset = 1
        while offset * 2 < threads:
            offset *= 2
        while offset >= 1:
            pair = (BufferLoad(shared, (slot,)),), (BufferLoad(shared, (_op.add(slot, offset),)),)
            inside = _op.cmp("<", tr.var, offset)
            if 2 * offset > threads:  # only the first step of a group that is not a power of two
                inside = _op.logical_and(inside, _op.cmp("<", _op.add(tr.var, offset), threads))
            steps.append(IfThenElse(inside, BufferStore(shared, combine(*pair)[0], (slot,))))
            offset //= 2
        out = self.storage.buffer(st, 0)
        result: Stmt = BufferStore(out, BufferLoad(shared, (base,)), self.storage.local_indices(st, 0, out_indices))
        if out.scope != "local":  # a local result is every thread's own copy; elsewhere one thread stores
            result = IfThenElse(_op.cmp("==", tr.var, 0), result)
        body = seq(BufferStore(partial, self.loads.visit(red.combiner.identity[0]), zero), fold,
                   BufferStore(shared, BufferLoad(partial, zero), (slot,)), *steps, _guarded(store_guard, result))
        # (the shared buffer is declared once per block by the launch form, wherever it is allocated)
        content = self._make_for(st, tr, sb.extents[tr], Allocate(shared, Allocate(partial, body)))
        return self._loops(st, sb, leaves[:first_red], content)

    def _store_predicate(self, st: Stage) -> PrimExpr:
        """The stage's store predicate over its loops: a ``te.thread_axis`` names the loop bound to it."""
        threads = {}
        for owner, iv in loop_chain(st):
            attr = owner.iter_var_attrs.get(iv)
            if attr is not None and attr.bind_thread is not None:
                threads.setdefault(attr.bind_thread.var, iv.var)
        return substitute(self.loads.visit(st.store_predicate), threads)

    def _constant_extent(self, st: Stage, sb: StageBounds, iv: IterVar) -> int:
        extent = self.analyzer.simplify(sb.extents[iv])
        if not isinstance(extent, _op.IntImm):
            raise LoweringError(f"stage {st.name}: axis {iv.name} is bound to {self._tag(st, iv)} in a "
                                f"cross-thread reduction, so its extent must be a constant, got {extent}")
        return extent.value

    def _tag(self, st: Stage, iv: IterVar) -> str:
        attr = st.iter_var_attrs.get(iv)
        return attr.bind_thread.thread_tag if attr is not None and attr.bind_thread is not None else ""

    def _guard(self, st: Stage, sb: StageBounds, reduce: bool) -> PrimExpr:
        """Conditions that keep every split variable (of one kind) inside its range.

        Checking only the root is not enough: a split of an inner variable by a
        factor that does not divide it revisits some root values instead of
        running past the root's end.
        """
        cond: PrimExpr = _op.const(True)
        mixed = mixed_axes(st.relations)  # a split of a loop over output elements guards the init too
        for rel in st.relations:
            if not isinstance(rel, Split) or (rel.parent.is_reduce and rel.parent not in mixed) != reduce:
                continue
            check = _op.cmp("<", sb.values[rel.parent], sb.extents[rel.parent])
            if not self.analyzer.can_prove(check):
                cond = _op.logical_and(cond, check)
        return cond

    def _kind(self, st: Stage, iv: IterVar) -> ForKind:
        attr = st.iter_var_attrs.get(iv)
        return attr.kind if attr is not None else ForKind.SERIAL

    def _make_for(self, st: Stage, iv: IterVar, extent: PrimExpr, body: Stmt) -> Stmt:
        attr = st.iter_var_attrs.get(iv)
        annotations = tuple(attr.pragmas) if attr is not None else ()
        return For(iv.var, _op.const(0, iv.var.dtype), extent, self._kind(st, iv), body, self._tag(st, iv),
                   annotations)


def _guarded(cond: PrimExpr, body: Stmt) -> Stmt:
    if isinstance(cond, _op.IntImm) and cond.value:
        return body
    return IfThenElse(cond, body)
