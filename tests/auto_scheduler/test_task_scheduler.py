"""TaskScheduler: every task gets a round, then rounds go where the weighted time is largest."""

from __future__ import annotations

import pytest

from tecomp import auto_scheduler
from tecomp.auto_scheduler import task_scheduler
from tecomp.error import TuningError

from as_workloads import as_test_matmul_bias, as_test_stencil


class _FakeTuner:
    """Measures nothing; each round 'finds' a fixed throughput per task (FLOP/s)."""

    speeds = {}

    def __init__(self, task, options):
        self.task, self.best_flops, self.exhausted, self.rounds = task, 0.0, False, 0

    def tune(self, n):
        self.rounds += 1
        self.best_flops = self.speeds[self.task.workload_name]
        return n

    def close(self):
        pass


def test_rounds_go_to_the_task_holding_the_most_weighted_time(monkeypatch):
    monkeypatch.setattr(task_scheduler, "TaskTuner", _FakeTuner)
    slow = auto_scheduler.SearchTask(func=as_test_matmul_bias, args=(64, 64, 64))
    fast = auto_scheduler.SearchTask(func=as_test_stencil, args=(64,))
    _FakeTuner.speeds = {slow.workload_name: 1e8, fast.workload_name: 1e10}
    sched = auto_scheduler.TaskScheduler([slow, fast], task_weights=[1, 1])
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=40, num_measures_per_round=4))
    rounds = [slot.tuner.rounds for slot in sched.slots]
    assert sum(rounds) == 10 and rounds[1] == 1 and rounds[0] == 9
    assert sched.estimated_seconds() == pytest.approx(slow.flop / 1e8 + fast.flop / 1e10)


def test_task_weights_must_match_the_tasks():
    task = auto_scheduler.SearchTask(func=as_test_stencil, args=(8,))
    with pytest.raises(TuningError, match="task_weights"):
        auto_scheduler.TaskScheduler([task], task_weights=[1, 2])
