"""``TaskScheduler``: share a trial budget among several search tasks.

Owns the loop over tasks: every task gets one round first, then each round
goes to the task whose improvement should lower the total estimated time
most, using the same allocation rule as the model tuner's budget scheduler
(``tecomp.graph.tuning.TaskSlot.expected_gain``: weight x estimated seconds of
one call, discounted by the rounds the task already had). A task whose
search has nothing left to measure drops out. Last, each task's best candidates
are timed again beside its default (``confirm``). It must not search or measure
itself (``TaskTuner`` does).
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from ..error import TuningError
from ..graph.tuning import TaskSlot
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

    def tune(self, tuning_options: TuningOptions) -> None:
        """Spend ``num_measure_trials`` (over all tasks) in rounds of ``num_measures_per_round``."""
        self.slots = [TaskSlot(task, weight, TaskTuner(task, tuning_options))
                      for task, weight in zip(self.tasks, self.weights)]
        budget = tuning_options.num_measure_trials
        per_round = tuning_options.num_measures_per_round
        spent = 0
        try:
            for slot in self.slots:  # one round each, so every estimate rests on a measurement
                spent += self._round(slot, min(per_round, budget - spent))
            while spent < budget:
                live = [s for s in self.slots if not s.done]
                if not live:
                    break
                spent += self._round(max(live, key=TaskSlot.expected_gain), min(per_round, budget - spent))
            self._confirm(tuning_options)
        finally:
            for slot in self.slots:
                slot.tuner.close()
        logger.info("auto_scheduler: %d trials over %d tasks, estimated total %.3f ms", spent, len(self.slots),
                    self.estimated_seconds() * 1e3)

    def _confirm(self, tuning_options: TuningOptions) -> None:
        """Time each task's best candidates again beside its default (``confirm.confirm_best``)
        into every records database the options log to."""
        logs = [cb for cb in tuning_options.measure_callbacks if isinstance(cb, RecordToFile)]
        for slot in self.slots:
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
