"""User-written te workloads with no template, for the auto-scheduler benchmark and tests:
GEMM, a 5-point 2-D stencil (on a padded input, and on a grid whose border cells keep their value:
``te.if_then_else``) and a fused softmax(x) @ V, each with its numpy reference."""

from __future__ import annotations

import numpy as np

from tecomp import auto_scheduler, te


@auto_scheduler.register_workload
def gemm(n: int, dtype: str):
    A = te.placeholder((n, n), dtype, name="A")
    B = te.placeholder((n, n), dtype, name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return [A, B, C]


@auto_scheduler.register_workload
def stencil5(n: int):
    a = te.placeholder((n + 2, n + 2), name="a")
    out = te.compute((n, n), lambda i, j: 0.2 * (a[i, j + 1] + a[i + 1, j] + a[i + 1, j + 1]
                                                 + a[i + 1, j + 2] + a[i + 2, j + 1]), name="out")
    return [a, out]


@auto_scheduler.register_workload
def stencil5_bounded(n: int):
    a = te.placeholder((n, n), name="a")

    def cell(i, j):
        inside = te.all(i > 0, i < n - 1, j > 0, j < n - 1)
        return te.if_then_else(inside, 0.2 * (a[i - 1, j] + a[i, j - 1] + a[i, j] + a[i, j + 1] + a[i + 1, j]),
                               a[i, j])
    return [a, te.compute((n, n), cell, name="out")]


@auto_scheduler.register_workload
def softmax_matmul(n: int, m: int):
    x = te.placeholder((n, n), name="x")
    v = te.placeholder((n, m), name="v")
    k1, k2, k3 = (te.reduce_axis((0, n), name=f"k{i}") for i in range(3))
    mx = te.compute((n,), lambda i: te.max(x[i, k1], axis=k1), name="mx")
    e = te.compute((n, n), lambda i, j: te.exp(x[i, j] - mx[i]), name="e")
    s = te.compute((n,), lambda i: te.sum(e[i, k2], axis=k2), name="s")
    p = te.compute((n, n), lambda i, j: e[i, j] / s[i], name="p")
    out = te.compute((n, m), lambda i, j: te.sum(p[i, k3] * v[k3, j], axis=k3), name="out")
    return [x, v, out]


def gemm_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b


def stencil5_numpy(a: np.ndarray) -> np.ndarray:
    return 0.2 * (a[:-2, 1:-1] + a[1:-1, :-2] + a[1:-1, 1:-1] + a[1:-1, 2:] + a[2:, 1:-1])


def stencil5_bounded_numpy(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out[1:-1, 1:-1] = stencil5_numpy(a)
    return out


def softmax_matmul_numpy(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v
