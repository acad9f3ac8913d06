"""benchmarks/zoo.py without torch: its rows come from cached .onnx/.npz files, so a model built
with onnx.helper stands in for an exported network; the error metric, ORT's preallocated-output
runner, the failure rows and the table are checked here."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import onnx_models
from onnx import TensorProto, helper

import zoo


def _cache(monkeypatch, tmp_path, name: str, model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> zoo.Network:
    """A zoo network whose export is already cached in ``tmp_path`` (building it would fail the test)."""
    monkeypatch.setattr(zoo, "CACHE", tmp_path)
    net = zoo.Network(name, "test", lambda: pytest.fail("the cached export should have been used"))
    onnx.save(model, str(tmp_path / f"{net.stem}.onnx"))
    np.savez(tmp_path / f"{net.stem}.npz", **inputs)
    return net


def test_relative_error_is_worst_output_over_its_scale():
    want = [np.array([1.0, -4.0, 2.0], "float32"), np.array([[10.0, 0.0]], "float32")]
    got = [np.array([1.0, -3.0, 2.0], "float32"), np.array([[10.0, 0.5]], "float32")]
    assert zoo.relative_error(got, want) == pytest.approx(0.25)   # |1| / 4 beats |0.5| / 10
    assert zoo.relative_error(want, want) == 0.0
    assert zoo.relative_error([np.array([np.nan], "float32")], [np.array([1.0], "float32")]) == np.inf
    with pytest.raises(ValueError, match="shape"):
        zoo.relative_error([np.zeros((2, 3), "float32")], [np.zeros((3, 2), "float32")])


def test_ort_runner_writes_into_buffers_that_outlive_the_caller():
    from harness import ort_session

    model = onnx_models.small_cnn(batch=1, image=13)
    inputs = onnx_models.random_inputs({"input": (1, 3, 13, 13)}, seed=4)
    session = ort_session(model.SerializeToString(), 1)
    want = session.run(None, inputs)
    call, outs = zoo.ort_runner(session, {k: v.copy() for k, v in inputs.items()})
    first = outs[0]
    del outs  # the runner must keep its bound inputs and outputs alive by itself
    for _ in range(3):
        call()
    np.testing.assert_array_equal(first, want[0])


def test_measure_gives_a_checked_timed_row(monkeypatch, tmp_path):
    pytest.importorskip("threadpoolctl")
    inputs = onnx_models.random_inputs({"input": (1, 3, 13, 13)}, seed=5)
    net = _cache(monkeypatch, tmp_path, "cnn", onnx_models.small_cnn(batch=1, image=13), inputs)
    row = zoo.measure(net, 1, None, repeat=1, min_ms=1.0)
    assert row.status == "yes" and row.failure is None
    assert row.error is not None and row.error < 1e-5
    assert row.compile_s > 0 and row.tecomp_s > 0 and row.ort_s > 0
    lines = zoo.table([row])
    assert lines[2].startswith("| cnn | dynamo | yes |") and lines[3].startswith("| geomean (1 of 1) |")


def test_measure_reports_an_unsupported_op_as_one_row(monkeypatch, tmp_path):
    pytest.importorskip("threadpoolctl")
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example", name="frob_1")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 7])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)], ir_version=8)
    net = _cache(monkeypatch, tmp_path, "frob", model, {"x": np.ones((1, 7), "float32")})
    row = zoo.measure(net, 1, None, repeat=1, min_ms=1.0)
    assert row.status == "unsupported: com.example.Frobnicate"
    assert row.tecomp_s is None and row.ort_s is None and row.ratio is None
    assert any(line.startswith("onnxruntime: ") for line in row.failure)
    assert any("Frobnicate" in line and "frob_1" in line for line in row.failure)
    assert zoo.table([row])[-1].startswith("| frob | dynamo | unsupported: com.example.Frobnicate | - |")
