"""The fused kernels of a model graph as auto-scheduler search tasks.

Owns ``extract_tasks(graph, params, target)`` (TVM's
``auto_scheduler.extract_tasks``): the kernels a build of the graph would
compile, after the same passes and fusion (``tecomp.graph.builder.plan``),
one task per distinct kernel (template or not), weighted by its calls per
inference. The kernels are defined as a build without tuning records defines
them (template operators take their fallback configs). Each kernel becomes a registered workload named after a hash of
its signature (``graph_kernel_<hash>``, no arguments) whose function
rebuilds the kernel's te program; the function carries the kernel and its
value types, so it travels to the measure workers by value. It must not
tune (``tune_graph`` runs a ``TaskScheduler`` over the tasks), nor apply
records (``dispatch.ApplyHistoryBest`` does, when a graph is built).
"""

from __future__ import annotations

import hashlib
import sys
from collections import Counter
from typing import Any, Optional, Union

from ..error import TuningError
from ..target import Target
from .task import SearchTask
from .workload import register_workload


def _kernel_workload(kernel: Any, types: dict) -> Any:
    from ..graph.kernel import compute, schedule
    from ..graph.tasks import _Recorder

    def graph_kernel() -> list:
        with _Recorder():  # template operators take their fallback configs, silently
            args, _ = compute(kernel, types)
        return args

    def default_schedule(gpu: bool) -> tuple:
        """The schedule a build without records gives the kernel (its templates' fallback configs)."""
        with _Recorder():
            args, env = compute(kernel, types)
            return schedule(kernel, env, gpu), args

    graph_kernel.default_schedule = default_schedule  # the search's baseline (workload.default_schedule)
    return graph_kernel


def kernel_workload_name(kernel: Any, types: dict) -> str:
    """The workload name of a graph kernel: a hash of its signature (value names abstracted away)."""
    return "graph_kernel_" + hashlib.sha1(kernel.signature(types).encode()).hexdigest()[:16]


def kernel_workload(kernel: Any, types: dict) -> Any:
    """The kernel's workload function (its te program's arguments: inputs, then outputs)."""
    values = set(kernel.inputs) | {v for n in kernel.nodes for v in n.outputs}
    return _kernel_workload(kernel, {v: types[v] for v in values})


def extract_tasks(graph: Any, params: Optional[dict] = None,
                  target: Union[str, Target] = "llvm") -> tuple[list[SearchTask], list[int]]:
    """``(tasks, task_weights)``: one SearchTask per distinct fused kernel of ``graph`` (a
    ``tecomp.graph.Graph``) in the order the model first runs them, and its calls per inference."""
    from ..build_module import resolve_target
    from ..graph.builder import plan

    from ..graph.tasks import _Recorder

    tgt = resolve_target(target)
    with _Recorder(), tgt:
        compiled = plan(graph, params, tgt)
    calls = Counter(kernel.name for kernel in compiled.kernels)
    tasks, weights = [], []
    for kernel in compiled.distinct:
        name = kernel_workload_name(kernel, compiled.graph.types)
        register_workload(name, override=True)(kernel_workload(kernel, compiled.graph.types))
        tasks.append(SearchTask(func=name, args=(), target=tgt))
        weights.append(calls[kernel.name])
    return tasks, weights


def tune_graph(graph: Any, params: Optional[dict], records: str, trials: Optional[int],
               target: Union[str, Target] = "llvm", num_threads: Optional[int] = None,
               total_trials: Optional[int] = None, budget: Optional[float] = None,
               measure_option: Optional[dict] = None, progress: bool = False) -> list[SearchTask]:
    """Auto-schedule every kernel of ``graph``: ``trials`` per kernel on average (or
    ``total_trials`` in all), shared by a ``TaskScheduler`` by weighted time; measurements go to
    the records database ``records``.

    ``budget``: seconds of wall-clock time for the whole model, rounds stop when they have
    passed; with it ``trials`` (and ``total_trials``) may be None: no trial limit.
    ``measure_option``: ``{"builder", "runner"}`` (e.g. ``tuner.dask_measure.measure_option_for_scheduler``),
    closed by the caller; default: this machine's, timing with ``num_threads`` threads."""
    from ..tuner.measure import LocalRunner
    from .records import RecordToFile
    from .task import RUNNER_TIMING, TuningOptions
    from .task_scheduler import TaskScheduler

    if trials is None and total_trials is None and budget is None:
        raise TuningError("tune_graph needs trials, total_trials or a budget: nothing would stop the search")
    tasks, weights = extract_tasks(graph, params, target)
    own_runner = LocalRunner(**RUNNER_TIMING, num_threads=num_threads) if measure_option is None else None
    option = measure_option or {"builder": None, "runner": own_runner}
    log = RecordToFile(records)
    try:
        total = _total_trials(trials, total_trials, len(tasks))
        options = TuningOptions(num_measure_trials=total, measure_callbacks=[log], builder=option["builder"],
                                runner=option["runner"])
        TaskScheduler(tasks, weights).tune(options, budget=budget, progress=progress)
    finally:
        log.close()
        if own_runner is not None:
            own_runner.close()
    return tasks


def _total_trials(trials: Optional[int], total_trials: Optional[int], n_tasks: int) -> int:
    """The trials of all tasks together; without a count (a budget limits the search) as many as an int holds."""
    if total_trials is not None:
        return total_trials
    return sys.maxsize if trials is None else trials * n_tasks
