"""Scalar arguments of a compiled function (TVM's ``build(s, [A, B, x])`` with ``x`` a variable):
the caller passes their values between the arrays; integer ones may shape outputs (``n // x``,
checked at each call), float ones (``te.var("bias", dtype="float32")``) are values in the body."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te


def _strided_rows():
    n, m, x = te.size_var("n"), te.size_var("m"), te.size_var("x")
    A = te.placeholder((n, m), name="A")
    B = te.compute((m, n // x), lambda i, j: A[j * x, i] * 2, name="B")
    return A, B, x


def test_an_output_shape_of_an_integer_argument(rng):
    A, B, x = _strided_rows()
    f = tvm.build(te.create_schedule(B.op), [A, B, x])
    a = rng.standard_normal((12, 5)).astype("float32")
    for step in (3, 4):
        b = tvm.nd.empty((5, 12 // step))
        f(tvm.nd.array(a), b, step)
        np.testing.assert_allclose(b.numpy(), a[::step, :].T * 2)


def test_the_shape_expression_and_the_argument_are_checked(rng):
    A, B, x = _strided_rows()
    f = tvm.build(te.create_schedule(B.op), [A, x, B])  # the integer may sit anywhere in the list
    a = tvm.nd.array(rng.standard_normal((12, 5)).astype("float32"))
    with pytest.raises(tvm.TVMError, match="dimension 1 is 4, expected 6"):
        f(a, 2, tvm.nd.empty((5, 4)))
    with pytest.raises(tvm.TVMError, match="must be an integer, got float"):
        f(a, 2.0, tvm.nd.empty((5, 6)))
    with pytest.raises(tvm.TVMError, match="expects 3 arguments"):
        f(a, tvm.nd.empty((5, 6)))


def test_a_hand_built_function_with_integer_parameters():
    x, y = tvm.tir.Var("x", "int32"), tvm.tir.Var("y", "int32")
    z = tvm.tir.decl_buffer((1,), "int32x2", name="z")
    func = tvm.tir.PrimFunc([x, y, z], z.vstore(0, tvm.tir.Shuffle([x, y], [1, 0])))
    f = tvm.build(tvm.IRModule.from_expr(func), [x, y, z], "llvm")
    out = tvm.nd.empty((1,), "int32x2")
    f(7, -3, out)
    np.testing.assert_array_equal(out.numpy(), [[-3, 7]])


def test_a_float_argument_is_a_value_in_the_body(rng):
    bias = te.var("bias", dtype="float32")
    scale = te.var("scale", dtype="float64")
    A = te.placeholder((10,), name="A")
    B = te.compute((10,), lambda i: A[i] * scale.astype("float32") + bias, name="B")
    f = tvm.build(te.create_schedule(B.op), [A, bias, B, scale])
    a = rng.standard_normal(10).astype("float32")
    b = tvm.nd.empty((10,))
    f(tvm.nd.array(a), 10.25, b, -3)  # an int is taken for a float, as TVM converts numbers
    np.testing.assert_allclose(b.numpy(), a * -3 + 10.25, rtol=1e-6)
    f(tvm.nd.array(a), np.float32(0.5), b, np.float64(1e-3))
    np.testing.assert_allclose(b.numpy(), a * np.float32(1e-3) + 0.5, rtol=1e-6)
    with pytest.raises(tvm.TVMError, match=r"argument 1 \(bias\) must be a number, got str"):
        f(tvm.nd.array(a), "1", b, 1.0)
    with pytest.raises(tvm.LoweringError, match="float scalar arguments"):
        tvm.lower(te.create_schedule(B.op), [A, bias, B, scale], target="cuda")


def test_a_hand_built_function_with_a_float_parameter():
    v = tvm.tir.Var("v", "float32")
    out = tvm.tir.decl_buffer((4,), "float32", name="out")
    ib = tvm.tir.ir_builder.create()
    with ib.for_range(0, 4, name="i") as i:
        ib.emit(out.vstore(i, v * i.astype("float32")))
    f = tvm.build(tvm.tir.PrimFunc([v, out], ib.get()), target="llvm")
    o = tvm.nd.empty((4,))
    f(1.5, o)
    np.testing.assert_allclose(o.numpy(), [0, 1.5, 3, 4.5])
