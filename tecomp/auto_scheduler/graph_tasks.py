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
tune, nor change how a graph builds (applying these records in
``tecomp compile`` is not built yet).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any, Optional, Union

from ..target import Target
from .task import SearchTask
from .workload import register_workload


def _kernel_workload(kernel: Any, types: dict) -> Any:
    from ..graph.kernel import compute
    from ..graph.tasks import _Recorder

    def graph_kernel() -> list:
        with _Recorder():  # template operators take their fallback configs, silently
            args, _ = compute(kernel, types)
        return args
    return graph_kernel


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
        types = compiled.graph.types
        signature = kernel.signature(types)
        name = "graph_kernel_" + hashlib.sha1(signature.encode()).hexdigest()[:16]
        values = set(kernel.inputs) | {v for n in kernel.nodes for v in n.outputs}
        register_workload(name, override=True)(_kernel_workload(kernel, {v: types[v] for v in values}))
        tasks.append(SearchTask(func=name, args=(), target=tgt))
        weights.append(calls[kernel.name])
    return tasks, weights
