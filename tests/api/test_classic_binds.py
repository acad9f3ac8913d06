"""``lower`` / ``build`` with ``binds={tensor: tir.decl_buffer(...)}``, as TVM documents it.

A bound buffer gives an argument its layout: explicit strides (variables bound from the array
passed, or constants it must have), so the function works on a strided view of a larger array,
and an ``elem_offset``. Results are compared with numpy.
"""

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir
from tecomp.runtime.packed_func import ArgumentError


def _scale(n, m):
    A = te.placeholder((n, m), name="A")
    B = te.compute((n, m), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    return A, B, te.create_schedule(B.op)


def test_variable_row_stride_reads_a_view_of_a_larger_array():
    n, m = te.var("n"), te.var("m")
    A, B, s = _scale(n, m)
    Ab = tir.decl_buffer(A.shape, A.dtype, name="A", offset_factor=1, strides=[te.var("sa"), 1])
    text = str(tvm.lower(s, [A, B], binds={A: Ab}))
    assert "strides=[sa, 1]" in text and "A[((i * sa) + j)]" in text
    f = tvm.build(s, [A, B], "llvm", binds={A: Ab})
    big = np.random.default_rng(0).random((10, 20)).astype("float32")
    view = big[2:8, 3:14]  # not contiguous: rows 20 elements apart
    b = np.zeros((6, 11), "float32")
    f(view, b)
    np.testing.assert_allclose(b, view * 2 + 1, rtol=1e-6)
    compact = np.ascontiguousarray(view)  # the same call on a compact array binds sa = 11
    b2 = np.zeros_like(b)
    f(tvm.nd.array(compact), b2)
    np.testing.assert_allclose(b2, b)


def test_constant_strides_write_into_a_block_of_a_larger_output():
    A, B, s = _scale(4, 5)
    Bb = tir.decl_buffer(B.shape, B.dtype, name="B", strides=[20, 1])
    f = tvm.build(s, [A, B], binds={B: Bb})
    a = np.arange(20, dtype="float32").reshape(4, 5)
    out = np.full((4, 20), -1.0, "float32")
    f(a, out[:, 5:10])
    np.testing.assert_allclose(out[:, 5:10], a * 2 + 1)
    assert (out[:, :5] == -1).all() and (out[:, 10:] == -1).all()  # nothing outside the block is written
    with pytest.raises(ArgumentError, match="stride 0 is 5, expected 20"):
        f(a, np.zeros((4, 5), "float32"))  # a compact output does not have the declared strides


def test_strides_of_every_dimension_with_a_vectorized_inner_loop():
    n = 64
    A = te.placeholder((n, n), name="A")
    B = te.compute((n, n), lambda i, j: A[i, j] + A[j, i], name="B")
    s = te.create_schedule(B.op)
    jo, ji = s[B].split(B.op.axis[1], factor=8)
    s[B].vectorize(ji)
    s0, s1 = te.var("s0"), te.var("s1")
    Ab = tir.decl_buffer(A.shape, A.dtype, name="A", strides=[s0, s1])
    f = tvm.build(s, [A, B], binds={A: Ab})
    big = np.random.default_rng(1).random((2 * n, 3 * n)).astype("float32")
    view = big[::2, ::3]
    b = np.zeros((n, n), "float32")
    f(view, b)
    np.testing.assert_allclose(b, view + view.T, rtol=1e-6)


def test_a_stride_variable_shared_by_two_arguments_must_agree():
    A, B, s = _scale(4, 6)
    st = te.var("st")
    binds = {A: tir.decl_buffer(A.shape, A.dtype, name="A", strides=[st, 1]),
             B: tir.decl_buffer(B.shape, B.dtype, name="B", strides=[st, 1])}
    f = tvm.build(s, [A, B], binds=binds)
    big_a, big_b = np.ones((4, 9), "float32"), np.zeros((4, 9), "float32")
    f(big_a[:, :6], big_b[:, 2:8])
    np.testing.assert_allclose(big_b[:, 2:8], 3.0)
    with pytest.raises(ArgumentError, match="size var st is 9"):
        f(big_a[:, :6], np.zeros((4, 6), "float32"))


def test_elem_offset_variable_or_constant_keeps_element_zero_at_the_array_start():
    A, B, s = _scale(3, 4)
    a = np.random.default_rng(2).random((3, 4)).astype("float32")
    for offset in (te.var("elem_offset"), 7):
        Ab = tir.decl_buffer(A.shape, A.dtype, name="A", elem_offset=offset, offset_factor=1)
        f = tvm.build(s, [A, B], binds={A: Ab})
        b = np.zeros((3, 4), "float32")
        f(a, b)
        np.testing.assert_allclose(b, a * 2 + 1, rtol=1e-6)


def test_tensor_intrinsic_elem_offset_is_the_regions_offset():
    seen = []

    @tvm.register_func("tests.api.binds.record_offset", override=True)
    def record(offset):
        seen.append(offset)

    a = te.placeholder((8,), name="a")
    c = te.compute((8,), lambda i: a[i] + 1.0, name="c")
    cb = tir.decl_buffer(c.shape, c.dtype, name="cb", elem_offset=te.var("off"), offset_factor=1)

    def body(ins, outs):
        ib = tir.ir_builder.create()
        ib.emit(tir.call_packed("tests.api.binds.record_offset", outs[0].elem_offset))
        with ib.for_range(0, 8, name="t") as t:
            ib.emit(outs[0].vstore(t, ins[0].vload(t) + 1.0))
        return ib.get()

    intrin = te.decl_tensor_intrin(c.op, body, binds={c: cb})
    A = te.placeholder((4, 8), name="A")
    C = te.compute((4, 8), lambda i, j: A[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[C].tensorize(C.op.axis[1], intrin)
    f = tvm.build(s, [A, C])
    x = np.random.default_rng(3).random((4, 8)).astype("float32")
    y = np.zeros((4, 8), "float32")
    f(x, y)
    np.testing.assert_allclose(y, x + 1, rtol=1e-6)
    assert seen == [0, 8, 16, 24]


def test_binds_that_cannot_apply_are_errors_naming_the_cause():
    A, B, s = _scale(4, 5)
    C = te.placeholder((4, 5), name="C")
    with pytest.raises(tvm.LoweringError, match="tensor C is not in the argument list"):
        tvm.lower(s, [A, B], binds={C: tir.decl_buffer(C.shape, C.dtype)})
    with pytest.raises(tvm.LoweringError, match="has dtype int32"):
        tvm.lower(s, [A, B], binds={A: tir.decl_buffer(A.shape, "int32")})
    with pytest.raises(tvm.LoweringError, match=r"has shape \[4, 6\]"):
        tvm.lower(s, [A, B], binds={A: tir.decl_buffer((4, 6), A.dtype)})
    strided = {A: tir.decl_buffer(A.shape, A.dtype, strides=[te.var("s"), 1])}
    with pytest.raises(tvm.LoweringError, match="CPU targets only"):
        tvm.lower(s, [A, B], binds=strided, target="cuda")
    with pytest.raises(tvm.BuildError, match="bound_check"):
        tvm.build(s, [A, B], binds=strided, bound_check=True)
    with pytest.raises(tvm.BuildError, match="already lowered"):
        tvm.build(tvm.lower(s, [A, B]), binds=strided)
    with pytest.raises(tvm.TecompError, match="elem_offset"):
        tir.decl_buffer((4,), elem_offset=1.5)

