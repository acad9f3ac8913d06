"""XGBTuner transfer learning from other tasks' records in the same records database."""

import logging
import time

import pytest

from tecomp import tuner as autotvm
import templates  # noqa: F401  (registers the shared templates)
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.records import Record, RecordDB
from tecomp.tuner.space import FallbackConfigEntity
from tecomp.tuner.xgb_tuner import XGBTuner


@pytest.fixture
def option():
    builder = autotvm.measure.LocalBuilder(n_parallel=4)
    runner = autotvm.measure.LocalRunner(number=2, timeout=20)
    yield autotvm.measure.measure_option(builder, runner)
    builder.close()
    runner.close()


def _first_batch_probe(seen):
    def probe(tuner, inputs, results):
        if not seen:  # the model's state when the first batch was done (plan_size > one batch)
            seen.update(trained=tuner.model.trained, own_trainings=tuner._trained_at,
                        indices=[inp.config.index for inp in inputs])
    return probe


def test_second_task_starts_from_the_first_tasks_records(tmp_path, option, caplog):
    db_path = tmp_path / "tune.db"
    task_a = autotvm.task.create("tests/matmul_tile_vec", (32, 32, 32), "llvm")
    RandomTuner(task_a, seed=0).tune(24, option, callbacks=[log_to_db(db_path)])
    n_valid = sum(rec.error_no == 0 for rec in RecordDB(db_path).records())
    assert n_valid > 0

    task_b = autotvm.task.create("tests/matmul_tile_vec", (32, 48, 32), "llvm")
    tuner = XGBTuner(task_b, plan_size=64, seed=0, eps_greedy=0.0)
    proposed = []
    propose = tuner._propose
    tuner._propose = lambda: proposed.append(propose()) or list(proposed[-1])
    seen = {}
    with caplog.at_level(logging.INFO, logger="tecomp.tuner.xgb_tuner"):
        tuner.tune(4, option, callbacks=[log_to_db(db_path), _first_batch_probe(seen)])

    assert tuner.transferred == n_valid and tuner.transferred_tasks == 1
    assert f"transfer learning used {n_valid} records from 1 other task(s)" in caplog.text
    # the model was trained on task A before task B's first batch, which came from its plan
    # after the fallback config (measured first, the baseline of an untuned build)
    assert seen["trained"] and seen["own_trainings"] == 0
    fallback = FallbackConfigEntity(task_b.config_space).index
    planned = [i for i in proposed[0] if i != fallback]
    assert len(proposed) == 1 and seen["indices"] == [fallback] + planned[:len(seen["indices"]) - 1]
    assert tuner.best_flops > 0


def test_unknown_templates_and_stale_configs_are_skipped(tmp_path, option, caplog):
    db_path = tmp_path / "tune.db"
    task = autotvm.task.create("tests/matmul_tile_vec", (16, 16, 16), "llvm")
    good = task.config_space.get(len(task.config_space) - 1).to_json_dict()  # 16-wide tiles
    now = time.time()

    def record(task_key, config):
        return Record(task_key=task_key, target=str(task.target), config=config, costs=(1e-4,),
                      error_no=0, error_msg="", all_cost=0.1, timestamp=now, version="0", flop=1.0)

    with RecordDB(db_path) as db:
        db.add_records([record('["no_such_template",[1]]', good),
                        record('["tests/matmul_tile_vec",[8,8,8]]', good),  # tile sizes of 16: stale
                        record("not json", good)])
    tuner = XGBTuner(task, plan_size=64, seed=0)
    with caplog.at_level(logging.INFO, logger="tecomp.tuner.xgb_tuner"):
        tuner.tune(4, option, callbacks=[log_to_db(db_path)])
    assert tuner.transferred == 0 and tuner.transfer_skipped == 3
    assert "used 0 records from 0 other task(s) (3 skipped)" in caplog.text
    assert tuner.best_flops > 0


def test_knob_features_do_not_transfer(tmp_path):
    task = autotvm.task.create("tests/matmul_tile_vec", (16, 16, 16), "llvm")
    other = autotvm.task.create("tests/matmul_tile_vec", (16, 32, 16), "llvm")
    with RecordDB(tmp_path / "tune.db") as db:
        db.add_records([Record(task_key=other.key, target="llvm",
                               config=other.config_space.get(0).to_json_dict(), costs=(1e-4,), error_no=0, error_msg="", all_cost=0.1, timestamp=1.0,
                               version="0")])
    tuner = XGBTuner(task, feature_type="knob", seed=0)
    tuner._before_first_batch([log_to_db(tmp_path / "tune.db")])
    assert tuner.transferred == 0 and not tuner.model.trained
    itervar = XGBTuner(task, seed=0)
    itervar._before_first_batch([log_to_db(tmp_path / "tune.db")])
    assert itervar.transferred == 1 and itervar.model.trained
