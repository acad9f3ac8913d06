"""``Schedule.rfactor``: partial reductions over a factored axis, with TVM's shapes and semantics."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp import te, tir
from tecomp.error import ScheduleError


def _row_sum(n, m):
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    B = te.compute((n,), lambda i: te.sum(A[i, k], axis=k), name="B")
    return A, B, te.create_schedule(B.op)


@pytest.mark.parametrize("factor_axis", [0, 1, -1])
def test_split_inner_factored(check, rng, factor_axis):
    A, B, s = _row_sum(13, 197)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=16)
    BF = s.rfactor(B, ki, factor_axis=factor_axis)
    pos = factor_axis % 2 if factor_axis >= 0 else 1
    assert [int(d) for d in BF.shape] == ([16, 13] if pos == 0 else [13, 16])
    assert [iv.var for iv in BF.op.reduce_axis] == [ko.var]
    assert int(s[B].op.reduce_axis[0].dom.extent) == 16
    a = rng.uniform(-1, 1, (13, 197)).astype("float32")
    check(s, [A, B], [a], a.sum(1), rtol=1e-4, atol=1e-4)


def test_outer_factored_and_partials_vectorized(check, rng):
    A, B, s = _row_sum(7, 197)
    ko, ki = s[B].split(B.op.reduce_axis[0], nparts=8)
    BF = s.rfactor(B, ko)
    assert int(BF.shape[0]) == 8 and int(BF.op.reduce_axis[0].dom.extent) == 25
    s[BF].reorder(BF.op.axis[1], BF.op.reduce_axis[0], BF.op.axis[0])
    s[BF].vectorize(BF.op.axis[0])
    a = rng.uniform(-1, 1, (7, 197)).astype("float32")
    func = check(s, [A, B], [a], a.sum(1), rtol=1e-4, atol=1e-4)
    assert "ramp(" in str(func)  # the 8 partial sums are updated as one vector


def test_two_reduction_axes_and_data_parallel_split_carried_over(check, rng):
    A = te.placeholder((13, 7, 9), name="A")
    k1 = te.reduce_axis((0, 7), name="k1")
    k2 = te.reduce_axis((0, 9), name="k2")
    B = te.compute((13,), lambda i: te.max(A[i, k1, k2], axis=[k1, k2]), name="B")
    s = te.create_schedule(B.op)
    ko, ki = s[B].split(k1, factor=4)
    xo, xi = s[B].split(B.op.axis[0], factor=8)
    BF = s.rfactor(B, ki)
    assert int(BF.shape[0]) == 4 and BF.shape[1] is B.shape[0]
    assert BF.op.reduce_axis[0] is k2 and BF.op.reduce_axis[1].var is ko.var
    assert xo in s[BF].leaf_iter_vars and xi in s[BF].leaf_iter_vars  # the untouched split stays
    s[BF].parallel(xo)
    a = rng.uniform(-1, 1, (13, 7, 9)).astype("float32")
    check(s, [A, B], [a], a.max((1, 2)))


def test_fused_reduction_axes_factored(check, rng):
    A = te.placeholder((5, 7, 13), name="A")
    k1 = te.reduce_axis((0, 7), name="k1")
    k2 = te.reduce_axis((0, 13), name="k2")
    B = te.compute((5,), lambda i: te.sum(A[i, k1, k2], axis=[k1, k2]), name="B")
    s = te.create_schedule(B.op)
    f = s[B].fuse(k1, k2)
    fo, fi = s[B].split(f, factor=6)
    BF = s.rfactor(B, fi)
    assert int(BF.shape[0]) == 6 and int(BF.op.reduce_axis[0].dom.extent) == 16  # ceil(91 / 6)
    a = rng.uniform(-1, 1, (5, 7, 13)).astype("float32")
    check(s, [A, B], [a], a.sum((1, 2)), rtol=1e-4, atol=1e-4)


def test_whole_reduction_axis_factored_with_offset_domain(check, rng):
    A = te.placeholder((13, 20), name="A")
    k = te.reduce_axis((3, 20), name="k")
    B = te.compute((13,), lambda i: te.sum(A[i, k], axis=k), name="B")
    s = te.create_schedule(B.op)
    BF = s.rfactor(B, k)
    assert int(BF.shape[0]) == 17 and BF.op.reduce_axis == ()
    C = te.compute((13,), lambda i: B[i] * 2.0, name="C")  # a consumer of the rewritten stage
    s = te.create_schedule(C.op)
    BF = s.rfactor(B, k)
    a = rng.uniform(-1, 1, (13, 20)).astype("float32")
    check(s, [A, C], [a], a[:, 3:].sum(1) * 2, rtol=1e-5, atol=1e-5)


def test_reduction_with_condition_and_cache_write_after(check, rng):
    A, B, s = _row_sum(13, 7)
    A = B.op.input_tensors[0]
    k = te.reduce_axis((0, 7), name="k")
    C = te.compute((13,), lambda i: te.sum(A[i, k], axis=k, where=k % 2 == 0), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=2)
    s.rfactor(C, ki)
    s.cache_write(C, "local")
    a = rng.uniform(-1, 1, (13, 7)).astype("float32")
    check(s, [A, C], [a], a[:, ::2].sum(1), rtol=1e-5, atol=1e-5)


def test_errors_name_stage_and_axis():
    A, B, s = _row_sum(13, 20)
    with pytest.raises(ScheduleError, match="rfactor on stage B: axis i is a data-parallel axis"):
        s.rfactor(B, B.op.axis[0])
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=4)
    with pytest.raises(ScheduleError, match="rfactor on stage B: axis k is not a leaf"):
        s.rfactor(B, B.op.reduce_axis[0])
    with pytest.raises(ScheduleError, match="factor_axis 3 is out of range"):
        s.rfactor(B, ki, factor_axis=3)
    C = te.compute((13,), lambda i: B[i] + 1.0, name="C")
    s2 = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="rfactor on stage C: it is not a reduction"):
        s2.rfactor(C, C.op.axis[0])


def test_partials_computed_per_row_of_the_merge(check, rng):
    A, B, s = _row_sum(13, 197)
    ko, ki = s[B].split(B.op.reduce_axis[0], factor=16)
    BF = s.rfactor(B, ki)
    s[BF].compute_at(s[B], s[B].op.axis[0])
    s[BF].vectorize(BF.op.axis[0])
    s[B].parallel(s[B].op.axis[0])
    a = rng.uniform(-1, 1, (13, 197)).astype("float32")
    func = check(s, [A, B], [a], a.sum(1), rtol=1e-4, atol=1e-4)
    assert "B.rf[float32 * 16]" in str(func)  # one row of partials per row of B


def test_rfactor_refuses_a_stage_with_stages_computed_at_it():
    A, B, s = _row_sum(13, 20)
    C = te.compute((13, 20), lambda i, j: A[i, j] * 2.0, name="C")
    k = te.reduce_axis((0, 20), name="k")
    D = te.compute((13,), lambda i: te.sum(C[i, k], axis=k), name="D")
    s = te.create_schedule(D.op)
    s[C].compute_at(s[D], D.op.axis[0])
    with pytest.raises(ScheduleError, match="rfactor on stage D: stage C is computed at its loop i"):
        s.rfactor(D, k)


@pytest.mark.parametrize("factored", [False, True])
def test_reduction_with_an_init_tensor_adds_it_once(check, rng, factored):
    """``te.sum(..., init=I[i, j])`` starts from I; rfactor's partials start from 0, not from I."""
    n = 19
    A = te.placeholder((n, n), name="A")
    C = te.placeholder((n, n), name="C")
    init = te.placeholder((n, n), name="I")
    k = te.reduce_axis((0, n), name="k")
    B = te.compute((n, n), lambda i, j: te.sum(A[i, k] * C[k, j], axis=k, init=init[i, j]), name="B")
    s = te.create_schedule(B.op)
    assert init in B.op.input_tensors
    if factored:
        ko, _ = s[B].split(k, nparts=4)
        BF = s.rfactor(B, ko, 1)
        s[BF].parallel(BF.op.axis[0])
    a, c, i0 = (rng.standard_normal((n, n)).astype("float32") for _ in range(3))
    check(s, [A, C, init, B], [a, c, i0], i0 + a @ c, rtol=1e-4, atol=1e-4)


def test_rfactor_of_a_tuple_reducer_argmax(check, rng):
    """Factoring an argmax: the partials are (index, value) pairs, one per factored lane, merged by
    the same combiner."""

    def fcombine(x, y):
        take = x[1] >= y[1]
        return tir.Select(take, x[0], y[0]), tir.Select(take, x[1], y[1])

    argmax = te.comm_reducer(fcombine, lambda t0, t1: (te.const(-1, t0), te.min_value(t1)), name="argmax")
    m, n = 6, 37
    idx = te.placeholder((m, n), name="idx", dtype="int32")
    val = te.placeholder((m, n), name="val")
    k = te.reduce_axis((0, n), name="k")
    T0, T1 = te.compute((m,), lambda i: argmax((idx[i, k], val[i, k]), axis=k), name="T")
    s = te.create_schedule(T0.op)
    _, ki = s[T0].split(k, factor=8)
    partials = s.rfactor(T0, ki)
    assert [p.dtype for p in partials] == ["int32", "float32"] and [d.value for d in partials[0].shape] == [8, 6]
    v = rng.standard_normal((m, n)).astype("float32")
    ix = np.tile(np.arange(n, dtype="int32"), (m, 1))
    check(s, [idx, val, T0, T1], [ix, v], [v.argmax(axis=1).astype("int32"), v.max(axis=1)])
