"""ConvTranspose (1-D/2-D/3-D, every attribute), 3-D Conv, pooling (3-D, dilations, MaxPool's
Indices, integer MaxPool, LpPool, GlobalLpPool), instance and group normalisation and training-mode
batch normalisation, each imported from an ONNX graph and compared with onnxruntime (or onnx's
reference evaluator where onnxruntime follows an older reading of the spec), on odd shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches_onnxruntime, run_tecomp
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tecomp.error import GraphError
from tecomp.frontend import from_onnx

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opset=22):
    def infos(values):
        return [helper.make_tensor_value_info(k, t, s) for k, (t, s) in values.items()]

    graph = helper.make_graph(nodes, "test", infos(inputs), infos(outputs),
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def conv_transpose_model(x_shape, w_shape, bias=True, const_weight=True, **attrs):
    inputs = ["x", "w"] + (["b"] if bias else [])
    inits = {"b": randn(w_shape[1] * attrs.get("group", 1), seed=2)} if bias else {}
    graph_inputs = {"x": (F, list(x_shape))}
    if const_weight:
        inits["w"] = randn(*w_shape, seed=1)
    else:
        graph_inputs["w"] = (F, list(w_shape))
    return make_model([helper.make_node("ConvTranspose", inputs, ["y"], **attrs)], graph_inputs,
                      {"y": (F, None)}, inits)


# ---------------------------------------------------------------------------- ConvTranspose

@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((1, 3, 7, 7), (3, 5, 3, 3), {}),
    ((2, 4, 7, 9), (4, 3, 3, 3), {"strides": [2, 2]}),                                 # odd sizes, stride 2
    ((1, 6, 7, 7), (6, 2, 2, 2), {"strides": [2, 2], "group": 3}),                     # U-Net up-conv, groups
    ((1, 4, 13, 7), (4, 4, 3, 3), {"strides": [2, 3], "pads": [1, 0, 1, 2], "output_padding": [1, 2]}),
    ((1, 2, 7, 7), (2, 3, 3, 3), {"dilations": [2, 2], "pads": [1, 2, 0, 1]}),
    ((1, 2, 5, 5), (2, 3, 3, 3), {"strides": [2, 2], "dilations": [2, 1], "pads": [3, 2, 4, 2]}),  # crops
    ((1, 2, 7, 7), (2, 2, 4, 4), {"strides": [2, 2], "output_shape": [15, 14]}),
    ((1, 3, 13), (3, 4, 5), {"strides": [3], "pads": [2, 1]}),                          # 1-D
    ((1, 2, 5, 7, 6), (2, 3, 3, 2, 3), {"strides": [2, 1, 2], "pads": [1, 0, 1, 0, 1, 1]}),  # 3-D
    ((1, 4, 5, 4, 3), (4, 1, 2, 2, 2), {"strides": [2, 2, 2], "group": 2}),
])
def test_conv_transpose_matches_onnxruntime(x_shape, w_shape, attrs):
    model = conv_transpose_model(x_shape, w_shape, **attrs)
    assert_matches_onnxruntime(model, {"x": randn(*x_shape)})


def test_conv_transpose_runtime_weight_and_no_bias():
    model = conv_transpose_model((1, 3, 7, 7), (3, 2, 3, 3), bias=False, const_weight=False, strides=[2, 2],
                                 pads=[1, 1, 1, 1])
    assert_matches_onnxruntime(model, {"x": randn(1, 3, 7, 7), "w": randn(3, 2, 3, 3, seed=3)})


@pytest.mark.parametrize("attrs", [
    {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {"auto_pad": "SAME_LOWER", "strides": [2, 2]},
    {"auto_pad": "VALID", "strides": [2, 2]}, {"auto_pad": "SAME_UPPER", "output_shape": [14, 13], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "strides": [3, 2], "output_padding": [2, 1]},
])
def test_conv_transpose_padding_modes_match_the_reference(attrs):
    """Odd total padding splits by the spec (the reference evaluator; onnxruntime splits the other way)."""
    model = conv_transpose_model((1, 2, 7, 7), (2, 2, 3, 3), bias=False, **attrs)
    x = randn(1, 2, 7, 7)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    got = run_tecomp(model, {"x": x})[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_transpose_stride_2_uses_the_fast_conv_layout():
    """The constant weight is transformed at build time and the conv runs blocked (conv2d_nchwc)."""
    from tecomp.graph.passes import optimize
    from tecomp.target import Target

    model = conv_transpose_model((1, 16, 7, 7), (16, 8, 2, 2), strides=[2, 2])
    graph, params = from_onnx(model)
    assert [nd.op for nd in graph.nodes] == ["conv_transpose_kernel", "dilate_pad", "conv2d_nchw"]
    ops = [nd.op for nd in optimize(graph, params, Target("llvm"))[0].nodes]
    assert "conv2d_nchwc" in ops and "conv_transpose_kernel" not in ops and "conv2d_nchw" not in ops


@pytest.mark.parametrize("attrs, message", [
    ({"auto_pad": "EXPLICIT"}, "auto_pad"),
    ({"kernel_shape": [2, 2]}, "kernel_shape"),
    ({"group": 2}, "group"),
    ({"pads": [4, 4, 4, 4]}, "empty output"),
    ({"output_shape": [1, 2, 9, 9]}, "output_shape"),
])
def test_conv_transpose_rejections_name_the_attribute(attrs, message):
    model = conv_transpose_model((1, 3, 5, 5), (3, 2, 3, 3), **attrs)
    with pytest.raises(GraphError, match=message):
        from_onnx(model)


# ---------------------------------------------------------------------------- Conv 3-D

@pytest.mark.parametrize("attrs", [
    {"pads": [1, 1, 1, 1, 1, 1]},
    {"strides": [2, 1, 2], "dilations": [1, 2, 1], "pads": [0, 1, 2, 1, 0, 1], "group": 2},
    {"auto_pad": "SAME_UPPER", "strides": [2, 2, 2]},
])
def test_conv3d_matches_onnxruntime(attrs):
    groups = attrs.get("group", 1)
    model = make_model([helper.make_node("Conv", ["x", "w", "b"], ["y"], **attrs)], {"x": (F, [2, 4, 7, 6, 5])},
                       {"y": (F, None)}, {"w": randn(6, 4 // groups, 3, 3, 3, seed=1), "b": randn(6, seed=2)})
    assert_matches_onnxruntime(model, {"x": randn(2, 4, 7, 6, 5)})


# ---------------------------------------------------------------------------- pooling

@pytest.mark.parametrize("op, attrs, x_shape", [
    ("MaxPool", {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1, 1, 1, 1, 1, 1]}, (1, 3, 7, 7, 7)),
    ("MaxPool", {"kernel_shape": [2, 3, 2], "dilations": [2, 1, 2], "ceil_mode": 1, "strides": [2, 2, 2]},
     (2, 2, 9, 7, 13)),
    ("AveragePool", {"kernel_shape": [3, 3, 3], "strides": [2, 2, 2], "pads": [1, 1, 1, 1, 1, 1],
                     "count_include_pad": 1}, (1, 2, 7, 7, 7)),
    ("AveragePool", {"kernel_shape": [2, 2, 3], "strides": [1, 2, 2], "pads": [0, 1, 1, 1, 0, 1]}, (1, 2, 5, 7, 9)),
    ("MaxPool", {"kernel_shape": [3, 3], "dilations": [2, 2], "pads": [1, 2, 2, 1], "strides": [2, 1]},
     (1, 3, 13, 11)),
    ("AveragePool", {"kernel_shape": [3, 2], "dilations": [2, 3], "strides": [2, 2], "pads": [2, 1, 2, 1],
                     "count_include_pad": 1}, (1, 2, 13, 11)),
    ("AveragePool", {"kernel_shape": [3, 3], "dilations": [2, 2], "strides": [2, 2], "pads": [2, 1, 1, 2],
                     "ceil_mode": 1}, (1, 2, 13, 12)),
    ("MaxPool", {"kernel_shape": [3], "dilations": [3], "strides": [2]}, (2, 3, 13)),
    ("LpPool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (1, 3, 7, 7)),
    ("LpPool", {"kernel_shape": [2, 3], "p": 3, "dilations": [2, 1], "strides": [1, 2]}, (1, 2, 9, 7)),
    ("LpPool", {"kernel_shape": [3], "p": 1, "auto_pad": "SAME_UPPER", "strides": [2]}, (1, 2, 13)),
    ("LpPool", {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}, (1, 2, 5, 7, 6)),
    ("GlobalLpPool", {"p": 3}, (2, 3, 7, 5)),
])
def test_pooling_matches_onnxruntime(op, attrs, x_shape):
    opset = 21 if op == "GlobalLpPool" else 22  # onnxruntime has no GlobalLpPool-22 kernel
    model = make_model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": (F, list(x_shape))}, {"y": (F, None)},
                       opset=opset)
    assert_matches_onnxruntime(model, {"x": randn(*x_shape)})


@pytest.mark.parametrize("storage_order", [0, 1])
@pytest.mark.parametrize("attrs, x_shape", [
    ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, (1, 3, 7, 9)),
    ({"kernel_shape": [2, 2, 3], "strides": [2, 1, 2], "dilations": [1, 2, 1]}, (1, 2, 5, 7, 7)),
    ({"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, (2, 2, 13)),
])
def test_maxpool_indices_match_onnxruntime(attrs, x_shape, storage_order):
    model = make_model([helper.make_node("MaxPool", ["x"], ["y", "i"], storage_order=storage_order, **attrs)],
                       {"x": (F, list(x_shape))}, {"y": (F, None), "i": (TensorProto.INT64, None)})
    assert_matches_onnxruntime(model, {"x": randn(*x_shape)})


@pytest.mark.parametrize("elem, dtype", [(TensorProto.UINT8, "uint8"), (TensorProto.INT8, "int8")])
def test_integer_maxpool(elem, dtype):
    model = make_model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                         pads=[1, 1, 1, 1])], {"x": (elem, [1, 2, 7, 9])}, {"y": (elem, None)})
    info = np.iinfo(dtype)
    x = np.random.default_rng(0).integers(info.min, info.max, (1, 2, 7, 9), endpoint=True).astype(dtype)
    assert_matches_onnxruntime(model, {"x": x})


# ---------------------------------------------------------------------------- normalisation

@pytest.mark.parametrize("x_shape", [(2, 3, 7, 13), (1, 5, 197), (2, 4, 3, 5, 7), (1, 3, 16, 16)])
def test_instance_norm_matches_onnxruntime(x_shape):
    c = x_shape[1]
    model = make_model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)],
                       {"x": (F, list(x_shape))}, {"y": (F, None)}, {"s": randn(c, seed=1), "b": randn(c, seed=2)})
    assert_matches_onnxruntime(model, {"x": randn(*x_shape) * 3 + 1})


@pytest.mark.parametrize("opset, groups, x_shape", [(21, 2, (2, 6, 7, 5)), (21, 3, (1, 3, 197)), (18, 2, (2, 4, 9, 7)),
                                                    (21, 4, (1, 8, 16, 4))])
def test_group_norm_matches_the_reference(opset, groups, x_shape):
    """onnxruntime has no GroupNormalization kernel in its default domain; the reference evaluator is the spec."""
    c = x_shape[1]
    params = c if opset >= 21 else groups
    model = make_model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=groups,
                                         epsilon=1e-4)],
                       {"x": (F, list(x_shape))}, {"y": (F, None)},
                       {"s": randn(params, seed=1), "b": randn(params, seed=2)}, opset=opset)
    x = randn(*x_shape) * 2 - 1
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_tecomp(model, {"x": x})[0], want, rtol=1e-4, atol=1e-4)


def test_group_norm_stash_type_computes_float16_in_float32():
    model = make_model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2, stash_type=1)],
                       {"x": (TensorProto.FLOAT16, [1, 4, 33])}, {"y": (TensorProto.FLOAT16, None)},
                       {"s": randn(4, seed=1).astype("float16"), "b": randn(4, seed=2).astype("float16")}, opset=21)
    graph, _ = from_onnx(model)
    assert "cast" in [nd.op for nd in graph.nodes]
    x = randn(1, 4, 33).astype("float16")
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_tecomp(model, {"x": x})[0].astype("float32"), want.astype("float32"),
                               rtol=2e-3, atol=4e-3)


def test_group_norm_rejects_groups_not_dividing_channels():
    model = make_model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=4)],
                       {"x": (F, [1, 6, 5])}, {"y": (F, None)}, {"s": randn(6), "b": randn(6)}, opset=21)
    with pytest.raises(GraphError, match="num_groups=4"):
        from_onnx(model)


@pytest.mark.parametrize("x_shape", [(3, 4, 7, 5), (5, 3)])
def test_batch_norm_training_mode_matches_onnxruntime(x_shape):
    c = x_shape[1]
    model = make_model([helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                                         training_mode=1, momentum=0.8, epsilon=1e-3)],
                       {"x": (F, list(x_shape))}, {"y": (F, None), "rm": (F, None), "rv": (F, None)},
                       {"s": randn(c, seed=1), "b": randn(c, seed=2), "m": randn(c, seed=3),
                        "v": np.abs(randn(c, seed=4)) + 0.5}, opset=15)
    assert_matches_onnxruntime(model, {"x": randn(*x_shape) * 2 + 1})
