"""rfactor on CUDA: the factored axis bound to threadIdx.x becomes a cross-thread reduction.

TVM's pattern: split the reduction, rfactor the inner part, bind the merging stage's new
reduction axis to threadIdx.x and compute the partials there (their scope is inferred as
local, as in TVM). Emulated against numpy, compiled with nvcc when it is installed.
"""

from __future__ import annotations

import numpy as np

from tecomp import te

from gpu_helpers import emulate_and_compile

RNG = np.random.default_rng(17)


def test_row_sum_rfactor_bound_to_threadidx():
    n, m = 13, 197
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = te.create_schedule(B.op)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=16)
    BF = s.rfactor(B, ki)
    xo, xi = s[B].split(s[B].op.axis[0], factor=4)
    s[B].bind(xo, te.thread_axis("blockIdx.x"))
    s[B].bind(xi, te.thread_axis("threadIdx.y"))
    tx = te.thread_axis("threadIdx.x")
    s[B].bind(s[B].op.reduce_axis[0], tx)
    s[BF].compute_at(s[B], s[B].op.reduce_axis[0])
    s[B].set_store_predicate(tx.var == 0)
    assert s[BF].scope == "local"
    a = RNG.standard_normal((n, m)).astype("float32")
    func, _ = emulate_and_compile(s, [A, B], [a], a.sum(1), rtol=1e-4, atol=1e-4)
    assert "red_buf" in str(func)


def test_full_max_rfactor_with_factor_axis_last():
    n = 1000
    A = te.placeholder((n,), name="A")
    k = te.reduce_axis((0, n), name="k")
    B = te.compute((1,), lambda i: te.max(A[k], axis=k), name="B")
    s = te.create_schedule(B.op)
    ko, ki = s[B].split(k, factor=32)
    BF = s.rfactor(B, ki, factor_axis=-1)
    assert [int(d) for d in BF.shape] == [1, 32]
    tx = te.thread_axis("threadIdx.x")
    s[B].bind(s[B].op.reduce_axis[0], tx)
    s[BF].compute_at(s[B], s[B].op.reduce_axis[0])
    a = RNG.standard_normal(n).astype("float32")
    emulate_and_compile(s, [A, B], [a], np.array([a.max()], "float32"))
