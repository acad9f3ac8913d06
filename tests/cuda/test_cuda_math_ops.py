"""The ONNX math, reduction and small tensor operators (argmax, topk, cumsum, logsumexp, prod, mod,
isnan, one_hot, pad_mode, trilu, softplus) in one model compiled for a GPU: every kernel gets a CUDA
schedule (reductions and scans the fallback), nvcc compiles it, and the fake GPU runs it against
onnx's ReferenceEvaluator."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tecomp.graph
from tecomp.frontend import from_onnx

from gpu_helpers import needs_nvcc, register_compiled_functions

pytestmark = needs_nvcc
TARGET = "cuda -arch=sm_90"


@pytest.fixture
def gpu(gpu, monkeypatch):
    """The fake GPU, with every function nvcc compiles registered with it, so it can run."""
    return register_compiled_functions(gpu, monkeypatch)


def _model():
    node = helper.make_node
    nodes = [
        node("ArgMax", ["x"], ["argmax"], axis=1, keepdims=0, select_last_index=1),
        node("TopK", ["x", "k"], ["top_values", "top_indices"], axis=-1),
        node("CumSum", ["x", "axis"], ["cumsum"], reverse=1),
        node("ReduceLogSumExp", ["x", "axes"], ["lse"], keepdims=0),
        node("ReduceProd", ["x", "axes"], ["prod"], keepdims=1),
        node("Mod", ["x", "divisor"], ["mod"], fmod=1),
        node("Softmax", ["x"], ["p"]), node("IsNaN", ["p"], ["nan"]), node("Where", ["nan", "zero", "p"], ["safe"]),
        node("OneHot", ["idx", "depth", "values"], ["onehot"], axis=0),
        node("Pad", ["x", "pads"], ["reflect"], mode="reflect"),
        node("Trilu", ["x", "k"], ["trilu"], upper=0),
        node("Softplus", ["x"], ["softplus"]),
    ]
    outputs = ["argmax", "top_values", "top_indices", "cumsum", "lse", "prod", "mod", "safe", "onehot", "reflect",
               "trilu", "softplus"]
    consts = {"k": np.array([3], "int64"), "axis": np.array(1, "int64"), "axes": np.array([1], "int64"),
              "divisor": np.array([1.5], "float32"), "zero": np.zeros((), "float32"),
              "depth": np.array(4, "int64"), "values": np.array([0.0, 1.0], "float32"),
              "pads": np.array([0, 2, 0, 3], "int64")}
    graph = helper.make_graph(
        nodes, "math_ops",
        [helper.make_tensor_value_info("x", 1, (5, 7)), helper.make_tensor_value_info("idx", 7, (6,))],
        [helper.make_tensor_value_info(o, 0, None) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def test_math_ops_model_on_a_gpu(gpu):
    model = _model()
    rng = np.random.default_rng(3)
    x = rng.uniform(-2, 2, (5, 7)).astype("float32")
    x[2] = -np.inf  # a fully masked row: softmax's NaN is replaced by the Where(IsNaN)
    inputs = {"x": x, "idx": np.array([0, 3, -1, 5, 2, -4], "int64")}
    graph, params = from_onnx(model)
    got = tecomp.graph.build(graph, TARGET, params).run(**inputs)
    want = ReferenceEvaluator(model).run(None, inputs)
    for name, g, w in zip([o.name for o in model.graph.output], got, want):
        w = np.array(w)
        if name == "lse":
            w[2] = -np.inf  # the reference subtracts the row maximum without a guard: -inf - -inf = NaN
        assert g.dtype == w.dtype and g.shape == w.shape, name
        finite = np.isfinite(w) if w.dtype.kind == "f" else np.ones(w.shape, bool)
        np.testing.assert_allclose(g[finite], w[finite], rtol=1e-5, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(g[~finite], w[~finite], err_msg=name)
