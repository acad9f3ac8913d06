"""Measuring and featurizing candidates with the tuner's isolated workers.

Owns ``CandidateBatch``: a batch of step lists of one workload presented to
``tecomp.tuner.measure`` as a template task (a name, arguments, a target and
a template function), so ``LocalBuilder``, ``LocalRunner`` (correctness
check included) and ``FeaturePool`` build, time and featurize auto-scheduler
candidates in their worker processes exactly as they do template configs.
The template sent to the workers holds the workload function and the
batch's steps; config ``i`` (one knob, ``candidate``) replays the steps of
candidate ``i``, or builds the default schedule where they are None (the
baseline a search starts from). It keeps the workload function's module name, so the
function goes to the workers by value and no user module is imported there.

It must not choose candidates nor write records.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from ..tuner.measure import FeaturePool, MeasureInput, task_spec
from .compute_dag import ComputeDAG
from .workload import call_workload, default_schedule


class CandidateConfig(NamedTuple):
    """Config ``index`` of a ``CandidateBatch``: its candidate number."""

    index: int

    def to_json_dict(self) -> dict:
        return {"index": self.index, "entities": {"candidate": self.index}}


def _batch_template(workload: Callable, name: str, steps: tuple, gpu: bool) -> Callable:
    @functools.wraps(workload)  # the workload's module: it travels to the workers by value
    def template(*args: Any) -> tuple:
        from ..tuner.task import get_config

        cfg = get_config()
        cfg.define_knob("candidate", list(range(len(steps))))
        chosen = steps[cfg["candidate"].val]
        if chosen is None:
            return default_schedule(workload, name, args, gpu)
        return ComputeDAG(call_workload(workload, name, args)).apply_steps(chosen)
    return template


class CandidateBatch:
    """Step lists of one search task, as the tuner's measure machinery sees a template task."""

    def __init__(self, task: Any, steps: Sequence[list]):
        self.name = task.template_name
        self.args = task.args
        self.target = task.target
        self.key = task.workload_key
        self.flop = task.flop
        self.steps = [None if s is None else list(s) for s in steps]
        self.func = _batch_template(task.func, task.workload_name, tuple(self.steps), task.target.kind == "cuda")

    def inputs(self) -> list[MeasureInput]:
        return [MeasureInput(self, CandidateConfig(i)) for i in range(len(self.steps))]


def batch_features(pool: FeaturePool, task: Any, steps: Sequence[list]) -> list[Optional[np.ndarray]]:
    """Loop-IR features of each step list (None where it fails to replay or lower)."""
    if not steps:
        return []
    batch = CandidateBatch(task, steps)
    answers = pool.features(task_spec(batch), [CandidateConfig(i).to_json_dict() for i in range(len(steps))])
    return [feats for feats, _ in answers]
