"""The generic CUDA schedule (``schedule_fallback``): pooling, layer norm and arbitrary programs,
emulated against numpy and compiled with nvcc."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp import te
from tecomp.schedules import elementwise, norm, pooling, reduction
from tecomp.schedules.cuda import schedule_fallback, schedule_layer_norm

from gpu_helpers import emulate_and_compile

RNG = np.random.default_rng(7)


def _x(*shape):
    return RNG.standard_normal(shape).astype("float32")


def _window_view(x, k, stride, pad, fill):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    oh = (xp.shape[2] - k) // stride + 1
    ow = (xp.shape[3] - k) // stride + 1
    return np.stack([xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                     for i in range(k) for j in range(k)])


def test_max_pool_with_relu_epilogue():
    x = _x(1, 4, 9, 9)
    X = te.placeholder(x.shape, name="x")
    out = elementwise.relu(pooling.max_pool2d(X, 3, 2, 1))
    want = np.maximum(_window_view(x, 3, 2, 1, -np.inf).max(0), 0)
    func, _ = emulate_and_compile(schedule_fallback(out), [X, out], [x], want)
    assert "local" in str(func)  # the window maximum lives in a register of the output's thread


@pytest.mark.parametrize("include_pad", [False, True])
def test_avg_pool(include_pad):
    x = _x(1, 3, 7, 7)
    X = te.placeholder(x.shape, name="x")
    out = pooling.avg_pool2d(X, 3, 2, 1, count_include_pad=include_pad)
    sums = _window_view(x, 3, 2, 1, 0.0).sum(0)
    counts = 9.0 if include_pad else _window_view(np.ones_like(x), 3, 2, 1, 0.0).sum(0)
    emulate_and_compile(schedule_fallback(out), [X, out], [x], (sums / counts).astype("float32"))


def test_global_avg_pool():
    x = _x(2, 5, 4, 6)
    X = te.placeholder(x.shape, name="x")
    out = pooling.global_avg_pool2d(X)
    emulate_and_compile(schedule_fallback(out), [X, out], [x], x.mean((2, 3), keepdims=True))


@pytest.mark.parametrize("schedule", [schedule_fallback, schedule_layer_norm])
@pytest.mark.parametrize("shape, axis", [
    ((6, 32), -1), ((2, 3, 16), -1),   # short rows: a thread per row
    ((3, 96), -1),                     # 16 lane partials, a block per row (a lane per thread)
    ((2, 8, 12), (1, 2)),              # two normalised axes fused, a block per row
])
def test_layer_norm(schedule, shape, axis):
    axes = (axis,) if isinstance(axis, int) else axis
    norm_shape = tuple(shape[a] for a in axes)
    x, g, b = _x(*shape), _x(*norm_shape), _x(*norm_shape)
    X, G, B = (te.placeholder(a.shape, name=n) for a, n in ((x, "x"), (g, "g"), (b, "b")))
    out = norm.layer_norm(X, G, B, list(axis) if isinstance(axis, tuple) else axis)
    mu = x.mean(axes, keepdims=True)
    want = (x - mu) / np.sqrt(((x - mu) ** 2).mean(axes, keepdims=True) + 1e-5) * g + b
    func, _ = emulate_and_compile(schedule(out), [X, G, B, out], [x, g, b], want, rtol=1e-4, atol=1e-4)
    if schedule is schedule_layer_norm:
        assert ("red_buf" in str(func)) == (shape[-1] * (8 if len(axes) == 2 else 1) >= 64)


def test_row_statistic_read_by_every_element_runs_as_its_own_kernel():
    x = _x(5, 12)
    X = te.placeholder(x.shape, name="x")
    total = reduction.sum(X, axis=1, keepdims=True)
    out = te.compute(x.shape, lambda i, j: X[i, j] * 2.0 - total[i, 0], name="centered")
    func, _ = emulate_and_compile(schedule_fallback(out), [X, out], [x], x * 2 - x.sum(1, keepdims=True))
    assert str(func).count("kernel") >= 2


def test_full_reduction_to_0d_is_one_block_reducing_across_its_threads():
    x = _x(7, 90)
    X = te.placeholder(x.shape, name="x")
    out = reduction.sum(X)
    func, _ = emulate_and_compile(schedule_fallback(out), [X, out], [x], np.array(x.sum(), "float32"),
                                  rtol=1e-4, atol=1e-4)
    assert "red_buf" in str(func)


def test_0d_elementwise_output_is_a_one_thread_kernel():
    x = _x(7, 9)
    X = te.placeholder(x.shape, name="x")
    total = reduction.sum(X, keepdims=True)
    out = te.compute((), lambda: total[0, 0] * 0.5, name="half")
    emulate_and_compile(schedule_fallback(out), [X, out], [x], np.array(x.sum() * 0.5, "float32"))


def test_long_row_sum_scaled_keeps_its_lane_partials_in_the_threads_registers():
    x = _x(4, 64)
    X = te.placeholder(x.shape, name="x")
    total = reduction.sum(X, axis=1)
    out = te.compute((4,), lambda i: total[i] * 2.0, name="twice")
    func, _ = emulate_and_compile(schedule_fallback(out), [X, out], [x], x.sum(1) * 2, rtol=1e-5, atol=1e-5)
    assert str(func).count("kernel = 0") == 1
