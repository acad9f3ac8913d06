"""Serial loops whose steps run parallel loops execute on one thread team (codegen/llvm_team.py,
``tecomp_parallel_team`` in runtime/thread_pool.c): an LSTM whose per-step product is parallel
agrees with numpy at 1 and 2 threads, with an odd number of product tiles per member, and from
several callers at once (all but one of them then run the team alone)."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.runtime import get_num_threads, set_num_threads
from tecomp.schedules.recurrent import lstm, schedule_recurrent

from concurrent_calls import failures_of_concurrent_calls

STEPS, BATCH, HIDDEN = 11, 2, 144  # 576 gate columns: 9 product tiles per batch row, 18 in all


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    before = get_num_threads()
    set_num_threads(request.param)
    yield request.param
    set_num_threads(before)


@pytest.fixture(scope="module")
def kernel():
    xw = te.placeholder((STEPS, BATCH, 4 * HIDDEN), name="xw")
    r_t = te.placeholder((HIDDEN, 4 * HIDDEN), name="r_t")
    h0, c0 = te.placeholder((BATCH, HIDDEN), name="h0"), te.placeholder((BATCH, HIDDEN), name="c0")
    outs = lstm(xw, r_t, h0, c0)
    return tecomp.build(schedule_recurrent(outs), [xw, r_t, h0, c0, *outs])


def _inputs():
    rng = np.random.default_rng(0)
    return [rng.uniform(-1, 1, shape).astype("float32") * scale for shape, scale in
            (((STEPS, BATCH, 4 * HIDDEN), 1.0), ((HIDDEN, 4 * HIDDEN), 0.1), ((BATCH, HIDDEN), 1.0),
             ((BATCH, HIDDEN), 1.0))]


def _reference(xw, r_t, h, c):
    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    ys = []
    for step in range(STEPS):
        i, o, f, g = np.split(xw[step] + h @ r_t, 4, axis=1)  # ONNX's gate order
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
        ys.append(h)
    return [np.stack(ys), h, c]


def _check(kernel):
    inputs = _inputs()
    outs = [np.full(shape, np.nan, "float32") for shape in ((STEPS, BATCH, HIDDEN), (BATCH, HIDDEN), (BATCH, HIDDEN))]
    kernel(*inputs, *outs)
    for got, want in zip(outs, _reference(*inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_the_steps_run_on_one_team_and_agree_with_numpy(kernel, threads):
    assert "tecomp_parallel_team" in kernel.get_source("ll")
    _check(kernel)


def test_callers_on_several_threads_at_once(kernel):
    before = get_num_threads()
    set_num_threads(2)
    try:
        assert not failures_of_concurrent_calls(lambda: _check(kernel))
    finally:
        set_num_threads(before)
