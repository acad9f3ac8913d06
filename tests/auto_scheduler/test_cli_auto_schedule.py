"""``tecomp tune --auto-schedule`` then ``tecomp compile --records`` on a one-kernel model."""

from __future__ import annotations

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


def test_auto_schedule_refuses_the_template_only_options(tmp_path, capsys):
    base, _ = _model(tmp_path)
    assert main(["tune", *base, "--auto-schedule", "--budget", "10"]) == 1
    assert "--scheduler and --budget apply to template tuning only" in capsys.readouterr().err


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
