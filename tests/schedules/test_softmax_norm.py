"""softmax, log_softmax, layer_norm and batch_norm_inference against numpy."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import OperatorError
from tecomp.schedules import norm as N
from tecomp.schedules import softmax as S
from tecomp.tuner.space import FallbackConfigEntity


def _rand(rng, shape):
    return rng.uniform(-2, 2, size=shape).astype("float32")


def ref_softmax(x, axis, log=False):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    sm = e / e.sum(axis=axis, keepdims=True)
    return np.log(sm) if log else sm


def ref_layer_norm(x, gamma, beta, lead, eps=1e-5):
    axes = tuple(range(lead, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("shape,axis", [((4, 32), -1), ((3, 7), -1), ((2, 5, 6), 1), ((5,), 0),
                                        ((2, 3, 16), 2), ((2, 3, 48), -1), ((3, 197), -1), ((2, 47), -1),
                                        ((3, 40), -1), ((2, 24), -1)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax(check, rng, shape, axis, log):
    X = te.placeholder(shape, name="X")
    Y = (S.log_softmax if log else S.softmax)(X, axis)
    x = _rand(rng, shape) * 20  # large values: the max-subtract keeps exp finite
    check(S.schedule_softmax(Y), [X, Y], [x], ref_softmax(x, axis, log), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("index", [0, 1, 3])
def test_softmax_template_configs(check, rng, index):
    task = autotvm.task.create("schedules/softmax", ((3, 32), -1, "float32", True), target="llvm")
    s, tensors = task.instantiate(task.config_space.get(index))
    x = _rand(rng, (3, 32))
    check(s, tensors, [x], ref_softmax(x, -1, log=True), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,axis,lead", [((4, 32), -1, 1), ((3, 5, 7), 1, 1), ((2, 3, 16), [1, 2], 1),
                                             ((6,), 0, 0), ((2, 3, 8), -1, 2), ((2, 3, 64), -1, 2),
                                             ((5, 197), -1, 1), ((1, 7, 7, 40), -1, 3), ((3, 200), -1, 1)])
def test_layer_norm(check, rng, shape, axis, lead):
    X = te.placeholder(shape, name="X")
    G, B = te.placeholder(shape[lead:], name="g"), te.placeholder(shape[lead:], name="b")
    Y = N.layer_norm(X, G, B, axis)
    x, g, b = _rand(rng, shape), _rand(rng, shape[lead:]), _rand(rng, shape[lead:])
    check(N.schedule_layer_norm(Y), [X, G, B, Y], [x, g, b], ref_layer_norm(x, g, b, lead),
          rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("index", [0, 2])
def test_layer_norm_template_configs(check, rng, index):
    task = autotvm.task.create("schedules/layer_norm", ((4, 16), -1), target="llvm")
    s, tensors = task.instantiate(task.config_space.get(index))
    x, g, b = _rand(rng, (4, 16)), _rand(rng, (16,)), _rand(rng, (16,))
    check(s, tensors, [x, g, b], ref_layer_norm(x, g, b, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels, lanes", [(40, 8), (24, 8), (200, 8), (32, 16), (197, 16), (1500, 16), (7, 16)])
def test_rows_that_8_lanes_divide_and_16_do_not_take_8(channels, lanes):
    """ConvNeXt's 40-channel layer norm: five 8-lane vectors per row, not two of 16 and a scalar
    tail of 8, in the statistics and in the fallback config's output loop."""
    X = te.placeholder((6, channels), name="X")
    G, B = te.placeholder((channels,), name="g"), te.placeholder((channels,), name="b")
    stages, todo = [], [N.layer_norm(X, G, B, -1)]
    while todo:
        t = todo.pop()
        stages.append(t)
        todo.extend(t.op.input_tensors)
    partials = {t.shape[-1].value for t in stages if t.op.name.endswith("_partial")}
    assert partials == ({lanes} if channels >= 2 * lanes else set())
    task = autotvm.task.create("schedules/layer_norm", ((6, channels), -1), target="llvm")
    assert FallbackConfigEntity(task.config_space)["lanes"].val == lanes


@pytest.mark.parametrize("shape,axis", [((2, 3, 4, 5), 1), ((5, 3), -1)])
def test_batch_norm_inference(check, rng, shape, axis):
    c = shape[axis]
    X = te.placeholder(shape, name="X")
    params = [te.placeholder((c,), name=n) for n in ("gamma", "beta", "mean", "var")]
    Y = N.batch_norm_inference(X, *params, epsilon=1e-3, axis=axis)
    x = _rand(rng, shape)
    g, b, m = _rand(rng, (c,)), _rand(rng, (c,)), _rand(rng, (c,))
    v = rng.uniform(0.1, 2, size=(c,)).astype("float32")
    view = [1] * len(shape)
    view[axis] = c
    g_, b_, m_, v_ = (p.reshape(view) for p in (g, b, m, v))
    expected = (x - m_) / np.sqrt(v_ + 1e-3) * g_ + b_
    check(N.schedule_batch_norm_inference(Y), [X, *params, Y], [x, g, b, m, v], expected,
          rtol=1e-4, atol=1e-4)


def _p(shape, dtype="float32"):
    return te.placeholder(shape, dtype)


@pytest.mark.parametrize("make,pattern", [
    (lambda: S.softmax(_p((3, 4)), 2), "softmax: argument axis: 2 is out of range"),
    (lambda: S.log_softmax(_p((3, 4), "int32")), "log_softmax: argument x: dtype"),
    (lambda: N.layer_norm(_p((3, 4)), _p((3,)), _p((4,))), "layer_norm: argument gamma"),
    (lambda: N.layer_norm(_p((3, 4, 5)), _p((4, 5)), _p((4, 5)), [1]), "layer_norm: argument axis"),
    (lambda: N.layer_norm(_p((3, 4)), _p((4,)), _p((4,)), -3), "layer_norm: argument axis"),
    (lambda: N.layer_norm(_p((3, 4)), _p((4,)), _p((4,)), epsilon=-1.0), "layer_norm: argument epsilon"),
    (lambda: N.batch_norm_inference(_p((2, 3)), _p((3,)), _p((3,)), _p((2,)), _p((3,))),
     "batch_norm_inference: argument mean"),
    (lambda: N.batch_norm_inference(_p((2, 3)), *[_p((3,))] * 4, axis=5), "batch_norm_inference: argument axis"),
])
def test_norm_softmax_errors(make, pattern):
    with pytest.raises(OperatorError, match=pattern):
        make()


def test_odd_rows_keep_vector_partials_and_vector_stages():
    """197 = 12 x 16 + 5: the row max and sum keep 16 vector accumulators (the 5 left join the
    lanes' reduction) and the elementwise stages a vector body (the tail peeled off)."""
    X = te.placeholder((3, 197), name="X")
    text = str(tecomp.lower(S.schedule_softmax(S.softmax(X, -1)), [X]))
    assert "row_max_partial[ramp(0, 1, 16)]" in text and "row_sum_partial[ramp(0, 1, 16)]" in text
    assert "exp((X[ramp(" in text
