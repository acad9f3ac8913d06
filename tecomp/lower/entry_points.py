"""TVM's classic pass entry points over a schedule: ``te.schedule.InferBound`` and ``ScheduleOps``.

Thin wrappers for scripts that call them: bound inference as a map from
every iteration variable to its range, and the loop nest of a schedule as a
statement (tecomp's whole lowering, over the schedule's inputs and outputs).
"""

from __future__ import annotations

from typing import Any, Optional

from ..te.operation import PlaceholderOp
from ..te.schedule import Schedule
from ..te.tensor import IterVar, Range
from ..tir import op as _op
from ..tir.stmt import Stmt
from .bound import BoundInferrer
from .driver import _shape_analyzer, lower_to_primfunc, stages_and_bodies


def _placeholders(sch: Schedule) -> list:
    return [st.op.output(0) for st in sch.stages if isinstance(st.op, PlaceholderOp)]


def infer_bound(sch: Schedule) -> dict[IterVar, Range]:
    """Every iteration variable of every stage (root, split, fused, ...) and its range."""
    stages, bodies = stages_and_bodies(sch)
    bounds = BoundInferrer(sch, stages, bodies, _shape_analyzer(_placeholders(sch))).run()
    ranges: dict[IterVar, Range] = {}
    for sb in bounds.values():
        ranges.update(sb.root_ranges)
        for iv, extent in sb.extents.items():
            ranges.setdefault(iv, Range(_op.const(0, extent.dtype), extent))
    return ranges


def schedule_ops(sch: Schedule, bounds: Optional[Any] = None) -> Stmt:
    """The lowered loop nest of ``sch`` over its inputs and outputs (``bounds`` are recomputed)."""
    outputs = [op.output(k) for op in sch.outputs for k in range(op.num_outputs)]
    return lower_to_primfunc(sch, _placeholders(sch) + outputs, "main").body
