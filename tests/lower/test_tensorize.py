"""``tensorize`` with ``te.decl_tensor_intrin``: loops replaced by an intrinsic, checked against numpy.

Two intrinsics: a dot product written as loop IR on the intrinsic's buffers (run by the
interpreter and by LLVM), and TVM's tutorial gemv, a ``call_extern`` of LLVM functions
supplied with ``pragma(loop, "import_llvm", text)``, with a reset and an update so the
reduction can continue outside the tensorized loops.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te, tir
from tecomp.error import LoweringError, ScheduleError

GEMV_LL = r"""
define i32 @gemv_update(ptr %cc, ptr %aa, ptr %bb, i32 %m, i32 %l, i32 %stride) {
entry:
  br label %row
row:
  %i = phi i32 [0, %entry], [%i.next, %row.end]
  %rowoff = mul i32 %i, %stride
  %brow = getelementptr float, ptr %bb, i32 %rowoff
  br label %col
col:
  %j = phi i32 [0, %row], [%j.next, %col]
  %acc = phi float [0.0, %row], [%acc.next, %col]
  %ap = getelementptr float, ptr %aa, i32 %j
  %bp = getelementptr float, ptr %brow, i32 %j
  %av = load float, ptr %ap
  %bv = load float, ptr %bp
  %p = fmul float %av, %bv
  %acc.next = fadd float %acc, %p
  %j.next = add i32 %j, 1
  %jdone = icmp eq i32 %j.next, %l
  br i1 %jdone, label %row.end, label %col
row.end:
  %ci = getelementptr float, ptr %cc, i32 %i
  %old = load float, ptr %ci
  %new = fadd float %old, %acc.next
  store float %new, ptr %ci
  %i.next = add i32 %i, 1
  %idone = icmp eq i32 %i.next, %m
  br i1 %idone, label %exit, label %row
exit:
  ret i32 0
}

define i32 @gemv_reset(ptr %cc, i32 %m) {
entry:
  br label %loop
loop:
  %i = phi i32 [0, %entry], [%i.next, %loop]
  %ci = getelementptr float, ptr %cc, i32 %i
  store float 0.0, ptr %ci
  %i.next = add i32 %i, 1
  %done = icmp eq i32 %i.next, %m
  br i1 %done, label %exit, label %loop
exit:
  ret i32 0
}
"""


def intrin_dot(l, combine=lambda x, y: x * y):
    """c[0] = sum(combine(a[k], b[k])): loop IR on the intrinsic's buffers (vload / vstore)."""
    a = te.placeholder((l,), name="a")
    b = te.placeholder((l,), name="b")
    k = te.reduce_axis((0, l), name="k")
    c = te.compute((1,), lambda i: te.sum(combine(a[k], b[k]), axis=k), name="c")

    def fcompute(ins, outs):
        ib = tir.ir_builder.create()
        aa, bb = ins
        cc = outs[0]
        ib.emit(cc.vstore(0, 0.0))
        with ib.for_range(0, l, name="t") as t:
            ib.emit(cc.vstore(0, cc.vload(0) + combine(aa.vload(t), bb.vload(t))))
        return ib.get()

    return te.decl_tensor_intrin(c.op, fcompute, name="dot")


def intrin_gemv(m, l):
    """TVM's tutorial intrinsic: c[i] = sum(a[k] * b[i, k]) by call_extern, b with a variable row stride."""
    a = te.placeholder((l,), name="a")
    b = te.placeholder((m, l), name="b")
    k = te.reduce_axis((0, l), name="k")
    c = te.compute((m,), lambda i: te.sum(a[k] * b[i, k], axis=k), name="c")
    Ab = tir.decl_buffer(a.shape, a.dtype, name="A", offset_factor=1, strides=[1])
    Bb = tir.decl_buffer(b.shape, b.dtype, name="B", offset_factor=1, strides=[te.var("s1"), 1])
    Cb = tir.decl_buffer(c.shape, c.dtype, name="C", offset_factor=1, strides=[1])

    def fcompute(ins, outs):
        aa, bb = ins
        cc = outs[0]
        update = tir.call_extern("int32", "gemv_update", cc.access_ptr("w"), aa.access_ptr("r"),
                                 bb.access_ptr("r"), m, l, bb.strides[0])
        reset = tir.call_extern("int32", "gemv_reset", cc.access_ptr("w"), m)
        return update, reset, update

    return te.decl_tensor_intrin(c.op, fcompute, name="gemv", binds={a: Ab, b: Bb, c: Cb})


def _matmul_nt(n, m, l):
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((m, l), name="B")
    k = te.reduce_axis((0, l), name="k")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, k] * B[j, k], axis=k), name="C")
    return A, B, C


def test_dot_intrinsic_replaces_the_reduction_loop(check, rng):
    A, B, C = _matmul_nt(13, 7, 13)
    s = te.create_schedule(C.op)
    s[C].tensorize(C.op.reduce_axis[0], intrin_dot(13))
    assert s[C].iter_var_attrs[C.op.reduce_axis[0]].iter_type == te.IterVar.Tensorized
    a = rng.uniform(-1, 1, (13, 13)).astype("float32")
    b = rng.uniform(-1, 1, (7, 13)).astype("float32")
    func = check(s, [A, B, C], [a, b], a @ b.T, rtol=1e-5, atol=1e-5)
    assert "for (t, 13)" in str(func) and "for (k" not in str(func)


def test_gemv_extern_with_reset_and_update_around_an_outer_reduction_loop(rng):
    A, B, C = _matmul_nt(13, 21, 39)
    s = te.create_schedule(C.op)
    x, y = C.op.axis
    yo, yi = s[C].split(y, factor=7)
    zo, zi = s[C].split(C.op.reduce_axis[0], factor=13)
    s[C].reorder(x, yo, zo, yi, zi)
    s[C].tensorize(yi, intrin_gemv(7, 13))
    s[C].pragma(x, "import_llvm", GEMV_LL)
    text = str(tecomp.lower(s, [A, B, C])["main"])
    assert "gemv_reset" in text and text.count("gemv_update") == 1 and ", 39)" in text  # the row stride of B
    mod = tecomp.build(s, [A, B, C])
    a = rng.uniform(-1, 1, (13, 39)).astype("float32")
    b = rng.uniform(-1, 1, (21, 39)).astype("float32")
    c = np.full((13, 21), 7.0, "float32")  # the reset must clear it
    mod(a, b, c)
    np.testing.assert_allclose(c, a @ b.T, rtol=1e-5, atol=1e-5)


def test_a_different_computation_is_refused():
    A, B, C = _matmul_nt(13, 7, 13)
    s = te.create_schedule(C.op)
    s[C].tensorize(C.op.reduce_axis[0], intrin_dot(13, combine=lambda x, y: x + y))
    with pytest.raises(LoweringError, match="tensorize on stage C, axis k: the stage's body .* does not compute "
                                            "what intrinsic dot computes"):
        tecomp.lower(s, [A, B, C])


def test_extent_mismatch_and_non_dividing_split_are_refused():
    A, B, C = _matmul_nt(13, 7, 13)
    s = te.create_schedule(C.op)
    s[C].tensorize(C.op.reduce_axis[0], intrin_dot(16))
    with pytest.raises(LoweringError, match="cover 13 values of axis k, but intrinsic dot has extent 16"):
        tecomp.lower(s, [A, B, C])
    A, B, C = _matmul_nt(13, 7, 197)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=16)
    s[C].tensorize(ki, intrin_dot(16))
    with pytest.raises(LoweringError, match="axis k.inner: a split inside the tensorized loops does not divide"):
        tecomp.lower(s, [A, B, C])


def test_an_outer_reduction_loop_needs_reset_and_update():
    A, B, C = _matmul_nt(13, 7, 39)
    s = te.create_schedule(C.op)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=13)
    s[C].tensorize(ki, intrin_dot(13))
    with pytest.raises(LoweringError, match="reduction loop k.outer stays outside the tensorized loops, so "
                                            "intrinsic dot needs \\(body, reset, update\\)"):
        tecomp.lower(s, [A, B, C])


def test_tensorize_argument_errors_name_stage_and_axis():
    A, B, C = _matmul_nt(13, 7, 13)
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="tensorize on stage C, axis k: expected a te.decl_tensor_intrin"):
        s[C].tensorize(C.op.reduce_axis[0], "dot")
    s[C].vectorize(C.op.axis[1])
    with pytest.raises(ScheduleError, match="tensorize on stage C: axis j is already marked vectorized"):
        s[C].tensorize(C.op.axis[1], intrin_dot(13))


def intrin_vadd(n):
    """z[t] = x[t] + y[t]: loop IR on the intrinsic's buffers."""
    x = te.placeholder((n,), name="x")
    y = te.placeholder((n,), name="y")
    z = te.compute((n,), lambda i: x[i] + y[i], name="z")

    def fcompute(ins, outs):
        ib = tir.ir_builder.create()
        with ib.for_range(0, n, name="t") as t:
            ib.emit(outs[0].vstore(t, ins[0].vload(t) + ins[1].vload(t)))
        return ib.get()

    return te.decl_tensor_intrin(z.op, fcompute, name="vadd")


def test_tensor_compute_calls_the_intrinsic_on_regions(check, rng):
    """TVM's TensorComputeOp: fcompute takes the outer axes and calls the intrinsic on regions."""
    vadd = intrin_vadd(16)
    A = te.placeholder((6, 3, 16), name="A")
    B = te.placeholder((6, 16), name="B")
    C = te.compute((6, 16), lambda i: vadd(A[i, 2, 0:16], B[i, 0:16]), name="C")
    s = te.create_schedule(C.op)
    inner = C.op.axis[1]
    assert s[C].iter_var_attrs[inner].iter_type == te.IterVar.Tensorized
    xo, xi = s[C].split(C.op.axis[0], factor=2)  # the outer loops schedule as usual
    a = rng.standard_normal((6, 3, 16)).astype("float32")
    b = rng.standard_normal((6, 16)).astype("float32")
    func = check(s, [A, B, C], [a, b], a[:, 2, :] + b)
    assert "for (t, 16)" in str(func)


def test_tensor_compute_with_an_outer_reduction_resets_and_updates(rng):
    m, l, n, jo_n, ko_n = 7, 13, 5, 3, 3
    gemv = intrin_gemv(m, l)
    X = te.placeholder((n, ko_n, l), name="X")
    W = te.placeholder((jo_n, ko_n, m, l), name="W")
    ko = te.reduce_axis((0, ko_n), name="ko")
    C = te.compute((n, jo_n, m), lambda i, jo: gemv(X[i, ko, 0:l], W[jo, ko, 0:m, 0:l], reduce_axis=ko),
                   name="C")
    s = te.create_schedule(C.op)
    s[C].pragma(C.op.axis[0], "import_llvm", GEMV_LL)
    text = str(tecomp.lower(s, [X, W, C])["main"])
    assert "gemv_reset" in text and "gemv_update" in text
    mod = tecomp.build(s, [X, W, C])
    x = rng.uniform(-1, 1, (n, ko_n, l)).astype("float32")
    w = rng.uniform(-1, 1, (jo_n, ko_n, m, l)).astype("float32")
    c = np.full((n, jo_n, m), 3.0, "float32")
    mod(x, w, c)
    np.testing.assert_allclose(c, np.einsum("ikl,jkml->ijm", x, w), rtol=1e-5, atol=1e-5)


def test_tensor_compute_errors_name_the_compute():
    vadd = intrin_vadd(16)
    A = te.placeholder((4, 16), name="A")
    with pytest.raises(tecomp.ExprError, match="compute C: the dimensions after the 1 axes"):
        te.compute((4, 8), lambda i: vadd(A[i, 0:16], A[i, 0:16]), name="C")
    with pytest.raises(tecomp.ExprError, match="does not have the shape"):
        te.compute((4, 16), lambda i: vadd(A[i, 0:8], A[i, 0:16]), name="C")
    with pytest.raises(tecomp.ExprError, match="only a call of a tensor intrinsic"):
        te.compute((4, 16), lambda i: A[i, 0], name="C")
    with pytest.raises(tecomp.ExprError, match="takes 2 tensor regions"):
        te.compute((4, 16), lambda i: vadd(A[i, 0:16]), name="C")
