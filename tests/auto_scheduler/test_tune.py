"""The tuning flow end to end: candidates built and timed in the tuner's worker processes,
records in the SQLite database, the best one applied; and (slow) a search that improves a kernel."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import auto_scheduler
from tecomp.auto_scheduler.records import best_steps
from tecomp.tuner import LocalBuilder, LocalRunner, RecordDB

from as_workloads import as_test_matmul_bias, numpy_reference


def _options(path, trials, per_round, n_parallel=1):
    return auto_scheduler.TuningOptions(
        num_measure_trials=trials, num_measures_per_round=per_round,
        builder=LocalBuilder(n_parallel=n_parallel), runner=LocalRunner(number=2, check_correctness=True),
        measure_callbacks=[auto_scheduler.RecordToFile(path)])


@pytest.mark.slow  # worker processes start for building, timing and features: ~25 s on 2 cores
def test_tune_records_steps_and_apply_best_computes_correctly(tmp_path):
    path = tmp_path / "as.db"
    task = auto_scheduler.SearchTask(func=as_test_matmul_bias, args=(32, 24, 16), target="llvm")
    task.tune(_options(path, 4, 4))
    with RecordDB(path) as db:
        recs = list(db.records(task.workload_key, "llvm"))
    assert len(recs) == 4 and all(r.tuner == "auto_scheduler" for r in recs)
    assert recs[0].config.get("default") is True and all("steps" in r.config for r in recs[1:])  # baseline first
    assert sum(r.error_no == 0 for r in recs) >= 2
    sch, tensors = task.apply_best(path)
    rng = np.random.default_rng(0)
    inputs = [rng.uniform(-1, 1, [int(d) for d in t.shape]).astype("float32") for t in tensors[:-1]]
    out = np.zeros((32, 24), "float32")
    tecomp.build(sch, tensors)(*inputs, out)
    np.testing.assert_allclose(out, numpy_reference(task.workload_name, inputs), rtol=1e-4, atol=1e-4)
    # a second run resumes: nothing measured twice
    task.tune(_options(path, 2, 2))
    with RecordDB(path) as db:
        keys = [str(r.config.get("steps", "default")) for r in db.records(task.workload_key, "llvm")]
    assert len(keys) == 6 and len(set(keys)) == 6


@pytest.mark.slow
def test_search_beats_the_default_schedule_within_a_small_budget(tmp_path):
    path = tmp_path / "as.db"
    task = auto_scheduler.SearchTask(func=as_test_matmul_bias, args=(256, 256, 256), target="llvm")
    task.tune(_options(path, 32, 8, n_parallel=2))
    best = best_steps(path, task.workload_key, "llvm")[0][1]
    sch, tensors = task.default_schedule()
    f = tecomp.build(sch, tensors)
    dev = tecomp.cpu(0)
    args = [tecomp.nd.array(np.zeros([int(d) for d in t.shape], "float32"), dev) for t in tensors]
    default = f.time_evaluator(f.entry_name, dev, number=3, repeat=3)(*args).median
    assert default / best > 3.0, (default, best)
