"""The library's mod, integer power, isnan/isinf, sign, trilu, prod/logsumexp/argmax, cumsum, topk,
one_hot and pad_mode: the reference interpreter and LLVM against numpy, and their argument errors."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import elementwise as E
from tecomp.schedules import rearrange, reduction, scan_ops
from tecomp.schedules.common import schedule_injective
from tecomp.schedules.reduction import schedule_reduce
from tecomp.tir import interpreter
from tecomp.tir.stmt import ForKind


@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float32", "float64"])
@pytest.mark.parametrize("fmod", [False, True])
def test_mod(check, rng, dtype, fmod):
    signed = np.dtype(dtype).kind != "u"
    a = (rng.integers(-40 if signed else 0, 40, (3, 13)) + (0.25 if dtype[0] == "f" else 0)).astype(dtype)
    b = rng.integers(1, 7, (13,)).astype(dtype) * (np.where(rng.random(13) < 0.5, -1, 1).astype(dtype)
                                                      if signed else 1)
    A, B = te.placeholder(a.shape, dtype, "A"), te.placeholder(b.shape, dtype, "B")
    C = E.mod(A, B, fmod=fmod)
    check(schedule_injective(C), [A, B, C], [a, b], (np.fmod if fmod else np.mod)(a, b))


def test_integer_power_and_nan_tests(check):
    a = np.array([2, -3, 5, 0, 1, -1, 7], "int64")
    A = te.placeholder(a.shape, "int64", "A")
    P = E.power(A, 3)
    check(schedule_injective(P), [A, P], [a], a ** 3)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 2.5, -1.0, 7.0], "float32")
    X = te.placeholder(x.shape, "float32", "X")
    outs = [E.isnan(X), E.isinf(X), E.isinf(X, detect_negative=False), E.sign(X), E.round(X)]
    check(schedule_injective(outs), [X, *outs], [x],
          [np.isnan(x), np.isinf(x), x == np.inf, np.sign(x), np.round(x)])


def test_sign_of_unsigned_and_trilu(check, rng):
    u = np.array([0, 1, 200], "uint8")
    U = te.placeholder(u.shape, "uint8", "U")
    S = E.sign(U)
    check(schedule_injective(S), [U, S], [u], np.sign(u))
    x = rng.standard_normal((2, 5, 7)).astype("float32")
    X = te.placeholder(x.shape, "float32", "X")
    lo, up = E.trilu(X, k=-1, upper=False), E.trilu(X, k=2)
    check(schedule_injective([lo, up]), [X, lo, up], [x], [np.tril(x, -1), np.triu(x, 2)])


def test_prod_logsumexp_argmax(check, rng):
    x = rng.uniform(0.5, 1.5, (5, 13)).astype("float32")
    x[1, 3] = x[1, 9] = 9.0  # a tie: first and last index differ
    X = te.placeholder(x.shape, "float32", "X")
    outs = [reduction.prod(X, axis=1), reduction.logsumexp(X, axis=1),
            reduction.argmax(X, axis=1, keepdims=False), reduction.argmax(X, 1, False, select_last_index=True),
            reduction.argmin(X, axis=0)]
    last = x.shape[1] - 1 - np.argmax(x[:, ::-1], axis=1)
    want = [np.prod(x, axis=1), np.log(np.exp(x).sum(axis=1)), np.argmax(x, axis=1), last,
            np.argmin(x, axis=0)[None]]
    check(schedule_reduce(outs), [X, *outs], [x], want, rtol=1e-5)


@pytest.mark.parametrize("exclusive", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(check, rng, exclusive, reverse):
    x = rng.integers(-9, 10, (3, 11)).astype("int32")
    X = te.placeholder(x.shape, "int32", "X")
    C = scan_ops.cumsum(X, axis=1, exclusive=exclusive, reverse=reverse)
    v = x[:, ::-1] if reverse else x
    want = np.cumsum(v, axis=1) - (v if exclusive else 0)
    check(scan_ops.schedule_cumsum(C), [X, C], [x], (want[:, ::-1] if reverse else want).astype("int32"))


@pytest.mark.parametrize("axis", [0, 2])
def test_cumsum_is_one_pass_along_any_axis(check, rng, axis):
    """A scan (a serial loop over the axis), not a sum over each element's prefix."""
    x = rng.uniform(-1, 1, (197, 3, 20)).astype("float32")
    X = te.placeholder(x.shape, "float32", "X")
    C = scan_ops.cumsum(X, axis=axis, reverse=axis == 2)
    s = scan_ops.schedule_cumsum(C)
    text = str(tecomp.lower(s, [X, C], simple_mode=True))
    assert text.count(f"for (cumsum_scan.idx, {x.shape[axis] - 1})") == 1 and "select(" not in text, text
    want = np.flip(np.cumsum(np.flip(x, 2), axis=2), 2) if axis == 2 else np.cumsum(x, axis=0)
    check(s, [X, C], [x], want.astype("float32"), rtol=1e-4, atol=1e-4)


def test_topk_ties_keep_the_lower_index(check, rng):
    x = rng.integers(0, 4, (3, 13)).astype("float32")
    X = te.placeholder(x.shape, "float32", "X")
    values, indices = scan_ops.topk(X, 5, axis=1, largest=True)
    order = np.argsort(-x, axis=1, kind="stable")[:, :5]
    check(scan_ops.schedule_topk([values, indices]), [X, values, indices], [x],
          [np.take_along_axis(x, order, 1), order.astype("int64")])


def test_one_hot_and_pad_modes(check, rng):
    idx = np.array([[1, -1, 6], [0, 2, -7]], "int32")
    I, V = te.placeholder(idx.shape, "int32", "I"), te.placeholder((2,), "float32", "V")
    H = rearrange.one_hot(I, V, 4, axis=1)
    want = np.where(np.arange(4)[None, :, None] == np.where(idx < 0, idx + 4, idx)[:, None, :], 5.0, -1.0)
    check(schedule_injective(H), [I, V, H], [idx, np.array([-1.0, 5.0], "float32")], want.astype("float32"))
    x = rng.standard_normal((3, 5)).astype("float32")
    X = te.placeholder(x.shape, "float32", "X")
    outs = [rearrange.pad_mode(X, [1, 7], [2, 3], mode) for mode in rearrange.PAD_MODES]
    check(schedule_injective(outs), [X, *outs], [x],
          [np.pad(x, ((1, 2), (7, 3)), mode={"edge": "edge", "reflect": "reflect", "wrap": "wrap"}[m])
           for m in rearrange.PAD_MODES])


def _shuffled(x, groups):
    n, c = x.shape[:2]
    return x.reshape(n, groups, c // groups, *x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


@pytest.mark.parametrize("shape, groups, block", [
    ((1, 48, 7, 7), 2, 0), ((2, 6, 5), 3, 0), ((1, 48, 7, 5), 2, 24), ((1, 24, 3, 13), 3, 8), ((1, 24, 7, 7), 4, 6),
])
def test_channel_shuffle_in_plain_and_blocked_layouts(check, rng, shape, groups, block):
    """ShuffleNet's reshape-transpose-reshape of the channels; blocked, the lanes of one output
    block come from several input blocks (block 6 with 4 groups: from every block)."""
    x = rng.standard_normal(shape).astype("float32")
    want = _shuffled(x, groups)
    if block:
        n, c, h, w = shape
        x, want = (v.reshape(n, c // block, block, h, w).transpose(0, 1, 3, 4, 2).copy() for v in (x, want))
    X = te.placeholder(x.shape, "float32", "X")
    Y = rearrange.channel_shuffle(X, groups, f"NCHW{block}c" if block else "NCHW")
    check(schedule_injective(Y), [X, Y], [x], want)


def _innermost_kind(s, t) -> ForKind:
    stage = s[t]
    attr = stage.iter_var_attrs.get(stage.leaf_iter_vars[-1])
    return attr.kind if attr else ForKind.SERIAL


def test_a_blocked_shuffle_unrolls_its_lanes_outside_the_spatial_loops():
    """Each output lane reads its own source block and lane: worked out once per lane and row,
    the columns inside copy with a fixed stride (lanes as one vector would gather)."""
    X = te.placeholder((1, 6, 14, 14, 8), "float32", "X")
    Y = rearrange.channel_shuffle(X, 2, "NCHW8c")
    s = schedule_injective(Y)
    stage = s[Y]
    lane = stage.op.axis[4]
    assert stage.leaf_iter_vars[-2:] == [lane, stage.op.axis[3]]
    assert stage.iter_var_attrs[lane].kind is ForKind.UNROLLED
    assert _innermost_kind(s, Y) is ForKind.SERIAL
    plain = te.compute(X.shape, lambda *i: X(*i) + 1.0)  # lanes read in place: a vector as before
    assert _innermost_kind(schedule_injective(plain), plain) is ForKind.VECTORIZED


@pytest.mark.parametrize("build,text", [
    (lambda X: E.power(te.placeholder((3,), "uint8"), 2), "power: argument a: dtype"),
    (lambda X: E.trilu(te.placeholder((3,), "float32")), "trilu: argument x: needs rank 2"),
    (lambda X: scan_ops.topk(X, 9), "topk: argument k"),
    (lambda X: scan_ops.cumsum(X, axis=2), "cumsum: argument axis"),
    (lambda X: reduction.argmax(X, axis=(0, 1)), "argmax: argument axis"),
    (lambda X: rearrange.pad_mode(X, [0, 1], [0, 0], "mirror"), "pad_mode: argument mode"),
    (lambda X: rearrange.pad_mode(te.placeholder((0, 2), "float32"), [1, 0], [0, 0], "edge"),
     "pad_mode: argument x: axis 0"),
    (lambda X: rearrange.one_hot(te.placeholder((3,), "int32"), te.placeholder((3,), "float32"), 4),
     "one_hot: argument values"),
    (lambda X: rearrange.channel_shuffle(X, 2), "channel_shuffle: argument groups: must be a positive int dividing "
                                               "the 7 channels"),
    (lambda X: rearrange.channel_shuffle(X, 1, "NCHW8c"), r"channel_shuffle: argument x: layout NCHW8c needs"),
    (lambda X: rearrange.channel_shuffle(X, 1, "NHWC"), "layout_transform: argument layout"),
])
def test_errors(build, text):
    with pytest.raises(OperatorError, match=text):
        build(te.placeholder((3, 7), "float32", "X"))


@pytest.mark.parametrize("dtype", ["int8", "int32", "int64", "uint16"])
@pytest.mark.parametrize("fmod", [False, True])
def test_integer_mod_by_zero_and_minus_one_does_not_trap(check, dtype, fmod):
    info = np.iinfo(dtype)
    a = np.array([info.min, info.max, 7, -7 if info.min < 0 else 9, 0], dtype)
    b = np.array([-1 if info.min < 0 else 1, 0, 0, 3, 0], dtype)
    A, B = te.placeholder(a.shape, dtype, "A"), te.placeholder(b.shape, dtype, "B")
    C = E.mod(A, B, fmod=fmod)
    with np.errstate(divide="ignore"):
        want = (np.fmod if fmod else np.mod)(a, b)
    check(schedule_injective(C), [A, B, C], [a, b], want)


def test_argmax_of_rows_with_nan_stays_in_range():
    """ONNX leaves NaN unspecified; the index must still be one of the axis."""
    x = np.array([[1, np.nan, 3], [np.nan, np.nan, np.nan], [2, 5, np.nan]], "float32")
    X = te.placeholder(x.shape, "float32", "X")
    outs = [reduction.argmax(X, 1, False), reduction.argmin(X, 1, False, select_last_index=True)]
    func = tecomp.lower(schedule_reduce(outs), [X, *outs])["main"]
    ref = [x.copy(), np.full(3, -9, "int64"), np.full(3, -9, "int64")]
    interpreter.run(func, ref)
    got = [a.copy() for a in ref[:1]] + [np.full(3, -9, "int64"), np.full(3, -9, "int64")]
    tecomp.build(func, target="llvm")(*got)
    for indices in ref[1:] + got[1:]:
        assert ((0 <= indices) & (indices < 3)).all()
