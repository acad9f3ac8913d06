"""vectorize_loops and unroll_loops: the IR they produce, and that it computes the same thing."""

import numpy as np
import pytest

from tecomp.tir import (Allocate, Broadcast, BufferLoad, BufferStore, Call, For, ForKind, IfThenElse,
                        LetStmt, PrimFunc, Ramp, Select, SizeVar, Var, const, decl_buffer, floordiv,
                        floormod, if_then_else, post_order_visit, seq)
from tecomp.lower.unroll import unroll_loops
from tecomp.lower.vectorize import vectorize_loops
from tecomp.tir.interpreter import run

N = 64
ZERO = const(0)


def loop(var, extent, body, kind=ForKind.SERIAL):
    return For(var, ZERO, extent if not isinstance(extent, int) else const(extent), kind, body)


def load(buf, idx):
    return BufferLoad(buf, (idx,))


def store(buf, value, idx):
    return BufferStore(buf, value, (idx,))


def nodes(stmt, cls):
    found = []
    post_order_visit(stmt, lambda n: found.append(n) if isinstance(n, cls) else None)
    return found


def loops(stmt):
    return nodes(stmt, For)


def same_results(before, after, rng, ints=False):
    """Run both functions on the same random inputs; every buffer must end up identical."""
    shapes = [[int(x) for x in b.shape] for b in before.params]
    x = [rng.integers(-9, 9, s).astype(b.dtype) if ints else rng.standard_normal(s).astype(b.dtype)
         for s, b in zip(shapes, before.params)]
    y = [a.copy() for a in x]
    run(before, x)
    run(after, y)
    for a, b in zip(x, y):
        np.testing.assert_array_equal(a, b)


def tiled(body_fn, kind=ForKind.VECTORIZED, lanes=8, dtype="float32"):
    """for i, for jo, <kind> for ji: body_fn(A, B, C, i, jo*lanes + ji) over flat N x N buffers."""
    A, B, C = (decl_buffer((N, N), dtype, name) for name in "ABC")
    i, jo, ji = Var("i"), Var("jo"), Var("ji")
    inner = loop(ji, lanes, body_fn(A, B, C, i, jo * lanes + ji), kind)
    return PrimFunc("f", (A, B, C), loop(i, N, loop(jo, N // lanes, inner)))


def vectorized(func):
    return func.with_body(vectorize_loops(func.body))


# ---------------------------------------------------------------- vectorize

def test_vector_add_becomes_stride_one_ramps(rng):
    f = tiled(lambda A, B, C, i, j: store(C, load(A, i * N + j) * 2.0 + load(B, i * N + j), i * N + j))
    g = vectorized(f)
    text = str(g)
    assert "ramp(" in text and "vectorized" not in text
    (st,) = nodes(g.body, BufferStore)
    assert isinstance(st.indices[0], Ramp) and st.indices[0].stride.value == 1 and st.indices[0].lanes == 8
    assert st.value.dtype == "float32x8"
    assert nodes(g.body, Broadcast)  # the constant 2.0 meets a vector
    same_results(f, g, rng)


@pytest.mark.parametrize("lanes,pieces", [(24, [16, 8]), (21, [16, 4, 1]), (12, [12]), (32, [32])])
def test_wide_odd_lane_counts_run_as_power_of_two_pieces(rng, lanes, pieces):
    """x86 backends turn <24 x float> into slow code: such a loop becomes 16 + 8 lanes."""
    A, C = decl_buffer((lanes * 4,), "float32", "A"), decl_buffer((lanes * 4,), "float32", "C")
    i, j = Var("i"), Var("j")
    body = store(C, load(A, i * lanes + j) * 3.0, i * lanes + j)
    f = PrimFunc("f", (A, C), loop(i, 4, loop(j, lanes, body, ForKind.VECTORIZED)))
    g = vectorized(f)
    widths = [st.indices[0].lanes if isinstance(st.indices[0], Ramp) else 1 for st in nodes(g.body, BufferStore)]
    assert widths == pieces
    same_results(f, g, rng)


def test_loop_invariant_scalar_is_broadcast_and_strided_access_gathers(rng):
    def body(A, B, C, i, j):
        return store(C, load(A, j * N + i) + load(B, i * N), i * N + j)  # column of A: stride N
    g = vectorized(tiled(body))
    (st,) = nodes(g.body, BufferStore)
    a_load = [x for x in nodes(st.value, BufferLoad) if x.buffer.name == "A"][0]
    assert isinstance(a_load.indices[0], Ramp) and a_load.indices[0].stride.value == N
    assert any(isinstance(b.value, BufferLoad) for b in nodes(st.value, Broadcast))
    same_results(tiled(body), g, rng)


def test_comparisons_make_bool_lanes(rng):
    def body(A, B, C, i, j):
        x = load(A, i * N + j)
        return store(C, Select(x > load(B, i * N + j), x, Call("float32", "exp", (x,))), i * N + j)
    g = vectorized(tiled(body))
    (sel,) = nodes(g.body, Select)
    assert sel.condition.dtype == "boolx8" and sel.dtype == "float32x8"
    same_results(tiled(body), g, rng)


def test_floordiv_floormod_of_the_lane_fold_away(rng):
    # C[i*N + j] = A[i*N + (j // 8) * 8 + j % 8] with j = jo*8 + ji: folds to ramps and broadcasts
    def body(A, B, C, i, j):
        return store(C, load(A, i * N + floordiv(j, 8) * 8 + floormod(j, 8)) + load(B, floordiv(j, 8)),
                     i * N + j)
    g = vectorized(tiled(body))
    assert len(loops(g.body)) == 2
    assert "floordiv(ramp" not in str(g) and "floormod(ramp" not in str(g)
    assert "broadcast(B[jo], 8)" in str(g)  # one element for all lanes: a scalar load, broadcast
    same_results(tiled(body), g, rng)


def test_lanes_inside_a_wider_block_fold_away(rng):
    # a blocked-layout copy: j = jo*8 + ji read as (j // 16, j % 16); the base jo*8 is a multiple of
    # 8, 8 divides 16 and the 8 lanes never cross a multiple of 16, so both fold (no gather)
    def body(A, B, C, i, j):
        return store(C, load(A, i * N + floordiv(j, 16) * 16 + floormod(j, 16)), i * N + j)
    g = vectorized(tiled(body))
    assert len(loops(g.body)) == 2
    assert "floordiv(ramp" not in str(g) and "floormod(ramp" not in str(g)
    same_results(tiled(body), g, rng)


def test_lanes_that_may_cross_a_block_stay_serial(rng):
    # base jo*8 + 4: the 8 lanes straddle a multiple of 16 for odd jo, so no fold is valid
    def body(A, B, C, i, j):
        return store(C, load(A, i * N + floordiv(j + 4, 16)), i * N + j)
    g = vectorized(tiled(body))
    assert len(loops(g.body)) == 3  # the lane loop stays a loop
    same_results(tiled(body), g, rng)


def test_scalar_condition_branch_and_let_vectorize(rng):
    def body(A, B, C, i, j):
        x = Var("x", "float32")
        return IfThenElse(i < N // 2, LetStmt(x, load(A, i * N + j), store(C, x * x, i * N + j)),
                          store(C, load(B, i * N + j), i * N + j))
    g = vectorized(tiled(body))
    assert all(loop.kind is ForKind.SERIAL for loop in loops(g.body)) and len(loops(g.body)) == 2
    assert nodes(g.body, LetStmt)[0].var.dtype == "float32x8"
    same_results(tiled(body), g, rng)


def test_if_then_else_with_invariant_condition_vectorizes(rng):
    def body(A, B, C, i, j):
        return store(C, if_then_else(i > 3, load(A, i * N + j), const(1.0)), i * N + j)
    g = vectorized(tiled(body))
    assert len(loops(g.body)) == 2
    same_results(tiled(body), g, rng)


_SERIAL_CASES = {
    "lane-dependent if": lambda A, B, C, i, j: IfThenElse(
        floormod(j, 2) == 0, store(C, load(A, i * N + j), i * N + j)),
    "lane-dependent if_then_else": lambda A, B, C, i, j: store(
        C, if_then_else(j > 5, load(A, i * N + j), const(0.0)), i * N + j),
    "reduction into a scalar": lambda A, B, C, i, j: store(C, load(C, i * N) + load(A, i * N + j), i * N),
    "reduction over a folded floordiv": lambda A, B, C, i, j: store(
        C, load(C, i * N + floordiv(j, 8)) + load(A, i * N + j), i * N + floordiv(j, 8)),
    "floordiv that does not fold": lambda A, B, C, i, j: store(C, load(A, floordiv(j, 3)), i * N + j),
    # lane 0 writes the element lanes 1..7 read: serially they see the new value
    "cross-lane dependence": lambda A, B, C, i, j: store(
        C, load(C, i * N + floordiv(j, 8) * 8) + 1.0, i * N + j),
    "inner loop": lambda A, B, C, i, j: loop(Var("k"), 2, store(C, load(A, i * N + j), i * N + j)),
    "allocate": lambda A, B, C, i, j: _via_temp(A, C, i * N + j),
}


def _via_temp(A, C, idx):
    t = decl_buffer((1,), "float32", "t", scope="local")
    return Allocate(t, seq(store(t, load(A, idx), ZERO), store(C, load(t, ZERO), idx)))


@pytest.mark.parametrize("case", sorted(_SERIAL_CASES))
def test_unvectorizable_loops_come_back_serial_and_correct(rng, case):
    f = tiled(_SERIAL_CASES[case])
    g = vectorized(f)
    kinds = [x.kind for x in loops(g.body)]
    assert ForKind.VECTORIZED not in kinds and len(kinds) >= 3
    assert "ramp(" not in str(g)
    same_results(f, g, rng)


def test_symbolic_and_too_long_extents_stay_serial(rng):
    n = SizeVar("n")
    A, C = decl_buffer((n,), "float32", "A"), decl_buffer((n,), "float32", "C")
    i = Var("i")
    f = PrimFunc("f", (A, C), loop(i, n, store(C, load(A, i), i), ForKind.VECTORIZED), (n,))
    assert vectorized(f).body.kind is ForKind.SERIAL
    g = tiled(lambda A, B, C, i, j: store(C, load(A, i * N + j), i * N + j), lanes=N)
    long = tiled(lambda A, B, C, i, j: store(C, load(A, i), i * N + j), lanes=N)
    assert loops(vectorized(g).body)[-1].kind is not ForKind.VECTORIZED
    assert len(loops(vectorized(g).body)) == 2  # 64 lanes is still allowed
    assert loops(vectorized(long).body)[0].kind is ForKind.SERIAL
    A2, C2 = decl_buffer((128,), "float32", "A"), decl_buffer((128,), "float32", "C")
    over = loop(i, 128, store(C2, load(A2, i), i), ForKind.VECTORIZED)
    assert vectorize_loops(over).kind is ForKind.SERIAL


def test_single_lane_loop_is_substituted(rng):
    f = tiled(lambda A, B, C, i, j: store(C, load(A, i * N + j), i * N + j), lanes=1)
    g = vectorized(f)
    assert len(loops(g.body)) == 2 and "ramp(" not in str(g)
    same_results(f, g, rng)


@pytest.mark.parametrize("dtype", ["int32", "int8", "float16"])
def test_vectorized_integer_and_half_arithmetic_is_exact(rng, dtype):
    def body(A, B, C, i, j):
        a, b = load(A, i * N + j), load(B, i * N + j)
        return store(C, a * b - a + b * b, i * N + j)
    f = tiled(body, dtype=dtype)
    same_results(f, vectorized(f), rng, ints=dtype != "float16")


# ---------------------------------------------------------------- unroll

def test_unrolled_loop_becomes_copies(rng):
    f = tiled(lambda A, B, C, i, j: store(C, load(A, i * N + j) + load(B, i * N + j), i * N + j),
              kind=ForKind.UNROLLED, lanes=4)
    g = f.with_body(unroll_loops(f.body))
    assert len(loops(g.body)) == 2
    inner = loops(g.body)[1].body
    assert len(nodes(inner, BufferStore)) == 4 and "unrolled" not in str(g)
    same_results(f, g, rng)


def test_nested_unrolled_loops_get_fresh_vars_and_buffers(rng):
    A, C = decl_buffer((6, 4), "float32", "A"), decl_buffer((6, 4), "float32", "C")
    i, j, k = Var("i"), Var("j"), Var("k")
    t = decl_buffer((1,), "float32", "t", scope="local")
    body = Allocate(t, seq(BufferStore(t, const(0.0), (ZERO,)),
                           loop(k, 4, BufferStore(t, BufferLoad(t, (ZERO,)) + BufferLoad(A, (i, k)), (ZERO,))),
                           BufferStore(C, BufferLoad(t, (ZERO,)) * BufferLoad(A, (i, j)), (i, j))))
    f = PrimFunc("f", (A, C), loop(i, 6, loop(j, 4, body, ForKind.UNROLLED)))
    g = f.with_body(unroll_loops(f.body))
    inner_loops = loops(g.body)[1:]
    assert len(inner_loops) == 4 and len({id(x.loop_var) for x in inner_loops}) == 4
    allocs = nodes(g.body, Allocate)
    assert len({id(a.buffer) for a in allocs}) == 4 and len({id(a.buffer.data) for a in allocs}) == 4
    same_results(f, g, rng)


def test_unrolled_copies_keep_only_the_table_entry_their_index_selects(rng):
    """select(j == 0, a, select(j == 1, b, c)) in a loop over j unrolled: each copy holds one entry."""
    A, C = decl_buffer((5, 3), "float32", "A"), decl_buffer((5, 3), "float32", "C")
    i, j = Var("i"), Var("j")
    a, b, c = (BufferLoad(A, (i, const(k))) for k in range(3))
    table = Select(j == 0, a + b, Select(j == 1, a - c, b * c))
    f = PrimFunc("f", (A, C), loop(i, 5, loop(j, 3, BufferStore(C, table, (i, j)), ForKind.UNROLLED)))
    g = f.with_body(unroll_loops(f.body))
    assert not nodes(g.body, Select) and len(nodes(g.body, BufferLoad)) == 6
    same_results(f, g, rng)


def test_doubly_unrolled_and_auto_unroll(rng):
    A, C = decl_buffer((2, 3), "int32", "A"), decl_buffer((2, 3), "int32", "C")
    i, j = Var("i"), Var("j")
    st = BufferStore(C, BufferLoad(A, (i, j)) * 7, (i, j))
    f = PrimFunc("f", (A, C), loop(i, 2, loop(j, 3, st, ForKind.UNROLLED), ForKind.UNROLLED))
    g = f.with_body(unroll_loops(f.body))
    assert not loops(g.body) and len(nodes(g.body, BufferStore)) == 6
    same_results(f, g, rng, ints=True)
    serial = PrimFunc("s", (A, C), loop(i, 2, loop(j, 3, st)))
    auto = unroll_loops(serial.body, auto_max_extent=3)
    assert len(loops(auto)) == 1 and len(nodes(auto, BufferStore)) == 3  # 2 * 3 steps > 3
    assert len(loops(unroll_loops(serial.body))) == 2
    assert not loops(unroll_loops(serial.body, auto_max_extent=6))
    same_results(serial, serial.with_body(auto), rng, ints=True)


def test_unroll_keeps_symbolic_and_huge_loops_serial():
    n = SizeVar("n")
    A = decl_buffer((n,), "float32", "A")
    i = Var("i")
    sym = unroll_loops(loop(i, n, store(A, const(1.0), i), ForKind.UNROLLED))
    huge = unroll_loops(loop(i, 5000, store(A, const(1.0), i), ForKind.UNROLLED))
    assert sym.kind is ForKind.SERIAL and huge.kind is ForKind.SERIAL


def test_vectorize_then_unroll_pipeline(rng):
    A, B, C = (decl_buffer((N * N,), "float32", name) for name in "ABC")
    i, u, v = Var("i"), Var("u"), Var("v")
    idx = i * N + u * 8 + v
    body = loop(u, 8, loop(v, 8, store(C, load(A, idx) - load(B, idx), idx), ForKind.VECTORIZED),
                ForKind.UNROLLED)
    f = PrimFunc("f", (A, B, C), loop(i, N, body))
    g = f.with_body(unroll_loops(vectorize_loops(f.body)))
    assert len(loops(g.body)) == 1 and len(nodes(g.body, BufferStore)) == 8
    assert all(isinstance(s.indices[0], Ramp) for s in nodes(g.body, BufferStore))
    same_results(f, g, rng)
