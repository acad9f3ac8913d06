"""``TaskScheduler``: share a trial budget, or a wall-clock one, among several search tasks.

Owns the loop over tasks: every task gets one round first, then each round
goes to the task whose improvement should lower the total estimated time
most, using the same allocation rule as the model tuner's budget scheduler
(``tecomp.graph.tuning.TaskSlot.expected_gain``: weight x estimated seconds of
one call, discounted by the rounds the task already had). A task whose
search has nothing left to measure drops out. Rounds stop when the trials are
spent or, given a time budget, when it has passed (a round never stops halfway;
a task not reached by then gets no round). Last, each task's best candidates
are timed again beside its default (``confirm``). It must not search or measure
itself (``TaskTuner`` does).
"""

from __future__ import annotations

import contextlib
import copy
import logging
from typing import Any, Callable, Optional, Sequence

from ..error import TuningError
from ..graph.tuning import Deadline, TaskSlot, check_budget, confirming
from ..tuner.callback import ProgressBar, progress_bar
from ..tuner.measure import MeasureInput
from .confirm import confirm_best
from .records import RecordToFile
from .task import SearchTask, TaskTuner, TuningOptions

logger = logging.getLogger("tecomp.auto_scheduler")


class TaskScheduler:
    """Tune ``tasks`` together; ``task_weights[i]``: calls of task ``i`` per run of the program (default 1)."""

    def __init__(self, tasks: Sequence[SearchTask], task_weights: Optional[Sequence[float]] = None):
        tasks = list(tasks)
        if not tasks or not all(isinstance(t, SearchTask) for t in tasks):
            raise TuningError(f"TaskScheduler needs a non-empty list of SearchTasks, got {tasks!r}")
        weights = list(task_weights) if task_weights is not None else [1.0] * len(tasks)
        if len(weights) != len(tasks) or any(not w > 0 for w in weights):
            raise TuningError(f"TaskScheduler: task_weights must be {len(tasks)} positive numbers, got {weights!r}")
        self.tasks, self.weights = tasks, weights
        self.slots: list[TaskSlot] = []

    def tune(self, tuning_options: TuningOptions, budget: Optional[float] = None, progress: bool = False) -> None:
        """Spend ``num_measure_trials`` (over all tasks) in rounds of ``num_measures_per_round``;
        with ``budget`` (seconds of wall-clock time) no round starts once it has passed. Then
        re-time each task's best candidates. ``progress``: a bar of the trials (of the seconds,
        with a budget), then one of the re-timing."""
        check_budget(budget)
        self.slots = []
        try:
            with contextlib.ExitStack() as meters:
                deadline, options = self._meter(meters, tuning_options, budget, progress)
                self.slots = [TaskSlot(task, weight, TaskTuner(task, options))
                              for task, weight in zip(self.tasks, self.weights)]
                spent = self._rounds(tuning_options, deadline)
            self._confirm(tuning_options, progress)
        finally:
            for slot in self.slots:
                slot.tuner.close()
        logger.info("auto_scheduler: %d trials over %d tasks, estimated total %.3f ms", spent, len(self.slots),
                    self.estimated_seconds() * 1e3)

    @staticmethod
    def _meter(meters: contextlib.ExitStack, options: TuningOptions, budget: Optional[float],
               progress: bool) -> tuple[Optional[Deadline], TuningOptions]:
        """The deadline of ``budget`` (its bar shows the time); else, if ``progress``, the options
        with a bar of the trials among their measure callbacks."""
        if budget is not None:
            return meters.enter_context(Deadline(budget, progress, "auto-scheduling")), options
        if not progress:
            return None, options
        bar = progress_bar(options.num_measure_trials, "auto-scheduling")
        meters.callback(bar.close)
        observed = copy.copy(options)
        observed.measure_callbacks = [*options.measure_callbacks, _feeding(bar)]
        return None, observed

    def _rounds(self, options: TuningOptions, deadline: Optional[Deadline]) -> int:
        """Rounds until the trials are spent, the deadline has passed or every task is done;
        returns the trials measured."""
        trials, per_round = options.num_measure_trials, options.num_measures_per_round
        spent = 0
        while spent < trials and not (deadline and deadline.passed()):
            live = [s for s in self.slots if not s.done]
            if not live:
                break
            # one round each first, so every estimate rests on a measurement
            first = next((s for s in live if s.slices == 0), None)
            spent += self._round(first or max(live, key=TaskSlot.expected_gain), min(per_round, trials - spent))
            if deadline:
                deadline.show(len(self.slots), self.estimated_seconds())
        return spent

    def _confirm(self, tuning_options: TuningOptions, progress: bool) -> None:
        """Time each task's best candidates again beside its default (``confirm.confirm_best``)
        into every records database the options log to."""
        logs = [cb for cb in tuning_options.measure_callbacks if isinstance(cb, RecordToFile)]
        for slot in confirming(self.slots, progress and bool(logs)):
            for log in logs:
                confirm_best(slot.task, log, {"builder": slot.tuner.builder, "runner": slot.tuner.runner})

    def _round(self, slot: TaskSlot, n: int) -> int:
        if n <= 0 or slot.done:
            return 0
        measured = slot.tuner.tune(n)
        slot.slices += 1
        slot.done = measured == 0 or slot.tuner.exhausted
        return measured

    def estimated_seconds(self) -> float:
        """Sum over tasks of weight x the best measured (or guessed) seconds per call."""
        return sum(slot.calls * slot.seconds() for slot in self.slots)


def _feeding(bar: ProgressBar) -> Callable:
    """``bar`` (a template tuner's callback) as an auto-scheduler measure callback."""
    def callback(task: Any, steps: Sequence, results: Sequence) -> None:
        bar(None, [MeasureInput(task, None)] * len(results), results)
    return callback
