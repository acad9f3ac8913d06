"""``tecomp compile``, ``tecomp tune`` and ``tecomp run`` on small models (graph JSON + params, or ONNX
when the frontend is there)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tecomp.graph
from tecomp.cli import main
from tecomp.graph import Graph, Node, TensorType

sys.path.insert(0, str(Path(__file__).parents[1] / "graph"))
import graph_models as models  # noqa: E402


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    graph, params, reference = models.mlp(batch=2)
    root = tmp_path_factory.mktemp("cli")
    (root / "mlp.json").write_text(graph.to_json())
    np.savez(root / "params.npz", **params)
    x = models.random_inputs(graph, seed=4)["x"]
    np.save(root / "x.npy", x)
    return root, reference(x)[0]


def _compile(root, *extra):
    return main(["compile", str(root / "mlp.json"), "--params", str(root / "params.npz"), "-o",
                 str(root / "mlp.so"), "--quiet", *extra])


def test_compile_then_run_prints_and_saves_outputs(mlp_files, capsys):
    root, expected = mlp_files
    assert _compile(root) == 0
    assert "kernel calls" in capsys.readouterr().out
    assert main(["run", str(root / "mlp.so"), "--input", f"x={root / 'x.npy'}", "--repeat", "3", "--profile",
                 "--save", str(root / "out.npz")]) == 0
    out = capsys.readouterr().out
    assert "output softmax_" in out and "float32[2, 10]" in out
    assert "latency over 3 runs" in out and "profile (median per step" in out and "dense_packed" in out
    with np.load(root / "out.npz") as saved:
        np.testing.assert_allclose(saved[saved.files[0]], expected, rtol=1e-4, atol=1e-6)


def test_run_without_inputs_uses_random_ones(mlp_files, capsys):
    root, _ = mlp_files
    if not (root / "mlp.so").exists():
        assert _compile(root) == 0
    assert main(["run", str(root / "mlp.so")]) == 0
    assert "input x: random float32[2, 64]" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["run", "{root}/missing.so"], "no model library at"),
    (["run", "{root}/mlp.so", "--input", "x={root}/params.npz"], "cannot read"),
    (["run", "{root}/mlp.so", "--input", "y={root}/x.npy"], "no input named 'y'"),
    (["compile", "{root}/nothing.onnx", "-o", "{root}/o.so"], "no such model file"),
    (["compile", "{root}/mlp.json", "-o", "{root}/o.so", "--shape", "x=2,a"], "--shape 'x=2,a'"),
    (["compile", "{root}/mlp.json", "-o", "{root}/o.so"], "param 'w1'"),
])
def test_bad_arguments_exit_1_with_one_line(mlp_files, capsys, argv, message):
    root, _ = mlp_files
    if not (root / "mlp.so").exists():
        assert _compile(root) == 0
    assert main([a.format(root=root) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tecomp {argv[0]}: error:") and message in err


def test_wrong_input_shape_is_reported(mlp_files, tmp_path, capsys):
    root, _ = mlp_files
    if not (root / "mlp.so").exists():
        assert _compile(root) == 0
    np.save(tmp_path / "bad.npy", np.zeros((3, 64), "float32"))
    assert main(["run", str(root / "mlp.so"), "--input", str(tmp_path / "bad.npy")]) == 1
    assert "input 'x': expected shape (2, 64), got (3, 64)" in capsys.readouterr().err


def test_tune_then_compile_with_records(tmp_path, capsys):
    t = TensorType((4, 8), "float32")
    w = TensorType((8, 8), "float32")
    graph = Graph({"x": t}, {"w": w}, [Node("dense", ["x", "w"], ["y"], name="fc")], ["y"],
                  {"x": t, "w": w, "y": t})
    (tmp_path / "g.json").write_text(graph.to_json())
    weight = np.eye(8, dtype="float32") * 2
    np.savez(tmp_path / "p.npz", w=weight)
    db = tmp_path / "tune.db"
    base = [str(tmp_path / "g.json"), "--params", str(tmp_path / "p.npz"), "--quiet"]
    assert main(["tune", *base, "--records", str(db), "--trials", "2", "--tuner", "random"]) == 0
    assert "tuned 1 tasks" in capsys.readouterr().out
    assert main(["records", str(db)]) == 0
    assert '"schedules/dense"' in capsys.readouterr().out
    assert main(["compile", *base, "-o", str(tmp_path / "g.so"), "--records", str(db)]) == 0
    x = np.arange(32, dtype="float32").reshape(4, 8)
    np.testing.assert_allclose(tecomp.graph.load(tmp_path / "g.so").run(x)[0], x @ weight.T)


def test_compile_an_onnx_model_with_a_shape(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])]))
    onnx.save(model, tmp_path / "relu.onnx")
    assert main(["compile", str(tmp_path / "relu.onnx"), "-o", str(tmp_path / "relu.so"), "--shape", "x=3,4",
                 "--quiet"]) == 0
    x = np.linspace(-1, 1, 12, dtype="float32").reshape(3, 4)
    np.testing.assert_array_equal(tecomp.graph.load(tmp_path / "relu.so").run(x)[0], np.maximum(x, 0))


def test_tune_with_a_time_budget(tmp_path, capsys):
    t, w = TensorType((4, 8), "float32"), TensorType((8, 8), "float32")
    graph = Graph({"x": t}, {"w": w}, [Node("dense", ["x", "w"], ["y"], name="fc")], ["y"], {"x": t, "w": w, "y": t})
    (tmp_path / "g.json").write_text(graph.to_json())
    np.savez(tmp_path / "p.npz", w=np.eye(8, dtype="float32"))
    base = ["tune", str(tmp_path / "g.json"), "--params", str(tmp_path / "p.npz"), "--quiet",
            "--records", str(tmp_path / "r.db"), "--tuner", "random", "--trials", "3"]
    assert main([*base, "--budget", "2s"]) == 0
    assert "tuned 1 tasks" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*base, "--budget", "ten minutes"])
    assert "'ten minutes' is not a positive duration" in capsys.readouterr().err
