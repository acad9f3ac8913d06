"""Functions written directly in loop IR, the TVM way: ``ir_builder.pointer`` parameters,
``tir.PrimFunc(params, body)``, ``with_attr("global_symbol", ...)``, ``IRModule.from_expr``."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp as tvm
from tecomp.tir import interpreter


def _scale_in_place(dtype: str = "float32"):
    ib = tvm.tir.ir_builder.create()
    A = ib.pointer(dtype, name="A")
    n = A.asobject().shape[0]
    with ib.for_range(0, n, name="i") as i:
        A[i] = A[i] * 3
    return A, ib.get()


def test_primfunc_of_a_pointer_is_called_with_any_length(rng):
    A, body = _scale_in_place()
    func = tvm.tir.PrimFunc([A], body).with_attr("global_symbol", "scale3")
    assert func.name == "scale3" and dict(func.attrs)["global_symbol"] == "scale3"
    mod = tvm.IRModule.from_expr(func)
    f = tvm.build(mod, None, "llvm")
    for n in (5, 17):
        a = rng.standard_normal(n).astype("float32")
        arr = tvm.nd.array(a)
        f["scale3"](arr)
        np.testing.assert_allclose(arr.numpy(), a * 3, rtol=1e-6)


def test_prefetch_and_an_address_builds_and_runs(rng):
    ib = tvm.tir.ir_builder.create()
    A = ib.pointer("float32", name="A")
    args = [tvm.tir.call_intrin("handle", "tir.address_of", A[0]), 0, 3, 1]
    call = tvm.tir.Call("int32", "tir.prefetch", args)
    assert call.op == "prefetch" and isinstance(call.args[1], tvm.tir.IntImm)
    ib.emit(tvm.tir.Evaluate(call))
    A[0] = A[0] + 1
    f = tvm.build(tvm.IRModule.from_expr(tvm.tir.PrimFunc([A], ib.get())), "llvm")
    assert "llvm.prefetch" in f.get_source("ll")
    a = tvm.nd.array(np.zeros(3, "float32"))
    f(a)
    np.testing.assert_array_equal(a.numpy(), [1, 0, 0])


def test_pointer_to_vectors_and_an_llvm_vector_intrinsic():
    ib = tvm.tir.ir_builder.create()
    A = ib.pointer("uint8x8", name="A")
    A[0] = tvm.tir.call_llvm_pure_intrin("uint8x8", "llvm.ctpop.v8i8", tvm.tir.const(1, "uint32"), A[0])
    f = tvm.build(tvm.IRModule.from_expr(tvm.tir.PrimFunc([A], ib.get())), "llvm")
    a = np.array([[0, 1, 3, 7, 15, 255, 128, 6]], "uint8")
    arr = tvm.nd.array(a)
    f(arr)
    np.testing.assert_array_equal(arr.numpy(), [[0, 1, 2, 3, 4, 8, 1, 2]])


def test_scalar_parameters_are_refused_by_name():
    v = tvm.te.var("v", dtype="float16")  # int32/int64/float32/float64 scalars are taken
    with pytest.raises(tvm.ExprError, match="PrimFunc parameter v"):
        tvm.tir.PrimFunc([v], tvm.tir.Evaluate(tvm.tir.const(0)))


def test_shuffle_reverses_a_vector_and_concatenates_scalars():
    ib = tvm.tir.ir_builder.create()
    A = ib.pointer("int32", name="A")
    B = ib.pointer("int32", name="B")
    lanes = tvm.tir.Ramp(tvm.tir.const(0), tvm.tir.const(1), 8)
    vec = tvm.tir.BufferLoad(A.asobject(), (lanes,))
    reverse = tvm.tir.Shuffle([vec], [7 - k for k in range(8)])
    assert reverse.dtype == "int32x8"
    ib.emit(tvm.tir.BufferStore(B.asobject(), reverse, (lanes,)))
    pair = tvm.tir.Shuffle([A[9], A[8], vec], [1, 0, 4])  # scalars count as one lane each
    ib.emit(tvm.tir.BufferStore(B.asobject(), pair, (tvm.tir.Ramp(tvm.tir.const(8), tvm.tir.const(1), 3),)))
    func = tvm.tir.PrimFunc([A, B], ib.get())
    assert "shuffle([" in str(func)
    f = tvm.build(func, "llvm")
    a = np.arange(10, dtype="int32") * 10
    b = tvm.nd.empty((11,), "int32")
    f(tvm.nd.array(a), b)
    want = [70, 60, 50, 40, 30, 20, 10, 0, 80, 90, 20]
    np.testing.assert_array_equal(b.numpy(), want)
    ref = np.zeros(11, "int32")
    interpreter.run(func, [a.copy(), ref])  # the reference interpreter agrees
    np.testing.assert_array_equal(ref, want)
    with pytest.raises(tvm.ExprError, match="indices must be constants"):
        tvm.tir.Shuffle([vec], [8])
