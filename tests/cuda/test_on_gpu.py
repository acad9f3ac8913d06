"""On a real GPU (marked ``gpu``; skipped without one): the schedules' kernels run and match numpy.

Run on a GPU host with ``pip install -e '.[test,cuda]'`` and ``python -m pytest tests/cuda -m gpu``.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.schedules import conv2d, dense, reduction, softmax
from tecomp.schedules.cuda import (schedule_conv2d_nchw, schedule_dense, schedule_injective, schedule_reduce,
                                   schedule_softmax)

from gpu_helpers import needs_gpu, needs_nvcc

pytestmark = [pytest.mark.gpu, needs_gpu, needs_nvcc]


def _run(s, args, inputs, out_shapes):
    mod = tecomp.build(s, args, target="cuda")
    dev = tecomp.cuda(0)
    outs = [tecomp.nd.empty(shape, "float32", dev) for shape in out_shapes]
    mod(*[tecomp.nd.array(x, dev) for x in inputs], *outs)
    return mod, [o.numpy() for o in outs]


@pytest.mark.parametrize("size", [1000, 4096])
def test_vector_add(size, rng):
    A, B = te.placeholder((size,), name="A"), te.placeholder((size,), name="B")
    C = te.compute((size,), lambda i: A[i] + B[i], name="C")
    a, b = rng.standard_normal(size).astype("float32"), rng.standard_normal(size).astype("float32")
    _, (c,) = _run(schedule_injective(C), [A, B, C], [a, b], [(size,)])
    np.testing.assert_allclose(c, a + b)


@pytest.mark.parametrize("m, n, k", [(256, 256, 256), (100, 72, 50)])
def test_dense(m, n, k, rng, tmp_path):
    A, W = te.placeholder((m, k), name="A"), te.placeholder((n, k), name="W")
    with tecomp.target.Target("cuda"):
        C = dense.dense(A, W)
    a, w = rng.standard_normal((m, k)).astype("float32"), rng.standard_normal((n, k)).astype("float32")
    mod, (c,) = _run(schedule_dense(C), [A, W, C], [a, w], [(m, n)])
    np.testing.assert_allclose(c, a @ w.T, rtol=1e-3, atol=1e-3)
    dev = tecomp.cuda(0)
    args = [tecomp.nd.array(a, dev), tecomp.nd.array(w, dev), tecomp.nd.empty((m, n), "float32", dev)]
    t = mod.time_evaluator(mod.entry_name, dev, number=5, repeat=2)(*args)
    assert 0 < t.mean < 1
    mod.export_library(tmp_path / "dense.so")
    loaded = tecomp.runtime.load_module(tmp_path / "dense.so")
    out = tecomp.nd.empty((m, n), "float32", dev)
    loaded(args[0], args[1], out)
    np.testing.assert_allclose(out.numpy(), a @ w.T, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape, kernel, stride, pad, groups", [
    ((1, 64, 56, 56), (64, 64, 3, 3), 1, 1, 1), ((1, 32, 28, 28), (32, 1, 3, 3), 2, 1, 32)])
def test_conv2d(shape, kernel, stride, pad, groups, rng):
    X, K = te.placeholder(shape, name="X"), te.placeholder(kernel, name="K")
    Y = conv2d.conv2d_nchw(X, K, stride, pad, 1, groups)
    x, w = rng.standard_normal(shape).astype("float32"), rng.standard_normal(kernel).astype("float32")
    out_shape = tuple(d.value for d in Y.shape)
    _, (y,) = _run(schedule_conv2d_nchw(Y), [X, K, Y], [x, w], [out_shape])
    ref = np.zeros(out_shape, "float64")
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype("float64")
    opg, cpg = kernel[0] // groups, kernel[1]
    for o in range(kernel[0]):
        g = o // opg
        for i in range(kernel[2]):
            for j in range(kernel[3]):
                patch = xp[:, g * cpg:(g + 1) * cpg, i:i + stride * out_shape[2]:stride, j:j + stride * out_shape[3]:stride]
                ref[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3)


def test_softmax_and_reduction(rng):
    X = te.placeholder((64, 1000), name="X")
    x = rng.standard_normal((64, 1000)).astype("float32")
    S = softmax.softmax(X)
    _, (y,) = _run(schedule_softmax(S), [X, S], [x], [(64, 1000)])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    R = reduction.sum(X, axis=1)
    _, (r,) = _run(schedule_reduce(R), [X, R], [x], [(64,)])
    np.testing.assert_allclose(r, x.sum(axis=1), rtol=1e-4, atol=1e-4)
