"""Inlining: the body of every stage with inlined producers substituted in.

After this step a stage's effective body reads only tensors that have their
own storage (placeholders and non-inlined stages), and each load names the
tensor that currently holds the values (after cache rewrites).
"""

from __future__ import annotations

from typing import Any

from ..te.operation import ComputeOp
from ..te.schedule import Schedule, Stage
from ..tir.expr import ProducerLoad
from ..tir.functor import Mutator, substitute


class _InlineLoads(Mutator):
    def __init__(self, schedule: Schedule, bodies: dict):
        self.schedule = schedule
        self.bodies = bodies

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        node = self.generic(node)
        stage = self.schedule[node.producer]
        if stage.attach_type == "inline":
            op = stage.op
            vmap = {iv.var: idx for iv, idx in zip(op.axis, node.indices)}
            return substitute(self.bodies[stage][node.producer.value_index], vmap)
        current = stage.op.output(node.producer.value_index)
        return node if current is node.producer else ProducerLoad(current, node.indices)


def inline_bodies(schedule: Schedule) -> dict[Stage, tuple]:
    """Effective bodies of all compute stages (inlined ones included, for their consumers)."""
    bodies: dict[Stage, tuple] = {}
    mutator = _InlineLoads(schedule, bodies)
    for stage in schedule.stages:
        if isinstance(stage.op, ComputeOp):
            bodies[stage] = tuple(mutator.visit(b) for b in stage.op.body)
    return bodies


def tensors_read(body: tuple, schedule: Schedule) -> list[Stage]:
    """Stages whose storage ``body`` reads, in first-use order."""
    from ..te.tensor import collect_input_tensors
    seen: list[Stage] = []
    for t in collect_input_tensors(body):
        st = schedule[t]
        if st not in seen:
            seen.append(st)
    return seen
