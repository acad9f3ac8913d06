"""Tuning a whole model: extract its tasks, tune each with a trial budget, log every measurement.

The loop an AutoTVM tutorial writes by hand, for ``tecomp tune`` and Python
users alike. Records go to one SQLite database (resuming skips configs it
already holds); ``tecomp.graph.build`` under ``apply_history_best(db)`` then
uses the best of them. A tuned config can change the workloads of the kernels
after it (a conv's channel block sets the layout of the pooling that follows),
so after each round the tasks are extracted again under the records and the
new ones tuned, until a build under the records asks for nothing untuned. Last, each
task's fastest configs are timed again beside its default (``tuner.confirm``): the
fastest of many noisy measurements is often a lucky one.

The auto-scheduler's ``TaskScheduler`` shares this module's pieces of a budget: the
allocation rule (``TaskSlot``), the clock and its bar (``Deadline``) and the re-timing's
bar (``confirming``).
"""

from __future__ import annotations

import numbers
import os
import time
from typing import Any, Iterable, Optional, Union

from ..error import TuningError
from ..target import Target
from .ir import Graph
from ..tuner.tuner import measure_batch_size
from .tasks import task_calls

TUNERS = {"xgb": "XGBTuner", "ga": "GATuner", "random": "RandomTuner", "grid": "GridSearchTuner"}
MAX_ROUNDS = 4  # re-extractions after tuning; each tuned config can reveal new workloads only once
MIN_REFRESH_S = 10.0  # extracting a model's tasks takes seconds: not after every slice
GUESSED_FLOPS = 20e9  # a task's FLOP/s before its first measurement, for the budget's first picks


def tune_model(graph: Graph, params: Optional[dict], records: Union[str, os.PathLike], trials: int,
               tuner: str = "xgb", target: Union[str, Target, None] = "llvm", measure_option: Optional[dict] = None,
               early_stopping: Optional[int] = None, progress: bool = True,
               budget: Optional[float] = None, num_threads: Optional[int] = None) -> list:
    """Tune every task of the model, including the tasks that the tuned configs give rise to;
    returns the tasks tuned.

    Without ``budget`` each task gets up to ``trials`` trials, one task after another. With
    ``budget`` (seconds of wall-clock time for the whole model) the time goes in slices of one
    batch to the task whose improvement should lower the model's estimated latency most (see
    ``TaskScheduler``), each task still capped at ``trials``. ``num_threads``: threads the
    default runner times candidates with (default: all cores, or ``TECOMP_NUM_THREADS``).
    """
    from .. import tuner as autotvm

    if tuner not in TUNERS:
        raise TuningError(f"unknown tuner {tuner!r}; choose one of {', '.join(TUNERS)}")
    if not isinstance(trials, int) or trials < 1:
        raise TuningError(f"trials must be a positive int, got {trials!r}")
    check_budget(budget)
    if measure_option is None:
        runner = autotvm.LocalRunner(number=5, repeat=1, num_threads=num_threads)
        measure_option = autotvm.measure_option(autotvm.LocalBuilder(), runner)
    db = autotvm.RecordDB(records)
    try:
        scheduler = TaskScheduler(graph, params, target, db, getattr(autotvm.tuner, TUNERS[tuner]), trials)
        if budget is None:
            scheduler.tune_each(measure_option, early_stopping, progress)
        else:
            scheduler.tune_for(budget, measure_option, progress)
        scheduler.confirm(measure_option, progress)
        return [slot.task for slot in scheduler.slots.values()]
    finally:
        db.close()


def check_budget(budget: Optional[float]) -> None:
    """TuningError unless ``budget`` is None or a positive number of seconds."""
    if budget is not None and not (isinstance(budget, numbers.Real) and budget > 0):
        raise TuningError(f"budget must be a positive number of seconds, got {budget!r}")


class Deadline:
    """A wall-clock budget of ``seconds`` from now; its bar (if ``progress``) shows the seconds
    spent and the scheduler's state."""

    def __init__(self, seconds: float, progress: bool, desc: str = "tuning") -> None:
        from tqdm import tqdm

        check_budget(seconds)
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self._bar = tqdm(total=round(seconds), unit="s", desc=desc, disable=not progress)

    def passed(self) -> bool:
        return time.monotonic() >= self.end

    def show(self, tasks: int, model_seconds: float) -> None:
        """Advance the bar to the time spent, beside the task count and the model's estimated time."""
        self._bar.n = min(round(self.seconds), round(self.seconds - (self.end - time.monotonic())))
        self._bar.set_postfix_str(f"{tasks} tasks, model ~{model_seconds * 1e3:.2f} ms")

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "Deadline":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def confirming(slots: Iterable, progress: bool) -> Iterable:
    """``slots``, with a bar of the tasks whose fastest configs have been timed again."""
    from tqdm import tqdm

    return tqdm(list(slots), desc="confirming", unit="task", disable=not progress)


class TaskSlot:
    """One task in the scheduler: its tuner (kept across slices), calls per inference, slices had."""

    def __init__(self, task: Any, calls: int, tuner: Any) -> None:
        self.task, self.calls, self.tuner = task, calls, tuner
        self.slices = 0
        self.done = False

    def seconds(self) -> float:
        """Estimated seconds of one call: the best measured so far, else a guess from the FLOPs."""
        flop = self.task.flop or 1.0
        return flop / (self.tuner.best_flops or GUESSED_FLOPS)

    def expected_gain(self) -> float:
        """The model time this task holds, discounted by the slices it has had: the first slices
        of a task find the most."""
        return self.calls * self.seconds() / (1 + self.slices)


class TaskScheduler:
    """The tasks of a model and their tuners; new tasks are found by extracting again under the
    records (a tuned config can change the workloads after it)."""

    def __init__(self, graph: Graph, params: Optional[dict], target: Any, db: Any, strategy: Any,
                 trials: int) -> None:
        self.graph, self.params, self.target, self.db = graph, params, target, db
        self.strategy, self.trials = strategy, trials
        self.slots: dict[str, TaskSlot] = {}

    def refresh(self) -> list[TaskSlot]:
        """Extract the tasks under the records tuned so far; returns the slots of new tasks."""
        new = []
        for task, calls in task_calls(self.graph, self.params, self.target, records=self.db if self.slots else None):
            slot = self.slots.get(task.key)
            if slot is None:
                slot = self.slots[task.key] = TaskSlot(task, calls, self.strategy(task))
                new.append(slot)
            slot.calls = calls
        return new

    def _trials_left(self, slot: TaskSlot) -> int:
        return min(self.trials, len(slot.task.config_space)) - len(slot.tuner.visited)

    def tune_each(self, measure_option: Any, early_stopping: Optional[int], progress: bool) -> None:
        """Every task to ``trials`` trials in turn, until extraction finds nothing new."""
        from .. import tuner as autotvm

        for _ in range(MAX_ROUNDS):
            new = self.refresh()
            if not new:
                return
            for slot in new:
                budget = min(self.trials, len(slot.task.config_space))
                callbacks: list[Any] = [autotvm.callback.log_to_db(self.db)]
                if progress:
                    callbacks.append(autotvm.callback.progress_bar(
                        budget, prefix=f"[{len(self.slots)}] {slot.task.name}"))
                slot.tuner.tune(budget, measure_option, early_stopping=early_stopping, callbacks=callbacks)

    def tune_for(self, seconds: float, measure_option: Any, progress: bool) -> None:
        """Slices of one batch until ``seconds`` have passed or every task is done."""
        from .. import tuner as autotvm

        batch = measure_batch_size(measure_option)
        self.refresh()
        refreshed, changed = time.monotonic(), False
        with Deadline(seconds, progress) as deadline:
            while not deadline.passed():
                live = [s for s in self.slots.values() if not s.done and self._trials_left(s) > 0]
                if not live:
                    if not self.refresh():
                        break
                    continue
                slot = max(live, key=TaskSlot.expected_gain)
                before, best_before = len(slot.tuner.visited), slot.tuner.best_config
                slot.tuner.tune(min(batch, self._trials_left(slot)), measure_option,
                                callbacks=[autotvm.callback.log_to_db(self.db)])
                slot.slices += 1
                slot.done = len(slot.tuner.visited) == before or not slot.tuner.has_next()
                changed = changed or slot.tuner.best_config is not best_before
                if changed and time.monotonic() - refreshed > max(MIN_REFRESH_S, seconds / 20):
                    self.refresh()  # a new best config may have changed the workloads after it
                    changed, refreshed = False, time.monotonic()
                deadline.show(len(self.slots), self.estimated_seconds())

    def confirm(self, measure_option: Any, progress: bool) -> None:
        """Re-time each task's fastest configs beside its default (``tuner.confirm``), so a build
        under the records uses a tuned config only where it stays faster when timed again."""
        from ..tuner.confirm import confirm_best

        threads = getattr(measure_option.get("runner"), "num_threads", None)
        for slot in confirming(self.slots.values(), progress):
            confirm_best(slot.task, self.db, measure_option, num_threads=threads)

    def estimated_seconds(self) -> float:
        """The model's estimated kernel time per inference from the best configs so far."""
        return sum(slot.calls * slot.seconds() for slot in self.slots.values())
