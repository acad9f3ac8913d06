"""TVM's ``te.schedule.AutoInlineElemWise`` / ``AutoInlineInjective``: inline simple stages of a schedule.

Elementwise stages (every tensor read at exactly the stage's own axes) or
all injective ones (any compute without a reduction) are inlined unless
they are outputs of the schedule. Uses only the ``compute_inline`` primitive.
"""

from __future__ import annotations

from ..tir.expr import ProducerLoad, Reduce
from ..tir.functor import post_order_visit
from .operation import ComputeOp
from .schedule import Schedule, Stage


def _injective(stage: Stage) -> bool:
    op = stage.op
    return (isinstance(op, ComputeOp) and not stage.is_output and stage.attach_type != "inline"
            and not op.reduce_axis and not any(isinstance(b, Reduce) for b in op.body))


def _elementwise(stage: Stage) -> bool:
    axes = tuple(iv.var for iv in stage.op.axis)
    loads: list = []
    for b in stage.op.body:
        post_order_visit(b, lambda n: loads.append(n) if isinstance(n, ProducerLoad) else None)
    return all(len(ld.indices) == len(axes) and all(i is a for i, a in zip(ld.indices, axes)) for ld in loads)


def auto_inline_elemwise(sch: Schedule) -> None:
    """Inline every non-output stage that reads its inputs elementwise."""
    for stage in sch.stages:
        if _injective(stage) and _elementwise(stage):
            stage.compute_inline()


def auto_inline_injective(sch: Schedule) -> None:
    """Inline every non-output stage without a reduction."""
    for stage in sch.stages:
        if _injective(stage):
            stage.compute_inline()
