"""bfloat16: a storage type whose arithmetic runs in float32, rounded to nearest even on store.

numpy has no bfloat16, so arrays of it travel as uint16 bit patterns (as in TVM); the references
here round with numpy the same way.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te


def to_bits(x: np.ndarray) -> np.ndarray:
    b = x.astype("float32").view("uint32").astype("uint64")
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype("uint16")


def from_bits(u: np.ndarray) -> np.ndarray:
    return (u.astype("uint32") << 16).view("float32")


def rounded(x: np.ndarray) -> np.ndarray:
    return from_bits(to_bits(x))


@pytest.mark.parametrize("vectorize", [False, True])
def test_arithmetic_min_and_math_in_bfloat16(rng, vectorize):
    n = 32
    A = te.placeholder((n,), dtype="bfloat16", name="A")
    B = te.placeholder((n,), dtype="bfloat16", name="B")
    C = te.compute((n,), lambda i: te.max(A[i] * B[i] - 1.5, te.exp(A[i])), name="C")
    assert C.dtype == "bfloat16"
    s = te.create_schedule(C.op)
    if vectorize:
        xo, xi = s[C].split(C.op.axis[0], factor=8)
        s[C].vectorize(xi)
    f = tvm.build(s, [A, B, C])
    a = rng.uniform(-2, 2, n).astype("float32")
    b = rng.uniform(-2, 2, n).astype("float32")
    c = tvm.nd.empty((n,), "uint16")
    f(tvm.nd.array(to_bits(a)), tvm.nd.array(to_bits(b)), c)
    ra, rb = rounded(a), rounded(b)
    want = rounded(np.maximum(rounded(rounded(ra * rb) - 1.5), rounded(np.exp(ra))))
    np.testing.assert_allclose(from_bits(c.numpy()), want, rtol=1e-2)  # an ulp of bf16 for exp
    exact = ra * rb - 1.5 > np.exp(ra)
    np.testing.assert_array_equal(from_bits(c.numpy())[exact], want[exact])


def test_casts_to_and_from_bfloat16_round_to_nearest_even(rng):
    n = 64
    X = te.placeholder((n,), name="X")
    H = te.compute((n,), lambda i: X[i].astype("bfloat16"), name="H")
    Y = te.compute((n,), lambda i: H[i].astype("float32") + H[i].astype("int32").astype("float32"), name="Y")
    s = te.create_schedule(Y.op)
    f = tvm.build(s, [X, H, Y])
    x = np.concatenate([rng.uniform(-300, 300, n - 4), [1.00390625, 1.01171875, -0.0, 65504.0]]).astype("float32")
    h, y = tvm.nd.empty((n,), "uint16"), tvm.nd.empty((n,), "float32")
    f(tvm.nd.array(x), h, y)
    np.testing.assert_array_equal(h.numpy(), to_bits(x))  # ties (1 + 2^-8, 1 + 3 * 2^-8) go to even
    r = rounded(x)
    np.testing.assert_array_equal(y.numpy(), r + np.trunc(r))


def test_a_bfloat16_parameter_takes_uint16_arrays_only():
    A = te.placeholder((4,), dtype="bfloat16", name="A")
    C = te.compute((4,), lambda i: A[i] + A[i], name="C")
    f = tvm.build(te.create_schedule(C.op), [A, C])
    with pytest.raises(tvm.TVMError, match="expected dtype uint16"):
        f(tvm.nd.array(np.ones(4, "float32")), tvm.nd.empty((4,), "uint16"))
