"""tecomp.graph.build on whole models: results against numpy, fusion, memory plan, input checks."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import graph_models as models
import tecomp.graph
import tecomp.graph.passes
import tecomp.target
from tecomp.error import ArgumentError, GraphError
from tecomp.graph import Graph, Node, TensorType

MODEL_NAMES = sorted(models.MODELS)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("options", [{}, {"fuse_ops": False, "optimize": False}], ids=["optimized", "plain"])
def test_model_matches_numpy(built, name, options):
    graph, _, reference, module = built(name, **options)
    inputs = models.random_inputs(graph, seed=1)
    got = module.run(**inputs)
    want = reference(**inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_model_compiled_by_llvm_worker_processes_matches_numpy(monkeypatch, name):
    from tecomp.codegen import parallel_objects
    monkeypatch.setattr(parallel_objects, "MODULES_PER_WORKER", 1)  # every kernel goes to a worker
    monkeypatch.setenv("TECOMP_BUILD_JOBS", "2")
    graph, params, reference = models.MODELS[name]()
    inputs = models.random_inputs(graph, seed=2)
    for got, want in zip(tecomp.graph.build(graph, "llvm", params).run(**inputs), reference(**inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_fusion_and_passes_reduce_kernel_calls(built, name):
    optimized = built(name)[3]
    plain = built(name, fuse_ops=False, optimize=False)[3]
    assert optimized.kernel_count < plain.kernel_count
    graph = built(name)[0]
    views = sum(n.op in ("reshape", "flatten") for n in graph.nodes)  # reshapes share their input's bytes
    assert plain.kernel_count == len(graph.nodes) - views


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_memory_plan_reuses_buffers(built, name):
    plan = built(name, fuse_ops=False, optimize=False)[3].memory_plan
    assert len(plan.sizes) > 2
    assert 0 < plan.arena_bytes < plan.unplanned_bytes
    assert "peak" in plan.summary()


def test_inputs_by_position_and_name_agree(built):
    graph, _, _, module = built("cnn")
    x = models.random_inputs(graph, seed=2)["x"]
    (a,), (b,) = module.run(x), module.run(x=x)
    np.testing.assert_array_equal(a, b)
    assert module.input_names == ["x"] and module.inputs[0].shape == (1, 3, 16, 16)


@pytest.mark.parametrize("call, message", [
    (lambda m, x: m.run(), "missing model inputs: x"),
    (lambda m, x: m.run(y=x), "no input named 'y'"),
    (lambda m, x: m.run(x, x), "takes 1 inputs"),
    (lambda m, x: m.run(x, x=x), "given twice"),
    (lambda m, x: m.run(x=x[:, :2]), "expected shape (1, 3, 16, 16)"),
    (lambda m, x: m.run(x=x.astype("float64")), "expected dtype float32, got float64"),
    (lambda m, x: m.run(x=object()), "expected dtype float32"),
])
def test_bad_run_inputs_raise_argument_error(built, call, message):
    graph, _, _, module = built("cnn")
    x = models.random_inputs(graph)["x"]
    with pytest.raises(ArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(module, x)


def test_noncontiguous_input_is_accepted(built):
    graph, _, reference, module = built("mlp")
    x = np.asfortranarray(models.random_inputs(graph)["x"])
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)


def _one_node_graph(op: str = "relu", param_shape=(4,)) -> Graph:
    t = TensorType((4,), "float32")
    return Graph({"x": t}, {"p": TensorType(param_shape, "float32")}, [Node(op, ["x", "p"], ["y"], name="n")],
                 ["y"], {"x": t, "p": TensorType(param_shape, "float32"), "y": t})


def test_bad_params_raise_graph_error():
    graph = _one_node_graph("add")
    with pytest.raises(GraphError, match="param 'p' .* has no value"):
        tecomp.graph.build(graph, "llvm", {})
    with pytest.raises(GraphError, match="param 'p': the graph declares float32\\[4\\], the value is float64"):
        tecomp.graph.build(graph, "llvm", {"p": np.zeros(4)})


def test_unknown_operator_and_bad_attrs_name_the_node():
    graph = _one_node_graph("no_such_op")
    with pytest.raises(GraphError, match="'no_such_op' is not in the operator library"):
        tecomp.graph.build(graph, "llvm", {"p": np.zeros(4, "float32")})
    t = TensorType((4,), "float32")
    bad = Graph({"x": t}, {}, [Node("transpose", ["x"], ["y"], {"axes": [3]}, name="perm")], ["y"],
                {"x": t, "y": t})
    with pytest.raises(GraphError, match="node 'perm' \\(transpose\\).*axes"):
        tecomp.graph.build(bad, "llvm", {})


def test_node_output_type_must_match_the_graph():
    t = TensorType((4,), "float32")
    lying = Graph({"x": t}, {}, [Node("relu", ["x"], ["y"], name="r")], ["y"],
                  {"x": t, "y": TensorType((5,), "float32")})
    with pytest.raises(GraphError, match="node 'r' \\(relu\\): output 'y' is float32\\[4\\], the graph says float32\\[5\\]"):
        tecomp.graph.build(lying, "llvm", {})


def test_outputs_that_are_inputs_params_or_repeated_are_copied():
    t = TensorType((4,), "float32")
    graph = Graph({"x": t}, {"p": t}, [Node("relu", ["x"], ["y"], name="r")], ["y", "x", "p", "y"],
                  {"x": t, "p": t, "y": t})
    p = np.arange(4, dtype="float32")
    module = tecomp.graph.build(graph, "llvm", {"p": p})
    x = np.array([-1, 2, -3, 4], "float32")
    y, x_out, p_out, y2 = module.run(x)
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(x_out, x)
    np.testing.assert_array_equal(p_out, p)


def test_multi_output_operator_and_unused_output():
    t = TensorType((6, 2), "float32")
    half = TensorType((3, 2), "float32")
    graph = Graph({"x": t}, {}, [Node("split", ["x"], ["a", "b"], {"indices_or_sections": 2}, name="s"),
                                 Node("exp", ["b"], ["e"], name="e")], ["a", "e"],
                  {"x": t, "a": half, "b": half, "e": half})
    x = np.arange(12, dtype="float32").reshape(6, 2) / 10
    a, e = tecomp.graph.build(graph, "llvm", {}).run(x)
    np.testing.assert_allclose(a, x[:3])
    np.testing.assert_allclose(e, np.exp(x[3:]), rtol=1e-6)


def test_reshapes_are_views_that_keep_their_source_alive():
    n = models.Net(9)
    x = n.input("x", (4, 6))
    a = n.op("exp", x)
    view = n.op("reshape", a, newshape=[6, 4])      # shares a's bytes: a must outlive every reader of view
    b = n.op("negative", x)
    c = n.op("relu", b)                               # allocated while a is still needed
    d = n.op("reshape", n.op("flatten", c), newshape=[6, 4])
    out = n.op("add", view, d)
    graph = n.graph(out)
    module = tecomp.graph.build(graph, "llvm", {}, fuse_ops=False)
    assert module.kernel_count == 4  # exp, negative, relu, add
    xv = models.random_inputs(graph, seed=3)["x"]
    np.testing.assert_allclose(module.run(xv)[0], np.exp(xv).reshape(6, 4) + np.maximum(-xv, 0).reshape(6, 4),
                               rtol=1e-6)


class _TensorInfo(ctypes.Structure):
    """tecomp_tensor_info of examples/c/tecomp_model.h."""

    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_char_p), ("ndim", ctypes.c_int32),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("nbytes", ctypes.c_int64)]


def test_odd_value_names_survive_the_c_executor():
    name = 'in "x"\n*/ \\ é??='
    t = TensorType((2, 3), "float32")
    graph = Graph({name: t}, {}, [Node("negative", [name], ["out*/"], name="n*/")], ["out*/"], {name: t, "out*/": t})
    module = tecomp.graph.build(graph, "llvm", {})
    assert module.input_names == [name] and module.output_names == ["out*/"]
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(module.run(**{name: x})[0], -x)
    lib = ctypes.CDLL(module.library_path)
    lib.tecomp_model_input.restype = ctypes.POINTER(_TensorInfo)
    info = lib.tecomp_model_input(0).contents
    assert info.name.decode() == name and info.dtype == b"float32" and info.ndim == 2
    assert [info.shape[0], info.shape[1]] == [2, 3] and info.nbytes == 24
    assert not lib.tecomp_model_input(1)


def test_keyword_tensor_inputs_round_trip_and_are_validated():
    graph, _, _ = models.cnn()
    optimized, _ = tecomp.graph.passes.optimize(graph, None, tecomp.target.Target("llvm"))
    with_bias = [n for n in optimized.nodes if n.kwinputs]
    assert with_bias and all(set(n.kwinputs) == {"bias"} for n in with_bias)
    again = Graph.from_json(optimized.to_json())
    assert [n.kwinputs for n in again.nodes] == [n.kwinputs for n in optimized.nodes]
    assert "bias=" in str(again)
    with_bias[0].kwinputs = {"bias": "nowhere"}
    with pytest.raises(GraphError, match="input 'nowhere' is not defined before it"):
        optimized.validate()


def test_zero_dimensional_param():
    """A scalar (0-d) constant stays 0-d through constant folding and the run."""
    f32 = lambda *shape: TensorType(tuple(shape), "float32")  # noqa: E731
    graph = Graph({"x": f32(4)}, {"p": f32()},
                  [Node("sqrt", ["p"], ["r"], {}, "root"), Node("add", ["x", "r"], ["y"], {}, "plus")],
                  ["y"], {"x": f32(4), "p": f32(), "r": f32(), "y": f32(4)})
    module = tecomp.graph.build(graph, "llvm", {"p": np.array(9.0, "float32")})
    x = np.arange(4, dtype="float32")
    np.testing.assert_allclose(module.run(x)[0], x + 3.0)
