"""Loop partitioning of boundary conditions: an ``if_then_else`` on a vectorized loop's variable
is peeled off (head and tail) so that the main part runs on vectors; elsewhere nothing is cut."""

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.tir import BufferStore, Call, For, Ramp, post_order_visit
from tecomp.tir.interpreter import run


def _padded_double(vectorize: bool):
    """b = pad(2 * a, 2) on a symbolic length, the axis split by 8 (a tail) and maybe vectorized."""
    n = te.var("n")
    a = te.placeholder((n,), name="a")
    b = te.compute((n + 4,), lambda i: te.if_then_else(te.all(i >= 2, i < n + 2), a[i - 2] * 2.0, 0.0), name="b")
    s = te.create_schedule(b.op)
    _, inner = s[b].split(b.op.axis[0], factor=8)
    if vectorize:
        s[b].vectorize(inner)
    return tecomp.lower(s, [a, b])["main"]


def _nodes(stmt, cls) -> list:
    found: list = []
    post_order_visit(stmt, lambda n: found.append(n) if isinstance(n, cls) else None)
    return found


@pytest.mark.parametrize("length", [1, 5, 13, 40])
def test_a_padding_on_a_vector_loop_is_peeled_and_the_main_part_runs_on_vectors(length):
    func = _padded_double(vectorize=True)
    vector_stores = [s for s in _nodes(func.body, BufferStore) if isinstance(s.indices[0], Ramp)]
    assert len(vector_stores) == 1
    assert not any(c.op == "if_then_else" for c in _nodes(vector_stores[0], Call))
    x = np.random.default_rng(length).uniform(-1, 1, length).astype("float32")
    want = np.pad(x * 2, 2)
    for execute in (lambda *args: run(func, list(args)), tecomp.build(func, target="llvm")):
        got = np.zeros(length + 4, "float32")
        execute(x.copy(), got)
        np.testing.assert_allclose(got, want)


def test_a_condition_on_serial_loops_only_is_not_partitioned():
    func = _padded_double(vectorize=False)
    assert len(_nodes(func.body, For)) == 4   # the main part and the split's tail: two nests of two loops
