"""PyTorch's ``x[mask] = value`` as exported (NonZero -> Transpose -> ScatterND, the updates an Expand
of the value to the run-time count of true elements) imports as a Where, matching onnxruntime; a
NonZero used any other way is refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_matches_onnxruntime
from onnx import TensorProto, helper, numpy_helper

from tecomp.error import GraphError
from tecomp.frontend import UnsupportedOperatorError, from_onnx

_TYPES = {np.dtype("float32"): TensorProto.FLOAT, np.dtype("bool"): TensorProto.BOOL,
          np.dtype("int32"): TensorProto.INT32}


def _ints(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.array(values, np.int64), name)


def assign_model(data_shape, mask_shape, value: np.ndarray, *, mask_dtype="bool", negate=True,
                 value_input=False, reduction=None, updates=None, extra_output=None):
    """``data[mask] = value`` as torch's dynamo exporter writes it (``negate``: the mask is ``~m``,
    as in Wav2Vec2); ``value_input`` makes the value a graph input, ``updates`` replaces the updates'
    nodes by other nodes ending in value ``upd``, ``extra_output`` names a value made a graph output."""
    k = len(mask_shape)
    tail = list(data_shape[k:])
    inits = [_ints("minus_one", [-1]), _ints("updates_shape", [-1, *tail])]
    nodes = [helper.make_node("Not", ["m"], ["mask"]) if negate else helper.make_node("Identity", ["m"], ["mask"])]
    nodes += [helper.make_node("NonZero", ["mask"], ["nz"], name="nz"),
              helper.make_node("Transpose", ["nz"], ["idx"], perm=[1, 0])]
    if updates is None:
        counted = "mask"
        if mask_dtype != "bool":
            nodes.append(helper.make_node("Cast", ["mask"], ["mask_bool"], to=TensorProto.BOOL))
            counted = "mask_bool"
        nodes += [helper.make_node("Reshape", [counted, "minus_one"], ["flat"]),
                  helper.make_node("Cast", ["flat"], ["flat_i64"], to=TensorProto.INT64),
                  helper.make_node("ReduceSum", ["flat_i64"], ["count"], keepdims=1)]
        if tail:
            inits.append(_ints("tail", tail))
            nodes.append(helper.make_node("Concat", ["count", "tail"], ["expand_shape"], axis=0))
        else:
            nodes.append(helper.make_node("Identity", ["count"], ["expand_shape"]))
        nodes += [helper.make_node("Expand", ["value", "expand_shape"], ["expanded"]),
                  helper.make_node("Reshape", ["expanded", "updates_shape"], ["upd"])]
    else:
        nodes += updates
    scatter = {} if reduction is None else {"reduction": reduction}
    nodes.append(helper.make_node("ScatterND", ["data", "idx", "upd"], ["out"], name="assign", **scatter))
    inputs = [helper.make_tensor_value_info("data", TensorProto.FLOAT, data_shape),
              helper.make_tensor_value_info("m", _TYPES[np.dtype(mask_dtype)], mask_shape)]
    if value_input:
        inputs.append(helper.make_tensor_value_info("value", TensorProto.FLOAT, value.shape))
    else:
        inits.append(numpy_helper.from_array(value, "value"))
    outputs = [helper.make_tensor_value_info("out", TensorProto.FLOAT, data_shape)]
    if extra_output:
        outputs.append(helper.make_tensor_value_info(extra_output, TensorProto.INT64, None))
    graph = helper.make_graph(nodes, "masked_assign", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _mask(kind: str, shape, rng) -> np.ndarray:
    """The graph input ``m`` (negated in the model): ``none`` assigns nothing, ``all`` everything."""
    if kind == "none":
        return np.ones(shape, bool)
    if kind == "all":
        return np.zeros(shape, bool)
    return rng.random(shape) < 0.5


def _ops(model, inputs):
    graph, _ = from_onnx(model, shape={k: v.shape for k, v in inputs.items()})
    return [n.op for n in graph.nodes]


@pytest.mark.parametrize("kind", ["random", "none", "all"])
def test_scalar_fill_of_rows_matches_onnxruntime(kind):
    rng = np.random.default_rng(3)
    model = assign_model([2, 7, 13], [2, 7], np.array(-1.5, np.float32))
    inputs = {"data": rng.standard_normal((2, 7, 13)).astype("float32"), "m": _mask(kind, (2, 7), rng)}
    ops = _ops(model, inputs)
    assert "where" in ops and not {"scatter_nd", "sum", "expand"} & set(ops)  # the count's nodes are gone too
    assert_matches_onnxruntime(model, inputs)


def test_elementwise_mask_like_wav2vec2_matches_onnxruntime():
    """Mask as large as the data, a scalar value expanded to the count and flattened."""
    rng = np.random.default_rng(4)
    model = assign_model([1, 24, 13], [1, 24, 13], np.array(0.0, np.float32))
    inputs = {"data": rng.standard_normal((1, 24, 13)).astype("float32"), "m": _mask("random", (1, 24, 13), rng)}
    assert_matches_onnxruntime(model, inputs)


@pytest.mark.parametrize("value_shape,value_input", [((1, 13), False), ((13,), True), ((7, 13), False)])
def test_row_value_matches_onnxruntime(value_shape, value_input):
    """A value that is a whole row, or a suffix of one broadcast over it, a constant or a graph input."""
    rng = np.random.default_rng(5)
    value = rng.standard_normal(value_shape).astype("float32")
    model = assign_model([3, 7, 13], [3], value, negate=False, value_input=value_input)
    inputs = {"data": rng.standard_normal((3, 7, 13)).astype("float32"), "m": np.array([True, False, True])}
    if value_input:
        inputs["value"] = value
    assert_matches_onnxruntime(model, inputs)


def test_non_bool_mask_matches_onnxruntime():
    rng = np.random.default_rng(6)
    model = assign_model([5, 3, 7], [5, 3], np.array(2.25, np.float32), mask_dtype="int32", negate=False)
    inputs = {"data": rng.standard_normal((5, 3, 7)).astype("float32"),
              "m": rng.integers(-1, 2, (5, 3)).astype("int32")}
    assert_matches_onnxruntime(model, inputs)


def _import_error(model, data_shape, mask_shape):
    with pytest.raises(GraphError) as info:
        from_onnx(model, shape={"data": data_shape, "m": mask_shape})
    return info.value


def test_nonzero_used_otherwise_is_refused_with_the_reason():
    gathered = [helper.make_node("GatherND", ["data", "idx"], ["upd"])]  # data[mask] = data[mask]
    err = _import_error(assign_model([2, 7, 13], [2, 7], np.array(0, np.float32), updates=gathered), (2, 7, 13), (2, 7))
    assert isinstance(err, UnsupportedOperatorError)
    message = str(err)
    assert "NonZero (node 'nz')" in message and "depends on the data" in message
    assert "read by 'GatherND#3' (GatherND) as input 1, not as ScatterND's indices" in message

    err = _import_error(assign_model([2, 7, 13], [2, 7], np.array(0, np.float32), extra_output="nz"),
                        (2, 7, 13), (2, 7))
    assert isinstance(err, UnsupportedOperatorError) and "output of node 'nz' is not read by exactly one" in str(err)


def test_scatter_with_reduction_or_unrepeated_updates_is_refused():
    err = _import_error(assign_model([2, 7, 13], [2, 7], np.array(1, np.float32), reduction="add"), (2, 7, 13), (2, 7))
    assert "NonZero (node 'nz')" in str(err) and "reducing with add is not an assignment" in str(err)

    direct = [helper.make_node("Identity", ["data"], ["upd"])]  # not an Expand: rows unknown
    err = _import_error(assign_model([2, 7, 13], [2, 7], np.array(1, np.float32), updates=direct), (2, 7, 13), (2, 7))
    assert "not known to be one row repeated" in str(err)

    # a value whose period (5) does not divide the row (13): the rows differ
    err = _import_error(assign_model([2, 7, 13], [2, 7], np.ones((1, 5), np.float32)), (2, 7, 13), (2, 7))
    assert "'assign'" in str(err) and "not provably one row of shape (13,) repeated" in str(err)


def test_mask_not_shaped_like_the_leading_data_dimensions_is_refused():
    err = _import_error(assign_model([2, 7, 13], [1, 7], np.array(0, np.float32)), (2, 7, 13), (1, 7))
    assert "'assign'" in str(err) and "has shape (1, 7)" in str(err) and "(2, 7, 13)" in str(err)
