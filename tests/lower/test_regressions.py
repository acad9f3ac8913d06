"""Small reproducers of bugs found by tests/lower/test_random_programs.py.

Each was an open bug when found; the test stays to keep it fixed.
"""

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.tir import interpreter


def _run_both(s, args, inputs):
    """Lower once; return (interpreter output, LLVM output) of the last argument."""
    func = tecomp.lower(s, args, name="main")["main"]
    out_shape = tuple(int(x) for x in args[-1].shape)
    ref = [x.copy() for x in inputs] + [np.zeros(out_shape, args[-1].dtype)]
    interpreter.run(func, ref)
    got = [x.copy() for x in inputs] + [np.zeros(out_shape, args[-1].dtype)]
    tecomp.build(func, target="llvm")(*got)
    return ref[-1], got[-1]


def test_nested_nondividing_split_of_reduce_axis():
    A = te.placeholder((4,), name="A")
    k = te.reduce_axis((0, 4), name="k")
    C = te.compute((1,), lambda i: te.sum(A[k], axis=k), name="C")
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(k, factor=2)       # ki has extent 2
    s[C].split(ki, factor=3)               # ki = kio * 3 + kii needs the guard ki < 2
    a = np.arange(1, 5, dtype="float32")
    ref, got = _run_both(s, [A, C], [a])
    # lowered today:  for ko in 0..2: for kii in 0..3: if ko*2 + kii < 4: C[0] += A[ko*2 + kii]
    # (k = 2 is added twice: 13 instead of 10)
    np.testing.assert_allclose(ref, [10.0])
    np.testing.assert_allclose(got, [10.0])


def test_nested_nondividing_split_of_data_axis_under_reduction():
    A = te.placeholder((4, 3), name="A")
    k = te.reduce_axis((0, 3), name="k")
    C = te.compute((4,), lambda i: te.sum(A[i, k], axis=k), name="C")
    s = te.create_schedule(C.op)
    io, ii = s[C].split(C.op.axis[0], factor=2)
    iio, iii = s[C].split(ii, factor=3)
    s[C].reorder(k, io, iio, iii)
    a = np.ones((4, 3), "float32")
    ref, got = _run_both(s, [A, C], [a])
    np.testing.assert_allclose(ref, a.sum(axis=1))   # today [3, 3, 6, 3]
    np.testing.assert_allclose(got, a.sum(axis=1))


def test_llvm_guarded_gather_loop_avx512():
    # LLVM 22's loop vectorizer, followed by its loop unroller, turned the
    # floormod-indexed load of Q into one contiguous masked load (reading past Q)
    # on AVX-512 hosts. The pipeline now leaves loop unrolling to the schedule.
    import llvmlite.binding as llvm
    if not llvm.get_host_cpu_features().get("avx512f", False):
        pytest.skip("needs an AVX-512 host (the code for -mcpu=x86-64-v4 would not run here)")
    P = te.placeholder((8, 8), name="P")
    Q = te.placeholder((8,), name="Q")
    C = te.compute((4, 8), lambda i, j: P[j, te.min(j, 4)] + Q[j], name="C")
    s = te.create_schedule(C.op)
    s[C].split(s[C].fuse(*C.op.axis), factor=20)
    p = np.arange(64, dtype="float32").reshape(8, 8)
    q = 100 * np.arange(8, dtype="float32")
    j = np.arange(8)
    want = np.broadcast_to(p[j, np.minimum(j, 4)] + q, (4, 8))
    results = {}
    for tgt in ("llvm", "llvm -mcpu=x86-64-v4", "llvm -mcpu=skylake-avx512"):
        c = np.zeros((4, 8), "float32")
        tecomp.build(s, [P, Q, C], target=tgt)(p, q, c)
        results[tgt] = int((c != want).sum())
    assert results == dict.fromkeys(results, 0), f"wrong elements per target: {results}"


def test_unused_placeholder_argument():
    A = te.placeholder((8,), name="A")
    B = te.placeholder((8,), name="B")
    C = te.compute((8,), lambda i: A[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    f = tecomp.build(s, [A, B, C])
    a = np.arange(8, dtype="float32")
    c = np.zeros(8, "float32")
    f(a, np.zeros(8, "float32"), c)
    np.testing.assert_allclose(c, a * 2)


def test_llvm_loop_vectorizer_floordiv_indexed_loads():
    # The head split of an attention layer (reshape + add + transpose fused into one kernel):
    # LLVM 22's loop vectorizer alone made 256 of 512 outputs read the wrong element of b.
    # The pipeline now leaves loop vectorization to the schedule.
    fd, fm = te.floordiv, te.floormod
    x = te.placeholder((512,), name="x")
    b = te.placeholder((32,), name="b")
    y = te.compute((512,), lambda j: x[fd(j, 256) * 256 + fm(fd(j, 8), 8) * 32 + fm(fd(j, 64), 4) * 8 + fm(j, 8)]
                   + b[fm(fd(j, 64), 4) * 8 + fm(j, 8)], name="y")
    s = te.create_schedule(y.op)
    s[y].split(y.op.axis[0], factor=16)
    xa = np.arange(512, dtype="float32") * 1000
    ba = np.arange(32, dtype="float32")
    j = np.arange(512)
    want = xa[j // 256 * 256 + (j // 8) % 8 * 32 + (j // 64) % 4 * 8 + j % 8] + ba[(j // 64) % 4 * 8 + j % 8]
    got = np.zeros(512, "float32")
    tecomp.build(s, [x, b, y])(xa, ba, got)
    np.testing.assert_array_equal(got, want)


def test_stage_attached_in_the_guarded_tail_of_a_wide_split_computes_nothing(check):
    """A split into more parts than its axis has leaves tail iterations that the consumer's guard
    skips; the write cache computed inside them covered a negative region, and two negative
    extents of its fused loop made a positive one that stored out of bounds."""
    x = te.placeholder((1,), name="x")
    r = te.reduce_axis((0, 1), name="r")
    total = te.compute((3, 1), lambda i, j: te.sum(x[0] * (i + 1), axis=r), name="total")
    out = te.compute((3, 1), lambda i, j: total[i, 0] + 0.5, name="out")
    s = te.create_schedule(out.op)
    cache = s.cache_write(total, "global")
    row, col = s[total].op.axis
    col_outer, _ = s[total].split(col, nparts=3)  # 3 parts of a 1-wide axis: parts 1, 2 guarded
    row_outer, _ = s[total].split(row, nparts=1)
    row_outer, _ = s[total].split(row_outer, nparts=1)
    s[total].split(row_outer, nparts=2)            # likewise its part 1
    s[cache].compute_at(s[total], col_outer)
    s[cache].fuse(*s[cache].op.axis)
    check(s, [x, out], [np.array([2.0], "float32")], np.array([[2.5], [4.5], [6.5]], "float32"))
