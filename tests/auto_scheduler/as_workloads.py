"""Small workloads of the auto-scheduler tests (registered once, imported by the test files)."""

from __future__ import annotations

import numpy as np

from tecomp import auto_scheduler, te


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
def as_test_softmax_matmul(n: int, m: int):
    x = te.placeholder((n, n), name="x")
    v = te.placeholder((n, m), name="v")
    k1, k2, k3 = (te.reduce_axis((0, n), name=f"k{i}") for i in range(3))
    mx = te.compute((n,), lambda i: te.max(x[i, k1], axis=k1), name="mx")
    e = te.compute((n, n), lambda i, j: te.exp(x[i, j] - mx[i]), name="e")
    s = te.compute((n,), lambda i: te.sum(e[i, k2], axis=k2), name="s")
    p = te.compute((n, n), lambda i, j: e[i, j] / s[i], name="p")
    out = te.compute((n, m), lambda i, j: te.sum(p[i, k3] * v[k3, j], axis=k3), name="out")
    return [x, v, out]


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
    if name == "as_test_softmax_matmul":
        x, v = inputs
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)) @ v
    (a,) = inputs
    h = a * 0.5
    return h[:-2, 1:-1] + h[1:-1, :-2] + h[1:-1, 1:-1] + h[1:-1, 2:] + h[2:, 1:-1]
