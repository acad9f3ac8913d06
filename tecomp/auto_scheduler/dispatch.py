"""``ApplyHistoryBest``: build a model's kernels from auto-scheduler records.

Owns the dispatch context that ``tecomp.graph``'s kernel lowering asks
(``auto_scheduled``): inside ``with ApplyHistoryBest(records):``, a CPU
kernel whose workload (``graph_tasks.kernel_workload_name``) has a valid
auto-scheduler record is built from the fastest record whose steps apply,
unless the kernel's own schedule measured faster at the start of the search,
or the template records of the kernel's tunable operators are faster
(their best mean times summed; an operator without a template record
counts as untuned, so the auto-scheduled record wins). Records whose steps
no longer apply are skipped with a warning. Without a context, or with no
record, the kernel keeps its template schedule. It must not tune.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Optional, Union

from ..context_stack import ThreadLocalStack
from ..tuner.records import RecordDB
from .compute_dag import ComputeDAG
from .graph_tasks import kernel_workload, kernel_workload_name
from .records import default_wins, ranked
from .steps import StepError
from .workload import make_workload_key

logger = logging.getLogger("tecomp.auto_scheduler")
_contexts = ThreadLocalStack()


class ApplyHistoryBest:
    """While active, graph kernels are built from their best auto-scheduler record where it beats
    the template records (``records``: a database path or ``RecordDB``)."""

    def __init__(self, records: Union[str, os.PathLike, RecordDB]):
        self._own = not isinstance(records, RecordDB)
        self.db = RecordDB(records) if self._own else records
        self.applied: list[str] = []   # workload names built from auto-scheduler records

    def __enter__(self) -> "ApplyHistoryBest":
        _contexts.items.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _contexts.items.remove(self)
        if self._own:
            self.db.close()

    def query(self, kernel: Any, types: dict, target: Any) -> Optional[tuple]:
        """``(schedule, args)`` of the kernel from its best applicable record, or None."""
        if target is None or target.kind != "llvm":
            return None
        name = kernel_workload_name(kernel, types)
        found, baseline = ranked(self.db, make_workload_key(name, ()), str(target))
        if not found or default_wins(found, baseline):
            return None
        template = self._template_seconds(kernel, types, str(target))
        if template is not None and template <= found[0][1]:
            return None
        dag = ComputeDAG(kernel_workload(kernel, types)())
        for steps, _ in found:
            try:
                result = dag.apply_steps(steps)
            except StepError as err:
                logger.warning("auto_scheduler %s: skipping a record whose steps no longer apply: %s", name, err)
                continue
            self.applied.append(name)
            return result
        return None

    def _template_seconds(self, kernel: Any, types: dict, target: str) -> Optional[float]:
        """Sum of the best template records of the kernel's tunable operators; None if one has none."""
        from ..graph.kernel import compute, schedule
        from ..graph.tasks import _Recorder

        with _Recorder() as recorder:  # the template schedules ask for their configs
            schedule(kernel, compute(kernel, types)[1])
        if not recorder.tasks:
            return None
        total = 0.0
        for key in recorder.tasks:
            best = self.db.best(key, target)
            if best is None:
                return None
            total += best.mean_cost
        return total


def auto_scheduled(kernel: Any, types: dict, target: Any) -> Optional[tuple]:
    """What the innermost ``ApplyHistoryBest`` builds ``kernel`` from, or None (no context, no record)."""
    stack = _contexts.items
    return stack[-1].query(kernel, types, target) if stack else None
