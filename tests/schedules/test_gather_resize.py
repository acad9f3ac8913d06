"""Gather, scatter and resize operators against numpy, through their default schedules
(the reference interpreter and LLVM both)."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import gather as G
from tecomp.schedules import resize as RZ
from tecomp.schedules.common import KEEP_TAG, schedule_injective

REDUCTIONS = ["none", "add", "mul", "max", "min"]


def _rand(rng, shape, dtype="float32"):
    return rng.uniform(-2, 2, size=shape).astype(dtype)


def _scatter_ref(data, targets, updates, reduction):
    """Sequential numpy scatter: update element u goes to flat position targets[u]."""
    out = data.copy().reshape(-1)
    for t, u in zip(targets.reshape(-1), updates.reshape(-1)):
        out[t] = {"none": lambda a, b: b, "add": np.add, "mul": np.multiply, "max": np.maximum,
                  "min": np.minimum}[reduction](out[t], u)
    return out.reshape(data.shape)


@pytest.mark.parametrize("batch_dims,dshape,ishape", [(0, (7, 13), (5, 2)), (0, (7, 13, 3), (2, 4, 1)),
                                                      (1, (3, 7, 5), (3, 4, 1)), (2, (2, 3, 7, 5), (2, 3, 2))])
def test_gather_nd(check, rng, batch_dims, dshape, ishape):
    D = te.placeholder(dshape, name="D")
    I = te.placeholder(ishape, "int64", "I")
    Y = G.gather_nd(D, I, batch_dims)
    d = _rand(rng, dshape)
    k = ishape[-1]
    idx = rng.integers(0, 3, size=ishape)
    idx = np.where(rng.random(ishape) < 0.3, idx - np.array(dshape[batch_dims:batch_dims + k]), idx)  # negatives
    flat_d = d.reshape((-1,) + dshape[batch_dims:])
    flat_i = idx.reshape((flat_d.shape[0], -1, k))
    want = np.stack([b_d[tuple(np.moveaxis(b_i, -1, 0))] for b_d, b_i in zip(flat_d, flat_i)])
    check(schedule_injective(Y), [D, I, Y], [d, idx], want.reshape(ishape[:-1] + dshape[batch_dims + k:]))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_gather_elements(check, rng, axis):
    D = te.placeholder((7, 13), name="D")
    ishape = (5, 13) if axis == 0 else (7, 6)
    I = te.placeholder(ishape, "int32", "I")
    Y = G.gather_elements(D, I, axis)
    d = _rand(rng, (7, 13))
    dim = d.shape[axis]
    idx = rng.integers(-dim, dim, size=ishape).astype("int32")
    check(schedule_injective(Y), [D, I, Y], [d, idx], np.take_along_axis(d, np.where(idx < 0, idx + dim, idx), axis))


def test_gathers_clamp_indices_out_of_range(check):
    """Indices ONNX forbids still never load outside data: they are clamped."""
    D = te.placeholder((7,), name="D")
    I = te.placeholder((3,), "int64", "I")
    Y = G.gather_elements(D, I)
    check(schedule_injective(Y), [D, I, Y], [np.arange(7, dtype="float32"), np.array([9, -20, 3])],
          np.array([6, 0, 3], "float32"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_nd_runtime_indices(check, rng, reduction):
    D = te.placeholder((7, 5, 3), name="D")
    I = te.placeholder((2, 3, 2), "int64", "I")
    U = te.placeholder((2, 3, 3), name="U")
    Y = G.scatter_nd(D, I, U, reduction)
    d, u = _rand(rng, (7, 5, 3)), _rand(rng, (2, 3, 3))
    idx = np.array([[[1, 2], [6, -1], [1, 2]], [[-7, 0], [3, 3], [1, -3]]])
    wrapped = np.where(idx < 0, idx + np.array([7, 5]), idx)
    rows = np.ravel_multi_index(tuple(wrapped.reshape(-1, 2).T), (7, 5))
    targets = rows[:, None] * 3 + np.arange(3)
    check(G.schedule_scatter(Y), [D, I, U, Y], [d, idx, u], _scatter_ref(d, targets, u, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("axis", [0, 1])
def test_scatter_elements_runtime_indices(check, rng, reduction, axis):
    D = te.placeholder((7, 13), name="D")
    ishape = (4, 6)
    I = te.placeholder(ishape, "int64", "I")
    U = te.placeholder(ishape, name="U")
    Y = G.scatter_elements(D, I, U, axis, reduction)
    d, u = _rand(rng, (7, 13)), _rand(rng, ishape)
    dim = d.shape[axis]
    idx = rng.integers(-dim, dim, size=ishape)
    coords = list(np.indices(ishape))
    coords[axis] = np.where(idx < 0, idx + dim, idx)
    targets = np.ravel_multi_index(tuple(coords), (7, 13))
    check(G.schedule_scatter(Y), [D, I, U, Y], [d, idx, u], _scatter_ref(d, targets, u, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_scatter_from_sources_is_the_sequential_scatter(check, rng, reduction):
    d, u = _rand(rng, (7, 13)), _rand(rng, (40,))
    targets = rng.integers(0, 91, size=40)
    targets[:5] = 17  # one element written five times
    sources = G.scatter_sources((7, 13), targets, reduction)
    assert sources.shape == (7, 13, 1 if reduction == "none" else 5)
    D, U = te.placeholder((7, 13), name="D"), te.placeholder((40,), name="U")
    S = te.placeholder(sources.shape, "int32", "S")
    Y = G.scatter_from_sources(D, U, S, reduction)
    check(schedule_injective(Y), [D, U, S, Y], [d, u, sources], _scatter_ref(d, targets, u, reduction), rtol=1e-6)


def test_scatter_int_data(check):
    D = te.placeholder((6,), "int32", "D")
    I = te.placeholder((3,), "int32", "I")
    U = te.placeholder((3,), "int32", "U")
    Y = G.scatter_elements(D, I, U, 0, "mul")
    d = np.arange(1, 7, dtype="int32")
    check(G.schedule_scatter(Y), [D, I, U, Y], [d, np.array([5, 0, 5], "int32"), np.array([2, 3, 4], "int32")],
          np.array([3, 2, 3, 4, 5, 48], "int32"))


def test_argument_errors():
    D = te.placeholder((7, 5), name="D")
    with pytest.raises(OperatorError, match="gather_nd: argument indices: .*int32, int64"):
        G.gather_nd(D, te.placeholder((2, 1), "float32", "I"))
    with pytest.raises(OperatorError, match="gather_nd: argument indices: last dimension 3"):
        G.gather_nd(D, te.placeholder((2, 3), "int64", "I"))
    with pytest.raises(OperatorError, match="scatter_nd: argument updates: shape"):
        G.scatter_nd(D, te.placeholder((2, 1), "int64", "I"), te.placeholder((2, 4), name="U"))
    with pytest.raises(OperatorError, match="scatter_elements: argument reduction: 'sub'"):
        G.scatter_elements(D, te.placeholder((2, 5), "int64", "I"), te.placeholder((2, 5), name="U"),
                           reduction="sub")
    with pytest.raises(OperatorError, match="resize: argument x: dtype int64"):
        RZ.resize(te.placeholder((4,), "int64", "X"), te.placeholder((1, 2, 8), "int32", "I"),
                  te.placeholder((1, 2, 8), "float64", "W"), axes=[0], shape=[8])
    with pytest.raises(OperatorError, match="resize: argument weight: must be float32"):
        RZ.resize(te.placeholder((4,), "uint8", "X"), te.placeholder((1, 2, 8), "int32", "I"),
                  te.placeholder((1, 2, 8), "float64", "W"), axes=[0], shape=[8])
    with pytest.raises(OperatorError, match=r"resize: argument index: shape \(1, 2, 7\) must be"):
        RZ.resize(te.placeholder((4,), name="X"), te.placeholder((1, 2, 7), "int32", "I"), axes=[0], shape=[8])


# ---------------------------------------------------------------------------- resize

def _resize_ref(x, axes, taps, extrapolation_value=None):
    """Separable numpy resize through the same taps (float64)."""
    out = x.astype(np.float64)
    outside = np.zeros((), bool)
    for a, (index, weight) in zip(axes, taps):
        w = np.ones(index.shape) if weight is None else weight
        gathered = np.take(out, np.clip(index, 0, x.shape[a] - 1), axis=a)  # [..., L, T, ...]
        shape = [1] * out.ndim + [1]
        shape[a], shape[a + 1] = w.shape
        out = (gathered * w.reshape(shape)).sum(axis=a + 1)
        mask_shape = [1] * out.ndim
        mask_shape[a] = index.shape[0]
        outside = outside | (index[:, 0] < 0).reshape(mask_shape)
    return np.where(outside, extrapolation_value, out) if extrapolation_value is not None else out


@pytest.mark.parametrize("mode,coordinate_mode,in_len,out_len,scale", [
    ("nearest", "asymmetric", 7, 14, 2.0), ("nearest", "half_pixel", 13, 45, 3.5),
    ("linear", "half_pixel", 7, 14, 2.0), ("linear", "align_corners", 13, 197, 197 / 13),
    ("cubic", "pytorch_half_pixel", 13, 5, 0.4), ("cubic", "half_pixel_symmetric", 7, 24, 3.5),
])
def test_resize_2d(check, rng, mode, coordinate_mode, in_len, out_len, scale):
    taps = [RZ.resize_taps(7, 15, 15 / 7, mode, coordinate_mode),
            RZ.resize_taps(in_len, out_len, scale, mode, coordinate_mode)]
    index, weight = RZ.stack_taps(taps, "float32")
    X = te.placeholder((2, 7, in_len), name="X")
    I = te.placeholder(index.shape, "int32", "I")
    args, inputs = [X, I], [_rand(rng, (2, 7, in_len)), index]
    if weight is not None:
        W = te.placeholder(weight.shape, "float32", "W")
        args, inputs = args + [W], inputs + [weight]
    Y = RZ.resize(*args, axes=[1, 2], shape=[2, 15, out_len])
    check(schedule_injective(Y), args + [Y], inputs, _resize_ref(inputs[0], [1, 2], taps).astype("float32"),
          rtol=1e-5)


def test_resize_extrapolates_outside_the_crop(check, rng):
    roi = (np.float32(-0.2), np.float32(1.1))
    taps = [RZ.resize_taps(13, 9, 9 / 13, "linear", "tf_crop_and_resize", roi=roi)]
    assert (taps[0][0][:, 0] < 0).any() and (taps[0][0][:, 0] >= 0).any()
    index, weight = RZ.stack_taps(taps, "float32")
    X, I, W = te.placeholder((3, 13), name="X"), te.placeholder(index.shape, "int32", "I"), \
        te.placeholder(weight.shape, "float32", "W")
    Y = RZ.resize(X, I, W, axes=[1], shape=[3, 9], extrapolation_value=-7.0)
    x = _rand(rng, (3, 13))
    check(schedule_injective(Y), [X, I, W, Y], [x, index, weight],
          _resize_ref(x, [1], taps, -7.0).astype("float32"), rtol=1e-5)


def test_resize_taps():
    index, weight = RZ.resize_taps(4, 8, 2.0, "linear", "half_pixel")
    assert index.tolist()[:3] == [[0, 0], [0, 1], [0, 1]]
    np.testing.assert_allclose(weight[:3], [[0.25, 0.75], [0.75, 0.25], [0.25, 0.75]])  # x = -0.25, 0.25, 0.75
    for mode, want in (("round_prefer_floor", [0, 0, 0, 1, 1]), ("round_prefer_ceil", [0, 0, 1, 1, 1]),
                       ("floor", [0, 0, 0, 0, 1]), ("ceil", [0, 1, 1, 1, 1])):  # x = 0, .25, .5, .75, 1
        index, weight = RZ.resize_taps(2, 5, 4.0, "nearest", "asymmetric", nearest_mode=mode)
        assert weight is None and index[:, 0].tolist() == want, mode
    wide, _ = RZ.resize_taps(20, 5, 0.25, "linear", "half_pixel", antialias=True)
    assert wide.shape == (5, 8)  # the kernel stretched by 1 / scale
    _, w = RZ.resize_taps(5, 9, 1.8, "cubic", "half_pixel", exclude_outside=True)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    assert RZ.is_identity(*RZ.resize_taps(6, 6, 1.0, "cubic", "half_pixel"), 6)
    assert not RZ.is_identity(*RZ.resize_taps(6, 6, 1.0, "linear", "tf_crop_and_resize", roi=(0.1, 0.9)), 6)


def _two_axis_linear(in_len, out_len):
    taps = [RZ.resize_taps(7, 15, 15 / 7, "linear", "half_pixel"),
            RZ.resize_taps(in_len, out_len, out_len / in_len, "linear", "half_pixel")]
    index, weight = RZ.stack_taps(taps, "float32")
    X, I, W = te.placeholder((2, 7, in_len), name="X"), te.placeholder(index.shape, "int32", "I"), \
        te.placeholder(weight.shape, "float32", "W")
    return taps, (index, weight), (X, I, W)


@pytest.mark.parametrize("in_len,out_len,pass_shape", [(13, 197, (2, 7, 197)), (13, 5, (2, 15, 13))])
def test_resize_interpolates_one_axis_per_pass(in_len, out_len, pass_shape):
    """Two interpolated axes run as two passes, the intermediate kept as a root stage: the
    innermost axis (the one that gathers lane by lane) first where it grows, last where it shrinks."""
    _, _, (X, I, W) = _two_axis_linear(in_len, out_len)
    Y = RZ.resize(X, I, W, axes=[1, 2], shape=[2, 15, out_len])
    (first,) = [t for t in Y.op.input_tensors if getattr(t.op, "tag", None) == KEEP_TAG]
    assert tuple(d.value for d in first.shape) == pass_shape
    s = schedule_injective(Y)
    assert s[first].attach_type == "root"


def test_resize_passes_inline_before_a_layout_change(check, rng):
    """A consumer of another rank (here a blocked channel layout) vectorizes along its lanes,
    where one pass over both axes reads whole vectors: the intermediate is inlined."""
    taps, (index, weight), (X, I, W) = _two_axis_linear(13, 29)
    Y = RZ.resize(X, I, W, axes=[1, 2], shape=[2, 15, 29])
    blocked = te.compute((1, 15, 29, 2), lambda b, y, z, lane: Y[lane, y, z], name="blocked")
    s = schedule_injective(blocked)
    kept = [st for st in s.stages if getattr(st.op, "tag", None) == KEEP_TAG]
    assert kept and all(st.attach_type == "inline" for st in kept)
    x = _rand(rng, (2, 7, 13))
    want = _resize_ref(x, [1, 2], taps).astype("float32").transpose(1, 2, 0)[None]
    check(s, [X, I, W, blocked], [x, index, weight], want, rtol=1e-5)


def test_resize_extrapolates_in_every_pass(check, rng):
    roi = (np.float32(-0.2), np.float32(1.1))
    taps = [RZ.resize_taps(7, 11, 11 / 7, "linear", "tf_crop_and_resize", roi=roi),
            RZ.resize_taps(13, 23, 23 / 13, "linear", "tf_crop_and_resize", roi=roi)]
    index, weight = RZ.stack_taps(taps, "float32")
    X, I, W = te.placeholder((7, 13), name="X"), te.placeholder(index.shape, "int32", "I"), \
        te.placeholder(weight.shape, "float32", "W")
    Y = RZ.resize(X, I, W, axes=[0, 1], shape=[11, 23], extrapolation_value=-7.0)
    x = _rand(rng, (7, 13))
    check(schedule_injective(Y), [X, I, W, Y], [x, index, weight],
          _resize_ref(x, [0, 1], taps, -7.0).astype("float32"), rtol=1e-5)
