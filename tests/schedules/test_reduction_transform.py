"""Reduction and transform operators against numpy, through their default schedules."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import elementwise as E
from tecomp.schedules import reduction as R
from tecomp.schedules import transform as T
from tecomp.schedules.common import schedule_injective

REDUCERS = [(R.sum, np.sum), (R.mean, np.mean), (R.max, np.max), (R.min, np.min)]
AXES = [(None, False), (None, True), (-1, False), ((0, 2), True), (1, False), ((-3, -2), False)]


def _rand(rng, shape, dtype="float32"):
    return rng.uniform(-2, 2, size=shape).astype(dtype)


@pytest.mark.parametrize("op,ref", REDUCERS)
@pytest.mark.parametrize("axis,keepdims", AXES)
def test_reduce(check, rng, op, ref, axis, keepdims):
    X = te.placeholder((3, 4, 5), name="X")
    Y = op(E.exp(X), axis, keepdims)
    x = _rand(rng, (3, 4, 5))
    check(R.schedule_reduce(Y), [X, Y], [x], ref(np.exp(x), axis=axis, keepdims=keepdims), rtol=1e-5)


@pytest.mark.parametrize("op,ref", REDUCERS + [(R.argmax, np.argmax)])
@pytest.mark.parametrize("shape,axis", [((1, 3, 7, 7, 16), (2, 3)), ((2, 5, 13), 1), ((4, 40), 0),
                                        ((3, 197, 8), (0, 1))])
def test_reductions_keeping_the_last_axis_run_on_vectors(check, rng, op, ref, shape, axis):
    X = te.placeholder(shape, name="X")
    if op is R.argmax:
        axis = axis if isinstance(axis, int) else axis[0]
        Y = op(E.exp(X), axis, keepdims=False)
    else:
        Y = op(E.exp(X), axis, keepdims=True)
    x = _rand(rng, shape)
    want = ref(np.exp(x), axis=axis) if op is R.argmax else ref(np.exp(x), axis=axis, keepdims=True)
    s = R.schedule_reduce(Y)
    check(s, [X, Y], [x], want.astype(Y.dtype), rtol=1e-5)
    if shape[-1] % 8 == 0:  # whole vectors: a vector accumulator
        assert f"ramp(0, 1, {16 if shape[-1] % 16 == 0 else 8})" in str(tecomp.lower(s, [X, Y]))


@pytest.mark.parametrize("op,ref", [(R.sum, np.sum), (R.max, np.max), (R.min, np.min)])
def test_reduce_int(check, rng, op, ref):
    X = te.placeholder((5, 3), "int32", "X")
    Y = op(X, 0)
    x = rng.integers(-50, 50, size=(5, 3)).astype("int32")
    check(R.schedule_reduce(Y), [X, Y], [x], ref(x, axis=0).astype("int32"))


def test_reduce_large_llvm(rng):
    X = te.placeholder((33, 130, 17), name="X")
    Y = R.mean(X, (0, -1), keepdims=True)
    mod = tecomp.build(R.schedule_reduce(Y), [X, Y])
    x = _rand(rng, (33, 130, 17))
    y = np.zeros((1, 130, 1), "float32")
    mod(x, y)
    np.testing.assert_allclose(y, x.mean(axis=(0, 2), keepdims=True), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("make,pattern", [
    (lambda: R.sum(te.placeholder((3, 4)), 2), "sum: argument axis: 2 is out of range"),
    (lambda: R.max(te.placeholder((3, 4)), (-3,)), "max: argument axis"),
    (lambda: R.min(te.placeholder((3, 4)), (1, -1)), "min: argument axis: .* twice"),
    (lambda: R.sum(te.placeholder((3, 4)), ()), "sum: argument axis: is empty"),
    (lambda: R.mean(te.placeholder((3, 4), "int32")), "mean: argument x: dtype"),
])
def test_reduce_errors(make, pattern):
    with pytest.raises(OperatorError, match=pattern):
        make()


def _check_unary(check, rng, shape, make, ref, dtype="float32"):
    X = te.placeholder(shape, dtype, "X")
    Y = make(X)
    x = _rand(rng, shape, dtype)
    outs = Y if isinstance(Y, list) else [Y]
    check(schedule_injective(outs), [X, *outs], [x], ref(x))


@pytest.mark.parametrize("shape,axes", [((3, 4, 5), None), ((3, 4, 5), (1, -1, 0)), ((7,), None), ((2, 3), (0, 1))])
def test_transpose(check, rng, shape, axes):
    _check_unary(check, rng, shape, lambda x: T.transpose(x, axes), lambda x: np.transpose(x, axes))


@pytest.mark.parametrize("shape,newshape,expected", [
    ((3, 4, 5), (0, -1), (3, 20)), ((3, 4, 5), (-1,), (60,)), ((6, 5), (5, 3, 2), (5, 3, 2)),
    ((2, 3, 5), (0, 0, 1, 5), (2, 3, 1, 5)), ((7,), (1, 7, 1), (1, 7, 1)),
])
def test_reshape(check, rng, shape, newshape, expected):
    _check_unary(check, rng, shape, lambda x: T.reshape(x, newshape), lambda x: x.reshape(expected))


@pytest.mark.parametrize("axis,expected", [(0, (1, 60)), (1, (3, 20)), (-1, (12, 5)), (3, (60, 1))])
def test_flatten(check, rng, axis, expected):
    _check_unary(check, rng, (3, 4, 5), lambda x: T.flatten(x, axis), lambda x: x.reshape(expected))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate(check, rng, axis):
    shapes = [[3, 4, 5], [3, 4, 5], [3, 4, 5]]
    for k, n in enumerate((1, 2, 3)):
        shapes[k][axis] = n
    xs = [te.placeholder(tuple(s), name=f"X{k}") for k, s in enumerate(shapes)]
    Y = T.concatenate(xs, axis)
    arrays = [_rand(rng, tuple(s)) for s in shapes]
    check(schedule_injective(Y), [*xs, Y], arrays, np.concatenate(arrays, axis))


@pytest.mark.parametrize("ios,axis", [(3, 0), ([1, 3], 1), ([2, 2, 5], -1), (1, 2)])
def test_split(check, rng, ios, axis):
    _check_unary(check, rng, (3, 4, 5), lambda x: T.split(x, ios, axis), lambda x: np.split(x, ios, axis))


@pytest.mark.parametrize("begin,end,strides,axes,ref", [
    ([1, 0], [3, 4], None, None, lambda x: x[1:3, 0:4]),
    ([-1], [-100], [-1], [0], lambda x: x[-1:-100:-1]),
    ([10, 1], [-1, 100], [-2, 2], [2, 1], lambda x: x[:, 1:100:2, 10:-1:-2]),
    ([-2], [2 ** 31 - 1], [1], [-1], lambda x: x[..., -2:]),
    ([4], [-6], [-2], [2], lambda x: x[:, :, 4::-2]),
    ([3], [1], None, [1], lambda x: x[:, 3:1]),
])
def test_strided_slice(check, rng, begin, end, strides, axes, ref):
    _check_unary(check, rng, (3, 4, 5), lambda x: T.strided_slice(x, begin, end, strides, axes), ref)


@pytest.mark.parametrize("before,after,value", [([1, 0, 2], [0, 3, 1], 7.0), ([0, 0, 0], [0, 0, 0], 0.0),
                                                ([2, 2, 0], [1, 0, 0], -1.5)])
def test_pad(check, rng, before, after, value):
    _check_unary(check, rng, (3, 4, 5), lambda x: T.pad(x, before, after, value),
                 lambda x: np.pad(x, list(zip(before, after)), constant_values=value))


@pytest.mark.parametrize("ishape,axis,dtype", [((2, 3), 1, "int64"), ((4,), 0, "int32"), ((), -1, "int32"),
                                               ((5, 1), -3, "int64")])
def test_take(check, rng, ishape, axis, dtype):
    X, Ind = te.placeholder((3, 4, 5), name="X"), te.placeholder(ishape, dtype, "I")
    Y = T.take(X, Ind, axis)
    dim = (3, 4, 5)[axis]
    x, ind = _rand(rng, (3, 4, 5)), rng.integers(-dim, dim, size=ishape).astype(dtype)
    check(schedule_injective(Y), [X, Ind, Y], [x, ind], np.take(x, ind, axis))


@pytest.mark.parametrize("shape,target", [((3, 1), (2, 1, 4)), ((1,), (5,)), ((2, 3), (3,)), ((4,), (2, 1, 1))])
def test_expand(check, rng, shape, target):
    _check_unary(check, rng, shape, lambda x: T.expand(x, target), lambda x: x * np.ones(target, "float32"))


def test_transform_chain_large_llvm(rng):
    X = te.placeholder((40, 33, 9), name="X")
    Y = T.reshape(T.transpose(T.pad(X, [1, 0, 2], [0, 1, 0]), (2, 0, 1)), (-1, 34))
    mod = tecomp.build(schedule_injective(Y), [X, Y])
    x = _rand(rng, (40, 33, 9))
    y = np.zeros((11 * 41, 34), "float32")
    mod(x, y)
    np.testing.assert_array_equal(y, np.pad(x, [(1, 0), (0, 1), (2, 0)]).transpose(2, 0, 1).reshape(-1, 34))


@pytest.mark.parametrize("make,pattern", [
    (lambda: T.transpose(te.placeholder((3, 4)), (0, 0)), "transpose: argument axes"),
    (lambda: T.transpose(te.placeholder((3, 4)), (0, 2)), "transpose: argument axes: 2 is out of range"),
    (lambda: T.reshape(te.placeholder((3, 4)), (5, -1)), "reshape: argument newshape: cannot infer"),
    (lambda: T.reshape(te.placeholder((3, 4)), (-1, -1)), "reshape: argument newshape: .*more than one"),
    (lambda: T.reshape(te.placeholder((3, 4)), (5, 2)), "reshape: argument newshape: .*elements"),
    (lambda: T.flatten(te.placeholder((3, 4)), 3), "flatten: argument axis"),
    (lambda: T.concatenate([te.placeholder((3, 4)), te.placeholder((2, 5))], 0), "concatenate: argument tensors\\[1\\]"),
    (lambda: T.concatenate([], 0), "concatenate: argument tensors: is empty"),
    (lambda: T.split(te.placeholder((3, 4)), 3, 1), "split: argument indices_or_sections"),
    (lambda: T.split(te.placeholder((3, 4)), [3, 1], 1), "split: argument indices_or_sections"),
    (lambda: T.strided_slice(te.placeholder((3, 4)), [0], [1], [0]), "strided_slice: argument strides"),
    (lambda: T.strided_slice(te.placeholder((3, 4)), [0], [1, 2]), "strided_slice: argument end"),
    (lambda: T.pad(te.placeholder((3, 4)), [1], [1, 1]), "pad: argument pad_before"),
    (lambda: T.pad(te.placeholder((3, 4)), [0, 0], [0, -1]), "pad: argument pad_after"),
    (lambda: T.take(te.placeholder((3, 4)), te.placeholder((2,)), 0), "take: argument indices: dtype"),
    (lambda: T.take(te.placeholder((3, 4)), te.placeholder((2,), "int32"), 2), "take: argument axis"),
    (lambda: T.expand(te.placeholder((3, 4)), (2, 4)), "expand: argument shape"),
])
def test_transform_errors(make, pattern):
    with pytest.raises(OperatorError, match=pattern):
        make()
