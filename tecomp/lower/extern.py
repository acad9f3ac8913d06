"""``te.extern`` stages in lowering: their storage and their body, rebound to real buffers.

An extern stage has no loops of its own: lowering emits its hand-written
body where the stage sits (at root), after rebinding the body's placeholder
buffers to the storage of the tensors it reads and writes. Bound inference
sees no reads (the body is opaque), so a stage an extern reads must cover
its whole tensor: it has to be at root, not inlined or computed at a loop.
"""

from __future__ import annotations

from typing import Any

from ..error import LoweringError
from ..te.operation import ExternOp
from ..te.schedule import Schedule, Stage
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import BufferLoad, Call
from ..tir.functor import Mutator
from ..tir.ir_builder import flat_view
from ..tir.stmt import BufferStore, Stmt
from .schedule_ops import StorageMap


def extern_bodies(sch: Schedule) -> dict[Stage, tuple]:
    """Extern stages read nothing that bound inference can see."""
    return {st: () for st in sch.stages if isinstance(st.op, ExternOp)}


def plan_extern_storage(sch: Schedule, stages: list[Stage], storage: StorageMap) -> None:
    """Whole-tensor buffers for extern outputs that are not arguments; check what externs read."""
    for st in stages:
        op = st.op
        if not isinstance(op, ExternOp):
            continue
        if st.attach_type != "root":
            raise LoweringError(f"extern {op.name} must be computed at root (it is {st.attach_type}); "
                                "its body writes whole tensors")
        for k in range(op.num_outputs):
            if storage.key(st, k) not in storage.buffers:
                out = op.output(k)
                storage.add(st, k, Buffer(out.name, out.dtype, tuple(out.shape)),
                            tuple(_op.const(0, d.dtype) for d in out.shape), False)
        for t in op.inputs:
            src = sch[t]
            if src.attach_type != "root":
                raise LoweringError(f"extern {op.name} reads {t.name}, whose stage is {src.attach_type}; "
                                    "an extern's input must be computed at root (whole) or be an argument")


class _Rebind(Mutator):
    """Accesses to a placeholder buffer (or a flat view of it) go to the real buffer."""

    def __init__(self, by_data: dict):
        self.by_data = by_data
        self.views: dict = {}

    def _real(self, buf: Any) -> Any:
        if not isinstance(buf, Buffer) or buf.data not in self.by_data:
            return buf
        placeholder, real = self.by_data[buf.data]
        if buf is placeholder:
            return real
        if real not in self.views:
            self.views[real] = flat_view(real)
        return self.views[real]

    def visit_BufferLoad(self, node: BufferLoad) -> Any:
        node = self.generic(node)
        return BufferLoad(self._real(node.buffer), node.indices)

    def visit_BufferStore(self, node: BufferStore) -> Any:
        node = self.generic(node)
        return BufferStore(self._real(node.buffer), node.value, node.indices)

    def visit_Call(self, node: Call) -> Any:
        node = self.generic(node)
        args = tuple(self._real(a) for a in node.args)
        return node if all(a is b for a, b in zip(args, node.args)) else Call(node.dtype, node.op, args)


def extern_stmt(sch: Schedule, st: Stage, storage: StorageMap) -> Stmt:
    """The body of extern stage ``st`` with its buffers bound to storage."""
    op: ExternOp = st.op
    by_data: dict = {}
    for placeholder, t in zip(op.input_placeholders, op.inputs):
        src = sch[t]
        if storage.key(src, t.value_index) not in storage.buffers:
            raise LoweringError(f"extern {op.name} reads {t.name}, which has no storage here; pass it to "
                                "lower/build (an input) or do not inline it")
        by_data[placeholder.data] = (placeholder, storage.buffer(src, t.value_index))
    for k, placeholder in enumerate(op.output_placeholders):
        by_data[placeholder.data] = (placeholder, storage.buffer(st, k))
    return _Rebind(by_data).visit(op.body)
