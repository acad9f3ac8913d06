"""Transform steps: a schedule as data, replayed onto a fresh te schedule.

Owns the step kinds, their JSON form, their validation and ``replay`` (apply
a list of steps to ``te.create_schedule`` of a compute DAG). A step names a
stage by its position in ``Schedule.stages`` and an iterator by its position
in that stage's current leaf loops, so the same steps on the same compute
give the same schedule and the same loop IR, in any process. Records store
steps exactly as these lists (JSON), never pickled objects.

| step | form | te primitive |
|---|---|---|
| split | ``["SP", stage, iter, [l1, ..., lm]]`` | iter -> m+1 loops; inner extents l1..lm (outer to inner), the outermost gets the rest (a tail if they do not divide) |
| reorder | ``["RE", stage, [iter, ...]]`` | the leaves in this order (a permutation of all of them) |
| fuse | ``["FU", stage, [iter, ...]]`` | adjacent leaves -> one loop |
| annotate | ``["AN", stage, iter, "parallel" / "vectorize" / "unroll"]`` | ``parallel`` / ``vectorize`` / ``unroll`` |
| bind | ``["AN", stage, iter, "blockIdx.x" / "threadIdx.x" / ...]`` | ``bind`` to that GPU thread axis |
| compute inline | ``["CI", stage]`` | ``compute_inline`` |
| compute at | ``["CA", stage, target_stage, target_iter]`` | ``compute_at`` |
| compute root | ``["CR", stage]`` | ``compute_root`` |
| cache write | ``["CHW", stage, scope]`` | ``cache_write``: a new stage just before ``stage`` |
| cache read | ``["CHR", stage, scope, [reader, ...]]`` | ``cache_read`` of ``stage``'s tensor (any stage, also an input's) for those readers: a new stage after ``stage`` |
| rfactor | ``["RF", stage, iter, factor_axis]`` | ``rfactor`` over reduction loop ``iter``: a new stage just before ``stage`` |

It must not choose steps (``sketch``/``annotation`` do) nor measure them.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..error import TecompError, TuningError
from ..te.operation import ComputeOp, thread_axis
from ..te.schedule import Schedule, Stage

THREAD_AXES = tuple(f"{kind}.{a}" for kind in ("blockIdx", "threadIdx") for a in "xyz")
ANNOTATIONS = ("parallel", "vectorize", "unroll") + THREAD_AXES
_ARITY = {"SP": 4, "RE": 3, "FU": 3, "AN": 4, "CI": 2, "CA": 4, "CR": 2, "CHW": 3, "CHR": 4, "RF": 4}


class StepError(TuningError):
    """A step that does not apply to the compute it is replayed on (names the step and why)."""


def check_steps(steps: Any) -> list[list]:
    """``steps`` as a list of well-formed step lists (from JSON); StepError says what is wrong."""
    if not isinstance(steps, (list, tuple)):
        raise StepError(f"steps must be a list, got {type(steps).__name__}")
    out = []
    for n, step in enumerate(steps):
        if not isinstance(step, (list, tuple)) or not step or step[0] not in _ARITY \
                or len(step) != _ARITY[step[0]]:
            raise StepError(f"step {n} {step!r} is not a known step (kinds: {', '.join(_ARITY)})")
        step = list(step)
        ints = [step[1]] + ([step[2]] if step[0] in ("SP", "AN", "CA", "RF") else []) \
            + ([step[3]] if step[0] in ("CA", "RF") else [])
        lists = step[3] if step[0] in ("SP", "CHR") else step[2] if step[0] in ("RE", "FU") else []
        if not all(_is_index(v) for v in ints) or not isinstance(lists, (list, tuple)) \
                or not all(_is_index(v) for v in lists):
            raise StepError(f"step {n} {step!r}: stage, iterator and length fields must be "
                            "non-negative integers")
        if step[0] == "SP":
            if not lists or min(lists) < 1:
                raise StepError(f"step {n} {step!r}: split lengths must be positive")
            step[3] = list(lists)
        if step[0] in ("RE", "FU"):
            step[2] = list(lists)
        if step[0] == "CHR":
            if step[2] not in ("shared", "local") or not lists:
                raise StepError(f"step {n} {step!r}: cache_read needs scope shared or local and a reader")
            step[3] = list(lists)
        if step[0] == "AN" and step[3] not in ANNOTATIONS:
            raise StepError(f"step {n} {step!r}: annotation must be one of {', '.join(ANNOTATIONS)}")
        if step[0] == "CHW" and step[2] not in ("local", "global"):
            raise StepError(f"step {n} {step!r}: cache_write scope must be local or global")
        out.append(step)
    return out


def _is_index(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def replay(sch: Schedule, steps: Sequence[Sequence]) -> Schedule:
    """Apply ``steps`` to ``sch`` (a fresh schedule of the compute they were made for), in order."""
    for n, step in enumerate(check_steps(steps)):
        try:
            _apply(sch, step)
        except StepError as err:
            raise StepError(f"step {n} {step!r}: {err}") from None
        except TecompError as err:
            raise StepError(f"step {n} {step!r} does not apply: {err}") from None
    return sch


def _stage(sch: Schedule, index: int, compute: bool = True) -> Stage:
    if index >= len(sch.stages):
        raise StepError(f"no stage {index} (the schedule has {len(sch.stages)})")
    stage = sch.stages[index]
    if compute and not isinstance(stage.op, ComputeOp):
        raise StepError(f"stage {index} ({stage.name}) is not a compute stage")
    return stage


def _leaf(stage: Stage, index: int) -> Any:
    if index >= len(stage.leaf_iter_vars):
        raise StepError(f"stage {stage.name} has {len(stage.leaf_iter_vars)} loops, no loop {index}")
    return stage.leaf_iter_vars[index]


def _apply(sch: Schedule, step: list) -> None:
    kind, stage = step[0], _stage(sch, step[1], compute=step[0] != "CHR")
    if kind == "SP":
        lengths = step[3]
        loop = _leaf(stage, step[2])
        for pos in range(len(lengths)):
            _, loop = stage.split(loop, factor=math.prod(lengths[pos:]))
    elif kind == "RE":
        if sorted(step[2]) != list(range(len(stage.leaf_iter_vars))):
            raise StepError(f"{step[2]} is not a permutation of the {len(stage.leaf_iter_vars)} loops "
                            f"of stage {stage.name}")
        stage.reorder(*[stage.leaf_iter_vars[i] for i in step[2]])
    elif kind == "FU":
        stage.fuse(*[_leaf(stage, i) for i in step[2]])
    elif kind == "AN" and step[3] in THREAD_AXES:
        stage.bind(_leaf(stage, step[2]), thread_axis(step[3]))
    elif kind == "AN":
        getattr(stage, step[3])(_leaf(stage, step[2]))
    elif kind == "CI":
        stage.compute_inline()
    elif kind == "CA":
        target = _stage(sch, step[2])
        stage.compute_at(target, _leaf(target, step[3]))
    elif kind == "CR":
        stage.compute_root()
    elif kind == "CHW":
        sch.cache_write(stage.op.output(0), step[2])
    elif kind == "CHR":
        sch.cache_read(stage.op.output(0), step[2], [_stage(sch, i).op.output(0) for i in step[3]])
    elif kind == "RF":
        sch.rfactor(stage.op.output(0), _leaf(stage, step[2]), step[3])


class Recorder:
    """Applies te primitives to a live schedule and records each as a step (stages and loops
    are given as te objects; the steps name them by position)."""

    def __init__(self, sch: Schedule):
        self.sch = sch
        self.steps: list[list] = []

    def _index(self, stage: Stage) -> int:
        return self.sch.stages.index(stage)

    def split(self, stage: Stage, loop: Any, lengths: Sequence[int]) -> list:
        """``loop`` -> len(lengths)+1 loops (outer to inner); returns them."""
        at = stage.leaf_iter_vars.index(loop)
        self._do(["SP", self._index(stage), at, [int(x) for x in lengths]])
        return stage.leaf_iter_vars[at:at + len(lengths) + 1]

    def reorder(self, stage: Stage, order: Sequence[Any]) -> None:
        self._do(["RE", self._index(stage), [stage.leaf_iter_vars.index(v) for v in order]])

    def fuse(self, stage: Stage, loops: Sequence[Any]) -> Any:
        """Adjacent ``loops`` -> one loop, returned (a single loop is returned as it is, no step)."""
        if len(loops) == 1:
            return loops[0]
        at = stage.leaf_iter_vars.index(loops[0])
        self._do(["FU", self._index(stage), [stage.leaf_iter_vars.index(v) for v in loops]])
        return stage.leaf_iter_vars[at]

    def annotate(self, stage: Stage, loop: Any, kind: str) -> None:
        self._do(["AN", self._index(stage), stage.leaf_iter_vars.index(loop), kind])

    def compute_inline(self, stage: Stage) -> None:
        self._do(["CI", self._index(stage)])

    def compute_at(self, stage: Stage, target: Stage, loop: Any) -> None:
        self._do(["CA", self._index(stage), self._index(target), target.leaf_iter_vars.index(loop)])

    def cache_write(self, stage: Stage, scope: str) -> Stage:
        """The new cache stage (``stage`` becomes the copy out of it)."""
        index = self._index(stage)
        self._do(["CHW", index, scope])
        return self.sch.stages[index]

    def cache_read(self, stage: Stage, scope: str, readers: Sequence[Stage]) -> Stage:
        """The new cache stage, which ``readers`` read instead of ``stage``."""
        index = self._index(stage)
        self._do(["CHR", index, scope, [self._index(r) for r in readers]])
        return self.sch.stages[index + 1]

    def rfactor(self, stage: Stage, loop: Any, factor_axis: int = 0) -> Stage:
        """The new factored stage (``stage`` then reduces over its partial results)."""
        index = self._index(stage)
        self._do(["RF", index, stage.leaf_iter_vars.index(loop), factor_axis])
        return self.sch.stages[index]

    def _do(self, step: list) -> None:
        _apply(self.sch, step)
        self.steps.append(step)
