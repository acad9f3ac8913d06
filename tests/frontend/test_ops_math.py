"""ONNX math, reduction and small tensor operators (IsNaN, IsInf, Mod, Round, Sign, Softplus, Mish, integer
Pow, Trilu, CumSum, ArgMax/ArgMin, TopK, OneHot, Tile, DepthToSpace/SpaceToDepth, Einsum, ReduceProd,
ReduceLogSumExp, LpNormalization, Pad modes) against onnx's ReferenceEvaluator, on odd shapes."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_tecomp
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tecomp.error import GraphError
from tecomp.frontend import from_onnx
from tecomp.graph.fuse import fuse

ONNX_TYPES = {"float16": 10, "float32": 1, "float64": 11, "int8": 3, "int32": 6, "int64": 7, "uint8": 2,
              "uint32": 12, "uint64": 13, "bool": 9}


def one_node(op, inputs, consts=None, attrs=None, outputs=1, opset=21, order=None):
    """A model of one ``op`` node: ``inputs`` maps runtime input names to arrays, ``consts`` input names
    to initializers (None: an omitted input); the node takes them in ``order`` (default: inputs, then
    consts)."""
    consts = dict(consts or {})
    names = [k if (k in inputs or consts.get(k) is not None) else "" for k in order or list(inputs) + list(consts)]
    while names and not names[-1]:
        names.pop()
    outs = [f"y{k}" for k in range(outputs)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    graph = helper.make_graph(
        [node], "t",
        [helper.make_tensor_value_info(k, ONNX_TYPES[str(v.dtype)], v.shape) for k, v in inputs.items()],
        [helper.make_tensor_value_info(o, 0, None) for o in outs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items() if v is not None])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def check(op, inputs, consts=None, attrs=None, outputs=1, opset=21, rtol=1e-5, atol=1e-6, order=None):
    model = one_node(op, inputs, consts, attrs, outputs, opset, order)
    want = ReferenceEvaluator(model).run(None, inputs)
    got = run_tecomp(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return got


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------------------- elementwise

def test_isnan_where_guard_of_a_masked_softmax(rng):
    """The dynamo exporter's ``Where(IsNaN(x), 0, x)`` after a softmax of a fully masked row."""
    x = rng.standard_normal((3, 13)).astype("float32")
    x[1] = -np.inf
    nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=-1), helper.make_node("IsNaN", ["p"], ["nan"]),
             helper.make_node("Where", ["nan", "zero", "p"], ["y"])]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", 1, x.shape)],
                              [helper.make_tensor_value_info("y", 1, x.shape)],
                              [numpy_helper.from_array(np.zeros((), "float32"), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    (got,) = run_tecomp(model, {"x": x})
    want = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (got[1] == 0).all()
    g, _ = from_onnx(model)
    kernels = fuse(g)
    assert any({"isnan", "where"} <= {n.op for n in k.nodes} for k in kernels)  # one fused elementwise kernel


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_isnan_isinf(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -1.5, 3e4, -np.nan], dtype)
    check("IsNaN", {"x": x})
    for pos, neg in ((1, 1), (1, 0), (0, 1), (0, 0)):
        check("IsInf", {"x": x}, attrs={"detect_positive": pos, "detect_negative": neg})


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint8", "uint32"])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_integers_signs(rng, dtype, fmod):
    signed = np.dtype(dtype).kind == "i"
    lo = -50 if signed else 0
    a = rng.integers(lo, 50, (7, 13)).astype(dtype)
    b = rng.integers(lo, 9, (13,)).astype(dtype)
    b[b == 0] = 3
    check("Mod", {"a": a, "b": b}, attrs={"fmod": fmod})


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_floats(rng, dtype, fmod):
    a = (rng.standard_normal((5, 197)) * 100).astype(dtype)
    b = (rng.standard_normal((5, 1)) * 7).astype(dtype)
    a[0, :4] = [0.0, np.inf, -7.5, 7.5]
    b[0] = np.inf
    # Mod-28 defines fmod=0 for floats; 'tol' covers the float16 reference's own rounding
    tol = 2e-3 if dtype == "float16" else 1e-6
    check("Mod", {"a": a, "b": b}, attrs={"fmod": fmod}, opset=28 if fmod == 0 else 21, rtol=tol, atol=tol)


def test_round_half_to_even_sign_floor_ceil():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6, 0.0, np.nan], "float32")
    for op in ("Round", "Floor", "Ceil", "Sign"):
        check(op, {"x": x})
    check("Sign", {"x": np.array([-3, 0, 5, -128, 127], "int8")})
    check("Sign", {"x": np.array([0, 3, 255], "uint8")})


def test_softplus_and_mish_at_extremes(rng):
    x = np.concatenate([rng.standard_normal(13) * 4, [-100.0, -20.0, 0.0, 20.0, 100.0, 1000.0]]).astype("float32")
    check("Softplus", {"x": x}, rtol=1e-6, atol=1e-30)  # no absolute slack: log1p precision for x << 0
    check("Mish", {"x": x}, rtol=1e-6, atol=1e-30)
    check("Softplus", {"x": x.astype("float16")}, rtol=1e-3, atol=1e-7)


@pytest.mark.parametrize("base,exponent", [("int32", "int32"), ("int64", "int64"), ("int32", "int64"),
                                           ("int64", "float32"), ("int32", "float64"), ("float32", "int64")])
def test_integer_pow(rng, base, exponent):
    a = rng.integers(-9, 10, (3, 7)).astype(base)
    e = rng.integers(0, 7, (7,)).astype(exponent)
    if np.dtype(exponent).kind == "f":
        e = e + np.asarray(0.5, exponent)
        a = np.abs(a)
    check("Pow", {"a": a, "e": e})


def test_large_integer_pow_is_exact():
    a = np.array([3, -3, 7, 2], "int64")
    e = np.array([33, 33, 18, 52], "int64")
    check("Pow", {"a": a, "e": e}, rtol=0, atol=0)


@pytest.mark.parametrize("upper", [0, 1])
@pytest.mark.parametrize("k", [None, 0, 2, -3, 40])
def test_trilu(rng, upper, k):
    x = rng.standard_normal((2, 7, 13)).astype("float32")
    check("Trilu", {"x": x}, {"k": None if k is None else np.array(k, "int64")}, {"upper": upper})


# ---------------------------------------------------------------------------- scans, orderings

@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_cumsum(rng, exclusive, reverse, axis):
    x = rng.standard_normal((5, 7, 13)).astype("float32")
    check("CumSum", {"x": x}, {"axis": np.array(axis, "int32")}, {"exclusive": exclusive, "reverse": reverse},
          rtol=1e-5, atol=1e-5)


def test_cumsum_integers(rng):
    x = rng.integers(-100, 100, (197,)).astype("int64")
    check("CumSum", {"x": x}, {"axis": np.array(0, "int64")}, {"reverse": 1})


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("last", [0, 1])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_argmax_argmin_ties(rng, op, last, keepdims):
    x = rng.integers(-3, 4, (7, 13, 5)).astype("float32")  # many ties
    x[2, :, 1] = -np.inf
    for axis in (0, 1, -1):
        check(op, {"x": x}, attrs={"axis": axis, "keepdims": keepdims, "select_last_index": last})
    check(op, {"x": x.astype("int32")}, attrs={"axis": 1, "keepdims": keepdims, "select_last_index": last})


@pytest.mark.parametrize("largest", [0, 1])
@pytest.mark.parametrize("axis", [0, -1])
def test_topk_values_and_indices(rng, largest, axis):
    x = rng.integers(-5, 6, (7, 13)).astype("float32")  # ties: the lower index first
    check("TopK", {"x": x}, {"k": np.array([4], "int64")}, {"axis": axis, "largest": largest}, outputs=2)


def test_topk_integers_whole_axis(rng):
    x = rng.permutation(197).astype("int64").reshape(1, 197)
    check("TopK", {"x": x}, {"k": np.array([197], "int64")}, {"axis": 1, "sorted": 1}, outputs=2)


# ---------------------------------------------------------------------------- indexing and layout

@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_onehot(axis):
    idx = np.array([[0, 3, -1], [-5, 7, 2]], "int64")  # -1 -> depth-1, -5 and 7: out of range
    values = np.array([2.0, 9.0], "float32")
    check("OneHot", {"idx": idx}, {"depth": np.array(5, "int64"), "values": values}, {"axis": axis})
    check("OneHot", {"idx": idx.astype("float32"), "values": values}, {"depth": np.array(5.0, "float32")},
          order=["idx", "depth", "values"])


def test_tile(rng):
    x = rng.standard_normal((3, 1, 5)).astype("float32")
    check("Tile", {"x": x}, {"repeats": np.array([2, 7, 1], "int64")})
    check("Tile", {"x": x.astype("bool")}, {"repeats": np.array([1, 3, 2], "int64")})


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_space_round_trip(rng, mode):
    x = rng.standard_normal((2, 18, 5, 7)).astype("float32")
    (deep,) = check("DepthToSpace", {"x": x}, attrs={"blocksize": 3, "mode": mode}, opset=21)
    (back,) = check("SpaceToDepth", {"x": deep}, attrs={"blocksize": 3, "mode": mode}, opset=28)
    np.testing.assert_array_equal(back, x)


@pytest.mark.parametrize("mode", ["edge", "reflect", "wrap"])
def test_pad_modes(rng, mode):
    x = rng.standard_normal((3, 5, 7)).astype("float32")
    pads = np.array([0, 4, 2, 1, 0, 6], "int64")  # more than the axis size on some sides
    check("Pad", {"x": x}, {"pads": pads}, {"mode": mode})
    check("Pad", {"x": x}, {"pads": np.array([1, 0, 3, 2], "int64"), "value": None,
                            "axes": np.array([-1, 1], "int64")}, {"mode": mode})


# ---------------------------------------------------------------------------- einsum

EINSUMS = [
    ("bhid,bhjd->bhij", [(2, 3, 5, 7), (2, 3, 6, 7)]),     # attention scores
    ("bhij,bhjd->bhid", [(2, 3, 5, 6), (2, 3, 6, 7)]),     # attention values
    ("bij,bjk->bik", [(2, 5, 7), (1, 7, 3)]),              # batch broadcast
    ("ij->ji", [(5, 7)]),
    ("ij->i", [(5, 7)]),
    ("i,i", [(13,), (13,)]),
    ("ij,j->i", [(5, 7), (7,)]),
    ("i,j->ij", [(5,), (7,)]),
    ("...ii->...i", [(2, 3, 5, 5)]),
    ("...ij,...jk->...ik", [(2, 1, 5, 7), (3, 7, 4)]),
    ("bnd,dhk->bnhk", [(2, 5, 7), (7, 3, 4)]),
    ("abc,cd,de->abe", [(2, 3, 4), (4, 5), (5, 6)]),
    ("ijk", [(3, 4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("...d,de->...e", [(2, 3, 7), (7, 5)]),                # a projection
    ("ibnd,jbnd->bijn", [(5, 2, 3, 4), (6, 2, 3, 4)]),     # Transformer-XL: batch letters inside
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),        # a bilinear form
    ("ii", [(5, 5)]),                                      # trace
]


@pytest.mark.parametrize("equation,shapes", EINSUMS, ids=[e for e, _ in EINSUMS])
def test_einsum_forms(rng, equation, shapes):
    inputs = {f"x{k}": rng.standard_normal(s).astype("float32") for k, s in enumerate(shapes)}
    check("Einsum", inputs, attrs={"equation": equation}, rtol=1e-4, atol=1e-5)


def test_einsum_integers_and_matmul_lowering(rng):
    a, b = rng.integers(-5, 5, (3, 4, 5)).astype("int32"), rng.integers(-5, 5, (3, 5, 2)).astype("int32")
    check("Einsum", {"a": a, "b": b}, attrs={"equation": "bij,bjk->bik"})
    model = one_node("Einsum", {"a": a.astype("float32"), "b": b.astype("float32")}, attrs={"equation": "bij,bjk->bik"})
    graph, _ = from_onnx(model)
    assert [n.op for n in graph.nodes] == ["batch_matmul"]
    model = one_node("Einsum", {"a": a[0].astype("float32"), "b": b[0].astype("float32")}, attrs={"equation": "ij,jk"})
    graph, _ = from_onnx(model)
    assert [n.op for n in graph.nodes] == ["matmul"]


# ---------------------------------------------------------------------------- reductions

@pytest.mark.parametrize("op", ["ReduceProd", "ReduceLogSumExp", "ReduceL2", "ReduceMax", "ReduceMin"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions_with_axes_input(rng, op, keepdims):
    x = rng.uniform(0.5, 1.5, (3, 7, 13)).astype("float32")
    if op == "ReduceMax":
        x[1, 2, :] = -np.inf
    check(op, {"x": x}, {"axes": np.array([-1], "int64")}, {"keepdims": keepdims}, rtol=1e-5, atol=1e-6)
    check(op, {"x": x}, {"axes": np.array([0, 2], "int64")}, {"keepdims": keepdims}, rtol=1e-5, atol=1e-6)


def test_reductions_empty_axes_and_noop(rng):
    x = rng.uniform(0.5, 1.5, (3, 5)).astype("float32")
    for op in ("ReduceProd", "ReduceLogSumExp"):
        check(op, {"x": x}, {"axes": np.array([], "int64")}, {"noop_with_empty_axes": 1})
        check(op, {"x": x}, attrs={"keepdims": 0})
        check(op, {"x": x}, attrs={"axes": [1]}, opset=13)
    check("ReduceL2", {"x": np.array([[3, 4], [5, 12]], "int32")}, {"axes": np.array([1], "int64")})


def test_logsumexp_of_infinite_rows():
    """A row of -inf gives -inf (log of an empty sum) and a row holding +inf gives +inf, not NaN."""
    x = np.array([[-np.inf, -np.inf, -np.inf], [1.0, np.inf, 2.0], [1000.0, 1000.0, -5.0]], "float32")
    model = one_node("ReduceLogSumExp", {"x": x}, {"axes": np.array([1], "int64")}, {"keepdims": 0})
    (got,) = run_tecomp(model, {"x": x})
    np.testing.assert_allclose(got, [-np.inf, np.inf, 1000 + np.log(2)], rtol=1e-6)


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, -1])
def test_lp_normalization(rng, p, axis):
    """Against numpy: onnx's reference sums x (not |x|) for p=1."""
    x = rng.standard_normal((5, 7)).astype("float32")
    x[:, 3] = 0
    x[2, :] = 0
    norm = np.linalg.norm(x, ord=p, axis=axis, keepdims=True)
    want = np.where(norm == 0, 0, x / np.where(norm == 0, 1, norm)).astype("float32")
    (got,) = run_tecomp(one_node("LpNormalization", {"x": x}, attrs={"p": p, "axis": axis}), {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- errors

@pytest.mark.parametrize("op,attrs,consts,text", [
    ("Mod", {"fmod": 2}, {"b": np.ones(3, "float32")}, "fmod=2"),
    ("LpNormalization", {"p": 3}, {}, "p=3"),
    ("Pad", {"mode": "mirror"}, {"pads": np.zeros(2, "int64")}, "mode='mirror'"),
    ("TopK", {}, {"k": np.array([4], "int64")}, "K=4"),
    ("Einsum", {"equation": "ij,jk->ik"}, {}, "names 2 operands"),
    ("Trilu", {"upper": 1}, {"k": np.array([1, 2], "int64")}, "rank 2 or more"),
])
def test_unsupported_values_are_rejected_by_name(op, attrs, consts, text):
    model = one_node(op, {"x": np.zeros(3, "float32")}, consts, attrs)
    with pytest.raises(GraphError, match=text):
        from_onnx(model)


def test_logsumexp_float16_sums_in_float32(rng):
    x = rng.uniform(-3, 3, (3, 197)).astype("float16")
    (got,) = run_tecomp(one_node("ReduceLogSumExp", {"x": x}, {"axes": np.array([1], "int64")}), {"x": x})
    want = np.log(np.exp(x.astype("float64")).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(got.astype("float64"), want, rtol=1e-3)
    assert got.dtype == np.float16


# ---------------------------------------------------------------------------- the activations and reductions
# that existed before, over the dtypes and attributes ONNX gives them

@pytest.mark.parametrize("op,attrs", [("Elu", {"alpha": 0.3}), ("Selu", {"alpha": 1.5, "gamma": 0.7}),
                                      ("LeakyRelu", {"alpha": 0.2}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
                                      ("HardSwish", {}), ("Softsign", {}), ("Reciprocal", {})])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_activations(rng, op, attrs, dtype):
    x = (rng.standard_normal((3, 13)) * 3).astype(dtype)
    check(op, {"x": x}, attrs=attrs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "int32", "int64"])
def test_prelu_broadcast_slope(rng, dtype):
    x = (rng.standard_normal((2, 3, 7)) * 5).astype(dtype)
    slope = np.array([[2], [3], [-1]], dtype)
    check("PRelu", {"x": x}, {"slope": slope})


@pytest.mark.parametrize("op", ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceSum", "ReduceProd"])
@pytest.mark.parametrize("dtype", ["int32", "int64"])
def test_integer_reductions(rng, op, dtype):
    x = rng.integers(-4, 5, (3, 5, 7)).astype(dtype)
    consts = {"axes": np.array([0, -1], "int64")}
    if op == "ReduceSumSquare":  # onnx's reference widens int32 squares to int64; ONNX keeps the type
        model = one_node(op, {"x": x}, consts, {"keepdims": 0}, opset=18)
        (got,) = run_tecomp(model, {"x": x})
        np.testing.assert_array_equal(got, (x * x).sum(axis=(0, 2), dtype=dtype))
        assert got.dtype == x.dtype
        return
    check(op, {"x": x}, consts, {"keepdims": 0}, opset=18)
