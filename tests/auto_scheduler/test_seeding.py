"""A new auto-scheduler task's cost model is seeded from template (AutoTVM-style) records of other
tasks in the same records database (``SketchPolicy.seed_from_records`` via ``tuner.transfer``)."""

from __future__ import annotations

import logging
import time

import pytest

import tecomp.schedules.dense  # noqa: F401  (registers the "schedules/dense" template)
from tecomp import auto_scheduler
from tecomp import tuner as autotvm
from tecomp.auto_scheduler import search
from tecomp.auto_scheduler.search import SketchPolicy
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.records import Record, RecordDB

from as_workloads import as_test_matmul_bias


def _policy(shape=(48, 40, 24)):
    task = auto_scheduler.SearchTask(func=as_test_matmul_bias, args=shape, target="llvm")
    task.feature_options = {"n_parallel": 1, "timeout": 10}
    return SketchPolicy(task, seed=0)


def _record(task_key, config, cost, timestamp):
    return Record(task_key=task_key, target="llvm", config=config, costs=(cost,), error_no=0, error_msg="",
                  all_cost=0.1, timestamp=timestamp, version="0", flop=1.0)


def test_template_records_seed_a_new_search_before_its_first_batch(tmp_path, caplog):
    db_path = tmp_path / "tune.db"
    dense = autotvm.task.create("schedules/dense", (32, 32, 32), "llvm")
    builder, runner = autotvm.LocalBuilder(n_parallel=1), autotvm.LocalRunner(number=2, timeout=20)
    try:
        RandomTuner(dense, seed=0).tune(6, autotvm.measure_option(builder, runner), callbacks=[log_to_db(db_path)])
    finally:
        builder.close()
        runner.close()
    with RecordDB(db_path) as db:
        n_valid = sum(rec.error_no == 0 for rec in db.records())
    assert n_valid > 0

    policy = _policy()
    try:
        with caplog.at_level(logging.INFO, logger="tecomp.auto_scheduler"), RecordDB(db_path) as db:
            assert policy.seed_from_records(db) == 0  # nothing of this task's own
        assert (policy.seeded_template_records, policy.seeded_template_tasks) == (n_valid, 1)
        assert len(policy._foreign) == n_valid and policy.seed_skipped == 0
        assert f"0 records of other auto-scheduler tasks and {n_valid} template records of 1 task(s)" in caplog.text
        # trained before anything of this task was measured, so the first batch is ranked by the model
        assert policy.model.trained and not policy.throughputs
        batch = policy.next_batch(4)
        assert len(batch) == 4 and policy._features
    finally:
        policy.close()


def test_unknown_stale_and_excess_template_records_are_skipped(tmp_path, monkeypatch):
    db_path = tmp_path / "tune.db"
    big = autotvm.task.create("schedules/dense", (64, 64, 64), "llvm")
    small = autotvm.task.create("schedules/dense", (4, 8, 4), "llvm")
    eight_row_tile = next(big.config_space.get(i).to_json_dict() for i in range(len(big.config_space))
                          if big.config_space.get(i).to_json_dict()["entities"]["tile_m"] == 8)
    now = time.time()
    with RecordDB(db_path) as db:
        db.add_records([
            _record('["no_such_template",[1]]', eight_row_tile, 1e-4, now),
            _record("not json", eight_row_tile, 1e-4, now),
            _record(small.key, eight_row_tile, 1e-4, now),  # an 8-row tile does not fit 4 rows: stale
            _record('["auto_scheduler:no_such_workload",[1]]', {"index": 1, "entities": {}, "steps": []}, 1e-4, now),
            _record(big.key, big.config_space.get(0).to_json_dict(), 3e-4, now - 30),  # the oldest: over budget
            _record(big.key, big.config_space.get(1).to_json_dict(), 2e-4, now - 20),
            _record(big.key, big.config_space.get(2).to_json_dict(), 1e-4, now - 10),
        ])
    monkeypatch.setattr(search, "MAX_FOREIGN_RECORDS", 3)
    policy = _policy()
    try:
        with RecordDB(db_path) as db:
            policy.seed_from_records(db)
        # the budget takes the three newest records of known templates: the stale one (skipped when it
        # fails to lower) and two of ``big``; unknown keys, the unregistered workload and the oldest are skipped
        assert (policy.seeded_template_records, policy.seeded_template_tasks) == (2, 1)
        assert policy.seed_skipped == 5
        assert sorted(y for _, y in policy._foreign) == [0.5, 1.0]  # normalized by big's best
        assert policy.model.trained
    finally:
        policy.close()
