"""Small workloads of the auto-scheduler tests (registered once, imported by the test files); the
fused softmax(x) @ V and the 5-point stencils are the benchmark's (benchmarks/auto_schedule_workloads.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tecomp import auto_scheduler, te

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from auto_schedule_workloads import (softmax_matmul, softmax_matmul_numpy, stencil5,  # noqa: E402
                                     stencil5_bounded, stencil5_bounded_numpy, stencil5_numpy)


@auto_scheduler.register_workload
def as_test_matmul_bias(n: int, m: int, k: int):
    A = te.placeholder((n, k), name="A")
    B = te.placeholder((k, m), name="B")
    bias = te.placeholder((m,), name="bias")
    r = te.reduce_axis((0, k), name="r")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    D = te.compute((n, m), lambda i, j: C[i, j] + bias[j], name="D")
    return [A, B, bias, D]


@auto_scheduler.register_workload
def as_test_stencil(n: int):
    a = te.placeholder((n + 2, n + 2), name="a")
    pad = te.compute((n + 2, n + 2), lambda i, j: a[i, j] * 0.5, name="half")
    out = te.compute((n, n), lambda i, j: pad[i, j + 1] + pad[i + 1, j] + pad[i + 1, j + 1]
                     + pad[i + 1, j + 2] + pad[i + 2, j + 1], name="out")
    return [a, out]


def numpy_reference(name: str, inputs: list) -> np.ndarray:
    if name == "as_test_matmul_bias":
        a, b, bias = inputs
        return a @ b + bias
    if name == "softmax_matmul":
        return softmax_matmul_numpy(*inputs)
    if name == "stencil5":
        return stencil5_numpy(*inputs)
    if name == "stencil5_bounded":
        return stencil5_bounded_numpy(*inputs)
    if name == "as_test_norms":
        return (inputs[0].astype("float64") ** 2).sum(axis=1).astype("float32")
    if name == "as_test_softmax":
        e = np.exp(inputs[0] - inputs[0].max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if name == "as_test_layer_norm":
        x = inputs[0].astype("float64")
        mean = x.mean(axis=1, keepdims=True)
        return ((x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=1, keepdims=True) + 1e-5)).astype("float32")
    (a,) = inputs
    h = a * 0.5
    return h[:-2, 1:-1] + h[1:-1, :-2] + h[1:-1, 1:-1] + h[1:-1, 2:] + h[2:, 1:-1]


@auto_scheduler.register_workload
def as_test_norms(rows: int, n: int):
    x = te.placeholder((rows, n), name="x")
    k = te.reduce_axis((0, n), name="k")
    return [x, te.compute((rows,), lambda i: te.sum(x[i, k] * x[i, k], axis=k), name="norm2")]


@auto_scheduler.register_workload
def as_test_scale(shape: tuple):
    a = te.placeholder(shape, name="a")
    return [a, te.compute(shape, lambda *i: a(*i) * 2.0, name="scaled")]


@auto_scheduler.register_workload
def as_test_softmax(n: int, m: int):
    x = te.placeholder((n, m), name="x")
    k1, k2 = te.reduce_axis((0, m), name="k1"), te.reduce_axis((0, m), name="k2")
    mx = te.compute((n,), lambda i: te.max(x[i, k1], axis=k1), name="mx")
    e = te.compute((n, m), lambda i, j: te.exp(x[i, j] - mx[i]), name="e")
    s = te.compute((n,), lambda i: te.sum(e[i, k2], axis=k2), name="s")
    return [x, te.compute((n, m), lambda i, j: e[i, j] / s[i], name="p")]


@auto_scheduler.register_workload
def as_test_layer_norm(n: int, m: int):
    """Two-pass layer norm: the row sum is read by the variance and by the normalising consumer."""
    x = te.placeholder((n, m), name="x")
    k1, k2 = te.reduce_axis((0, m), name="k1"), te.reduce_axis((0, m), name="k2")
    total = te.compute((n,), lambda i: te.sum(x[i, k1], axis=k1), name="total")
    var = te.compute((n,), lambda i: te.sum((x[i, k2] - total[i] / m) * (x[i, k2] - total[i] / m), axis=k2),
                     name="var")
    return [x, te.compute((n, m), lambda i, j: (x[i, j] - total[i] / m) / te.sqrt(var[i] / m + 1e-5), name="y")]
