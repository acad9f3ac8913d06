"""TVM's classic pass entry points over a schedule: ``te.schedule.InferBound`` and ``ScheduleOps``.

Thin wrappers for scripts that call them: bound inference as a map from
every iteration variable to its range, and the loop nest of a schedule as a
statement (tecomp's whole lowering, over the schedule's inputs and outputs).
"""

from __future__ import annotations

from typing import Any, Optional

from ..container import Map
from ..te.operation import PlaceholderOp
from ..te.relations import Split
from ..te.schedule import Schedule
from ..te.tensor import Range
from ..tir import op as _op
from ..tir.stmt import Stmt
from .bound import BoundInferrer
from .driver import _allocation_extent, _shape_analyzer, lower_to_primfunc, stages_and_bodies


def _placeholders(sch: Schedule) -> list:
    return [st.op.output(0) for st in sch.stages if isinstance(st.op, PlaceholderOp)]


def infer_bound(sch: Schedule) -> Map:
    """Every iteration variable of every stage (root, split, fused, ...) and its range, simplified.

    A stage computed at a loop covers a region whose extent may depend on the loop (the last tile
    clipped to the shape); as in TVM, the extent reported is then its constant upper bound, the
    size the stage's storage is allocated with.
    """
    stages, bodies = stages_and_bodies(sch)
    # every tensor's shape is non-negative, a computed one's too (a schedule may have no inputs)
    analyzer = _shape_analyzer([st.op.output(k) for st in sch.stages for k in range(st.op.num_outputs)])
    inferrer = BoundInferrer(sch, stages, bodies, analyzer)
    bounds = inferrer.run()
    ranges = Map()
    for st, sb in bounds.items():
        for iv, r in sb.root_ranges.items():  # a region's extent: the constant TVM reports where known
            axes = list(getattr(st.op, "axis", ()))
            dim = axes.index(iv) if iv in axes else None
            extent = _allocation_extent(analyzer.simplify(r.extent), analyzer, inferrer.capacity.get((st, dim)))
            ranges[iv] = Range(analyzer.simplify(r.min), extent)
        for iv, extent in sb.extents.items():
            ranges.setdefault(iv, Range(_op.const(0, extent.dtype), analyzer.simplify(extent)))
        _clip_split_parts(st, ranges, analyzer)
    return ranges


def _clip_split_parts(stage: Any, ranges: Map, analyzer: Any) -> None:
    """As TVM reports them: a split part longer than its parent (8 iterations split by a factor of
    32) has the parent's extent; tecomp's loop keeps the declared length and a guard."""
    for rel in stage.relations:
        if not isinstance(rel, Split):
            continue
        part = rel.inner if rel.factor is not None else rel.outer
        total = ranges[rel.parent].extent
        if analyzer.can_prove(_op.cmp("<", total, ranges[part].extent)):
            ranges[part] = Range(ranges[part].min, total)


def schedule_ops(sch: Schedule, bounds: Optional[Any] = None) -> Stmt:
    """The lowered loop nest of ``sch`` over its inputs and outputs (``bounds`` are recomputed)."""
    ops = list(dict.fromkeys(sch.outputs))  # create_schedule([C1.op, C2.op]) of one multi-output op
    outputs = [op.output(k) for op in ops for k in range(op.num_outputs)]
    return lower_to_primfunc(sch, _placeholders(sch) + outputs, "main").body
