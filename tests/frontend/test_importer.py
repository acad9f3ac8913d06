"""from_onnx and load_onnx: the graphs they emit, static shapes, and every kind of bad input."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from conftest import assert_matches_onnxruntime, onnx_models, run_tecomp
from onnx import TensorProto, helper, numpy_helper

from tecomp.error import GraphError
from tecomp.frontend import UnsupportedOperatorError, from_onnx, load_onnx, supported_ops
from tecomp.frontend.importer import NotConstantError
from tecomp.frontend.registry import CONVERTERS, Converter, find
from tecomp.graph import Graph

F = TensorProto.FLOAT


def make_model(nodes, inputs, outputs, initializers=(), opset=17):
    """A model from nodes; ``inputs``/``outputs`` map names to (elem type, shape)."""
    def infos(values):
        return [helper.make_tensor_value_info(k, t, s) for k, (t, s) in values.items()]

    graph = helper.make_graph(nodes, "test", infos(inputs), infos(outputs),
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)


def inputs_for(model, shapes, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype("float32") for k, s in shapes.items()}


# ---------------------------------------------------------------------------- emitted graphs

def test_mlp_graph_is_library_calls_with_params():
    model = onnx_models.mlp(batch=2, sizes=(8, 6, 4))
    graph, params = from_onnx(model)
    assert [n.op for n in graph.nodes] == ["dense", "relu", "dense"]
    assert all(set(n.kwinputs) == {"bias"} for n in graph.nodes if n.op == "dense")
    assert set(params) == set(graph.params) == {t.name for t in model.graph.initializer}
    assert graph.inputs["input"].shape == (2, 8) and graph.types[graph.outputs[0]].shape == (2, 4)
    assert graph.outputs == [model.graph.output[0].name]  # the last node's value keeps its ONNX name
    assert Graph.from_json(graph.to_json()).to_json() == graph.to_json()


def test_shape_subgraph_is_evaluated_at_import():
    """Shape -> Gather -> Unsqueeze -> Concat -> Reshape becomes one reshape with a static target."""
    model = onnx_models.transformer_encoder(layers=1, d_model=8, heads=2, ffn=8)
    graph, params = from_onnx(model, shape={"input": (3, 5, 8)})
    ops = [n.op for n in graph.nodes]
    assert "reshape" in ops and not {"take", "concatenate"} & set(ops)
    assert all(t.dtype == "float32" for t in graph.params.values())
    targets = [n.attrs["newshape"] for n in graph.nodes if n.op == "reshape"]
    assert [3, 5, 2, 4] in targets and [3, 5, 8] in targets  # the heads' split and merge
    graph.validate()  # every value defined and typed


def test_symbolic_dimensions_take_the_shape_argument():
    model = onnx_models.transformer_encoder(layers=1, d_model=8, heads=2, ffn=8)
    for batch, seq in ((1, 4), (2, 7)):
        graph, _ = from_onnx(model, shape={"input": (batch, seq, 8)})
        assert graph.types[graph.outputs[0]].shape == (batch, seq, 8)


def test_dtype_argument_fills_an_undefined_element_type():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (TensorProto.UNDEFINED, [2, 3])},
                       {"y": (F, [2, 3])})
    with pytest.raises(GraphError, match="input 'x' has no element type.*dtype="):
        from_onnx(model)
    graph, _ = from_onnx(model, dtype="float32")
    assert graph.inputs["x"].dtype == "float32"
    graph, _ = from_onnx(model, dtype={"x": "float64"})
    assert graph.inputs["x"].dtype == "float64"


def test_identity_and_shape_outputs():
    """An output that is an input (Identity) and one known at import (Shape) still come out of the module."""
    model = make_model([helper.make_node("Identity", ["x"], ["same"]), helper.make_node("Shape", ["x"], ["dims"]),
                        helper.make_node("Neg", ["x"], ["neg"])],
                       {"x": (F, [2, 3])}, {"same": (F, [2, 3]), "dims": (TensorProto.INT64, [2]),
                                            "neg": (F, [2, 3])})
    x = inputs_for(model, {"x": (2, 3)})
    same, dims, neg = run_tecomp(model, x)
    np.testing.assert_array_equal(same, x["x"])
    np.testing.assert_array_equal(dims, np.array([2, 3], "int64"))
    np.testing.assert_array_equal(neg, -x["x"])


@pytest.mark.parametrize("a_shape, b_shape", [
    ((3,), (3, 4)), ((2, 3), (3,)), ((3,), (2, 3, 4)), ((2, 5, 3), (3, 4)), ((2, 5, 3), (2, 3, 4)),
    ((5, 3), (2, 3, 4)), ((2, 1, 5, 3), (1, 4, 3, 6)), ((1, 5, 3), (4, 3, 2)),
])
def test_matmul_broadcasting(a_shape, b_shape):
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"])], {"a": (F, a_shape), "b": (F, b_shape)},
                       {"y": (F, None)})
    x = inputs_for(model, {"a": a_shape, "b": b_shape})
    (got,) = run_tecomp(model, x)
    np.testing.assert_allclose(got, np.matmul(x["a"], x["b"]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("attrs, c_shape", [
    ({}, None), ({"alpha": 0.5, "beta": 2.0}, (4,)), ({"transA": 1}, (3, 4)), ({"transB": 1, "beta": 0.0}, (1,)),
    ({"transA": 1, "transB": 1, "alpha": -1.0}, (3, 1)),
])
def test_gemm_variants(attrs, c_shape):
    a_shape = (5, 3) if attrs.get("transA") else (3, 5)
    b_shape = (4, 5) if attrs.get("transB") else (5, 4)
    inits = {"c": np.linspace(-1, 1, int(np.prod(c_shape))).reshape(c_shape).astype("float32")} if c_shape else {}
    model = make_model([helper.make_node("Gemm", ["a", "b"] + (["c"] if c_shape else []), ["y"], **attrs)],
                       {"a": (F, a_shape), "b": (F, b_shape)}, {"y": (F, [3, 4])}, inits)
    assert_matches_onnxruntime(model, inputs_for(model, {"a": a_shape, "b": b_shape}), rtol=1e-5)


@pytest.mark.parametrize("op, attrs", [
    ("Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}), ("Conv", {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("Conv", {"auto_pad": "VALID", "dilations": [2, 2]}), ("Conv", {"pads": [1, 0, 2, 1], "group": 2}),
    ("MaxPool", {"auto_pad": "SAME_UPPER", "kernel_shape": [3, 3], "strides": [2, 2]}),
    ("AveragePool", {"auto_pad": "SAME_LOWER", "kernel_shape": [2, 3], "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1, "ceil_mode": 1,
                     "strides": [2, 2]}),
])
def test_window_padding_modes(op, attrs):
    w_shape = (4, 4 // attrs.get("group", 1), 3, 3)
    inits = {"w": np.random.default_rng(1).standard_normal(w_shape).astype("float32")} if op == "Conv" else {}
    model = make_model([helper.make_node(op, ["x"] + (["w"] if op == "Conv" else []), ["y"], **attrs)],
                       {"x": (F, [1, 4, 9, 8])}, {"y": (F, None)}, inits)
    assert_matches_onnxruntime(model, inputs_for(model, {"x": (1, 4, 9, 8)}), rtol=1e-5)


def test_conv1d_and_pool1d_run_as_2d():
    w = np.random.default_rng(2).standard_normal((3, 2, 3)).astype("float32")
    model = make_model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1], strides=[2]),
                        helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2])],
                       {"x": (F, [2, 2, 11])}, {"y": (F, None)}, {"w": w})
    assert_matches_onnxruntime(model, inputs_for(model, {"x": (2, 2, 11)}), rtol=1e-5)


# ---------------------------------------------------------------------------- bad inputs

def test_unsupported_ops_are_listed_all_at_once():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Det", ["a"], ["b"], name="det1"),
             helper.make_node("NonZero", ["a"], ["c"], name="nz"),
             helper.make_node("Det", ["a"], ["d"], name="det2"),
             helper.make_node("FusedGemm", ["a", "a"], ["e"], name="ms", domain="com.microsoft")]
    model = make_model(nodes, {"x": (F, [1, 1, 2, 2])}, {"b": (F, None), "c": (TensorProto.INT64, None),
                                                           "d": (F, None), "e": (F, None)})
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(UnsupportedOperatorError) as info:
        from_onnx(model)
    assert [(op, name) for op, name, _ in info.value.nodes] == [
        ("Det", "det1"), ("NonZero", "nz"), ("Det", "det2"), ("com.microsoft.FusedGemm", "ms")]
    message = str(info.value)
    assert "4 unsupported node(s) of 3 op type(s)" in message
    assert all(f"node {name!r}" in message for name in ("det1", "nz", "det2", "ms"))


def test_an_unsupported_operator_version_is_reported(monkeypatch):
    monkeypatch.setitem(CONVERTERS, "Relu", Converter("Relu", (13,), CONVERTERS["Relu"].convert))
    assert find("Relu", "", 14)[0] is None and "Relu-14 (opset 14) is not supported" in find("Relu", "", 14)[2]
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], {"x": (F, [2])}, {"y": (F, [2])},
                       opset=14)
    with pytest.raises(UnsupportedOperatorError, match="Relu \\(node 'r'\\): Relu-14"):
        from_onnx(model)


@pytest.mark.parametrize("opset", [6, 99])
def test_opset_outside_the_supported_range(opset):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (F, [2])}, {"y": (F, [2])}, opset=opset)
    with pytest.raises(GraphError, match=f"opset {opset}; tecomp converts opsets 13 to"):
        from_onnx(model)


def test_truncated_and_foreign_files(tmp_path):
    model = onnx_models.small_cnn(image=8)
    data = model.SerializeToString()
    good = tmp_path / "good.onnx"
    good.write_bytes(data)
    graph, _ = from_onnx(load_onnx(good))
    assert graph.nodes
    for name, content in (("truncated.onnx", data[: len(data) // 2]), ("tail_cut.onnx", data[:-3]),
                          ("text.onnx", b"this is not a protobuf \xff\xfe"), ("empty.onnx", b"")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(GraphError, match=name):
            load_onnx(path)
    with pytest.raises(GraphError, match="missing.onnx"):
        load_onnx(tmp_path / "missing.onnx")


def test_not_a_model():
    with pytest.raises(GraphError, match="expects an onnx.ModelProto, got str.*load_onnx"):
        from_onnx("model.onnx")
    with pytest.raises(GraphError, match="has no graph"):
        from_onnx(onnx.ModelProto())


@pytest.mark.parametrize("shape, message", [
    ({}, "input 'input' has a dynamic shape \\['batch', 'seq', 8\\].*shape="),
    ({"input": (2, 4)}, "is \\(2, 4\\) \\(rank 2\\), but the model declares rank 3"),
    ({"input": (2, 4, 9)}, "the model fixes dimension\\(s\\) \\[2\\]"),
    ({"input": (2, -4, 8)}, "negative dimension"),
    ({"input": (2, "x", 8)}, "must be a sequence of ints"), ({"input": (2, 4.0, 8)}, "must be a sequence of ints"),
    ({"input": (2, 4, 8), "mask": (2, 4)}, "shape= names \\['mask'\\], which are not inputs.*\\['input'\\]"),
])
def test_wrong_shapes(shape, message):
    model = onnx_models.transformer_encoder(layers=1, d_model=8, heads=2, ffn=8)
    with pytest.raises(GraphError, match=message):
        from_onnx(model, shape=shape)


def test_dtype_problems_name_the_value():
    strings = make_model([helper.make_node("Identity", ["s"], ["t"])], {"s": (TensorProto.STRING, [2])},
                         {"t": (TensorProto.STRING, [2])})
    with pytest.raises(GraphError, match="input 's': ONNX element type STRING is not supported"):
        from_onnx(strings)
    to_bf16 = make_model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16, name="c")],
                         {"x": (F, [2])}, {"y": (TensorProto.BFLOAT16, [2])})
    with pytest.raises(GraphError, match="'c' \\(Cast\\) attribute to: ONNX element type BFLOAT16"):
        from_onnx(to_bf16)
    with pytest.raises(GraphError, match="dtype= gives input 'x' dtype float64, but the model declares float32"):
        from_onnx(to_bf16, dtype="float64")
    ints = make_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")],
                      {"x": (TensorProto.INT32, [1, 1, 3, 3])}, {"y": (TensorProto.INT32, None)},
                      {"w": np.ones((1, 1, 1, 1), "int32")})
    with pytest.raises(GraphError, match="ONNX node 'conv' \\(Conv-11\\): conv2d_nchw: argument data: dtype int32"):
        from_onnx(ints)


@pytest.mark.parametrize("node, message", [
    (helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap", name="p"),  # wrap came with Pad-19
     "'p' \\(Pad-13\\): attribute mode='wrap' is not supported \\(supported: 'constant', 'edge', 'reflect'\\)"),
    (helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], storage_order=2, name="mp"),
     "'mp' \\(MaxPool-12\\): attribute storage_order=2 is not supported"),
    (helper.make_node("Relu", ["x"], ["y"], name="r", flavour=3),
     "'r' \\(Relu-14\\): attribute\\(s\\) flavour are not supported"),
    (helper.make_node("Conv", ["x", "w"], ["y"], auto_pad="SAME", name="c"), "auto_pad='SAME' is not supported"),
    (helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[2, 2], p=0, name="lp"),
     "'lp' \\(LpPool-11\\): attribute p=0 is not supported \\(a positive int\\)"),
    (helper.make_node("Reshape", ["x", "bad_shape"], ["y"], name="rs"),
     "'rs' \\(Reshape-14\\): cannot infer the -1 of shape \\[5, -1\\] for an input of shape \\(1, 2, 4, 4\\)"),
    (helper.make_node("Add", ["x", "ghost"], ["y"], name="a"), "input 1: value 'ghost' is not defined"),
])
def test_bad_nodes_name_node_and_op(node, message):
    inits = {"pads": np.zeros(8, "int64"), "w": np.ones((2, 2, 1, 1), "float32"), "g": np.ones(2, "float32"),
             "bad_shape": np.array([5, -1], "int64")}
    used = {k: v for k, v in inits.items() if k in node.input}
    model = make_model([node], {"x": (F, [1, 2, 4, 4])}, {o: (F, None) for o in node.output if o}, used,
                       opset=17 if node.op_type != "Relu" else 14)
    with pytest.raises(GraphError, match=message):
        from_onnx(model)


def test_runtime_shape_operand_names_the_value():
    model = make_model([helper.make_node("Reshape", ["x", "target"], ["y"], name="rs")],
                       {"x": (F, [2, 3]), "target": (TensorProto.INT64, [1])}, {"y": (F, [6])})
    with pytest.raises(NotConstantError, match="'rs' \\(Reshape-14\\): input 1 \\(shape\\) must be known at "
                                               "import time.*'target' is computed at run time") as info:
        from_onnx(model)
    assert info.value.value_name == "target"


def test_supported_ops_lists_versions():
    ops = supported_ops()
    assert ops["Conv"] == (11, 22) and "Gelu" in ops and "LayerNormalization" in ops
    assert len(ops) >= 70
