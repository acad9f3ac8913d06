"""ONNX models through the frontend and tecomp.graph.build, against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

import tecomp.graph
from tecomp import frontend

RNG = np.random.default_rng(11)


def _init(name: str, shape: tuple, scale: float = 0.3, positive: bool = False):
    value = RNG.uniform(0.5, 1.5, shape) if positive else RNG.standard_normal(shape) * scale
    return numpy_helper.from_array(value.astype("float32"), name)


def _model(nodes, inits, inputs, outputs, opset=17):
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _resnet_block():
    c = 8
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c0", "g0", "be0", "m0", "v0"], ["n0"]),
        helper.make_node("Relu", ["n0"], ["r0"]),
        helper.make_node("MaxPool", ["r0"], ["p0"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p0", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"]),
        helper.make_node("Relu", ["n1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "p0"], ["s"]),
        helper.make_node("Relu", ["s"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["gp"]),
        helper.make_node("Flatten", ["gp"], ["f"]),
        helper.make_node("Gemm", ["f", "wf", "bf"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    inits = [_init("w0", (c, 3, 3, 3)), _init("b0", (c,)), _init("w1", (c, c, 3, 3), 0.2),
             _init("w2", (c, c, 3, 3), 0.2), _init("wf", (10, c)), _init("bf", (10,))]
    for k in (0, 1):
        inits += [_init(f"g{k}", (c,), positive=True), _init(f"be{k}", (c,)), _init(f"m{k}", (c,)),
                  _init(f"v{k}", (c,), positive=True)]
    return _model(nodes, inits, [("x", ["n", 3, 12, 12])], ["y"]), {"x": (2, 3, 12, 12)}


def _attention():
    s, d = 8, 16
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln_g", "ln_b"], ["h"], axis=-1),
        helper.make_node("MatMul", ["h", "wq"], ["q"]),
        helper.make_node("MatMul", ["h", "wk"], ["k"]),
        helper.make_node("Transpose", ["k"], ["kt"], perm=[1, 0]),
        helper.make_node("MatMul", ["q", "kt"], ["sc"]),
        helper.make_node("Softmax", ["sc"], ["p"], axis=-1),
        helper.make_node("MatMul", ["p", "h"], ["a"]),
        helper.make_node("Add", ["a", "x"], ["y"]),
    ]
    inits = [_init("ln_g", (d,), positive=True), _init("ln_b", (d,)), _init("wq", (d, d), 0.2),
             _init("wk", (d, d), 0.2)]
    return _model(nodes, inits, [("x", [s, d])], ["y"]), {"x": (s, d)}


@pytest.mark.parametrize("make", [_resnet_block, _attention], ids=["resnet_block", "attention"])
def test_onnx_model_matches_onnxruntime(make, tmp_path):
    model, shapes = make()
    graph, params = frontend.from_onnx(model, shape=shapes)
    module = tecomp.graph.build(graph, "llvm", params)
    x = RNG.standard_normal(shapes["x"]).astype("float32")
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    got = module.run(x=x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    module.export_library(tmp_path / "m.so")
    np.testing.assert_array_equal(tecomp.graph.load(tmp_path / "m.so").run(x)[0], got[0])
    plain = tecomp.graph.build(graph, "llvm", params, optimize=False, fuse_ops=False)
    assert module.kernel_count < plain.kernel_count
