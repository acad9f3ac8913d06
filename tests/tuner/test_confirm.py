"""Re-timing the fastest configs beside the default (tuner.confirm) and how RecordDB.best uses it."""

import time

import pytest

import templates  # noqa: F401  (registers tests/matmul_tile_vec)
from tecomp import tuner as autotvm
from tecomp.error import TuningError
from tecomp.tuner.confirm import confirm_best
from tecomp.tuner.measure import MeasureInput, MeasureResult
from tecomp.tuner.records import RecordDB
from tecomp.tuner.space import FallbackConfigEntity


class _Builder:
    def build(self, inputs):
        return [object() for _ in inputs]


class _Runner:
    """Times each config at its true cost (seconds by config index); keeps the order it saw."""

    def __init__(self, true_cost):
        self.true_cost, self.rounds = true_cost, []

    def run(self, inputs, built):
        assert len(built) == len(inputs)
        self.rounds.append([inp.config.index for inp in inputs])
        return [MeasureResult((self.true_cost[inp.config.index],), 0, "", 0.1, time.time()) for inp in inputs]


def _task():
    return autotvm.task.create("tests/matmul_tile_vec", (24, 20, 12), "llvm")


def _others(task, count):
    fallback = FallbackConfigEntity(task.config_space).index
    return [task.config_space.get(i) for i in range(len(task.config_space)) if i != fallback][:count]


def _measured(db, task, config, seconds):
    db.add(MeasureInput(task, config), MeasureResult((seconds,), 0, "", 0.1, time.time()), "XGBTuner")


def test_a_lucky_record_loses_to_the_config_that_stays_fast(tmp_path):
    task = _task()
    fallback = FallbackConfigEntity(task.config_space)
    lucky, steady, slow = _others(task, 3)
    with RecordDB(tmp_path / "r.db") as db:
        _measured(db, task, fallback, 10e-6)
        _measured(db, task, lucky, 1e-6)   # a lucky measurement: really 12 us
        _measured(db, task, steady, 5e-6)  # really 8 us
        _measured(db, task, slow, 20e-6)
        assert db.best(task.key, "llvm").config_index == lucky.index
        runner = _Runner({fallback.index: 10e-6, lucky.index: 12e-6, steady.index: 8e-6})
        timed = confirm_best(task, db, {"builder": _Builder(), "runner": runner}, candidates=2, rounds=3)
        assert [c.index for c in timed] == [fallback.index, lucky.index, steady.index]
        assert len({tuple(r) for r in runner.rounds}) == 3  # each round in another order
        best = db.best(task.key, "llvm")
        assert best.config_index == steady.index and best.tuner == "confirm"
        assert best.mean_cost == pytest.approx(8e-6)


def _default_and_other(db, default_seconds, other_seconds):
    """A task with its default and one other config measured: (task, default, other)."""
    task = _task()
    fallback = FallbackConfigEntity(task.config_space)
    (other,) = _others(task, 1)
    _measured(db, task, fallback, default_seconds)
    _measured(db, task, other, other_seconds)
    return task, fallback, other


def test_the_default_wins_where_no_candidate_stays_faster(tmp_path):
    with RecordDB(tmp_path / "r.db") as db:
        task, fallback, lucky = _default_and_other(db, 10e-6, 2e-6)
        runner = _Runner({fallback.index: 10e-6, lucky.index: 11e-6})
        confirm_best(task, db, {"builder": _Builder(), "runner": runner}, rounds=2)
        assert db.best(task.key, "llvm").config_index == fallback.index


def test_nothing_to_confirm_when_the_default_is_fastest(tmp_path):
    with RecordDB(tmp_path / "r.db") as db:
        task, _, _ = _default_and_other(db, 3e-6, 9e-6)
        runner = _Runner({})
        assert confirm_best(task, db, {"builder": _Builder(), "runner": runner}) == []
        assert runner.rounds == [] and len(list(db.records(task.key))) == 2


@pytest.mark.parametrize("candidates, rounds", [(0, 3), (2, 0), (2.5, 3)])
def test_bad_counts_are_refused(tmp_path, candidates, rounds):
    with RecordDB(tmp_path / "r.db") as db, pytest.raises(TuningError, match="positive ints"):
        confirm_best(_task(), db, {"builder": _Builder(), "runner": _Runner({})}, candidates, rounds)
