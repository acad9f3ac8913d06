"""Malformed records: every reader skips rows that do not parse, with one warning per database;
``--import`` names the bad lines; nothing raises a raw parsing error."""

import json
import logging
import sqlite3
import subprocess
import sys

import pytest

from tecomp.tuner import apply_history_best
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.records import RecordDB, RecordsError
from tecomp.tuner.xgb_tuner import XGBTuner

import templates  # noqa: F401  (registers the shared templates)
from test_records import KEY, fake_pair
from test_tuners import SyntheticTask, fake_option

# (column, value) written over a row: bad JSON, costs that are a string, a non-list, missing fields
CORRUPTIONS = [
    ("config", "{not json"),
    ("costs", "[0.001, "),
    ("costs", '"fast"'),
    ("costs", "12"),
    ("config", '{"entities": {}}'),
    ("config", 42),
    ("error_no", "bad"),
    ("flop", "lots"),
    ("all_cost", "slow"),
    ("costs", "[" * 100_000 + "]" * 100_000),
]


def _corrupt(path, config_index, column, value):
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(f"UPDATE records SET {column} = ? WHERE config_index = ?", (value, config_index))
    conn.close()


def _db_with_bad_best(tmp_path, column, value):
    """Four records of KEY; the fastest (index 1) is malformed, so index 3 is the best readable one."""
    path = str(tmp_path / "tune.db")
    with RecordDB(path) as db:
        db.add_many([fake_pair(0, 3e-3), fake_pair(1, 1e-3), fake_pair(2, 4e-3), fake_pair(3, 2e-3)])
    _corrupt(path, 1, column, value)
    return path


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]


@pytest.mark.parametrize("column, value", CORRUPTIONS, ids=lambda v: str(v)[:12])
def test_every_query_skips_a_malformed_row_with_one_warning(tmp_path, caplog, column, value):
    path = _db_with_bad_best(tmp_path, column, value)
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"), RecordDB(path) as db:
        assert [r.config_index for r in db.records()] == [0, 2, 3]
        assert db.best(KEY, "llvm").config_index == 3
        assert db.measured_indices(KEY, "llvm") == {0, 2, 3}
        assert db.error_counts(KEY, "llvm") == {0: 3}
        assert db.tasks() == [(KEY, "llvm")]
    assert len(_warnings(caplog)) == 1
    assert "skipping 1 malformed record row(s) of 4" in _warnings(caplog)[0] and path in _warnings(caplog)[0]


def test_the_warning_counts_every_malformed_row_of_the_database(tmp_path, caplog):
    path = _db_with_bad_best(tmp_path, "config", "{")
    _corrupt(path, 2, "costs", '"x"')
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"), RecordDB(path) as db:
        assert db.best(KEY, "llvm").config_index == 3
        assert len(list(db.records())) == 2
    assert len(_warnings(caplog)) == 1 and "skipping 2 malformed record row(s) of 4" in _warnings(caplog)[0]


def test_apply_history_best_skips_malformed_rows(tmp_path, caplog):
    task = SyntheticTask()
    path = str(tmp_path / "tune.db")
    first = fake_option()
    from tecomp.tuner.random_tuner import RandomTuner
    RandomTuner(task, seed=0).tune(12, first, callbacks=[log_to_db(path)])
    with RecordDB(path) as db:
        best = db.best(task.key, "llvm")
    _corrupt(path, best.config_index, "costs", "not json")
    with RecordDB(path) as db:
        second = db.best(task.key, "llvm")
    assert second.config_index != best.config_index
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"):
        context = apply_history_best(path)
        assert context.lookup(task).index == second.config_index
    assert len(_warnings(caplog)) == 1


def test_resume_skips_malformed_rows(tmp_path, caplog):
    path = str(tmp_path / "tune.db")
    from tecomp.tuner.random_tuner import RandomTuner
    first = fake_option()
    RandomTuner(SyntheticTask(), seed=0).tune(20, first, callbacks=[log_to_db(path)])
    bad = first["runner"].measured[:3]
    for index, (column, value) in zip(bad, CORRUPTIONS):
        _corrupt(path, index, column, value)
    second = fake_option()
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"):
        RandomTuner(SyntheticTask(), seed=0).tune(20, second, callbacks=[log_to_db(path)])
    # the malformed rows do not count as measured; the readable ones are not measured again
    assert not set(first["runner"].measured[3:]) & set(second["runner"].measured)
    assert len(second["runner"].measured) == 20
    assert len(_warnings(caplog)) == 1 and "skipping 3 malformed" in _warnings(caplog)[0]


def test_transfer_learning_skips_malformed_rows(tmp_path, caplog):
    path = str(tmp_path / "tune.db")
    with RecordDB(path) as db:
        db.add_many([fake_pair(i, 1e-3, key='["no_such_template",[1]]') for i in range(5)])
    _corrupt(path, 0, "config", "[")
    _corrupt(path, 1, "costs", '"1e-3"')
    task = SyntheticTask()
    tuner = XGBTuner(task, plan_size=8, seed=0)
    with caplog.at_level(logging.WARNING, logger="tecomp.tuner"), RecordDB(path) as db:
        pairs, n_tasks, skipped = tuner._foreign_pairs([db])
    assert (pairs, skipped) == ([], 3)  # the 3 readable rows are of an unknown template
    assert len(_warnings(caplog)) == 1 and "skipping 2 malformed" in _warnings(caplog)[0]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tecomp.cli", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_records_skips_malformed_rows(tmp_path):
    path = _db_with_bad_best(tmp_path, "costs", "{oops")
    out = _cli("records", path)
    assert out.returncode == 0, out.stderr
    assert "trials 3  valid 3" in out.stdout and '"index": 3' in out.stdout
    assert "Traceback" not in out.stderr and out.stderr.count("malformed") == 1


def _jsonl(tmp_path, lines):
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def _good_line(index=0):
    return json.dumps({"task_key": KEY, "target": "llvm", "config": {"index": index, "entities": {}},
                       "costs": [1e-3], "error_no": 0, "error_msg": "", "all_cost": 0.1,
                       "timestamp": 1.0, "version": "0", "tuner": None, "flop": None})


@pytest.mark.parametrize("field, value", [
    ("error_no", 2 ** 63), ("error_no", -2 ** 63 - 1), ("config", {"index": 2 ** 64, "entities": {}}),
    ("all_cost", 10 ** 400), ("costs", [10 ** 400]), ("flop", 2 ** 70 * 10 ** 300), ("timestamp", "now"),
    ("costs", "fast"), ("error_no", True),
])
def test_import_rejects_bad_values_with_the_line_number(tmp_path, field, value):
    bad = json.loads(_good_line(1))
    bad[field] = value
    path = _jsonl(tmp_path, [_good_line(0), json.dumps(bad), _good_line(2)])
    with RecordDB(tmp_path / "t.db") as db:
        with pytest.raises(RecordsError, match=r"in\.jsonl: nothing imported, 1 bad line\(s\): line 2: not a valid tuning record"):
            db.import_jsonl(path)
        assert len(db) == 0  # all or nothing


def test_import_lists_every_bad_line_and_the_cli_says_it_in_one_line(tmp_path):
    path = _jsonl(tmp_path, [_good_line(0), "{broken", _good_line(1), "[1, 2]", "", '{"config": 1}',
                             "9" * 5000])
    out = _cli("records", str(tmp_path / "t.db"), "--import", str(path))
    assert out.returncode == 1 and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing imported, 4 bad line(s)" in lines[0]
    assert all(f"line {n}:" in lines[0] for n in (2, 4, 6, 7))


def test_a_valid_import_round_trips(tmp_path):
    with RecordDB(tmp_path / "t.db") as db:
        assert db.import_jsonl(_jsonl(tmp_path, [_good_line(0), _good_line(5)])) == 2
        assert db.measured_indices(KEY, "llvm") == {0, 5}
