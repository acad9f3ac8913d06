"""Tensors of a vector dtype (TVM's ``float32x4``): each element a short vector.

An array of such a dtype is held as an array of the element dtype with a trailing dimension of
the lanes, what numpy and the compiled code both see: ``nd.empty((n,), "float32x4")`` has shape
``(n, 4)``.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te


def test_empty_of_a_vector_dtype_has_a_trailing_lanes_dimension():
    a = tvm.nd.empty((5, 3), "int16x8")
    assert a.shape == (5, 3, 8) and a.dtype == "int16"


@pytest.mark.parametrize("vectorize", [False, True])
def test_elementwise_on_vector_elements(rng, vectorize):
    n, lanes = 24, 4
    A = te.placeholder((n,), name="A", dtype=f"float32x{lanes}")
    B = te.placeholder((n,), name="B", dtype=f"float32x{lanes}")
    C = te.compute((n,), lambda i: A[i] * B[i] + tvm.tir.const(1, A.dtype), name="C")
    assert C.dtype == "float32x4"
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[C].parallel(xo)
    if vectorize:  # vectors of vectors are not made: the loop stays serial, the result the same
        s[C].vectorize(xi)
    f = tvm.build(s, [A, B, C])
    a = tvm.nd.empty((n,), A.dtype).copyfrom(rng.standard_normal((n, lanes)))
    b = tvm.nd.array(rng.standard_normal((n, lanes)).astype("float32"))
    c = tvm.nd.empty((n,), C.dtype)
    f(a, b, c)
    np.testing.assert_allclose(c.numpy(), a.numpy() * b.numpy() + 1, rtol=1e-5, atol=1e-5)


def test_a_vector_parameter_checks_its_lanes():
    A = te.placeholder((8,), name="A", dtype="int32x2")
    C = te.compute((8,), lambda i: A[i] + A[i], name="C")
    f = tvm.build(te.create_schedule(C.op), [A, C])
    with pytest.raises(tvm.TVMError, match="expected 2 dimensions"):
        f(tvm.nd.empty((8,), "int32"), tvm.nd.empty((8,), "int32x2"))
    a = np.arange(16, dtype="int32").reshape(8, 2)
    c = tvm.nd.empty((8,), "int32x2")
    f(tvm.nd.array(a), c)
    np.testing.assert_array_equal(c.numpy(), 2 * a)
