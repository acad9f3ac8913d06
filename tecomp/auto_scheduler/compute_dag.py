"""``ComputeDAG``: the compute operations of a workload and what the sketch rules need to know.

Owns the analysis of a te program: its stages in schedule order, which are
outputs, who reads whom (and at how many of the reader's leading axes), and
per compute stage whether it reduces, whether some input is reused across
its spatial loops (so tiling pays), whether it calls an expensive math
function (so inlining it would repeat that work), and the FLOP count.
``apply_steps`` replays transform steps onto a fresh schedule. It must not
choose steps nor measure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from ..error import TuningError
from ..te.operation import ComputeOp, PlaceholderOp
from ..te.schedule import Schedule, create_schedule
from ..te.tensor import Tensor
from ..tir.expr import Call, IntImm, ProducerLoad
from ..tir.functor import collect_vars, post_order_visit
from ..tuner.task import compute_flop
from .steps import replay

_EXPENSIVE = {"exp", "log", "tanh", "sigmoid", "erf", "pow", "exp2", "log2", "log10", "sin", "cos", "sqrt",
              "rsqrt"}


@dataclass(frozen=True)
class StageInfo:
    """What the sketch rules know of one compute stage (by its index in the initial schedule)."""

    index: int
    name: str
    is_output: bool
    spatial: tuple[int, ...]     # constant extents of the spatial axes
    reduce: tuple[int, ...]      # constant extents of the reduction axes
    consumers: tuple[int, ...]   # stage indices of the compute stages reading it
    data_reuse: bool             # an input misses a spatial axis: tiling keeps it in cache
    expensive: bool              # calls exp, log, ... (inlining would repeat it)
    # per consumer (same order): every load of this stage in it has as its first indices that
    # many of the consumer's own axes, in order (a row max read as mx[i] by e[i, j]: 1)
    row_reads: tuple[int, ...] = ()


class ComputeDAG:
    """The workload's tensors (inputs and outputs, in argument order) and their compute DAG."""

    def __init__(self, tensors: Sequence[Tensor]):
        tensors = list(tensors)
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise TuningError(f"ComputeDAG needs a list of te tensors, got {tensors!r}")
        self.tensors = tensors
        read = _all_read(tensors)
        self.outputs = [t for t in tensors if isinstance(t.op, ComputeOp) and id(t.op) not in read]
        if not self.outputs:
            raise TuningError("ComputeDAG: none of the tensors is a compute output (give the outputs "
                              "of the workload with its inputs)")
        sch = self.init_schedule()
        self.stage_names = [st.name for st in sch.stages]
        self.stages = _analyse(sch)
        self.flop = compute_flop(sch, "auto_scheduler")

    def init_schedule(self) -> Schedule:
        """A fresh schedule of the outputs (every stage at root, no loop transformed)."""
        return create_schedule([t.op for t in self.outputs])

    def apply_steps(self, steps: Sequence[Sequence]) -> tuple[Schedule, list[Tensor]]:
        """``(schedule, tensors)`` with ``steps`` replayed (StepError if they do not apply)."""
        return replay(self.init_schedule(), steps), list(self.tensors)

    def compute_stages(self) -> list[StageInfo]:
        return [info for info in self.stages if info is not None]

    def __str__(self) -> str:
        lines = []
        for info in self.compute_stages():
            red = f", reduce {list(info.reduce)}" if info.reduce else ""
            flags = [f for f, on in (("output", info.is_output), ("reuse", info.data_reuse),
                                     ("expensive", info.expensive)) if on]
            lines.append(f"{info.index}: {info.name}{list(info.spatial)}{red}  {' '.join(flags)}".rstrip())
        return "\n".join(lines)


def _all_read(tensors: list[Tensor]) -> set[int]:
    """ids of every operation read by another one reachable from ``tensors``."""
    seen, todo, read = set(), [t.op for t in tensors], set()
    while todo:
        op = todo.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        for t in op.input_tensors:
            read.add(id(t.op))
            todo.append(t.op)
    return read


def _extent(iv, stage_name: str) -> int:
    extent = iv.dom.extent if iv.dom is not None else None
    if not isinstance(extent, IntImm):
        raise TuningError(f"auto_scheduler: stage {stage_name} axis {iv.name} has a non-constant extent "
                          f"{extent}; auto-scheduling needs constant shapes")
    return extent.value


def _analyse(sch: Schedule) -> list:
    index_of = {id(st.op): i for i, st in enumerate(sch.stages)}
    consumers: dict[int, list[int]] = {i: [] for i in range(len(sch.stages))}
    for i, st in enumerate(sch.stages):
        for t in st.op.input_tensors:
            if i not in consumers[index_of[id(t.op)]]:
                consumers[index_of[id(t.op)]].append(i)
    leading: dict[tuple[int, int], int] = {}   # (producer, consumer) -> leading axes read at
    infos: list = []
    for i, st in enumerate(sch.stages):
        op = st.op
        if not isinstance(op, ComputeOp):
            if not isinstance(op, PlaceholderOp):
                raise TuningError(f"auto_scheduler: stage {st.name} is a {type(op).__name__}; only compute "
                                  "and placeholder stages can be auto-scheduled")
            infos.append(None)
            continue
        loads, calls = [], set()

        def visit(node, loads=loads, calls=calls) -> None:
            if isinstance(node, ProducerLoad):
                loads.append(node)
            elif isinstance(node, Call):
                calls.add(node.op)
        for body in op.body:
            post_order_visit(body, visit)
        spatial_vars = [iv.var for iv in op.axis]
        for load in loads:
            key = index_of[id(load.producer.op)], i
            leading[key] = min(leading.get(key, len(spatial_vars)), _leading_axes(load, spatial_vars))
        load_vars = [set().union(*(collect_vars(idx) for idx in load.indices)) for load in loads]
        reuse = bool(op.reduce_axis) and any(not all(v in used for v in spatial_vars) for used in load_vars)
        infos.append(StageInfo(i, st.name, st.is_output, tuple(_extent(iv, st.name) for iv in op.axis),
                               tuple(_extent(iv, st.name) for iv in op.reduce_axis),
                               tuple(consumers[i]), reuse, bool(calls & _EXPENSIVE)))
    return [info if info is None else replace(info, row_reads=tuple(leading.get((info.index, c), 0)
                                                                    for c in info.consumers))
            for info in infos]


def _leading_axes(load: ProducerLoad, axes: list) -> int:
    """How many of ``load``'s first indices are ``axes`` in order."""
    count = 0
    for index, axis in zip(load.indices, axes):
        if index is not axis:
            break
        count += 1
    return count


def output_ops(tensors: Sequence[Tensor]) -> list:
    """The operations of ``tensors`` that no other operation reachable from them reads."""
    read = _all_read(list(tensors))
    return [t.op for t in tensors if not isinstance(t.op, PlaceholderOp) and id(t.op) not in read]
