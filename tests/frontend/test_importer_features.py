"""Importer features: older opsets upgraded on import, inputs frozen into import-time constants
(``freeze=``), ``import tecomp`` giving its subpackages lazily, float16 models end to end."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tecomp.error import GraphError
from tecomp.frontend import UnsupportedOperatorError, from_onnx, supported_ops
from tecomp.frontend.importer import NotConstantError

from conftest import assert_matches_onnxruntime, run_tecomp

F, I64, H = TensorProto.FLOAT, TensorProto.INT64, TensorProto.FLOAT16


def make_model(nodes, inputs, outputs, initializers=(), opset=17, ir_version=8):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(k, t, s) for k, (t, s) in inputs.items()],
        [helper.make_tensor_value_info(k, t, s) for k, (t, s) in outputs.items()],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(initializers).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version)


rng = np.random.default_rng(7)


# ---------------------------------------------------------------------------- older opsets

def test_upsample9_becomes_resize():
    model = make_model([helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")],
                       {"x": (F, [1, 3, 5, 7])}, {"y": (F, None)},
                       {"scales": np.array([1, 1, 2, 3], "float32")}, opset=9, ir_version=4)
    if "Resize" not in supported_ops():  # the upgraded model is reported in its opset-13 form
        with pytest.raises(UnsupportedOperatorError, match=r"Resize \(node .*\): no converter"):
            from_onnx(model)
        return
    x = rng.standard_normal((1, 3, 5, 7)).astype("float32")
    (y,) = run_tecomp(model, {"x": x})
    np.testing.assert_array_equal(y, x.repeat(2, axis=2).repeat(3, axis=3))


def test_slice1_attributes_and_squeeze_axes_attribute():  # both moved to inputs later
    model = make_model([helper.make_node("Slice", ["x"], ["s"], starts=[0, 2], ends=[1, 11], axes=[0, 2]),
                        helper.make_node("Squeeze", ["s"], ["y"], axes=[0])],
                       {"x": (F, [3, 5, 13])}, {"y": (F, None)}, opset=9, ir_version=4)
    x = rng.standard_normal((3, 5, 13)).astype("float32")
    (y,) = run_tecomp(model, {"x": x})
    np.testing.assert_array_equal(y, x[0, :, 2:11])


def test_batch_norm9_matches_onnxruntime():
    c = 7
    stats = {"g": rng.uniform(0.5, 2, c), "b": rng.standard_normal(c), "m": rng.standard_normal(c),
             "v": rng.uniform(0.5, 2, c)}
    model = make_model([helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["y"], epsilon=1e-3)],
                       {"x": (F, [2, c, 5, 3])}, {"y": (F, None)},
                       {k: v.astype("float32") for k, v in stats.items()}, opset=9, ir_version=4)
    assert_matches_onnxruntime(model, {"x": rng.standard_normal((2, c, 5, 3)).astype("float32")})


@pytest.mark.parametrize("opset", [11, 12])
def test_axes_attributes_of_opsets_11_and_12(opset):
    # Squeeze-11 and ReduceSum-11 take axes as attributes; Softmax-11 flattens from its axis
    nodes = [helper.make_node("Squeeze", ["x"], ["s"], axes=[0]),
             helper.make_node("ReduceSum", ["s"], ["r"], axes=[2], keepdims=1),
             helper.make_node("Softmax", ["r"], ["y"], axis=1)]
    model = make_model(nodes, {"x": (F, [1, 5, 7, 13])}, {"y": (F, None)}, opset=opset, ir_version=7)
    assert_matches_onnxruntime(model, {"x": rng.standard_normal((1, 5, 7, 13)).astype("float32")})


def test_conversion_failure_names_the_node_and_op():
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="act"),
                        helper.make_node("BatchNormalization", ["r", "g", "b", "m", "v"], ["y"], name="bn",
                                         spatial=0)],
                       {"x": (F, [1, 2, 3, 3])}, {"y": (F, None)},
                       {k: np.ones(2, "float32") for k in "gbmv"}, opset=7, ir_version=4)
    with pytest.raises(GraphError, match=r"opset 7, which tecomp upgrades to opset 13 on import, but "
                                         r"onnx.version_converter cannot convert node 'bn' \(BatchNormalization\): "
                                         r".*spatial"):
        from_onnx(model)


def test_opsets_too_old_to_upgrade_are_rejected():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": (F, [2])}, {"y": (F, [2])}, opset=6,
                       ir_version=3)
    with pytest.raises(GraphError, match="opset 6; tecomp converts opsets 13 to .* upgrades opsets 7 to 12"):
        from_onnx(model)


# ---------------------------------------------------------------------------- freeze=

def _reduce_model():
    return make_model([helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)],
                      {"x": (F, ["n", 13]), "axes": (I64, [1])}, {"y": (F, None)})


def test_freeze_turns_an_input_into_a_constant():
    x = rng.standard_normal((7, 13)).astype("float32")
    graph, params = from_onnx(_reduce_model(), shape={"x": (7, 13)}, freeze={"axes": np.array([1])})
    assert list(graph.inputs) == ["x"]
    import tecomp.graph
    (y,) = tecomp.graph.build(graph, "llvm", params).run(x=x)
    np.testing.assert_allclose(y, x.sum(axis=1), rtol=1e-5)


def test_runtime_operand_names_the_input_and_the_option():
    with pytest.raises(NotConstantError, match=r"computed at run time from graph input\(s\) 'axes': give their "
                                               r"values at import with from_onnx\(..., freeze=\{'axes': array\}\) "
                                               r"or tecomp compile --freeze axes=file.npy") as info:
        from_onnx(_reduce_model(), shape={"x": (7, 13)})
    assert info.value.inputs == ("axes",)


def test_operand_computed_from_an_input_names_that_input():
    # target = Concat(Shape(x)[0:1], k): Shape keeps folding, k is the input to freeze
    nodes = [helper.make_node("Shape", ["x"], ["sx"]),
             helper.make_node("Slice", ["sx", "zero", "one"], ["lead"]),
             helper.make_node("Concat", ["lead", "k"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    model = make_model(nodes, {"x": (F, [5, 6, 7]), "k": (I64, [1])}, {"y": (F, None)},
                       {"zero": np.array([0]), "one": np.array([1])})
    with pytest.raises(NotConstantError, match=r"from graph input\(s\) 'k'") as info:
        from_onnx(model)
    assert info.value.value_name == "target"
    x = rng.standard_normal((5, 6, 7)).astype("float32")
    graph, params = from_onnx(model, freeze={"k": np.array([42])})
    import tecomp.graph
    (y,) = tecomp.graph.build(graph, "llvm", params).run(x=x)
    np.testing.assert_array_equal(y, x.reshape(5, 42))


@pytest.mark.parametrize("freeze, message", [
    ({"ghost": np.array([1])}, r"freeze= names \['ghost'\], which are not inputs"),
    ({"axes": np.array([1], "int32")}, "array of dtype int32, but the model declares int64"),
    ({"axes": np.array([1, 0])}, r"array of shape \(2,\), but the model declares shape \[1\]"),
    ({"axes": [1]}, "must be a numpy array, got list"),
    ({"axes": np.array(["1"])}, "array of dtype <U1; expected one of"),
])
def test_bad_freeze_values_are_explained(freeze, message):
    with pytest.raises(GraphError, match=message):
        from_onnx(_reduce_model(), shape={"x": (7, 13)}, freeze=freeze)


def test_freeze_and_shape_for_one_input_conflict():
    with pytest.raises(GraphError, match="both shape= and freeze="):
        from_onnx(_reduce_model(), shape={"x": (7, 13), "axes": (1,)}, freeze={"axes": np.array([1])})


# ---------------------------------------------------------------------------- import tecomp

def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_import_tecomp_gives_graph_and_frontend_lazily():
    done = _python("import sys, tecomp\n"
                   "assert 'tecomp.graph' not in sys.modules and 'onnx' not in sys.modules\n"
                   "print(tecomp.graph.build.__name__, tecomp.frontend.from_onnx.__name__)\n"
                   "assert 'onnx' in sys.modules\n"
                   "try:\n    tecomp.nothing\nexcept AttributeError as e:\n    print(e)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["build from_onnx", "module 'tecomp' has no attribute 'nothing'"]


def test_frontend_without_onnx_says_how_to_install_it():
    done = _python("import sys\nsys.modules['onnx'] = None  # as if onnx were not installed\n"
                   "import tecomp\nprint(tecomp.graph.Graph.__name__)\ntecomp.frontend\n")
    assert done.returncode != 0 and done.stdout.strip() == "Graph"
    assert "ModuleNotFoundError: tecomp.frontend needs the onnx package, which is not installed: " \
           "pip install 'tecomp[onnx]'" in done.stderr


# ---------------------------------------------------------------------------- float16 models

def _fp16(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype("float16")


FLOAT16_MODELS = {
    "conv_relu": ([helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
                   helper.make_node("Relu", ["c"], ["y"])], (1, 5, 13, 13),
                  {"w": _fp16(8, 5, 3, 3, scale=0.3), "b": _fp16(8)}, 17),
    "depthwise_conv": ([helper.make_node("Conv", ["x", "w"], ["y"], group=6, strides=[2, 2])], (1, 6, 15, 15),
                       {"w": _fp16(6, 1, 3, 3)}, 17),
    "matmul_add": ([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                   (7, 197), {"w": _fp16(197, 13, scale=0.1), "b": _fp16(13)}, 17),
    "batch_matmul_softmax": ([helper.make_node("MatMul", ["x", "w"], ["m"]),
                              helper.make_node("Softmax", ["m"], ["y"], axis=-1)], (3, 7, 45),
                             {"w": _fp16(3, 45, 37, scale=0.3)}, 17),
    "layer_norm": ([helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)], (7, 197),
                   {"s": _fp16(197), "b": _fp16(197)}, 17),
    "gelu_exp_tanh": ([helper.make_node("Gelu", ["x"], ["g"]), helper.make_node("Exp", ["g"], ["e"]),
                       helper.make_node("Tanh", ["e"], ["t"]), helper.make_node("Sigmoid", ["x"], ["s"]),
                       helper.make_node("Mul", ["t", "s"], ["y"])], (13, 37), {}, 20),
    "reduce_mean_sum": ([helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=0),
                         helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0),
                         helper.make_node("Add", ["m", "s"], ["y"])], (7, 1000),
                        {"axes": np.array([1])}, 18),
}


@pytest.mark.parametrize("name", FLOAT16_MODELS)
def test_float16_model_matches_onnxruntime(name):
    nodes, shape, weights, opset = FLOAT16_MODELS[name]
    model = make_model(nodes, {"x": (H, list(shape))}, {"y": (H, None)}, weights, opset=opset)
    assert_matches_onnxruntime(model, {"x": _fp16(*shape)}, rtol=1e-3)
