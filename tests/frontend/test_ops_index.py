"""ONNX GatherND, GatherElements, ScatterND, ScatterElements and Resize through from_onnx + build,
against onnx.reference.ReferenceEvaluator and onnxruntime, with odd shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import onnx_models, run_tecomp
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tecomp.error import GraphError
from tecomp.frontend import from_onnx
from tecomp.frontend.importer import NotConstantError
from tecomp.graph import build

F, I64 = TensorProto.FLOAT, TensorProto.INT64
_ONNX_TYPES = {np.dtype("float32"): F, np.dtype("float16"): TensorProto.FLOAT16, np.dtype("int64"): I64,
               np.dtype("int32"): TensorProto.INT32, np.dtype("uint8"): TensorProto.UINT8}


def model_of(node, runtime: dict[str, np.ndarray], constants: dict[str, np.ndarray] | None = None, opset=19,
             extra_nodes=()):
    """A one-output model of ``node`` (plus ``extra_nodes`` after it); ``runtime`` are graph inputs,
    ``constants`` initializers."""
    inputs = [helper.make_tensor_value_info(k, _ONNX_TYPES[v.dtype], v.shape) for k, v in runtime.items()]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (constants or {}).items()]
    out = (extra_nodes[-1] if extra_nodes else node).output[0]
    graph = helper.make_graph([node, *extra_nodes], "t", inputs, [helper.make_tensor_value_info(out, F, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def check_reference(model, inputs, rtol=1e-5, atol=1e-5):
    """tecomp's output equals the ONNX reference evaluator's (and returns tecomp's graph ops)."""
    want = ReferenceEvaluator(model).run(None, inputs)
    got = run_tecomp(model, inputs)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def check_onnxruntime(model, inputs, rtol=1e-5, atol=1e-5):
    want = onnx_models.run_onnxruntime(model, inputs)
    got = run_tecomp(model, inputs)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def graph_ops(model, inputs):
    graph, _ = from_onnx(model, shape={k: v.shape for k, v in inputs.items()})
    return [n.op for n in graph.nodes]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ---------------------------------------------------------------------------- gathers

@pytest.mark.parametrize("batch_dims", [0, 1])
def test_gather_nd(rng, batch_dims):
    data = rng.standard_normal((3, 7, 13)).astype("float32")
    indices = np.stack([rng.integers(-7, 7, size=(3, 5)), rng.integers(-13, 13, size=(3, 5))], -1)
    if batch_dims == 0:
        indices = indices % np.array([3, 7])  # (batch, row) pairs
    node = helper.make_node("GatherND", ["data", "indices"], ["y"], batch_dims=batch_dims)
    inputs = {"data": data, "indices": indices}
    check_onnxruntime(model_of(node, inputs), inputs)


def test_gather_nd_padding_mask_pattern(rng):
    """Hugging Face style: the hidden state of each sequence's last real token (NonZero-free form)."""
    hidden = rng.standard_normal((4, 11, 6)).astype("float32")
    last = np.array([[10], [3], [0], [6]])
    node = helper.make_node("GatherND", ["hidden", "last"], ["y"], batch_dims=1)
    check_reference(model_of(node, {"hidden": hidden, "last": last}), {"hidden": hidden, "last": last})


@pytest.mark.parametrize("axis", [0, -1])
def test_gather_elements(rng, axis):
    data = rng.standard_normal((7, 13)).astype("float32")
    dim = data.shape[axis]
    indices = rng.integers(-dim, dim, size=(5, 13) if axis == 0 else (7, 4)).astype("int32")
    node = helper.make_node("GatherElements", ["data", "indices"], ["y"], axis=axis)
    inputs = {"data": data, "indices": indices}
    check_onnxruntime(model_of(node, inputs), inputs)


# ---------------------------------------------------------------------------- scatters

def _scatter_nd_case(rng):
    data = rng.standard_normal((7, 5, 3)).astype("float32")
    indices = np.array([[[1, 2], [6, -1], [1, 2]], [[-7, 0], [3, 3], [1, -3]]])  # (1, 2) written twice
    updates = rng.standard_normal((2, 3, 3)).astype("float32")
    return data, indices, updates


@pytest.mark.parametrize("reduction,opset", [("none", 13), ("add", 16), ("mul", 16), ("max", 18), ("min", 18)])
@pytest.mark.parametrize("constant_indices", [True, False])
def test_scatter_nd(rng, reduction, opset, constant_indices):
    data, indices, updates = _scatter_nd_case(rng)
    if reduction == "none":
        indices = indices.copy()
        indices[0, 2] = [0, 0]  # no duplicates: ONNX leaves their order unspecified without a reduction
    attrs = {} if opset == 13 else {"reduction": reduction}
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], **attrs)
    runtime = {"data": data, "updates": updates}
    if constant_indices:
        model = model_of(node, runtime, {"indices": indices}, opset=opset)
    else:
        runtime["indices"] = indices
        model = model_of(node, runtime, opset=opset)
    assert graph_ops(model, runtime) == ["scatter_from_sources" if constant_indices else "scatter_nd"]
    check_reference(model, runtime)


@pytest.mark.parametrize("reduction", ["none", "add", "mul", "max", "min"])
@pytest.mark.parametrize("constant_indices", [True, False])
def test_scatter_elements(rng, reduction, constant_indices):
    data = rng.standard_normal((7, 13)).astype("float32")
    indices = np.array([[1, -1, 3, 6], [0, 1, -7, 2], [1, 5, 3, 4]])  # duplicates only with a reduction:
    if reduction != "none":
        indices[2, 0] = 1
    updates = rng.standard_normal((3, 4)).astype("float32")
    node = helper.make_node("ScatterElements", ["data", "indices", "updates"], ["y"], axis=0,
                            reduction=reduction)
    runtime = {"data": data, "updates": updates}
    if constant_indices:
        model = model_of(node, runtime, {"indices": indices}, opset=18)
    else:
        runtime["indices"] = indices
        model = model_of(node, runtime, opset=18)
    check_reference(model, runtime)
    if reduction in ("none", "add"):
        check_onnxruntime(model, runtime)


def test_scatter_elements_axis_1_odd_shapes_int_data(rng):
    data = rng.integers(-50, 50, size=(7, 13)).astype("int64")
    indices = rng.integers(-13, 13, size=(5, 6))
    updates = rng.integers(-50, 50, size=(5, 6)).astype("int64")
    node = helper.make_node("ScatterElements", ["data", "indices", "updates"], ["s"], axis=1, reduction="add")
    cast = helper.make_node("Cast", ["s"], ["y"], to=F)
    inputs = {"data": data, "indices": indices, "updates": updates}
    check_reference(model_of(node, inputs, opset=18, extra_nodes=[cast]), inputs)


def test_scatter_many_writers_of_one_element_uses_the_runtime_form(rng):
    data = rng.standard_normal((7,)).astype("float32")
    indices = np.full((20, 1), 3)
    updates = rng.standard_normal((20,)).astype("float32")
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], reduction="add")
    model = model_of(node, {"data": data, "updates": updates}, {"indices": indices}, opset=18)
    assert graph_ops(model, {"data": data, "updates": updates}) == ["scatter_nd"]
    check_reference(model, {"data": data, "updates": updates})


def test_scatter_errors(rng):
    data, updates = np.zeros((7, 5), "float32"), np.ones((2, 5), "float32")
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"])
    model = model_of(node, {"data": data, "updates": updates}, {"indices": np.array([[1], [7]])})
    with pytest.raises(GraphError, match=r"ScatterND-18.*indices at \(1, 0\) is 7, out of range"):
        from_onnx(model)
    node = helper.make_node("ScatterND", ["data", "indices", "updates"], ["y"], reduction="max")
    model = model_of(node, {"data": data, "updates": updates}, {"indices": np.array([[1], [2]])}, opset=16)
    with pytest.raises(GraphError, match="reduction='max' is not supported.*'none', 'add', 'mul'"):
        from_onnx(model)


# ---------------------------------------------------------------------------- Resize

def resize_model(x, attrs, scales=None, sizes=None, roi=None, opset=19, runtime_scales=False):
    names = ["x", "roi" if roi is not None else "", "scales" if scales is not None else "",
             "sizes" if sizes is not None else ""]
    while names[-1] == "":
        names.pop()
    consts = {"roi": np.array(roi, "float32")} if roi is not None else {}
    if scales is not None:
        consts["scales"] = np.array(scales, "float32")
    if sizes is not None:
        consts["sizes"] = np.array(sizes, "int64")
    runtime = {"x": x}
    if runtime_scales:
        runtime["scales"] = consts.pop("scales")
    return model_of(helper.make_node("Resize", names, ["y"], **attrs), runtime, consts, opset=opset)


UNET_CASES = [  # what U-Net and segmentation heads ask for; onnxruntime agrees with the reference on these
    (dict(mode="linear", coordinate_transformation_mode="half_pixel"), dict(scales=[1, 1, 2, 2])),
    (dict(mode="linear", coordinate_transformation_mode="align_corners"), dict(sizes=[1, 3, 197, 40])),
    (dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
     dict(scales=[1, 1, 2, 2])),
    (dict(mode="nearest"), dict(scales=[1, 1, 3.5, 3.5])),
    (dict(mode="cubic", coordinate_transformation_mode="pytorch_half_pixel", cubic_coeff_a=-0.75),
     dict(scales=[1, 1, 2, 3.5])),
]


@pytest.mark.parametrize("attrs,shape_input", UNET_CASES)
def test_resize_like_onnxruntime(rng, attrs, shape_input):
    x = rng.standard_normal((1, 3, 7, 13)).astype("float32")
    model = resize_model(x, attrs, **shape_input)
    check_onnxruntime(model, {"x": x}, rtol=1e-4, atol=1e-5)
    check_reference(model, {"x": x}, rtol=1e-4, atol=1e-5)


MODES = [dict(mode="nearest", nearest_mode=m) for m in ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")]
MODES += [dict(mode="linear"), dict(mode="linear", antialias=1), dict(mode="cubic"),
          dict(mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1), dict(mode="cubic", antialias=1)]
COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
          "tf_crop_and_resize"]


# Every mode and every coordinate mode by default (a third of the pairs); all pairs with -m slow.
EVERY_PAIR = [pytest.param(m, c, id=f"{'-'.join(str(v) for v in m.values())}-{c}",
                           marks=() if (i + j) % 3 == 0 else pytest.mark.slow)
              for i, m in enumerate(MODES) for j, c in enumerate(COORDS)]


@pytest.mark.parametrize("mode,coordinate_mode", EVERY_PAIR)
@pytest.mark.parametrize("shape_input", [dict(scales=[1, 1, 3.5, 0.6]),
                                         pytest.param(dict(sizes=[1, 2, 197, 4]), marks=pytest.mark.slow)],
                         ids=["scales", "sizes"])
def test_resize_every_mode_like_the_reference(rng, mode, coordinate_mode, shape_input):
    x = rng.standard_normal((1, 2, 7, 13)).astype("float32")
    attrs = dict(mode, coordinate_transformation_mode=coordinate_mode)
    roi = None
    if coordinate_mode == "tf_crop_and_resize":
        roi, attrs["extrapolation_value"] = [0, 0, 0.2, -0.1, 1, 1, 0.9, 1.2], 3.0
    check_reference(resize_model(x, attrs, roi=roi, **shape_input), {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_resize_axes_and_keep_aspect_ratio(rng, policy):
    x = rng.standard_normal((2, 7, 13)).astype("float32")
    model = resize_model(x, dict(mode="linear", axes=[2, 1], keep_aspect_ratio_policy=policy), sizes=[9, 20],
                         opset=18)
    check_reference(model, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [13, 18])
def test_resize_older_opsets(rng, opset):
    x = rng.standard_normal((1, 1, 7, 13)).astype("float32")
    model = resize_model(x, dict(mode="cubic", coordinate_transformation_mode="align_corners"),
                         roi=[], scales=[1, 1, 2, 1.5], opset=opset)
    check_reference(model, {"x": x}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("dtype", ["uint8", "int32"])
def test_resize_integers(rng, mode, dtype):
    """Nearest copies; linear and cubic interpolate (uint8 in float32, int32 in float64), round half to
    even and saturate (cubic overshoots): as the reference, up to one unit where the sum lies within
    rounding of a half (float32 sums; fused multiply-adds round once where the reference rounds twice)."""
    x = rng.integers(0, 256, size=(1, 3, 7, 13)).astype(dtype)
    model = resize_model(x, dict(mode=mode), scales=[1, 1, 2, 3.5])
    model.graph.output[0].type.tensor_type.elem_type = _ONNX_TYPES[x.dtype]
    got, want = run_tecomp(model, {"x": x})[0], ReferenceEvaluator(model).run(None, {"x": x})[0]
    assert got.dtype == want.dtype
    if mode == "cubic" and dtype == "uint8":
        assert want.min() == 0 and want.max() == 255  # saturated
    np.testing.assert_allclose(got, want, rtol=0, atol=0 if mode == "nearest" else 1)
    assert (got != want).mean() < 0.01


def test_resize_float16(rng):
    x16 = rng.standard_normal((1, 3, 7, 13)).astype("float16")
    model = resize_model(x16, dict(mode="linear"), scales=[1, 1, 2, 2])
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    got, want = run_tecomp(model, {"x": x16})[0], ReferenceEvaluator(model).run(None, {"x": x16})[0]
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.astype("float32"), want.astype("float32"), rtol=2e-3, atol=2e-3)


def test_resize_identity_axes_are_skipped_and_an_identity_resize_is_no_node(rng):
    x = rng.standard_normal((1, 3, 7, 13)).astype("float32")
    graph, params = from_onnx(resize_model(x, dict(mode="linear"), scales=[1, 1, 2, 1]))
    (node,) = graph.nodes
    assert node.op == "resize" and node.attrs["axes"] == [2] and node.attrs["shape"] == [1, 3, 14, 13]
    graph, _ = from_onnx(resize_model(x, dict(mode="cubic"), scales=[1, 1, 1, 1]))
    assert graph.nodes == []


def test_resize_fuses_with_its_neighbours(rng):
    """Relu -> Resize -> Add is one kernel (resize is injective), and matches onnxruntime."""
    x = rng.standard_normal((1, 4, 7, 13)).astype("float32")
    relu = helper.make_node("Relu", ["x"], ["r"])
    resize = helper.make_node("Resize", ["r", "", "scales"], ["z"], mode="linear")
    add = helper.make_node("Add", ["z", "z"], ["y"])
    graph = helper.make_graph([relu, resize, add], "t", [helper.make_tensor_value_info("x", F, x.shape)],
                              [helper.make_tensor_value_info("y", F, None)],
                              [numpy_helper.from_array(np.array([1, 1, 2, 2], "float32"), "scales")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    g, params = from_onnx(model)
    lib = build(g, "llvm", params)
    assert lib.kernel_count == 1
    np.testing.assert_allclose(lib.run(x=x)[0], onnx_models.run_onnxruntime(model, {"x": x})[0], rtol=1e-5,
                               atol=1e-5)


def test_resize_errors(rng):
    x = rng.standard_normal((1, 1, 7, 13)).astype("float32")
    with pytest.raises(NotConstantError, match="input 2 \\(scales\\) must be known at import") as info:
        from_onnx(resize_model(x, dict(mode="linear"), scales=[1, 1, 2, 2], runtime_scales=True))
    assert info.value.value_name == "scales"
    with pytest.raises(GraphError, match="coordinate_transformation_mode='half_pixel_symmetric' is not supported"):
        from_onnx(resize_model(x, dict(coordinate_transformation_mode="half_pixel_symmetric"),
                               scales=[1, 1, 2, 2], opset=18))
    with pytest.raises(GraphError, match="tf_crop_and_resize needs roi with 8 values"):
        from_onnx(resize_model(x, dict(coordinate_transformation_mode="tf_crop_and_resize"), scales=[1, 1, 2, 2]))
    with pytest.raises(GraphError, match="scales has 2 entries for 4 axes"):
        from_onnx(resize_model(x, dict(), scales=[2, 2]))
    with pytest.raises(GraphError, match="mode=linear interpolates float16, .*uint32 data, the input is int64 "
                                         r"\(mode nearest copies any dtype\)"):
        from_onnx(resize_model(x.astype("int64"), dict(mode="linear"), scales=[1, 1, 2, 2]))
    with pytest.raises(GraphError, match="mode='area' is not supported"):
        from_onnx(resize_model(x, dict(mode="area"), scales=[1, 1, 2, 2]))


# ---------------------------------------------------------------------------- import-time folding

def test_shape_arithmetic_through_scatter_nd_folds_at_import(rng):
    """A shape vector edited by ScatterND (as exporters write ``shape[1] = ...``) still gives Reshape a
    target known at import."""
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ScatterND", ["s", "where", "sizes"], ["target"]),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", F, x.shape)],
                              [helper.make_tensor_value_info("y", F, None)],
                              [numpy_helper.from_array(np.array([[1], [2]]), "where"),
                               numpy_helper.from_array(np.array([12, 1]), "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    assert graph_ops(model, {"x": x}) == ["reshape"]
    check_reference(model, {"x": x})


@pytest.mark.parametrize("node,constants", [
    (helper.make_node("GatherND", ["c", "i"], ["y"], batch_dims=1),
     {"i": np.array([[[1, -1]], [[0, 2]], [[-2, 0]]])}),
    (helper.make_node("GatherElements", ["c", "i"], ["y"], axis=1), {"i": np.array([[[1, -3, 0, 4], [0, 3, 2, 1]]] * 3)}),
    (helper.make_node("ScatterElements", ["c", "i", "u"], ["y"], axis=2, reduction="mul"),
     {"i": np.array([[[1, 1, 0]]]), "u": np.array([[[2.0, 3.0, 5.0]]], "float32")}),
])
def test_constant_gathers_and_scatters_fold_like_the_compiled_operators(node, constants):
    c = np.arange(3 * 5 * 4, dtype="float32").reshape(3, 5, 4) - 17
    model = model_of(node, {}, {"c": c, **constants}, opset=18)
    assert graph_ops(model, {}) == []
    graph, params = from_onnx(model)
    np.testing.assert_array_equal(params[graph.outputs[0]], ReferenceEvaluator(model).run(None, {})[0])


def test_unet_like_block_matches_onnxruntime(rng):
    """Downsampling conv, bilinear upsampling back to an odd size, skip concat, conv: as in U-Net decoders."""
    x = rng.standard_normal((1, 3, 13, 19)).astype("float32")
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype("float32")
    w2 = (rng.standard_normal((4, 11, 3, 3)) * 0.3).astype("float32")
    nodes = [helper.make_node("Conv", ["x", "w1"], ["d"], strides=[2, 2], pads=[1, 1, 1, 1]),     # 7 x 10
             helper.make_node("Relu", ["d"], ["r"]),
             helper.make_node("Resize", ["r", "", "", "sizes"], ["u"], mode="linear"),            # 13 x 19
             helper.make_node("Concat", ["u", "x"], ["c"], axis=1),
             helper.make_node("Conv", ["c", "w2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", F, x.shape)],
                              [helper.make_tensor_value_info("y", F, None)],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2"),
                               numpy_helper.from_array(np.array([1, 8, 13, 19]), "sizes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)
    check_onnxruntime(model, {"x": x}, rtol=1e-4, atol=1e-4)
