"""A reducer whose identity (``init=``) or combine rule uses an axis variable of its compute.

Every rewrite that renames axes (cache_write's fresh axes, splits, rfactor) must rename
them inside the combiner too, or the loop body uses a variable no loop defines.
"""

from __future__ import annotations

import numpy as np

from tecomp import te


def _row_reduce_with_axis_in_reducer(n, m):
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    # identity is the row number; the combine rule scales the new element by (row + 1)
    row_sum = te.comm_reducer(lambda x, y: x + y, lambda t: te.const(0, t), name="row_sum")
    B = te.compute((n,), lambda r: row_sum(A[r, k] * (r + 1).astype("float32"), axis=k,
                                          init=r.astype("float32")), name="B")
    expected = lambda a: np.arange(n, dtype="float32") + a.sum(1) * (np.arange(n, dtype="float32") + 1)
    return A, B, expected


def test_identity_with_axis_var_and_cache_write(check, rng):
    A, B, expected = _row_reduce_with_axis_in_reducer(13, 7)
    s = te.create_schedule(B.op)
    s.cache_write(B, "local")
    a = rng.uniform(-1, 1, (13, 7)).astype("float32")
    check(s, [A, B], [a], expected(a))


def test_identity_with_axis_var_after_split(check, rng):
    A, B, expected = _row_reduce_with_axis_in_reducer(13, 7)
    s = te.create_schedule(B.op)
    s[B].split(B.op.axis[0], factor=4)
    a = rng.uniform(-1, 1, (13, 7)).astype("float32")
    check(s, [A, B], [a], expected(a))


def test_combiner_with_axis_var_and_cache_write(check, rng):
    n, m = 7, 13
    A = te.placeholder((n, m), name="A")
    k = te.reduce_axis((0, m), name="k")
    # max of x and y + r: a rule that reads the row axis
    B = te.compute((n,), lambda r: te.comm_reducer(lambda x, y: te.max(x, y + r.astype("float32")),
                                                   lambda t: te.min_value(t))(A[r, k], axis=k), name="B")
    s = te.create_schedule(B.op)
    s.cache_write(B, "local")
    a = rng.uniform(-1, 1, (n, m)).astype("float32")
    check(s, [A, B], [a], a.max(1) + np.arange(n, dtype="float32"))
