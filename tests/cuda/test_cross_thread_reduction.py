"""Cross-thread reductions: a reduction axis bound to ``threadIdx.*`` (TVM's allreduce).

Each thread folds its share of the reduction into a register, the partials meet in shared
memory and a tree combines them (barriers inserted by the lowering); emulated against numpy
and compiled with nvcc.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import LoweringError, ScheduleError

from gpu_helpers import emulate_and_compile

RNG = np.random.default_rng(11)


def _row_reduce(n, m, reducer=te.sum):
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: reducer(A[i, k], axis=k), name="B")
    return A, B, te.create_schedule(B.op)


@pytest.mark.parametrize("threads", [32, 24])  # 24: the tree's first step is guarded
def test_row_sum_one_block_per_row(threads):
    A, B, s = _row_reduce(5, 100)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=threads)
    s[B].bind(B.op.axis[0], te.thread_axis("blockIdx.x"))
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    a = RNG.standard_normal((5, 100)).astype("float32")
    func, module = emulate_and_compile(s, [A, B], [a], a.sum(1), rtol=1e-5, atol=1e-5)
    assert "__syncthreads()" in module.get_source() and "red_buf" in module.get_source()


def test_row_max_with_rows_on_threadidx_y():
    A, B, s = _row_reduce(8, 40, te.max)
    bx, ty = s[B].split(B.op.axis[0], factor=4)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=16)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(ty, te.thread_axis("threadIdx.y"))
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    a = RNG.standard_normal((8, 40)).astype("float32")
    emulate_and_compile(s, [A, B], [a], a.max(1))


def test_full_reduction_to_0d():
    A = te.placeholder((1000,), name="A")
    k = te.reduce_axis((0, 1000), name="k")
    B = te.compute((), lambda: te.sum(A[k], axis=k), name="B")
    s = te.create_schedule(B.op)
    _, ki = s[B].split(k, factor=64)
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    a = RNG.standard_normal(1000).astype("float32")
    emulate_and_compile(s, [A, B], [a], np.array(a.sum(), "float32"), rtol=1e-4, atol=1e-4)


def test_reduction_into_a_register_read_by_an_elementwise_stage():
    A, B, s = _row_reduce(6, 50)
    C = te.compute((6,), lambda i: B[i] * 0.5, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("local")
    s[C].bind(C.op.axis[0], te.thread_axis("blockIdx.x"))
    s[B].compute_at(s[C], C.op.axis[0])
    _, ki = s[B].split(B.op.reduce_axis[0], factor=32)
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    a = RNG.standard_normal((6, 50)).astype("float32")
    emulate_and_compile(s, [A, C], [a], a.sum(1) * 0.5, rtol=1e-5, atol=1e-5)


def test_data_parallel_axis_inside_the_reduction_is_refused():
    A, B, s = _row_reduce(4, 64)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=32)
    s[B].reorder(ko, B.op.axis[0], ki)
    s[B].bind(ki, te.thread_axis("threadIdx.x"))
    with pytest.raises(LoweringError, match="stage B: a reduction bound to threadIdx.x needs every data-parallel "
                                            "axis outside the reduction axes"):
        tecomp.lower(s, [A, B], target="cuda")


def test_reduction_axis_cannot_be_bound_to_a_block():
    A, B, s = _row_reduce(4, 64)
    with pytest.raises(ScheduleError, match=r"reduction axis k can only be bound to threadIdx\.\*"):
        s[B].bind(B.op.reduce_axis[0], te.thread_axis("blockIdx.x"))
