"""double_buffer on CUDA: a shared-memory tile read along a reduction loop alternates between
two halves indexed by the loop's parity; emulated (threads in lockstep between barriers)
against numpy and compiled with nvcc when it is installed."""

from __future__ import annotations

import numpy as np

from tecomp import te

from gpu_helpers import emulate_and_compile


def test_shared_tile_double_buffered_over_the_reduction_loop():
    n, l = 64, 197
    A = te.placeholder((n, l), name="A")
    k = te.reduce_axis((0, l), name="k")
    B = te.compute((n,), lambda i: te.sum(A[i, k] * 2.0, axis=k), name="B")
    s = te.create_schedule(B.op)
    AA = s.cache_read(A, "shared", [B])
    bx, tx = s[B].split(B.op.axis[0], factor=16)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=8)
    s[B].reorder(bx, tx, ko, ki)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    s[AA].compute_at(s[B], ko)
    s[AA].double_buffer()
    a = np.random.default_rng(5).standard_normal((n, l)).astype("float32")
    func, _ = emulate_and_compile(s, [A, B], [a], (a * 2).sum(1), rtol=1e-4, atol=1e-4)
    assert "floormod(k.outer, 2)" in str(func)
