"""Classic-TVM usage of the tensor language, written as TVM's own tests write it (imports rewritten).

Each test is one pattern a TVM script of the classic era uses: tensor call syntax, chained
indexing, tensor arithmetic, scans, extern ops, tag scopes, tuple reducers.
"""

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir


def _run(s, args, inputs, out_shapes, dtype="float32"):
    f = tvm.build(s, args, "llvm")
    dev = tvm.cpu(0)
    ins = [tvm.nd.array(x, dev) for x in inputs]
    outs = [tvm.nd.empty(shape, dtype, dev) for shape in out_shapes]
    f(*ins, *outs)
    return [o.numpy() for o in outs]


def test_tensor_call_syntax_and_chained_indexing():
    m, n = te.var("m"), te.var("n")
    A = te.placeholder((m, n), name="A")
    B = te.compute((m, n), lambda i, j: A(i, j) * 2 + A[i][j], name="B")
    assert isinstance(A(0, 1), tir.ProducerLoad) and A[0][1].producer is A
    s = te.create_schedule(B.op)
    a = np.random.default_rng(0).random((5, 7), dtype="float32")
    (b,) = _run(s, [A, B], [a], [(5, 7)])
    np.testing.assert_allclose(b, 3 * a, rtol=1e-6)


def test_partial_index_used_as_value_names_the_tensor():
    A = te.placeholder((8, 8), name="A")
    with pytest.raises(tvm.TecompError, match="tensor A has 2 dimensions but was indexed with 1"):
        te.compute((8,), lambda i: A[i], name="bad")


def test_tensor_arithmetic_broadcasts_like_topi():
    A = te.placeholder((4, 1, 6), name="A")
    B = te.placeholder((5, 1), name="B")
    C = A + B
    D = (C * 2 - 1) / A
    E = 3.0 - D
    assert [int(d) for d in C.shape] == [4, 5, 6] and C.op.tag == "broadcast"
    s = te.create_schedule(E.op)
    rng = np.random.default_rng(1)
    a = rng.random((4, 1, 6), dtype="float32") + 1
    b = rng.random((5, 1), dtype="float32")
    (e,) = _run(s, [A, B, E], [a, b], [(4, 5, 6)])
    np.testing.assert_allclose(e, 3 - ((a + b) * 2 - 1) / a, rtol=1e-5)


def test_tensor_arithmetic_rejects_mismatched_shapes():
    with pytest.raises(tvm.TecompError, match="do not broadcast"):
        te.placeholder((3, 4)) + te.placeholder((5,))


def cumulative_sum_scan():
    """TVM's classic scan: the running sum of ``X`` over rows, with a placeholder state.
    Returns ``(X, update, scan result)``."""
    m, n = te.var("m"), te.var("n")
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n))
    init = te.compute((1, n), lambda _, i: X[0, i])
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i])
    return X, update, te.scan(init, update, state, inputs=[X])


def test_scan_cumulative_sum_with_placeholder_state():
    X, s_update, res = cumulative_sum_scan()
    s = te.create_schedule(res.op)
    xo, xi = s[s_update].split(s_update.op.axis[1], factor=4)
    s[s_update].vectorize(xi)
    x = np.random.default_rng(2).random((6, 10), dtype="float32")
    (r,) = _run(s, [X, res], [x], [(6, 10)])
    np.testing.assert_allclose(r, np.cumsum(x, axis=0), rtol=1e-5)


def test_scan_with_two_states_and_a_multi_stage_body():
    m, n, l = 7, 5, 3
    X = te.placeholder((m, n), name="X")
    state1 = te.placeholder((m, n))
    state2 = te.placeholder((m, l))
    init1 = te.compute((1, n), lambda _, i: X[0, i])
    init2 = te.compute((1, l), lambda _, i: te.const(0.0))
    double = te.compute((m, n), lambda t, i: state1[t - 1, i] * 2)
    update1 = te.compute((m, n), lambda t, i: double[t, i] + X[t, i])
    update2 = te.compute((m, l), lambda t, i: state2[t - 1, i] + state1[t - 1, 0])
    r1, r2 = te.scan([init1, init2], [update1, update2], [state1, state2])
    s = te.create_schedule([r1.op, r2.op])
    x = np.random.default_rng(3).random((m, n), dtype="float32")
    got1, got2 = _run(s, [X, r1, r2], [x], [(m, n), (m, l)])
    want1, want2 = np.zeros((m, n), "float32"), np.zeros((m, l), "float32")
    want1[0] = x[0]
    for t in range(1, m):
        want1[t] = want1[t - 1] * 2 + x[t]
        want2[t] = want2[t - 1] + want1[t - 1, 0]
    np.testing.assert_allclose(got1, want1, rtol=1e-5)
    np.testing.assert_allclose(got2, want2, rtol=1e-5)


def test_extern_with_ir_builder_body_between_computes():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2, name="B")

    def relu_plus_one(ins, outs):
        ib = tir.ir_builder.create()
        src, dst = ib.buffer_ptr(ins[0]), ib.buffer_ptr(outs[0])
        with ib.for_range(0, n, name="i") as i:
            with ib.if_scope(src[i] > 0.0):
                dst[i] = src[i] + 1.0
            with ib.else_scope():
                dst[i] = 0.0
        return ib.get()

    C = te.extern(B.shape, [B], relu_plus_one, name="C", dtype="float32")
    D = te.compute((n,), lambda i: C[i] * 10, name="D")
    s = te.create_schedule(D.op)
    assert isinstance(C.op, te.ExternOp) and C.op.input_tensors == [B]
    a = np.random.default_rng(4).standard_normal(33).astype("float32")
    (d,) = _run(s, [A, D], [a], [(33,)])
    np.testing.assert_allclose(d, np.where(2 * a > 0, 2 * a + 1, 0) * 10, rtol=1e-6)


def test_extern_calls_a_registered_packed_function():
    seen = []

    @tvm.register_func("tests.api.scale_add", override=True)
    def scale_add(x, y, out, alpha):
        seen.append(alpha)
        out.copyfrom(alpha * x.numpy() + y.numpy())

    A = te.placeholder((3, 4), name="A")
    B = te.placeholder((3, 4), name="B")
    C = te.extern(A.shape, [A, B],
                  lambda ins, outs: tir.call_packed("tests.api.scale_add", ins[0], ins[1], outs[0], 0.5),
                  name="C")
    s = te.create_schedule(C.op)
    assert tvm.get_global_func("tests.api.scale_add") is scale_add
    rng = np.random.default_rng(5)
    a, b = rng.random((3, 4), dtype="float32"), rng.random((3, 4), dtype="float32")
    (c,) = _run(s, [A, B, C], [a, b], [(3, 4)])
    np.testing.assert_allclose(c, 0.5 * a + b, rtol=1e-6)
    assert seen == [0.5]


def test_exception_in_a_packed_function_reaches_the_caller():
    @tvm.register_func("tests.api.fails", override=True)
    def fails(out):
        raise ValueError("no such data")

    C = te.extern((4,), [], lambda ins, outs: tir.call_packed("tests.api.fails", outs[0]),
                  name="C", dtype="float32")
    f = tvm.build(te.create_schedule(C.op), [C])
    with pytest.raises(ValueError, match="no such data"):
        f(tvm.nd.empty((4,)))
    assert tvm.get_global_func("tests.api.missing", allow_missing=True) is None


def test_cblas_matmul_extern_matches_numpy():
    from tecomp.contrib import cblas
    n, l, m = 24, 16, 20
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((m, l), name="B")
    C = cblas.matmul(A, B, transb=True)
    D = te.compute(C.shape, lambda i, j: C[i, j] + 1.0, name="D")
    s = te.create_schedule(D.op)
    rng = np.random.default_rng(6)
    a, b = rng.random((n, l), dtype="float32"), rng.random((m, l), dtype="float32")
    (d,) = _run(s, [A, B, D], [a, b], [(n, m)])
    np.testing.assert_allclose(d, a @ b.T + 1, rtol=1e-5)


def test_tag_scope_tags_computes_and_externs():
    A = te.placeholder((4,), name="A")
    with te.tag_scope("conv"):
        B = te.compute((4,), lambda i: A[i] + 1)

    @te.tag_scope("elemwise")
    def plus_two(x):
        return te.compute(x.shape, lambda i: x[i] + 2)

    assert B.op.tag == "conv" and plus_two(A).op.tag == "elemwise"
    assert te.compute((4,), lambda i: A[i]).op.tag == ""


def test_tuple_reducer_argmax():
    def fcombine(x, y):
        better = x[1] >= y[1]
        return tir.Select(better, x[0], y[0]), tir.Select(better, x[1], y[1])

    def fidentity(t0, t1):
        return tir.const(-1, t0), te.min_value(t1)

    argmax = te.comm_reducer(fcombine, fidentity, name="argmax")
    m, n = te.var("m"), te.var("n")
    idx = te.placeholder((m, n), name="idx", dtype="int32")
    val = te.placeholder((m, n), name="val", dtype="float32")
    k = te.reduce_axis((0, n), "k")
    T0, T1 = te.compute((m,), lambda i: argmax((idx[i, k], val[i, k]), axis=k), name="T")
    s = te.create_schedule(T0.op)
    ko, ki = s[T0].split(k, factor=4)
    f = tvm.build(s, [idx, val, T0, T1])
    v = np.random.default_rng(7).random((9, 13), dtype="float32")
    ix = np.tile(np.arange(13, dtype="int32"), (9, 1))
    t0, t1 = tvm.nd.empty((9,), "int32"), tvm.nd.empty((9,), "float32")
    f(tvm.nd.array(ix), tvm.nd.array(v), t0, t1)
    np.testing.assert_array_equal(t0.numpy(), v.argmax(axis=1))
    np.testing.assert_allclose(t1.numpy(), v.max(axis=1))


def test_te_div_and_truncation_follow_c():
    x = te.var("x")
    A = te.placeholder((8,), dtype="int32", name="A")
    B = te.compute((8,), lambda i: te.div(A[i], 3) * 100 + tir.truncmod(A[i], 3), name="B")
    C = te.compute((8,), lambda i: tir.truncdiv(A[i], -2), name="C")
    assert te.div(7, -2).value == -3 and tir.truncmod(-7, 2).value == -1 and te.div(x, 2).dtype == "int32"
    s = te.create_schedule([B.op, C.op])
    a = np.array([-7, -6, -1, 0, 1, 5, 6, 7], dtype="int32")
    b, c = _run(s, [A, B, C], [a], [(8,), (8,)], dtype="int32")
    trunc = np.trunc(a / 3).astype("int32")
    np.testing.assert_array_equal(b, trunc * 100 + (a - trunc * 3))
    np.testing.assert_array_equal(c, np.trunc(a / -2).astype("int32"))


def test_shape_written_as_true_division_of_ints():
    N, bn = 64, 16
    A = te.placeholder((N / bn, bn), name="A")
    assert int(A.shape[0]) == 4
    with pytest.raises(tvm.TecompError, match="must be integers"):
        te.placeholder((N / 24,), name="B")
