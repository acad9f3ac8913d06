"""The tunable kernels of a model: tuning tasks found in the kernels a build would compile.

A library operator's compute and schedule ask the dispatch context for the
config of their workload (``tuner.task.dispatched_config``); a build applies
the answer. So the tasks of a model are exactly the questions its kernels
ask while they are defined and scheduled for the target, after the same
passes and fusion as ``build`` (on a CPU a conv becomes the blocked conv of
the layout pass, a constant dense weight is packed; on a GPU the CUDA
schedules ask for their own templates). While extracting, every question
gets its fallback config silently, or with ``records`` the best recorded
config where there is one: a tuned config can change the workloads after it
(a conv's channel block decides the layout of the pooling that follows), so
the tasks of a tuned build are those asked under its records.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Optional, Union

from ..target import Target
from ..tuner.dispatch import DispatchContext
from ..tuner.space import ConfigEntity, FallbackConfigEntity
from .builder import check_params, plan
from .ir import Graph
from .kernel import compute, schedule


class _Recorder(DispatchContext):
    """Answers every question with the best record of ``best`` (an ``ApplyHistoryBest``) if it has
    one, else with the fallback config, silently; keeps the tasks asked about and, per task, the
    kernel calls of one inference that asked for it (``kernel_done`` closes a kernel)."""

    def __init__(self, best: Optional[DispatchContext] = None) -> None:
        self.tasks: dict[str, Any] = {}
        self.calls: Counter = Counter()
        self.best = best
        self._asked_by_kernel: set[str] = set()

    def lookup(self, task: Any) -> ConfigEntity:
        self.tasks.setdefault(task.key, task)
        self._asked_by_kernel.add(task.key)
        found = self.best.lookup(task) if self.best is not None else None
        return found if found is not None else FallbackConfigEntity(task.config_space)

    def kernel_done(self, calls: int) -> None:
        for key in self._asked_by_kernel:
            self.calls[key] += calls
        self._asked_by_kernel.clear()


def task_calls(graph: Graph, params: Optional[dict] = None, target: Union[str, Target, None] = "llvm",
               records: Any = None) -> list[tuple[Any, int]]:
    """Each tuning task of the model (one per distinct workload, in the order the model first
    runs them) with the number of kernel calls of one inference that use it.

    ``records`` (a database path or ``RecordDB``): the tasks as a build under
    ``apply_history_best(records)`` would define its kernels.
    """
    from ..build_module import resolve_target
    from ..tuner.dispatch import apply_history_best

    tgt = resolve_target(target)
    if params is not None:
        check_params(graph, params)
    graph.validate()
    best = apply_history_best(records) if records is not None else None
    with _Recorder(best), tgt:
        compiled = plan(graph, None, tgt)
        calls = Counter(kernel.name for kernel in compiled.kernels)
        with _Recorder(best) as recorder:
            for kernel in compiled.distinct:
                _, env = compute(kernel, compiled.graph.types)
                schedule(kernel, env, gpu=tgt.kind == "cuda")
                recorder.kernel_done(calls[kernel.name])
    return [(task, recorder.calls[key]) for key, task in recorder.tasks.items()]


def extract_tasks(graph: Graph, params: Optional[dict] = None, target: Union[str, Target, None] = "llvm",
                  records: Any = None) -> list:
    """The model's tuning tasks (``task_calls`` without the counts)."""
    return [task for task, _ in task_calls(graph, params, target, records)]
