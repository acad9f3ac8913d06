"""``tecomp tune --auto-schedule`` then ``tecomp compile --records`` on a one-kernel model."""

from __future__ import annotations

import time

import numpy as np
import pytest

import tecomp.graph
from tecomp.cli import main
from tecomp.graph import Graph, Node, TensorType


def _model(tmp_path):
    t, w = TensorType((4, 8), "float32"), TensorType((8, 8), "float32")
    graph = Graph({"x": t}, {"w": w}, [Node("dense", ["x", "w"], ["y"], name="fc")], ["y"], {"x": t, "w": w, "y": t})
    (tmp_path / "g.json").write_text(graph.to_json())
    weight = np.eye(8, dtype="float32") * 2
    np.savez(tmp_path / "p.npz", w=weight)
    return [str(tmp_path / "g.json"), "--params", str(tmp_path / "p.npz"), "--quiet"], weight


class _Runner:
    closed = False

    def close(self):
        self.closed = True


def _fake_tuning(monkeypatch):
    """Stand-ins for tune_graph and the Dask option; returns the calls they got."""
    from tecomp.auto_scheduler import graph_tasks
    from tecomp.tuner import dask_measure

    calls = {}

    def tune_graph(graph, params, records, trials, target, threads, **kwargs):
        calls["tune_graph"] = dict(kwargs, trials=trials)
        return [object()]

    def measure_option_for_scheduler(address, target, **kwargs):
        calls["dask"] = dict(kwargs, address=address)
        return {"builder": object(), "runner": _Runner()}

    monkeypatch.setattr(graph_tasks, "tune_graph", tune_graph)
    monkeypatch.setattr(dask_measure, "measure_option_for_scheduler", measure_option_for_scheduler)
    return calls


def test_auto_schedule_takes_a_budget_then_counts_no_trials_unless_given(tmp_path, capsys, monkeypatch):
    base, _ = _model(tmp_path)
    calls = _fake_tuning(monkeypatch)
    assert main(["tune", *base, "--records", str(tmp_path / "r.db"), "--auto-schedule", "--budget", "3s"]) == 0
    assert calls["tune_graph"]["budget"] == 3.0 and calls["tune_graph"]["trials"] is None
    assert calls["tune_graph"]["measure_option"] is None and calls["tune_graph"]["progress"] is False
    assert main(["tune", *base, "--records", str(tmp_path / "r.db"), "--auto-schedule", "--budget", "1m",
                 "--trials", "5"]) == 0
    assert calls["tune_graph"]["budget"] == 60.0 and calls["tune_graph"]["trials"] == 5
    assert main(["tune", *base, "--records", str(tmp_path / "r.db"), "--auto-schedule"]) == 0
    assert calls["tune_graph"]["budget"] is None and calls["tune_graph"]["trials"] == 200
    assert "auto-scheduled 1 kernels" in capsys.readouterr().out


def test_auto_schedule_measures_on_the_scheduler_and_closes_its_runner(tmp_path, monkeypatch):
    from tecomp.auto_scheduler.task import RUNNER_TIMING

    base, _ = _model(tmp_path)
    calls = _fake_tuning(monkeypatch)
    assert main(["tune", *base, "--records", str(tmp_path / "r.db"), "--auto-schedule", "--scheduler",
                 "tcp://127.0.0.1:8786", "--threads", "2"]) == 0
    option = calls["tune_graph"]["measure_option"]
    assert calls["dask"] == dict(RUNNER_TIMING, address="tcp://127.0.0.1:8786", num_threads=2)
    assert option["runner"].closed


def test_auto_schedule_refuses_a_budget_that_is_not_a_positive_duration(tmp_path, capsys):
    base, _ = _model(tmp_path)
    for budget in ("0", "-5s", "soon"):
        with pytest.raises(SystemExit):
            main(["tune", *base, "--auto-schedule", f"--budget={budget}"])
        assert f"{budget!r} is not a positive duration" in capsys.readouterr().err


@pytest.mark.slow  # starts builder, runner and feature workers
def test_tune_auto_schedule_stops_when_its_budget_is_spent(tmp_path, capsys):
    base, _ = _model(tmp_path)
    db = tmp_path / "as.db"
    start = time.monotonic()
    assert main(["tune", *base, "--records", str(db), "--auto-schedule", "--budget", "3s"]) == 0
    elapsed = time.monotonic() - start
    assert "auto-scheduled 1 kernels" in capsys.readouterr().out
    with tecomp.tuner.RecordDB(db) as records:
        searched = [r for r in records.records() if r.tuner == "auto_scheduler"]
    # the default and a few rounds of 8 candidates: no trial count stops the search (it is unlimited), the time does
    assert 1 <= len(searched) <= 200, len(searched)
    assert elapsed < 60, elapsed


@pytest.mark.slow  # starts builder, runner and feature workers
def test_tune_auto_schedule_then_compile_with_its_records(tmp_path, capsys):
    base, weight = _model(tmp_path)
    db = tmp_path / "as.db"
    assert main(["tune", *base, "--records", str(db), "--trials", "4", "--auto-schedule"]) == 0
    assert "auto-scheduled 1 kernels" in capsys.readouterr().out
    with tecomp.tuner.RecordDB(db) as records:
        tuners = [r.tuner for r in records.records()]
    # the search's 4 trials; then, if a candidate beat the default, 3 rounds re-timing both (or more)
    assert [t for t in tuners if t != "confirm"] == ["auto_scheduler"] * 4
    assert tuners.count("confirm") % 3 == 0
    assert main(["compile", *base, "-o", str(tmp_path / "g.so"), "--records", str(db)]) == 0
    x = np.arange(32, dtype="float32").reshape(4, 8)
    np.testing.assert_allclose(tecomp.graph.load(tmp_path / "g.so").run(x)[0], x @ weight.T)


def test_auto_schedule_refuses_the_template_tuners_flags(tmp_path, capsys, monkeypatch):
    """--tuner, --early-stopping and --retry-errors steer template tuning only: with
    --auto-schedule they are an error naming them, not silently ignored."""
    calls = _fake_tuning(monkeypatch)
    base, _ = _model(tmp_path)
    for flags, named in ((["--tuner", "ga"], "--tuner"), (["--early-stopping", "5"], "--early-stopping"),
                         (["--retry-errors", "--tuner", "random"], "--tuner, --retry-errors")):
        assert main(["tune", *base, "--records", str(tmp_path / "r.db"), "--auto-schedule", *flags]) == 1
        err = capsys.readouterr().err
        assert f"{named} apply to template tuning" in err and "--auto-schedule" in err
    assert "tune_graph" not in calls
