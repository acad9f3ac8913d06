"""progress_bar, log_to_db, plot_curve and ``tecomp records`` on fake tuning loops."""

import json
import sys

import pytest

from tecomp.cli import main
from tecomp.error import TecompError
from tecomp.tuner import callback
from tecomp.tuner.measure import MeasureErrorNo
from tecomp.tuner.plot import plot_curve
from tecomp.tuner.records import RecordDB

from test_records import KEY, fake_pair

FLOP = 2 * 64**3


class RandomTuner:
    """Stands in for a tuner: callbacks only read its class name."""


class GATuner:
    pass


def _tune(tuner, callbacks, costs, first_index=0):
    """Feed batches of 4 fake measurements (a cost of 0 is a run timeout) to the callbacks."""
    for start in range(0, len(costs), 4):
        pairs = [fake_pair(first_index + start + i, c, 0 if c else MeasureErrorNo.RUN_TIMEOUT)
                 for i, c in enumerate(costs[start:start + 4])]
        inputs, results = [p[0] for p in pairs], [p[1] for p in pairs]
        for cb in callbacks:
            cb(tuner, inputs, results)


def test_progress_bar_and_log_to_db(tmp_path, capsys):
    bar = callback.progress_bar(8, prefix="matmul")
    log = callback.log_to_db(tmp_path / "tune.db")
    _tune(RandomTuner(), [bar, log], [4e-3, 2e-3, 0, 3e-3, 1e-3, 0, 5e-3, 2e-3])
    assert bar.best_gflops == pytest.approx(FLOP / 1.05e-3 / 1e9)
    assert bar.errors == 2
    err = capsys.readouterr().err
    assert "matmul" in err and "8/8" in err and f"best {bar.best_gflops:.2f} GFLOP/s, 2 errors" in err
    assert len(log.db) == 8
    assert log.db.measured_indices(KEY, "llvm") == set(range(8))
    assert {r.tuner for r in log.db.records()} == {"RandomTuner"}
    assert log.db.best(KEY, "llvm").config_index == 4


def test_plot_curve_one_line_per_tuner(tmp_path):
    log = callback.log_to_db(tmp_path / "tune.db")
    _tune(RandomTuner(), [log], [4e-3, 2e-3, 0, 3e-3, 1e-3, 5e-3])
    _tune(GATuner(), [log], [3e-3, 0, 1.5e-3, 0.8e-3], first_index=100)
    png = tmp_path / "curve.png"
    plot_curve(tmp_path / "tune.db", KEY, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TecompError, match="no records of task nothing"):
        plot_curve(log.db, "nothing", tmp_path / "none.png", target="llvm")


def test_plot_curve_without_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    with pytest.raises(TecompError, match=r"pip install 'tecomp\[plot\]'"):
        plot_curve(tmp_path / "tune.db", KEY, tmp_path / "curve.png")


def test_cli_records_prints_best_and_round_trips(tmp_path, capsys):
    db_path = tmp_path / "tune.db"
    with RecordDB(db_path) as db:
        db.add_many([fake_pair(0, 2e-3), fake_pair(1, 1e-3), fake_pair(2, 0, MeasureErrorNo.RUN_TIMEOUT),
                     fake_pair(3, 0, MeasureErrorNo.COMPILE_HOST), fake_pair(4, 0, MeasureErrorNo.RUN_TIMEOUT)])
    assert main(["records", str(db_path), "--export", str(tmp_path / "out.jsonl")]) == 0
    out = capsys.readouterr().out
    best = json.dumps({"entities": {"tile": [1, 2]}, "index": 1}, sort_keys=True)
    assert f"task {KEY}  target llvm" in out
    assert "trials 5  valid 2  errors: COMPILE_HOST 1, RUN_TIMEOUT 2" in out
    assert f"{FLOP / 1.05e-3 / 1e9:.2f} GFLOP/s  config {best}" in out
    assert "exported 5 records" in out

    copy = tmp_path / "copy.db"
    assert main(["records", str(copy), "--import", str(tmp_path / "out.jsonl")]) == 0
    assert "imported 5 records" in capsys.readouterr().out
    with RecordDB(copy) as db:
        assert db.best(KEY, "llvm").config_index == 1


def test_cli_records_refuses_a_foreign_file(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    assert main(["records", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tecomp records: error:") and str(path) in err
    assert main(["records", str(tmp_path / "typo.db")]) == 1
    assert "typo.db: no such file" in capsys.readouterr().err
    assert not (tmp_path / "typo.db").exists()
