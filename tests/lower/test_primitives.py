"""Every schedule primitive, alone and combined, computes what numpy computes.

Each case runs the lowered loop IR twice, through the reference interpreter
and through the LLVM backend, and compares both with numpy.
"""

import numpy as np
import pytest

import tecomp
from tecomp import te


def _vadd(n=37):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i] * 2.0, name="C")
    return A, B, C


def _vadd_case(rng, n=37):
    A, B, C = _vadd(n)
    a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    return A, B, C, [a, b], a + b * 2


def _matmul(n, m, l, dtype="float32"):
    A = te.placeholder((n, l), name="A", dtype=dtype)
    B = te.placeholder((l, m), name="B", dtype=dtype)
    k = te.reduce_axis((0, l), name="k")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C, k


def _mm_inputs(rng, n, m, l):
    a = rng.standard_normal((n, l)).astype("float32")
    b = rng.standard_normal((l, m)).astype("float32")
    return [a, b], a @ b


@pytest.mark.parametrize("factor", [1, 4, 5, 37, 64])
def test_split_factor(check, rng, factor):
    A, B, C, inputs, want = _vadd_case(rng)
    s = te.create_schedule(C.op)
    s[C].split(C.op.axis[0], factor=factor)
    check(s, [A, B, C], inputs, want)


@pytest.mark.parametrize("nparts", [1, 3, 8, 40])
def test_split_nparts(check, rng, nparts):
    A, B, C, inputs, want = _vadd_case(rng)
    s = te.create_schedule(C.op)
    s[C].split(C.op.axis[0], nparts=nparts)
    check(s, [A, B, C], inputs, want)


def test_dividing_split_has_no_guard(rng):
    A, B, C = _vadd(64)
    s = te.create_schedule(C.op)
    s[C].split(C.op.axis[0], factor=16)
    text = str(tecomp.lower(s, [A, B, C]))
    assert "if" not in text


def test_nested_non_dividing_splits(check, rng):
    A, B, C, inputs, want = _vadd_case(rng)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    xoo, xoi = s[C].split(xo, factor=3)
    s[C].split(xi, nparts=3)
    check(s, [A, B, C], inputs, want)


def test_tile_non_dividing(check, rng):
    A, B, C, k = _matmul(13, 19, 7)
    s = te.create_schedule(C.op)
    s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    inputs, want = _mm_inputs(rng, 13, 19, 7)
    check(s, [A, B, C], inputs, want)


def test_fuse_then_split(check, rng):
    A, B, C, k = _matmul(6, 10, 5)
    s = te.create_schedule(C.op)
    f = s[C].fuse(*C.op.axis)
    s[C].split(f, factor=7)
    inputs, want = _mm_inputs(rng, 6, 10, 5)
    check(s, [A, B, C], inputs, want)


def test_fuse_split_axes_back(check, rng):
    A, B, C, inputs, want = _vadd_case(rng, 48)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].fuse(xo, xi)
    check(s, [A, B, C], inputs, want)


def test_reorder_reduction_outside(check, rng):
    A, B, C, k = _matmul(9, 11, 6)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(ko, i, ki, j)
    inputs, want = _mm_inputs(rng, 9, 11, 6)
    func = check(s, [A, B, C], inputs, want)
    assert "j.init" in str(func) and "i.init" in str(func)


@pytest.mark.parametrize("n", [32, 37])
def test_vectorize(check, rng, n):
    A, B, C, inputs, want = _vadd_case(rng, n)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    func = check(s, [A, B, C], inputs, want)
    if n == 32:
        assert "ramp(" in str(func)


def test_vectorize_emits_vector_ir(rng):
    A, B, C = _vadd(64)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    mod = tecomp.build(s, [A, B, C])
    assert "<8 x float>" in mod.get_source("ll")


def test_unroll(check, rng):
    A, B, C, inputs, want = _vadd_case(rng, 40)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[C].unroll(xi)
    func = check(s, [A, B, C], inputs, want)
    assert "xi" not in str(func) and str(func).count("C[") == 4


def test_parallel(check, rng):
    A, B, C, k = _matmul(33, 17, 9)
    s = te.create_schedule(C.op)
    s[C].parallel(C.op.axis[0])
    inputs, want = _mm_inputs(rng, 33, 17, 9)
    func = check(s, [A, B, C], inputs, want)
    assert "parallel for" in str(func)


def test_compute_inline(check, rng):
    A = te.placeholder((20,), name="A")
    B = te.compute((20,), lambda i: A[i] * 3.0, name="B")
    C = te.compute((20,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_inline()
    a = rng.standard_normal(20).astype("float32")
    func = check(s, [A, C], [a], a * 3 + 1)
    assert "B[" not in str(func)


def test_compute_at_stencil(check, rng):
    n = 30
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((n - 2,), lambda i: B[i] + B[i + 1] + B[i + 2], name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    a = rng.standard_normal(n).astype("float32")
    b = a * 2
    func = check(s, [A, C], [a], b[:-2] + b[1:-1] + b[2:])
    alloc = [line for line in str(func).splitlines() if "allocate B" in line][0]
    assert "6]" in alloc, alloc  # the region is 4 + 2 elements per outer iteration


def test_compute_at_chain(check, rng):
    n = 24
    A = te.placeholder((n, n), name="A")
    B = te.compute((n, n), lambda i, j: A[i, j] + 1.0, name="B")
    C = te.compute((n, n), lambda i, j: B[i, j] * 2.0, name="C")
    D = te.compute((n, n), lambda i, j: C[i, j] - A[j, i], name="D")
    s = te.create_schedule(D.op)
    io, jo, ii, ji = s[D].tile(D.op.axis[0], D.op.axis[1], 5, 7)
    s[C].compute_at(s[D], jo)
    s[B].compute_at(s[C], s[C].op.axis[0])
    a = rng.standard_normal((n, n)).astype("float32")
    check(s, [A, D], [a], (a + 1) * 2 - a.T)


def test_compute_root_after_compute_at(check, rng):
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * B[15 - i], name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    s[B].compute_root()
    a = rng.standard_normal(16).astype("float32")
    check(s, [A, C], [a], (a + 1) * (a[::-1] + 1))


def test_compute_at_with_reversed_access(check, rng):
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * B[15 - i], name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    a = rng.standard_normal(16).astype("float32")
    check(s, [A, C], [a], (a + 1) * (a[::-1] + 1))


def test_cache_read(check, rng):
    A, B, C, k = _matmul(16, 16, 16)
    s = te.create_schedule(C.op)
    AA = s.cache_read(A, "local", [C])
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    s[AA].compute_at(s[C], jo)
    inputs, want = _mm_inputs(rng, 16, 16, 16)
    func = check(s, [A, B, C], inputs, want)
    assert "allocate A.local" in str(func)


def test_cache_write_vectorize_parallel(check, rng):
    n = 64
    A, B, C, k = _matmul(n, n, n)
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 8, 16)
    s[CC].compute_at(s[C], jo)
    xc, yc = s[CC].op.axis
    (kk,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kk, factor=4)
    s[CC].reorder(ko, xc, ki, yc)
    s[CC].vectorize(yc)
    s[C].vectorize(ji)
    s[C].parallel(io)
    inputs, want = _mm_inputs(rng, n, n, n)
    func = check(s, [A, B, C], inputs, want, rtol=1e-4, atol=1e-4)
    text = str(func)
    assert "allocate C.local[float32 * 128], local" in text, text


def test_symbolic_shape_split(rng):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * A[i], name="B")
    s = te.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=8)
    s[B].vectorize(xi)
    s[B].parallel(xo)
    f = tecomp.build(s, [A, B])
    for size in (1, 8, 13, 100):
        a = rng.standard_normal(size).astype("float32")
        b = np.zeros(size, "float32")
        f(a, b)
        np.testing.assert_allclose(b, a * a, rtol=1e-6)


def test_symbolic_matmul_interpreter_and_llvm(check, rng):
    n, m = te.var("n"), te.var("m")
    A = te.placeholder((n, m), name="A")
    B = te.placeholder((m, n), name="B")
    k = te.reduce_axis((0, m), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    a = rng.standard_normal((7, 5)).astype("float32")
    b = rng.standard_normal((5, 7)).astype("float32")
    check(s, [A, B, C], [a, b], a @ b)


def test_multiple_outputs_in_one_schedule(check, rng):
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((10,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule([B.op, C.op])
    a = rng.standard_normal(10).astype("float32")
    check(s, [A, B, C], [a], [a + 1, (a + 1) * 2])


def test_multi_output_compute(check, rng):
    A = te.placeholder((10,), name="A")
    P, Q = te.compute((10,), lambda i: (A[i] + 1.0, A[i] * 2.0), name="PQ")
    s = te.create_schedule(P.op)
    a = rng.standard_normal(10).astype("float32")
    check(s, [A, P, Q], [a], [a + 1, a * 2])


def test_storage_align_pads_rows(check, rng):
    A = te.placeholder((16, 16), name="A")
    B = te.compute((16, 16), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((16, 16), lambda i, j: B[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].storage_align(B.op.axis[0], 8, 1)
    a = rng.standard_normal((16, 16)).astype("float32")
    func = check(s, [A, C], [a], a * 2 + 1)
    text = str(func)
    assert "allocate B[float32 * 272]" in text, text  # 16 rows of stride 17
    assert "(i * 17)" in text


def test_pragma_unroll_explicit(check, rng):
    A, B, C, inputs, want = _vadd_case(rng, 12)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=3)
    s[C].pragma(xi, "unroll_explicit", 3)
    func = check(s, [A, B, C], inputs, want)
    assert str(func).count("C[") == 3


def test_where_condition_reduction(check, rng):
    A = te.placeholder((6, 9), name="A")
    k = te.reduce_axis((0, 9), name="k")
    S = te.compute((6,), lambda i: te.sum(A[i, k], axis=k, where=k % 2 == 0), name="S")
    M = te.compute((6,), lambda i: S[i] + A[i, 0], name="M")
    s = te.create_schedule(M.op)
    a = rng.standard_normal((6, 9)).astype("float32")
    check(s, [A, M], [a], a[:, ::2].sum(axis=1) + a[:, 0])


def test_max_min_and_custom_reducers(check, rng):
    A = te.placeholder((5, 7), name="A")
    k = te.reduce_axis((0, 7), name="k")
    Mx = te.compute((5,), lambda i: te.max(A[i, k], axis=k), name="Mx")
    s = te.create_schedule(Mx.op)
    a = rng.standard_normal((5, 7)).astype("float32")
    check(s, [A, Mx], [a], a.max(axis=1))
    prod = te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t), name="prod")
    k2 = te.reduce_axis((0, 7), name="k2")
    P = te.compute((5,), lambda i: prod(A[i, k2], axis=k2), name="P")
    check(te.create_schedule(P.op), [A, P], [a], a.prod(axis=1), rtol=1e-4)


def test_padding_with_if_then_else(check, rng):
    n = 10
    A = te.placeholder((n,), name="A")
    P = te.compute((n + 2,), lambda i: te.if_then_else(te.all(i >= 1, i <= n), A[i - 1], 0.0), name="P")
    C = te.compute((n,), lambda i: P[i] + P[i + 1] + P[i + 2], name="C")
    s = te.create_schedule(C.op)
    s[P].compute_inline()
    a = rng.standard_normal(n).astype("float32")
    p = np.pad(a, 1)
    check(s, [A, C], [a], p[:-2] + p[1:-1] + p[2:])


def test_int_and_cast_program(check, rng):
    A = te.placeholder((12,), name="A", dtype="int32")
    B = te.compute((12,), lambda i: (A[i] * 3 // 2 - A[i] % 5).astype("float32") * 0.5, name="B")
    C = te.compute((12,), lambda i: B[i].astype("int8"), name="C")
    s = te.create_schedule(C.op)
    a = rng.integers(-50, 50, 12).astype("int32")
    b = ((a * 3 // 2 - a % 5).astype("float32") * 0.5)
    check(s, [A, C], [a], b.astype("int8"))


@pytest.mark.parametrize("fname", ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf", "abs",
                                   "floor", "ceil"])
def test_math_intrinsics(check, rng, fname):
    import math
    A = te.placeholder((32,), name="A")
    fn = getattr(te, fname)
    B = te.compute((32,), lambda i: fn(A[i]), name="B")
    s = te.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=8)
    s[B].vectorize(xi)
    a = rng.uniform(0.1, 3.0, 32).astype("float32")
    ref = {"exp": np.exp, "log": np.log, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x),
           "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
           "erf": np.vectorize(math.erf), "abs": np.abs, "floor": np.floor, "ceil": np.ceil}[fname]
    check(s, [A, B], [a], ref(a).astype("float32"), rtol=2e-6)


def test_non_dividing_split_peels_tail_and_vectorizes_main_part(check, rng):
    A, B, C, inputs, want = _vadd_case(rng, 37)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    func = check(s, [A, B, C], inputs, want)
    main, tail = func.body.seq
    assert "ramp(" in str(main) and "if" not in str(main)
    assert "if ((i.inner < 5))" in str(tail)


def test_symbolic_tile_partitions_both_axes(check, rng):
    n = te.var("n")
    A = te.placeholder((n, 13), name="A")
    C = te.compute((n, 13), lambda i, j: A[i, j] * 2.0 + 1.0, name="C")
    s = te.create_schedule(C.op)
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 8)
    s[C].vectorize(ji)
    a = rng.standard_normal((10, 13)).astype("float32")
    func = check(s, [A, C], [a], a * 2 + 1)
    assert "ramp(" in str(func)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int32", "int64", "uint8"])
def test_every_dtype_elementwise(check, rng, dtype):
    A = te.placeholder((24,), name="A", dtype=dtype)
    B = te.placeholder((24,), name="B", dtype=dtype)
    C = te.compute((24,), lambda i: A[i] * B[i] + A[i], name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    if dtype.startswith("float"):
        a, b = (rng.uniform(-2, 2, 24).astype(dtype) for _ in range(2))
    else:
        info = np.iinfo(dtype)
        a, b = (rng.integers(info.min, info.max, 24, endpoint=True).astype(dtype) for _ in range(2))
    with np.errstate(over="ignore"):
        want = a * b + a  # integers wrap around, as in C
    if dtype == "float16":
        # LLVM may contract a*b + a into one fused multiply-add (native on AVX512-FP16), which skips
        # numpy's rounding of the product: the results may differ by half an ulp of a*b.
        check(s, [A, B, C], [a, b], want, rtol=1e-3, atol=float(np.finfo(dtype).eps * np.abs(a * b).max()))
    else:
        check(s, [A, B, C], [a, b], want, rtol=1e-6)


def test_bool_tensors(check, rng):
    A = te.placeholder((16,), name="A", dtype="bool")
    X = te.placeholder((16,), name="X")
    C = te.compute((16,), lambda i: te.if_then_else(A[i], X[i], -X[i]), name="C")
    D = te.compute((16,), lambda i: C[i] > 0.0, name="D")
    s = te.create_schedule(D.op)
    a = rng.integers(0, 2, 16).astype(bool)
    x = rng.standard_normal(16).astype("float32")
    check(s, [A, X, D], [a, x], np.where(a, x, -x) > 0)
