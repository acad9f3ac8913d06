"""Search strategies and the tuning loop, on a synthetic space with a known optimum.

The synthetic task is a real ConfigSpace of three knobs (10 x 10 x 20 =
2000 points) whose "measurement" is an analytic GFLOP/s of the knob values:
a broad peak of 101 at (a=7, b=2, c=13) and a lower one of 71 at (2, 8, 3).
A fake builder/runner pair stands in for ``measure_option`` (measure_batch
only calls ``builder.build`` and ``runner.run``), so no code is built. The
XGB tuner sees the knob values through its ``feature_fn`` hook. One test at
the end tunes a real matmul template end to end.
"""

import logging
import math
import time

import numpy as np
import pytest

from tecomp import tuner as autotvm
import templates  # noqa: F401  (registers the shared templates)
from tecomp.tuner import tuner as tuner_module
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.cost_model import XGBoostCostModel
from tecomp.tuner.ga_tuner import GATuner
from tecomp.tuner.grid_tuner import GridSearchTuner
from tecomp.tuner.measure import MeasureErrorNo, MeasureResult
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.sa_optimizer import SimulatedAnnealingOptimizer
from tecomp.tuner.space import ConfigSpace
from tecomp.tuner.tuner import digits_to_index, index_to_digits
from tecomp.tuner.xgb_tuner import XGBTuner, diverse_pick

BEST = 101.0
OPTIMUM = {"a": 7, "b": 2, "c": 13}


def synthetic_gflops(a, b, c):
    return (1 + 100 * math.exp(-((a - 7) ** 2 / 8 + (b - 2) ** 2 / 8 + (c - 13) ** 2 / 30))
            + 70 * math.exp(-((a - 2) ** 2 + (b - 8) ** 2 + (c - 3) ** 2) / 6))


class SyntheticTask:
    name = "synthetic"
    key = '["synthetic",[]]'
    target = "llvm"
    flop = 1e9

    def __init__(self, gflops=synthetic_gflops, fail=lambda values: None):
        self.config_space = ConfigSpace()
        for knob, size in (("a", 10), ("b", 10), ("c", 20)):
            self.config_space.define_knob(knob, list(range(size)))
        self.gflops, self.fail = gflops, fail

    def values(self, config):
        return {n: config[n].val for n in "abc"}


def knob_values(config):
    return np.array([config[n].val for n in "abc"], dtype=np.float32)


class FakeBuilder:
    n_parallel = 8

    def build(self, inputs):
        return [None] * len(inputs)


class FakeRunner:
    def __init__(self):
        self.measured = []

    def run(self, inputs, build_results):
        results = []
        for inp in inputs:
            self.measured.append(inp.config.index)
            values = inp.task.values(inp.config)
            failure = inp.task.fail(values)
            if failure:
                results.append(MeasureResult((), failure[0], failure[1], 0.0, time.time()))
            else:
                cost = inp.task.flop / (inp.task.gflops(**values) * 1e9)
                results.append(MeasureResult((cost,), MeasureErrorNo.NO_ERROR, "", cost, time.time()))
        return results


def fake_option():
    return {"builder": FakeBuilder(), "runner": FakeRunner()}


def trials_to_reach(tuner, n_trial, fraction):
    """Tune; return the trial count at which ``fraction`` of the optimum was first reached (or None)."""
    history = []
    tuner.tune(n_trial, fake_option(), callbacks=[lambda t, i, r: history.extend([t.best_flops] * len(r))])
    hits = [n for n, flops in enumerate(history, 1) if flops >= fraction * BEST * 1e9]
    return hits[0] if hits else None


# ------------------------------------------------------------------ every strategy finds the optimum

@pytest.mark.parametrize("make, budget", [
    (lambda task, seed: RandomTuner(task, seed=seed), 2000),
    (lambda task, seed: GridSearchTuner(task, seed=seed), 2000),
    (lambda task, seed: GATuner(task, seed=seed), 600),
    (lambda task, seed: XGBTuner(task, feature_fn=knob_values, seed=seed), 300),
    (lambda task, seed: XGBTuner(task, feature_type="knob", loss_type="reg", diversity_filter_ratio=2,
                                 seed=seed), 300),
], ids=["random", "grid", "ga", "xgb-rank", "xgb-reg-diverse"])
@pytest.mark.parametrize("seed", [0, 1])
def test_every_tuner_finds_the_optimum(make, budget, seed):
    tuner = make(SyntheticTask(), seed)
    assert trials_to_reach(tuner, budget, 0.99) is not None
    assert tuner.best_config.index == tuner.space.index_of(OPTIMUM)
    assert tuner.best_flops == pytest.approx(BEST * 1e9)
    inp, res = tuner.best_measure_pair
    assert inp.config is tuner.best_config and res.error_no == 0


def test_xgb_needs_fewer_trials_than_random():
    seeds = range(3)
    xgb = [trials_to_reach(XGBTuner(SyntheticTask(), feature_fn=knob_values, seed=s), 400, 0.95)
           for s in seeds]
    rnd = [trials_to_reach(RandomTuner(SyntheticTask(), seed=s), 2000, 0.95) for s in seeds]
    assert None not in xgb
    assert np.mean(xgb) < np.mean(rnd) / 2, (xgb, rnd)


def test_no_config_is_measured_twice_and_exhaustion_is_logged(caplog):
    for make in (RandomTuner, GridSearchTuner, GATuner):
        option = fake_option()
        with caplog.at_level(logging.INFO, logger="tecomp.tuner"):
            make(SyntheticTask(), seed=0).tune(2100, option)
        measured = option["runner"].measured
        assert sorted(measured) == list(range(2000)), make.__name__
        assert "exhausted after 2000 of 2100 trials" in caplog.text


def test_grid_goes_in_index_order_and_random_is_seeded():
    option = fake_option()
    GridSearchTuner(SyntheticTask()).tune(20, option)
    assert option["runner"].measured == list(range(20))
    runs = []
    for seed in (3, 3, 4):
        option = fake_option()
        RandomTuner(SyntheticTask(), seed=seed).tune(30, option)
        runs.append(option["runner"].measured)
    assert runs[0] == runs[1] != runs[2]


# ------------------------------------------------------------------ the loop: resume, early stop, errors

class RecordingTuner(RandomTuner):
    def __init__(self, task, seed=None):
        super().__init__(task, seed)
        self.updates = []

    def update(self, inputs, results):
        self.updates.append([inp.config.index for inp in inputs])


def test_resume_skips_measured_configs_and_feeds_them_to_update(tmp_path):
    db_path = tmp_path / "tune.db"
    first = fake_option()
    RandomTuner(SyntheticTask(), seed=0).tune(40, first, callbacks=[log_to_db(db_path)])
    second = fake_option()
    tuner = RecordingTuner(SyntheticTask(), seed=0)  # the same seed would propose the same configs
    logger_db = log_to_db(db_path)
    tuner.tune(40, second, callbacks=[logger_db])
    assert not set(first["runner"].measured) & set(second["runner"].measured)
    assert len(second["runner"].measured) == 40
    assert sorted(tuner.updates[0]) == sorted(first["runner"].measured)  # preloaded, before any batch
    assert len(logger_db.db.measured_indices(SyntheticTask.key, "llvm")) == 80


def test_resume_trains_the_model_on_stored_records(tmp_path):
    db_path = tmp_path / "tune.db"
    RandomTuner(SyntheticTask(), seed=0).tune(64, fake_option(), callbacks=[log_to_db(db_path)])
    tuner = XGBTuner(SyntheticTask(), plan_size=64, feature_fn=knob_values, seed=0)
    assert trials_to_reach_with_db(tuner, db_path) <= 64


def trials_to_reach_with_db(tuner, db_path):
    history = []
    tuner.tune(64, fake_option(), callbacks=[log_to_db(db_path),
                                             lambda t, i, r: history.extend([t.best_flops] * len(r))])
    assert tuner.model.trained
    return next(n for n, flops in enumerate(history, 1) if flops >= 0.95 * BEST * 1e9)


def test_early_stopping():
    flat = SyntheticTask(gflops=lambda a, b, c: 5.0)
    option = fake_option()
    tuner = RandomTuner(flat, seed=0)
    tuner.tune(500, option, early_stopping=20)
    # the best is set by trial 1; the check runs after each batch of 8
    assert len(option["runner"].measured) == 24


def test_error_summary_is_logged_once_per_run(caplog):
    def fail(values):
        if values["c"] == 19:
            return MeasureErrorNo.WRONG_ANSWER, "output C differs from the reference\nmax error 3.0"
        if values["c"] == 18:
            return MeasureErrorNo.RUN_TIMEOUT, "ran longer than 10 s"
        return None

    option = fake_option()
    tuner = RandomTuner(SyntheticTask(fail=fail), seed=0)
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"):
        tuner.tune(400, option)
    failed = sum(1 for i in option["runner"].measured if index_to_digits(i, (10, 10, 20))[2] >= 18)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert f"{failed} of 400 trials failed" in text
    assert "WRONG_ANSWER" in text and "output C differs from the reference" in text
    assert "max error" not in text  # one line per example
    assert "RUN_TIMEOUT" in text and "ran longer than 10 s" in text


def test_a_failing_measurement_machinery_is_not_swallowed():
    class Broken(FakeRunner):
        def run(self, inputs, build_results):
            raise RuntimeError("runner crashed")

    with pytest.raises(RuntimeError, match="runner crashed"):
        RandomTuner(SyntheticTask()).tune(10, {"builder": FakeBuilder(), "runner": Broken()})


# ------------------------------------------------------------------ pieces of the model-based tuner

def test_simulated_annealing_finds_the_top_of_a_large_space():
    sizes = (16, 16, 16, 16, 4)   # 262144 points: far more than the walk scores
    target = np.array([3, 12, 7, 9, 1])

    def score(indices):
        return -np.abs(index_to_digits(indices, sizes) - target).sum(axis=-1).astype(float)

    top_index = int(digits_to_index(target, sizes))
    sa = SimulatedAnnealingOptimizer(sizes, n_chains=64, n_iter=200, rng=np.random.default_rng(0))
    found = sa.find_maximums(score, 10, exclude=set())
    assert found[0] == top_index and len(set(found)) == 10
    again = sa.find_maximums(score, 10, exclude={top_index})
    assert top_index not in again
    assert sorted(score(np.array(again)), reverse=True) == list(score(np.array(again)))


def test_diverse_pick_prefers_new_knob_values():
    sizes = (4, 4)
    near_copies = [digits_to_index(np.array([0, c]), sizes) for c in range(4)]
    different = [digits_to_index(np.array([a, 3 - a]), sizes) for a in range(1, 4)]
    candidates = [int(i) for i in near_copies + different]   # best first
    assert diverse_pick(candidates, sizes, 4, knob_weight=0.0) == candidates[:4]  # pure rank: all a=0
    picks = diverse_pick(candidates, sizes, 4)
    assert picks[0] == candidates[0]
    assert len(set(int(index_to_digits(p, sizes)[0]) for p in picks)) >= 2
    assert len(set(picks)) == 4


def test_transfer_learning_plans_the_first_batch():
    task = SyntheticTask()
    rng = np.random.default_rng(0)
    history = []
    for index in rng.choice(len(task.config_space), 300, replace=False):
        values = task.values(task.config_space.get(int(index)))
        history.append((np.array(list(values.values()), np.float32), synthetic_gflops(**values)))
    tuner = XGBTuner(task, feature_fn=knob_values, seed=0)
    assert tuner.load_history(history) == 300
    assert trials_to_reach(tuner, 16, 0.9) is not None


def test_cost_model_ranks_and_regresses():
    rng = np.random.default_rng(0)
    xs = rng.random((300, 6))
    ys = 3 * xs[:, 0] + xs[:, 1] ** 2
    test = rng.random((500, 6))
    want = 3 * test[:, 0] + test[:, 1] ** 2
    for loss in ("rank", "reg"):
        model = XGBoostCostModel(None, loss)
        model.fit(xs, ys)
        assert np.corrcoef(model.predict(test), want)[0, 1] > 0.9, loss


def test_strategies_are_reachable_as_autotvm_tuner_names():
    assert autotvm.tuner.XGBTuner is XGBTuner
    assert tuner_module.GATuner is GATuner
    with pytest.raises(AttributeError):
        tuner_module.NoSuchTuner


# ------------------------------------------------------------------ a real template, end to end

def test_xgb_tunes_a_real_matmul(tmp_path):
    task = autotvm.task.create("tests/matmul_tile_vec", (32, 32, 32), "llvm")
    builder = autotvm.measure.LocalBuilder(n_parallel=2)
    runner = autotvm.measure.LocalRunner(number=2, timeout=20)
    option = autotvm.measure.measure_option(builder, runner)
    tuner = XGBTuner(task, plan_size=8, seed=0)
    try:
        tuner.tune(16, option, callbacks=[log_to_db(tmp_path / "tune.db")])
    finally:
        builder.close()
        runner.close()
    assert tuner.best_flops > 0
    assert tuner.model.trained
    assert all(rec.error_no == 0 for rec in autotvm.records.RecordDB(tmp_path / "tune.db").records())
    assert len(tuner._features) > 16  # the annealer scored unmeasured configs from their loop IR
