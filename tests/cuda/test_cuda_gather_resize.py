"""Gathers, scatters and Resize compiled for a GPU: an ONNX model through from_onnx, nvcc and the
fake GPU (kernels run by the reference interpreter), against onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
from gpu_helpers import needs_nvcc
from test_cuda_models import gpu  # noqa: F401 - the fake GPU running every kernel nvcc compiles
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import tecomp.graph
from tecomp.frontend import from_onnx

pytestmark = needs_nvcc
F = TensorProto.FLOAT


def test_index_ops_on_a_gpu(gpu):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 5, 7)).astype("float32")
    rows = np.array([[0, 1], [0, 0]])
    updates = rng.standard_normal((2, 5, 7)).astype("float32")
    where = rng.integers(-14, 14, size=(1, 2, 3, 14))
    nodes = [
        helper.make_node("Resize", ["x", "", "scales"], ["up"], mode="linear"),           # (1, 2, 10, 14)
        helper.make_node("ScatterND", ["x", "rows", "updates"], ["scattered"]),             # constant indices
        helper.make_node("GatherND", ["up", "rows"], ["picked"]),                           # (2, 10, 14)
        helper.make_node("ScatterElements", ["up", "where", "half"], ["y"], axis=3, reduction="add"),
    ]
    inputs = {"x": x, "where": where, "half": rng.standard_normal((1, 2, 3, 14)).astype("float32")}
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(k, F if v.dtype == np.float32 else TensorProto.INT64, v.shape)
                     for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, F, None) for k in ("scattered", "picked", "y")],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], "float32"), "scales"),
         numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(updates, "updates")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    g, params = from_onnx(model)
    module = tecomp.graph.build(g, "cuda -arch=sm_90", params)
    for got, want in zip(module.run(**inputs), ReferenceEvaluator(model).run(None, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert {n.op for n in g.nodes} == {"resize", "scatter_from_sources", "gather_nd", "scatter_elements"}


def test_runtime_scatters_without_reduction_on_a_gpu(gpu):
    """The last-writer form: a reduction stage (ScatterND's over rows, of another shape than the output)
    feeding a guarded load."""
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((7, 5)).astype("float32"), "i": np.array([[3], [-1]]),
              "u": rng.standard_normal((2, 5)).astype("float32"), "j": np.array([[1, 2, 3, 4, 0]]),
              "v": rng.standard_normal((1, 5)).astype("float32")}
    nodes = [helper.make_node("ScatterND", ["x", "i", "u"], ["a"]),
             helper.make_node("ScatterElements", ["a", "j", "v"], ["y"], axis=0)]
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(k, F if v.dtype == np.float32 else TensorProto.INT64, v.shape)
                     for k, v in inputs.items()], [helper.make_tensor_value_info("y", F, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    g, params = from_onnx(model)
    assert [n.op for n in g.nodes] == ["scatter_nd", "scatter_elements"]
    module = tecomp.graph.build(g, "cuda -arch=sm_90", params)
    np.testing.assert_allclose(module.run(**inputs)[0], ReferenceEvaluator(model).run(None, inputs)[0])
