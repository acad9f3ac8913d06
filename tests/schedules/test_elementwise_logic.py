"""Comparisons, logical operators and leaky_relu against numpy (interpreter and LLVM)."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import elementwise as E
from tecomp.schedules.common import schedule_injective

COMPARISONS = [(E.equal, np.equal), (E.less, np.less), (E.less_equal, np.less_equal),
               (E.greater, np.greater), (E.greater_equal, np.greater_equal)]
LOGICAL = [(E.logical_and, np.logical_and), (E.logical_or, np.logical_or), (E.logical_xor, np.logical_xor)]


@pytest.mark.parametrize("op,ref", COMPARISONS)
@pytest.mark.parametrize("dtype", ["float32", "int64"])
def test_comparison_broadcast(check, rng, op, ref, dtype):
    A, B = te.placeholder((3, 1, 5), dtype, "A"), te.placeholder((4, 1), dtype, "B")
    # small integers make ties (the equal cases) common
    a = rng.integers(-2, 3, size=(3, 1, 5)).astype(dtype)
    b = rng.integers(-2, 3, size=(4, 1)).astype(dtype)
    C = op(A, B)
    assert C.dtype == "bool"
    check(schedule_injective(C), [A, B, C], [a, b], ref(a, b))


@pytest.mark.parametrize("op,ref", COMPARISONS)
def test_comparison_with_scalar(check, op, ref):
    A = te.placeholder((6,), "int32", "A")
    a = np.arange(-3, 3, dtype="int32")
    C, D = op(A, 0), op(1, A)
    check(schedule_injective([C, D]), [A, C, D], [a], [ref(a, 0), ref(1, a)])


@pytest.mark.parametrize("op,ref", LOGICAL)
def test_logical_broadcast(check, rng, op, ref):
    A, B = te.placeholder((2, 3, 4), "bool", "A"), te.placeholder((3, 1), "bool", "B")
    a, b = rng.integers(0, 2, (2, 3, 4)).astype(bool), rng.integers(0, 2, (3, 1)).astype(bool)
    C = op(A, B)
    check(schedule_injective(C), [A, B, C], [a, b], ref(a, b))


def test_logical_not_and_where_chain(check, rng):
    A = te.placeholder((17,), "bool", "A")
    X = te.placeholder((17,), "float32", "X")
    a, x = rng.integers(0, 2, 17).astype(bool), rng.uniform(-1, 1, 17).astype("float32")
    C = E.where(E.logical_not(A), X, 0.5)
    check(schedule_injective(C), [A, X, C], [a, x], np.where(~a, x, np.float32(0.5)))


def test_leaky_relu(check, rng):
    X = te.placeholder((4, 33), "float32", "X")
    x = rng.uniform(-2, 2, (4, 33)).astype("float32")
    Y = E.leaky_relu(X, 0.1)
    check(schedule_injective(Y), [X, Y], [x], np.where(x >= 0, x, x * np.float32(0.1)))


@pytest.mark.parametrize("call, message", [
    (lambda: E.logical_and(te.placeholder((2,), "float32"), te.placeholder((2,), "float32")),
     "logical_and: argument a: dtype float32"),
    (lambda: E.logical_not(te.placeholder((2,), "int32")), "logical_not: argument x: dtype int32"),
    (lambda: E.less(te.placeholder((2,), "int32"), te.placeholder((2,), "int64")),
     "less: argument b: dtype int64 differs"),
    (lambda: E.equal(te.placeholder((2,)), te.placeholder((3,))), "equal: argument shape"),
    (lambda: E.leaky_relu(te.placeholder((2,)), "0.1"), "leaky_relu: argument alpha"),
    (lambda: E.leaky_relu(te.placeholder((2,), "int32")), "leaky_relu: argument x: dtype int32"),
])
def test_bad_arguments(call, message):
    with pytest.raises(OperatorError, match=message):
        call()
