"""Elementwise operators against numpy, through schedule_injective (interpreter and LLVM)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import elementwise as E
from tecomp.schedules.common import schedule_injective

BINARY = [
    (E.add, np.add), (E.subtract, np.subtract), (E.multiply, np.multiply),
    (E.maximum, np.maximum), (E.minimum, np.minimum),
]
SHAPE_PAIRS = [((7,), (7,)), ((3, 1, 5), (4, 1)), ((1,), (2, 3)), ((), (3,)), ((2, 3), (1, 1, 3))]


def _inputs(rng, shapes, dtype="float32", low=-2.0, high=2.0):
    return [rng.uniform(low, high, size=s).astype(dtype) for s in shapes]


def test_broadcast_shape():
    assert E.broadcast_shape((3, 1, 5), (4, 1)) == (3, 4, 5)
    assert E.broadcast_shape((), (2,)) == (2,)
    with pytest.raises(OperatorError, match="broadcast_shape.*shape"):
        E.broadcast_shape((3,), (4,))


@pytest.mark.parametrize("op,ref", BINARY)
@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS)
def test_binary_broadcast(check, rng, op, ref, sa, sb):
    A, B = te.placeholder(sa, name="A"), te.placeholder(sb, name="B")
    C = op(A, B)
    a, b = _inputs(rng, [sa, sb])
    check(schedule_injective(C), [A, B, C], [a, b], ref(a, b))


@pytest.mark.parametrize("op,ref", BINARY)
def test_binary_int_and_scalar(check, rng, op, ref):
    A = te.placeholder((3, 5), "int32", "A")
    a = rng.integers(-9, 9, size=(3, 5)).astype("int32")
    C, D = op(A, 3), op(2, A)
    check(schedule_injective([C, D]), [A, C, D], [a], [ref(a, np.int32(3)), ref(np.int32(2), a)])


def test_divide_float_and_int_truncates(check, rng):
    A, B = te.placeholder((3, 1, 5), name="A"), te.placeholder((4, 1), name="B")
    a, b = _inputs(rng, [(3, 1, 5), (4, 1)], low=0.5, high=3.0)
    C = E.divide(A, B)
    check(schedule_injective(C), [A, B, C], [a, b], a / b)
    Ai, Bi = te.placeholder((2, 6), "int32", "Ai"), te.placeholder((6,), "int32", "Bi")
    ai = rng.integers(-20, 20, size=(2, 6)).astype("int32")
    bi = np.array([-3, -2, 2, 5, 7, -1], "int32")
    Ci = E.divide(Ai, Bi)
    check(schedule_injective(Ci), [Ai, Bi, Ci], [ai, bi], np.trunc(ai / bi).astype("int32"))


def test_power(check, rng):
    A, B = te.placeholder((3, 4), name="A"), te.placeholder((4,), name="B")
    a, b = _inputs(rng, [(3, 4), (4,)], low=0.5, high=2.0)
    C, D = E.power(A, B), E.power(A, 2.0)
    check(schedule_injective([C, D]), [A, B, C, D], [a, b], [a ** b, a ** 2], rtol=1e-4)


@pytest.mark.parametrize("exponent", [2.0, 3.0, 4.0, 1.5])
def test_small_integer_powers_multiply(check, rng, exponent):
    A = te.placeholder((7, 13), name="A")
    out = E.power(A, exponent)
    s = schedule_injective(out)
    assert ("pow(" in str(tecomp.lower(s, [A, out], simple_mode=True))) == (exponent == 1.5)
    a = rng.uniform(-2, 2, (7, 13)).astype("float32")
    if exponent == 1.5:
        a = np.abs(a)
    check(s, [A, out], [a], a ** np.float32(exponent), rtol=1e-5)


UNARY = [
    (E.relu, lambda x: np.maximum(x, 0)),
    (E.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (E.tanh, np.tanh), (E.exp, np.exp), (E.erf, np.vectorize(math.erf)),
    (E.negative, np.negative), (E.abs, np.abs),
    (lambda x: E.clip(x, -0.5, 1.25), lambda x: np.clip(x, -0.5, 1.25)),
    (lambda x: E.clip(x, None, 0.3), lambda x: np.minimum(x, 0.3)),
    (E.gelu, lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))),
    (lambda x: E.gelu(x, "tanh"),
     lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))),
]


@pytest.mark.parametrize("op,ref", UNARY)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 1, 3)])
def test_unary(check, rng, op, ref, shape):
    X = te.placeholder(shape, name="X")
    Y = op(X)
    (x,) = _inputs(rng, [shape])
    check(schedule_injective(Y), [X, Y], [x], ref(x).astype("float32"), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op,ref", [(E.log, np.log), (E.sqrt, np.sqrt)])
def test_positive_domain(check, rng, op, ref):
    X = te.placeholder((4, 3), name="X")
    Y = op(X)
    (x,) = _inputs(rng, [(4, 3)], low=0.1, high=5.0)
    check(schedule_injective(Y), [X, Y], [x], ref(x))


def test_float64_and_int_unary(check, rng):
    X = te.placeholder((5,), "float64", "X")
    Y = E.exp(X)
    (x,) = _inputs(rng, [(5,)], dtype="float64")
    check(schedule_injective(Y), [X, Y], [x], np.exp(x), rtol=1e-12)
    Xi = te.placeholder((6,), "int32", "Xi")
    xi = np.array([-3, 0, 4, -1, 7, -8], "int32")
    R, A = E.relu(Xi), E.abs(Xi)
    check(schedule_injective([R, A]), [Xi, R, A], [xi], [np.maximum(xi, 0), np.abs(xi)])


def test_where_broadcast(check, rng):
    C = te.placeholder((3, 1), "bool", "C")
    X, Y = te.placeholder((4,), name="X"), te.placeholder((2, 1, 1), name="Y")
    W, V = E.where(C, X, Y), E.where(C, X, 0.5)
    c = rng.integers(0, 2, size=(3, 1)).astype(bool)
    x, y = _inputs(rng, [(4,), (2, 1, 1)])
    check(schedule_injective([W, V]), [C, X, Y, W, V], [c, x, y], [np.where(c, x, y), np.where(c, x, 0.5)])


def test_cast(check, rng):
    X = te.placeholder((2, 5), name="X")
    Y, Z = E.cast(X, "int32"), E.cast(X, "float64")
    (x,) = _inputs(rng, [(2, 5)], low=-9, high=9)
    check(schedule_injective([Y, Z]), [X, Y, Z], [x], [x.astype("int32"), x.astype("float64")])


def test_large_shape_llvm(rng):
    A, B = te.placeholder((64, 257), name="A"), te.placeholder((257,), name="B")
    C = E.gelu(E.add(A, B))
    mod = tecomp.build(schedule_injective(C), [A, B, C])
    a, b = _inputs(rng, [(64, 257), (257,)])
    c = np.zeros((64, 257), "float32")
    mod(a, b, c)
    s = a + b
    np.testing.assert_allclose(c, 0.5 * s * (1 + np.vectorize(math.erf)(s / math.sqrt(2))), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make,pattern", [
    (lambda: E.add(te.placeholder((3,)), te.placeholder((4,))), "add: argument shape"),
    (lambda: E.add(te.placeholder((3,)), te.placeholder((3,), "float64")), "add: argument b: dtype"),
    (lambda: E.multiply(2, 3), "multiply: argument a, b"),
    (lambda: E.subtract(te.placeholder((3,)), "x"), "subtract: argument b"),
    (lambda: E.power(te.placeholder((3,), "int8"), 2), "power: argument a: dtype"),
    (lambda: E.exp(te.placeholder((3,), "int32")), "exp: argument x: dtype"),
    (lambda: E.clip(te.placeholder((3,)), 2.0, 1.0), "clip: argument a_min"),
    (lambda: E.gelu(te.placeholder((3,)), "erf"), "gelu: argument approximate"),
    (lambda: E.where(te.placeholder((3,)), te.placeholder((3,)), 0.0), "where: argument cond: dtype"),
    (lambda: E.where(te.placeholder((3,), "bool"), te.placeholder((3,)), te.placeholder((3,), "int32")),
     "where: argument y: dtype"),
    (lambda: E.cast(te.placeholder((3,)), "float33"), "cast: argument dtype"),
    (lambda: E.add(te.placeholder((te.var("n"),)), 1.0), "add: argument a: dimension 0 is symbolic"),
])
def test_errors(make, pattern):
    with pytest.raises(OperatorError, match=pattern):
        make()
