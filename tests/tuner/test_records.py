"""RecordDB: queries, concurrent writers, refusal of files that are not ours, JSON lines."""

import json
import multiprocessing
import sqlite3
import time
from types import SimpleNamespace

import pytest

from tecomp.error import TecompError
from tecomp.tuner.measure import MeasureErrorNo, MeasureInput, MeasureResult
from tecomp.tuner.records import SCHEMA_VERSION, RecordDB

KEY = '["test/matmul",[64,64,64,"float32"]]'


class FakeConfig:
    def __init__(self, index):
        self.index = index

    def to_json_dict(self):
        return {"index": self.index, "entities": {"tile": [self.index, 2]}}


def fake_pair(index, cost, error_no=0, key=KEY, target="llvm"):
    task = SimpleNamespace(key=key, target=target, flop=2 * 64**3)
    costs = (cost, cost * 1.1) if error_no == 0 else ()
    return (MeasureInput(task, FakeConfig(index)),
            MeasureResult(costs, error_no, "" if error_no == 0 else "it broke", 0.5, 1000.0 + index))


def _fill(path, pairs):
    with RecordDB(path) as db:
        db.add_many(pairs, tuner="RandomTuner")


def test_best_ignores_errors_and_measured_indices(tmp_path):
    path = tmp_path / "tune.db"
    _fill(path, [fake_pair(0, 3e-3), fake_pair(1, 1e-3), fake_pair(2, 0.0, MeasureErrorNo.RUN_TIMEOUT),
                 fake_pair(3, 2e-3), fake_pair(7, 0.5e-3, key="other")])
    with RecordDB(path) as db:
        best = db.best(KEY, "llvm")
        assert best.config == {"index": 1, "entities": {"tile": [1, 2]}}
        assert best.mean_cost == pytest.approx(1.05e-3)
        assert best.costs == (1e-3, 1.1e-3) and best.tuner == "RandomTuner" and best.flop == 2 * 64**3
        assert db.measured_indices(KEY, "llvm") == {0, 1, 2, 3}
        assert db.best(KEY, "cuda") is None
        assert db.error_counts(KEY, "llvm") == {0: 3, 7: 1}
        assert db.tasks() == [(KEY, "llvm"), ("other", "llvm")]
        recs = list(db.records(KEY, "llvm"))
        assert [r.config_index for r in recs] == [0, 1, 2, 3]
        assert recs[2].error_no == 7 and recs[2].error_msg == "it broke" and recs[2].mean_cost is None
        assert len(db) == 5


def _writer(path, worker, count, barrier):
    with RecordDB(path) as db:
        barrier.wait(30)
        for i in range(count):
            db.add(*fake_pair(worker * 10_000 + i, 1e-3))
            time.sleep(0.001)  # as a tuner does between batches, so the writers take turns


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_writer, args=(path, w, 300, barrier)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with RecordDB(path) as db:
        assert len(db) == 600
        assert len(db.measured_indices(KEY, "llvm")) == 600
        writers = [r.config_index // 10_000 for r in db.records()]
    switches = sum(a != b for a, b in zip(writers, writers[1:]))
    assert switches > 10  # the two processes really wrote at the same time


def _assert_refused(path, match):
    before = path.read_bytes()
    with pytest.raises(TecompError, match=match) as info:
        RecordDB(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


def test_not_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    _assert_refused(path, "file is not a database")


def test_corrupt_database_is_refused_untouched(tmp_path):
    path = tmp_path / "corrupt.db"
    _fill(path, [fake_pair(i, 1e-3) for i in range(300)])
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[3 * page:3 * page + 200] = b"\xff" * 200  # a b-tree page of the records table
    path.write_bytes(bytes(data))
    _assert_refused(path, "corrupt|malformed")


def test_foreign_sqlite_is_refused_untouched(tmp_path):
    path = tmp_path / "foreign.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    _assert_refused(path, "not a tecomp records database.*photos")
    lookalike = tmp_path / "lookalike.db"
    with sqlite3.connect(lookalike) as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, note TEXT)")
    conn.close()
    _assert_refused(lookalike, "'records' lacks columns all_cost, config")


def test_newer_schema_is_refused_untouched(tmp_path):
    path = tmp_path / "future.db"
    _fill(path, [fake_pair(0, 1e-3)])
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    conn.close()
    _assert_refused(path, f"schema version {SCHEMA_VERSION + 1}, newer")


def test_new_database_has_meta_and_wal(tmp_path):
    path = tmp_path / "new.db"
    RecordDB(path).close()
    with sqlite3.connect(path) as conn:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        indexes = [row[1] for row in conn.execute("PRAGMA index_list(records)")]
    conn.close()
    assert meta["schema_version"] == str(SCHEMA_VERSION) and meta["created_by"].startswith("tecomp ")
    assert "records_task_target" in indexes


def test_jsonl_round_trip(tmp_path):
    src = tmp_path / "a.db"
    _fill(src, [fake_pair(0, 2e-3), fake_pair(1, 0.0, MeasureErrorNo.COMPILE_HOST), fake_pair(2, 1e-3)])
    with RecordDB(src) as db:
        assert db.export_jsonl(tmp_path / "out.jsonl") == 3
        original = list(db.records())
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(isinstance(json.loads(line), dict) for line in lines)
    with RecordDB(tmp_path / "b.db") as db:
        assert db.import_jsonl(tmp_path / "out.jsonl") == 3
        assert list(db.records()) == original
        assert db.best(KEY, "llvm").config_index == 2


@pytest.mark.parametrize("bad, why", [
    ("{not json", "line 2: not a valid tuning record"),
    ('{"task_key": "k"}', "line 2: .*missing field"),
    ('[1, 2]', "line 2: .*expected a JSON object"),
])
def test_jsonl_bad_line_names_it_and_imports_nothing(tmp_path, bad, why):
    src = tmp_path / "a.db"
    _fill(src, [fake_pair(0, 2e-3), fake_pair(1, 1e-3)])
    with RecordDB(src) as db:
        db.export_jsonl(tmp_path / "good.jsonl")
    good = (tmp_path / "good.jsonl").read_text().splitlines()
    (tmp_path / "bad.jsonl").write_text("\n".join([good[0], bad, good[1]]) + "\n")
    with RecordDB(tmp_path / "b.db") as db:
        with pytest.raises(TecompError, match=why) as info:
            db.import_jsonl(tmp_path / "bad.jsonl")
        assert "bad.jsonl" in str(info.value)
        assert len(db) == 0


def _timed_with(index, cost, threads):
    inp, res = fake_pair(index, cost)
    return inp, res._replace(num_threads=threads)


def test_records_keep_the_thread_count_and_best_prefers_the_one_asked_for(tmp_path):
    path = tmp_path / "tune.db"
    _fill(path, [_timed_with(0, 1e-3, 1), _timed_with(1, 2e-3, 2), _timed_with(2, 3e-3, 2), fake_pair(3, 4e-3)])
    with RecordDB(path) as db:
        assert [r.num_threads for r in db.records(KEY, "llvm")] == [1, 2, 2, None]
        assert db.best(KEY, "llvm").config_index == 0            # no count asked: the fastest of all
        assert db.best(KEY, "llvm", 2).config_index == 1         # timed on 2 threads: those first
        assert db.best(KEY, "llvm", 8).config_index == 3         # none on 8: a record not saying
        # records that do not say count as matching any thread count
        assert [r.config_index for r in db.records(KEY, "llvm", num_threads=2)] == [1, 2, 3]
        out = tmp_path / "out.jsonl"
        db.export_jsonl(out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["num_threads"] for line in lines] == [1, 2, 2, None]
    with RecordDB(tmp_path / "copy.db") as copy:
        copy.import_jsonl(out)
        assert [r.num_threads for r in copy.records()] == [1, 2, 2, None]
    with RecordDB(tmp_path / "counted.db") as db:
        db.add_many([_timed_with(0, 1e-3, 1), _timed_with(1, 2e-3, 2)])
        assert db.best(KEY, "llvm", 8).config_index == 0         # none on 8 nor unsaid: the fastest of any


def test_a_database_from_before_thread_counts_opens_and_gains_the_column(tmp_path):
    path = tmp_path / "old.db"
    _fill(path, [fake_pair(0, 1e-3)])
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE records DROP COLUMN num_threads")
    with RecordDB(path) as db:
        assert [r.num_threads for r in db.records()] == [None]
        db.add(*_timed_with(1, 2e-3, 2))
        assert [r.num_threads for r in db.records()] == [None, 2]


def test_a_bad_thread_count_in_json_lines_is_named(tmp_path):
    inp, res = _timed_with(0, 1e-3, 0)
    src = tmp_path / "bad.jsonl"
    from tecomp.tuner.records import record_from_measure
    src.write_text(json.dumps(record_from_measure(inp, res).to_json_dict()) + "\n")
    with RecordDB(tmp_path / "t.db") as db, pytest.raises(TecompError, match="num_threads"):
        db.import_jsonl(src)
