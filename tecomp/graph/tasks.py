"""The tunable kernels of a model: tuning tasks found in the kernels a build would compile.

A library operator's compute and schedule ask the dispatch context for the
config of their workload (``tuner.task.dispatched_config``); a build applies
the answer. So the tasks of a model are exactly the questions its kernels
ask while they are defined and scheduled for the target, after the same
passes and fusion as ``build`` (on a CPU a conv becomes the blocked conv of
the layout pass, a constant dense weight is packed; on a GPU the CUDA
schedules ask for their own templates). While extracting, every question
gets its fallback config silently: the tasks do not depend on the configs.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from ..target import Target
from ..tuner.dispatch import DispatchContext
from ..tuner.space import FallbackConfigEntity
from .builder import check_params, plan
from .ir import Graph
from .kernel import compute, schedule
from .ops import untuned


class _Recorder(DispatchContext):
    """Answers every question with the fallback config, silently, and keeps the tasks asked about."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}

    def lookup(self, task: Any) -> FallbackConfigEntity:
        self.tasks.setdefault(task.key, task)
        return FallbackConfigEntity(task.config_space)


def extract_tasks(graph: Graph, params: Optional[dict] = None, target: Union[str, Target, None] = "llvm") -> list:
    """The model's tuning tasks, one per distinct workload, in the order the model first runs them."""
    from ..build_module import resolve_target

    tgt = resolve_target(target)
    if params is not None:
        check_params(graph, params)
    graph.validate()
    with untuned(), tgt:
        compiled = plan(graph, None, tgt)
        with _Recorder() as recorder:
            for kernel in compiled.distinct:
                _, env = compute(kernel, compiled.graph.types)
                schedule(kernel, env, gpu=tgt.kind == "cuda")
    return list(recorder.tasks.values())
