"""The tunable kernels of a model: tuning tasks found in the kernels a build would compile.

A library operator whose schedule applies tuned configs marks its compute
stage with ``attrs["template"]`` and ``attrs["workload"]`` (the template's
arguments); a kernel built from it dispatches the config of that task. So the
tasks of a model are exactly those marks in the te programs of its kernels,
after the same passes and fusion as ``build`` (a conv becomes the blocked
conv of the layout pass, a constant dense weight is packed). While
extracting, every workload gets its fallback config silently: the tasks do
not depend on the configs.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from ..target import Target
from .builder import check_params, plan
from .ir import Graph
from .kernel import compute
from .ops import untuned

def _marked_workloads(tensors: list[Any]) -> list[tuple[str, tuple]]:
    found, seen, pending = [], set(), list(tensors)
    while pending:
        t = pending.pop()
        if id(t.op) in seen:
            continue
        seen.add(id(t.op))
        attrs = getattr(t.op, "attrs", None) or {}
        if "template" in attrs and "workload" in attrs:
            found.append((attrs["template"], tuple(attrs["workload"])))
        pending.extend(getattr(t.op, "input_tensors", []))
    return found


def extract_tasks(graph: Graph, params: Optional[dict] = None, target: Union[str, Target, None] = "llvm") -> list:
    """The model's tuning tasks, one per distinct workload, in the order the model first runs them."""
    from ..build_module import resolve_target
    from ..tuner.task import create

    tgt = resolve_target(target)
    if params is not None:
        check_params(graph, params)
    graph.validate()
    with untuned(), tgt:
        compiled = plan(graph, None, tgt)
        workloads: dict[tuple, None] = {}
        for kernel in compiled.distinct:
            args, _ = compute(kernel, compiled.graph.types)
            workloads.update(dict.fromkeys(reversed(_marked_workloads(args[len(kernel.inputs):]))))
    tasks = {}
    for name, workload in workloads:
        task = create(name, workload, tgt)
        tasks.setdefault(task.key, task)
    return list(tasks.values())
