"""Transform steps: JSON round trips replay to the same loop IR; malformed or stale steps are
errors naming the step; records whose steps no longer apply are skipped with a warning; a compute
the rules cannot handle gets its default schedule and a note."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

import tecomp
from tecomp import auto_scheduler, te
from tecomp.auto_scheduler import SearchTask, StepError
from tecomp.auto_scheduler.annotation import sample, to_steps
from tecomp.auto_scheduler.records import RecordToFile
from tecomp.tuner.measure import MeasureResult

from as_workloads import as_test_matmul_bias, numpy_reference


def _text(task, steps):
    sch, tensors = task.compute_dag.apply_steps(steps)
    return str(tecomp.lower(sch, tensors))


def test_steps_replay_to_the_same_loop_ir_after_a_json_round_trip():
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    rng = random.Random(0)
    for sketch in task.sketches:
        steps = to_steps(task.compute_dag, sample(rng, task.compute_dag, sketch))
        again = json.loads(json.dumps(steps))
        assert _text(task, again) == _text(task, steps)
        fresh = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))  # a new compute, new objects
        assert _text(fresh, again) == _text(task, steps)


@pytest.mark.parametrize("steps,what", [
    ([["SP", 9, 0, [2]]], "no stage 9"),
    ([["SP", 2, 7, [2]]], "no loop 7"),
    ([["SP", 2, 0, [0]]], "split lengths must be positive"),
    ([["XX", 2]], "not a known step"),
    ([["AN", 2, 0, "spin"]], "annotation must be one of"),
    ([["RE", 2, [0, 0, 1]]], "not a permutation"),
    ([["CI", 4]], "does not apply"),                       # D is the output: it cannot be inlined
])
def test_bad_steps_are_step_errors_naming_the_step(steps, what):
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    with pytest.raises(StepError, match=what):
        task.compute_dag.apply_steps(steps)


def _result(seconds):
    return MeasureResult((seconds,), 0, "", 0.1, 1.0)


def test_apply_best_skips_records_whose_steps_no_longer_apply(tmp_path, caplog):
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    good = to_steps(task.compute_dag, sample(random.Random(1), task.compute_dag, task.sketches[1]))
    stale = [["SP", 2, 0, [4]], ["FU", 2, [5, 6]]]
    path = tmp_path / "r.db"
    log = RecordToFile(path)
    log(task, [good, stale], [_result(2e-3), _result(1e-3)])  # the stale one looks faster
    log.close()
    with caplog.at_level(logging.WARNING, logger="tecomp.auto_scheduler"):
        sch, tensors = task.apply_best(path)
    assert "no longer apply" in caplog.text
    assert str(tecomp.lower(sch, tensors)) == _text(task, good)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, [int(d) for d in t.shape]).astype("float32") for t in tensors[:-1]]
    out = np.zeros((16, 12), "float32")
    tecomp.build(sch, tensors)(*inputs, out)
    np.testing.assert_allclose(out, numpy_reference(task.workload_name, inputs), rtol=1e-4, atol=1e-4)


@auto_scheduler.register_workload
def as_test_symbolic():
    n = te.var("n")
    a = te.placeholder((n,), name="a")
    return [a, te.compute((n,), lambda i: a[i] * 2.0, name="b")]


def test_a_compute_the_rules_cannot_handle_gets_the_default_schedule_and_a_note(tmp_path, caplog):
    task = SearchTask(func=as_test_symbolic, args=())
    assert "non-constant extent" in task.note
    with caplog.at_level(logging.WARNING, logger="tecomp.auto_scheduler"):
        task.tune(auto_scheduler.TuningOptions(num_measure_trials=4))
        sch, tensors = task.apply_best(tmp_path / "none.db")
    assert "default schedule" in caplog.text and "non-constant extent" in caplog.text
    f = tecomp.build(sch, tensors)
    a = np.arange(5, dtype="float32")
    b = np.zeros(5, "float32")
    f(a, b)
    np.testing.assert_allclose(b, a * 2)


def test_search_task_rejects_an_unregistered_name():
    with pytest.raises(tecomp.error.TuningError, match="not a registered workload"):
        SearchTask(func="no_such_workload", args=())


def test_a_gpu_target_gets_the_gpu_sketch_rules():
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8), target="cuda")
    assert task.note == "" and all(r is None or r[0] in ("inline", "gpu_tile", "gpu_simple")
                                   for sketch in task.sketches for r in sketch.rules)


def test_apply_best_keeps_the_default_schedule_where_it_measured_faster(tmp_path):
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    steps = to_steps(task.compute_dag, sample(random.Random(2), task.compute_dag, task.sketches[0]))
    default_text = str(tecomp.lower(*task.default_schedule()))
    path = tmp_path / "r.db"
    log = RecordToFile(path)
    log(task, [None, steps], [_result(1e-3), _result(2e-3)])  # the default schedule was faster
    log.close()
    assert str(tecomp.lower(*task.apply_best(path))) == default_text != _text(task, steps)
    log = RecordToFile(path)
    log(task, [steps], [_result(5e-4)])                       # a candidate beats it
    log.close()
    assert str(tecomp.lower(*task.apply_best(path))) == _text(task, steps)


def test_a_search_measures_the_default_schedule_first_and_counts_it(tmp_path):
    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    path = tmp_path / "r.db"
    task.tune(auto_scheduler.TuningOptions(num_measure_trials=3, num_measures_per_round=2,
                                           measure_callbacks=[RecordToFile(path)], verbose=0))
    with tecomp.tuner.RecordDB(path) as db:
        configs = [r.config for r in db.records()]
    assert len(configs) == 3 and configs[0].get("default") is True
    assert all("steps" in c for c in configs[1:])
    task.tune(auto_scheduler.TuningOptions(num_measure_trials=1, measure_callbacks=[RecordToFile(path)], verbose=0))
    with tecomp.tuner.RecordDB(path) as db:
        assert sum(r.config.get("default") is True for r in db.records()) == 1  # measured once per database


class _RoundRunner:
    """Times each contender (by its position in the confirmed batch) at a fixed true cost."""

    def __init__(self, costs):
        self.costs, self.rounds = costs, []

    def run(self, inputs, built):
        self.rounds.append([inp.config.index for inp in inputs])
        return [_result(self.costs[inp.config.index]) for inp in inputs]


class _NoBuild:
    def build(self, inputs):
        return [None] * len(inputs)


def test_a_lucky_candidate_loses_once_the_best_are_timed_again(tmp_path):
    from tecomp.auto_scheduler.confirm import confirm_best
    from tecomp.auto_scheduler.records import ranked

    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    lucky, steady = (to_steps(task.compute_dag, sample(random.Random(seed), task.compute_dag, task.sketches[1]))
                     for seed in (3, 4))
    assert lucky != steady
    log = RecordToFile(tmp_path / "r.db")
    log(task, [None, lucky, steady], [_result(10e-6), _result(1e-6), _result(6e-6)])
    assert ranked(log.db, task.workload_key, "llvm")[0][0][0] == lucky
    runner = _RoundRunner([10e-6, 12e-6, 7e-6])  # default, lucky, steady: their true costs
    timed = confirm_best(task, log, {"builder": _NoBuild(), "runner": runner}, rounds=3)
    assert timed == [None, lucky, steady] and len({tuple(r) for r in runner.rounds}) == 3
    found, baseline = ranked(log.db, task.workload_key, "llvm")
    assert found[0] == (steady, pytest.approx(7e-6)) and baseline == pytest.approx(10e-6)
    assert ranked(log.db, task.workload_key, "llvm", confirmed=False)[0][0][0] == lucky
    log.close()
    assert str(tecomp.lower(*task.apply_best(tmp_path / "r.db"))) == _text(task, steady)


def test_a_search_under_the_task_scheduler_ends_by_confirming(tmp_path):
    from tecomp.auto_scheduler.records import ranked

    task = SearchTask(func=as_test_matmul_bias, args=(16, 12, 8))
    path = tmp_path / "r.db"
    log = RecordToFile(path)
    auto_scheduler.TaskScheduler([task]).tune(auto_scheduler.TuningOptions(
        num_measure_trials=6, num_measures_per_round=3, measure_callbacks=[log], verbose=0))
    tuners = {rec.tuner for rec in log.db.records(task.workload_key)}
    searched, default = ranked(log.db, task.workload_key, "llvm", confirmed=False)
    assert ("confirm" in tuners) == any(cost < default for _, cost in searched)
    log.close()
