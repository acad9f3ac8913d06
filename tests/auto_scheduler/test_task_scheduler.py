"""TaskScheduler: every task gets a round, then rounds go where the weighted time is largest, until
the trials or the time budget are spent."""

from __future__ import annotations

import time

import pytest

from tecomp import auto_scheduler
from tecomp.auto_scheduler import task_scheduler
from tecomp.error import TuningError

from as_workloads import as_test_matmul_bias, as_test_stencil


class _FakeTuner:
    """Measures nothing; each round 'finds' a fixed throughput per task (FLOP/s)."""

    speeds = {}
    round_s = 0.0  # how long a round takes

    def __init__(self, task, options):
        self.task, self.best_flops, self.exhausted, self.rounds = task, 0.0, False, 0
        self.callbacks = options.measure_callbacks

    def tune(self, n):
        from tecomp.tuner.measure import MeasureResult

        time.sleep(self.round_s)
        self.rounds += 1
        self.best_flops = self.speeds[self.task.workload_name]
        for callback in self.callbacks:
            callback(self.task, [None] * n, [MeasureResult((self.task.flop / self.best_flops,), 0, "", 0.0, 0.0)] * n)
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


def _two_tasks(monkeypatch, round_s):
    monkeypatch.setattr(task_scheduler, "TaskTuner", _FakeTuner)
    monkeypatch.setattr(_FakeTuner, "round_s", round_s)
    confirmed = []
    monkeypatch.setattr(task_scheduler.TaskScheduler, "_confirm", lambda self, options, progress: confirmed.append(1))
    tasks = [auto_scheduler.SearchTask(func=as_test_matmul_bias, args=(64, 64, 64)),
             auto_scheduler.SearchTask(func=as_test_stencil, args=(64,))]
    _FakeTuner.speeds = {tasks[0].workload_name: 1e8, tasks[1].workload_name: 1e10}
    return auto_scheduler.TaskScheduler(tasks), confirmed


def test_a_time_budget_stops_the_rounds_and_the_re_timing_still_runs(monkeypatch):
    sched, confirmed = _two_tasks(monkeypatch, round_s=0.1)
    start = time.monotonic()
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=10**9, num_measures_per_round=4), budget=1.0)
    elapsed = time.monotonic() - start
    rounds = [slot.tuner.rounds for slot in sched.slots]
    assert 1.0 <= elapsed < 2.0
    assert rounds[1] == 1 and 5 <= rounds[0] <= 10, rounds  # the slow task gets the rounds after the first ones
    assert confirmed == [1]


def test_a_budget_spent_in_the_first_round_leaves_the_other_tasks_without_one(monkeypatch):
    sched, confirmed = _two_tasks(monkeypatch, round_s=0.3)
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=10**9), budget=0.1)
    assert [slot.tuner.rounds for slot in sched.slots] == [1, 0] and confirmed == [1]


def test_the_trials_still_limit_a_search_with_a_budget(monkeypatch):
    sched, _ = _two_tasks(monkeypatch, round_s=0.0)
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=12, num_measures_per_round=4), budget=60.0)
    assert sum(slot.tuner.rounds for slot in sched.slots) == 3


def test_a_budget_must_be_a_positive_number_of_seconds(monkeypatch):
    sched, _ = _two_tasks(monkeypatch, round_s=0.0)
    for budget in (0, -1.0, "10s"):
        with pytest.raises(TuningError, match="budget must be a positive number of seconds"):
            sched.tune(auto_scheduler.TuningOptions(num_measure_trials=8), budget=budget)


def test_progress_shows_a_bar_of_the_trials_or_of_the_seconds(monkeypatch, capsys):
    sched, _ = _two_tasks(monkeypatch, round_s=0.0)
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=12, num_measures_per_round=4), progress=True)
    err = capsys.readouterr().err
    assert "auto-scheduling" in err and "12/12" in err and "GFLOP/s" in err
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=12, num_measures_per_round=4), budget=5.0,
               progress=True)
    err = capsys.readouterr().err
    assert "auto-scheduling" in err and "/5 " in err and "2 tasks, model ~" in err
    sched.tune(auto_scheduler.TuningOptions(num_measure_trials=12, num_measures_per_round=4))
    assert capsys.readouterr().err == ""
