"""The reference interpreter runs hand-built PrimFuncs exactly as compiled code would."""

import math

import numpy as np
import pytest

from tecomp.error import ArgumentError, TecompError
from tecomp.tir import (Allocate, Broadcast, BufferLoad, BufferStore, Call, Cast, Evaluate, For,
                        ForKind, IfThenElse, Let, LetStmt, PrimFunc, Ramp, Select, SizeVar,
                        StringImm, Var, const, decl_buffer, floordiv, floormod, if_then_else, seq)
from tecomp.tir.interpreter import run

ZERO = const(0)


def loop(var, extent, body, kind=ForKind.SERIAL, tag=""):
    return For(var, ZERO, extent if not isinstance(extent, int) else const(extent), kind, body,
               thread_tag=tag)


def load(buf, *idx):
    return BufferLoad(buf, tuple(const(i) if isinstance(i, int) else i for i in idx))


def store(buf, value, *idx):
    return BufferStore(buf, value, tuple(const(i) if isinstance(i, int) else i for i in idx))


def sync():
    return Evaluate(Call("handle", "tvm_storage_sync", (StringImm("shared"),)))


def elementwise(fn, dtype_in, dtype_out, n=16, nin=2):
    """out[i] = fn(in0[i], in1[i], ...) over flat 1-D buffers."""
    ins = [decl_buffer((n,), dtype_in, f"I{k}") for k in range(nin)]
    out = decl_buffer((n,), dtype_out, "O")
    i = Var("i")
    body = loop(i, n, store(out, fn(*(load(b, i) for b in ins)), i))
    return PrimFunc("ew", tuple(ins) + (out,), body)


# ---------------------------------------------------------------- basic forms

def test_vector_add_flat_and_multidim(rng):
    A, B, C = (decl_buffer((4, 8), "float32", name) for name in "ABC")
    i, j = Var("i"), Var("j")
    multi = loop(i, 4, loop(j, 8, store(C, load(A, i, j) + load(B, i, j), i, j)))
    flat = loop(i, 4, loop(j, 8, store(C, load(A, i * 8 + j) + load(B, i * 8 + j), i * 8 + j)))
    a, b = rng.standard_normal((4, 8)).astype("float32"), rng.standard_normal((4, 8)).astype("float32")
    for body in (multi, flat):
        c = np.zeros((4, 8), "float32")
        run(PrimFunc("add", (A, B, C), body), [a, b, c])
        np.testing.assert_array_equal(c, a + b)


def _matmul(n, flat):
    A, B, C = (decl_buffer((n, n), "float32", name) for name in "ABC")
    acc = decl_buffer((1,), "float32", "acc", scope="local")
    i, j, k = Var("i"), Var("j"), Var("k")
    a_ik, b_kj = (load(A, i * n + k), load(B, k * n + j)) if flat else (load(A, i, k), load(B, k, j))
    c_ij = (i * n + j,) if flat else (i, j)
    body = loop(i, n, loop(j, n, Allocate(acc, seq(
        store(acc, const(0.0), 0),
        loop(k, n, store(acc, load(acc, 0) + a_ik * b_kj, 0)),
        store(C, load(acc, 0), *c_ij)))))
    return PrimFunc("matmul", (A, B, C), body)


@pytest.mark.parametrize("flat", [True, False])
def test_matmul_with_allocated_accumulator(rng, flat):
    n = 16
    a, b = rng.standard_normal((n, n)).astype("float32"), rng.standard_normal((n, n)).astype("float32")
    c = np.zeros((n, n), "float32")
    run(_matmul(n, flat), [a, b, c])
    expected = np.zeros((n, n), "float32")
    for k in range(n):  # the same float32 accumulation order as the loop nest
        expected += a[:, k:k + 1] * b[k:k + 1, :]
    np.testing.assert_array_equal(c, expected)


def test_uninitialised_allocation_reads_nan():
    O = decl_buffer((4,), "float32", "O")
    tmp = decl_buffer((4,), "float32", "tmp")
    i = Var("i")
    body = Allocate(tmp, loop(i, 4, store(O, load(tmp, i), i)))
    o = np.zeros(4, "float32")
    run(PrimFunc("f", (O,), body), [o])
    assert np.isnan(o).all()


def test_let_and_letstmt():
    A, O = decl_buffer((8,), "int32", "A"), decl_buffer((8,), "int32", "O")
    i, x, y = Var("i"), Var("x"), Var("y")
    body = loop(i, 8, LetStmt(x, load(A, i) * 3, store(O, Let(y, x + 1, y * y), i)))
    a, o = np.arange(8, dtype="int32"), np.zeros(8, "int32")
    run(PrimFunc("f", (A, O), body), [a, o])
    np.testing.assert_array_equal(o, (a * 3 + 1) ** 2)


def test_if_then_else_stmt_and_bool_buffer():
    A, M, O = decl_buffer((8,), "float32", "A"), decl_buffer((8,), "bool", "M"), decl_buffer((8,), "float32", "O")
    i = Var("i")
    body = loop(i, 8, seq(store(M, load(A, i) > 0.0, i),
                          IfThenElse(load(M, i), store(O, load(A, i), i), store(O, -load(A, i), i))))
    a = np.linspace(-2, 2, 8).astype("float32")
    m, o = np.zeros(8, bool), np.zeros(8, "float32")
    run(PrimFunc("f", (A, M, O), body), [a, m, o])
    np.testing.assert_array_equal(m, a > 0)
    np.testing.assert_array_equal(o, np.abs(a))


# ---------------------------------------------------------------- exact typed arithmetic

def test_floordiv_floormod_on_negatives():
    f = elementwise(lambda a, b: floordiv(a, b), "int32", "int32")
    g = elementwise(lambda a, b: floormod(a, b), "int32", "int32")
    a = np.array([-7, -7, 7, 7, -1, 0, -8, 8, -9, 9, 5, -5, 1, -1, 100, -100], "int32")
    b = np.array([2, -2, 2, -2, 3, 3, 4, -4, 4, 4, -3, 3, -7, 7, 9, -9], "int32")
    for func, want in ((f, np.floor_divide(a, b)), (g, np.mod(a, b))):
        o = np.zeros(16, "int32")
        run(func, [a, b, o])
        np.testing.assert_array_equal(o, want)


def test_integer_division_by_zero_raises():
    f = elementwise(lambda a, b: floordiv(a, b), "int32", "int32", n=2)
    with pytest.raises(TecompError, match="division by zero"):
        run(f, [np.array([1, 2], "int32"), np.array([1, 0], "int32"), np.zeros(2, "int32")])


@pytest.mark.parametrize("dtype", ["int32", "int8", "uint8", "int64"])
def test_integer_overflow_wraps(rng, dtype):
    info = np.iinfo(dtype)
    f = elementwise(lambda a, b: a * b + a - b, dtype, dtype, n=64)
    a = rng.integers(info.min, info.max, 64, dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, 64, dtype=dtype, endpoint=True)
    o = np.zeros(64, dtype)
    run(f, [a, b, o])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(o, a * b + a - b)


def test_float16_rounds_every_operation(rng):
    f = elementwise(lambda a, b: (a * b + a) / b - a * a, "float16", "float16", n=64)
    a = rng.uniform(-4, 4, 64).astype("float16")
    b = rng.uniform(0.5, 4, 64).astype("float16")
    o = np.zeros(64, "float16")
    run(f, [a, b, o])
    np.testing.assert_array_equal(o, (a * b + a) / b - a * a)


def test_float32_is_not_computed_in_double():
    f = elementwise(lambda a, b: a + b - a, "float32", "float32", n=1)
    o = np.zeros(1, "float32")
    run(f, [np.array([1e8], "float32"), np.array([1.0], "float32"), o])
    assert o[0] == 0.0  # in float64 it would be 1.0


@pytest.mark.parametrize("src,dst,values,want", [
    ("float32", "int32", [-2.7, -0.5, 0.5, 2.7, 1e9], [-2, 0, 0, 2, 1000000000]),
    ("int32", "int8", [127, 128, 255, -129, 300], [127, -128, -1, 127, 44]),
    ("int32", "uint8", [-1, 256, 257, 3, 0], [255, 0, 1, 3, 0]),
    ("float32", "bool", [0.0, -0.0, 0.1, -3.0, 1.0], [False, False, True, True, True]),
    ("bool", "int32", [True, False, True, False, True], [1, 0, 1, 0, 1]),
    ("int32", "float16", [1, 2049, 2051, -7, 65504], [1, 2048, 2052, -7, 65504]),
    ("float64", "float32", [0.1, 1 / 3, 1e-50, 3.4e38, -2.5], None),
])
def test_casts_follow_c(src, dst, values, want):
    f = elementwise(lambda a: Cast(dst, a), src, dst, n=5, nin=1)
    o = np.zeros(5, dst)
    run(f, [np.array(values, src), o])
    expected = np.array(values, src).astype(dst) if want is None else np.array(want, dst)
    np.testing.assert_array_equal(o, expected)


def test_undefined_float_to_int_cast_raises():
    f = elementwise(lambda a: Cast("int32", a), "float32", "int32", n=1, nin=1)
    for bad in (np.nan, np.inf, 3e9):
        with pytest.raises(TecompError, match="undefined"):
            run(f, [np.array([bad], "float32"), np.zeros(1, "int32")])


def test_and_or_not_select_comparisons():
    f = elementwise(lambda a, b: Select(((a < b) & ~(a == 3)) | (b >= 7), a, b), "int32", "int32", n=8)
    a = np.array([1, 3, 5, 9, 2, 3, 0, 8], "int32")
    b = np.array([2, 4, 4, 7, 1, 9, 0, 9], "int32")
    o = np.zeros(8, "int32")
    run(f, [a, b, o])
    np.testing.assert_array_equal(o, np.where(((a < b) & (a != 3)) | (b >= 7), a, b))


_MATH_REF = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh, "fabs": np.abs,
    "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "round": np.rint, "exp2": np.exp2,
    "log2": np.log2, "log10": np.log10, "sin": np.sin, "cos": np.cos,
    "rsqrt": lambda x: 1 / np.sqrt(x), "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "erf": np.vectorize(math.erf),
}


@pytest.mark.parametrize("name", sorted(_MATH_REF))
@pytest.mark.parametrize("dtype", ["float32", "float16", "float64"])
def test_math_intrinsics_are_float64_rounded_once(name, dtype):
    f = elementwise(lambda a: Call(dtype, name, (a,)), dtype, dtype, n=8, nin=1)
    a = np.array([0.25, 0.5, 1.5, 2.5, 3.0, 0.7, 1e-3, 7.25], dtype)
    o = np.zeros(8, dtype)
    run(f, [a, o])
    np.testing.assert_array_equal(o, _MATH_REF[name](a.astype("float64")).astype(dtype))


def test_pow_and_infinities():
    f = elementwise(lambda a, b: Call("float32", "pow", (a, b)), "float32", "float32", n=3)
    g = elementwise(lambda a: Call("float32", "log", (a,)), "float32", "float32", n=3, nin=1)
    o = np.zeros(3, "float32")
    run(f, [np.array([2, 10, 9], "float32"), np.array([10, 50, 0.5], "float32"), o])
    np.testing.assert_array_equal(o, [1024, np.inf, 3])
    run(g, [np.array([0, -1, 1], "float32"), o])
    assert o[0] == -np.inf and np.isnan(o[1]) and o[2] == 0


# ---------------------------------------------------------------- bounds

def test_if_then_else_guards_an_out_of_bounds_load():
    n = 6
    A, O = decl_buffer((n,), "float32", "A"), decl_buffer((n + 2,), "float32", "O")
    i = Var("i")
    inside = (i >= 1) & (i < n + 1)
    padded = loop(i, n + 2, store(O, if_then_else(inside, load(A, i - 1), const(0.0)), i))
    a, o = np.arange(1, n + 1, dtype="float32"), np.zeros(n + 2, "float32")
    run(PrimFunc("pad", (A, O), padded), [a, o])
    np.testing.assert_array_equal(o, np.pad(a, 1))
    selected = loop(i, n + 2, store(O, Select(inside, load(A, i - 1), const(0.0)), i))
    with pytest.raises(TecompError, match=r"load of buffer A: index -1"):
        run(PrimFunc("pad", (A, O), selected), [a, o])


def test_out_of_bounds_store_raises_naming_buffer_and_index():
    O = decl_buffer((4,), "int32", "Out")
    i = Var("i")
    with pytest.raises(TecompError, match=r"store of buffer Out: index 4"):
        run(PrimFunc("f", (O,), loop(i, 5, store(O, i, i))), [np.zeros(4, "int32")])


def test_multidim_access_is_checked_per_dimension():
    A, O = decl_buffer((4, 4), "float32", "A"), decl_buffer((4, 4), "float32", "O")
    i, j = Var("i"), Var("j")
    body = loop(i, 4, loop(j, 4, store(O, load(A, i, j + 1), i, j)))  # j+1 == 4 stays inside memory
    with pytest.raises(TecompError, match=r"buffer A: index \(0, 4\)"):
        run(PrimFunc("f", (A, O), body), [np.zeros((4, 4), "float32"), np.zeros((4, 4), "float32")])


def test_unbound_variable_is_reported():
    O, x = decl_buffer((1,), "int32", "O"), Var("x")
    with pytest.raises(TecompError, match="variable x"):
        run(PrimFunc("f", (O,), store(O, x, 0)), [np.zeros(1, "int32")])


# ---------------------------------------------------------------- arguments and size vars

def _symbolic_add():
    n = SizeVar("n")
    A, B, C = (decl_buffer((n,), "float32", name) for name in "ABC")
    i = Var("i")
    body = loop(i, n, store(C, load(A, i) + load(B, i), i))
    return PrimFunc("add", (A, B, C), body, (n,))


@pytest.mark.parametrize("n", [1, 7, 33])
def test_size_vars_are_bound_from_shapes(rng, n):
    a, b, c = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32"), np.zeros(n, "float32")
    run(_symbolic_add(), [a, b, c])
    np.testing.assert_array_equal(c, a + b)


def test_argument_errors():
    f = _symbolic_add()
    ok = np.zeros(5, "float32")
    with pytest.raises(ArgumentError, match="size variable n is 5"):
        run(f, [ok, ok, np.zeros(6, "float32")])
    with pytest.raises(ArgumentError, match="dtype float32"):
        run(f, [ok, ok, np.zeros(5, "float64")])
    with pytest.raises(ArgumentError, match="takes 3 arrays"):
        run(f, [ok, ok])
    with pytest.raises(ArgumentError, match="C-contiguous"):
        run(f, [ok, ok, np.zeros(10, "float32")[::2]])
    A = decl_buffer((4, 3), "float32", "A")
    with pytest.raises(ArgumentError, match="argument A has shape"):
        run(PrimFunc("g", (A,), Evaluate(ZERO)), [np.zeros((4, 4), "float32")])
    m = SizeVar("m")
    with pytest.raises(ArgumentError, match="size variable m is not determined"):
        run(PrimFunc("h", (A,), Evaluate(ZERO), (m,)), [np.zeros((4, 3), "float32")])


def test_symbolic_multidim_shape():
    n, m = SizeVar("n"), SizeVar("m")
    A, O = decl_buffer((n, m), "int32", "A"), decl_buffer((m, n), "int32", "O")
    i, j = Var("i"), Var("j")
    body = loop(i, n, loop(j, m, store(O, load(A, i, j), j, i)))
    a = np.arange(12, dtype="int32").reshape(3, 4)
    o = np.zeros((4, 3), "int32")
    run(PrimFunc("t", (A, O), body, (n, m)), [a, o])
    np.testing.assert_array_equal(o, a.T)


# ---------------------------------------------------------------- vectors

def test_vector_loads_stores_gather_and_lanewise_ops():
    A, O = decl_buffer((16,), "float32", "A"), decl_buffer((16,), "float32", "O")
    i = Var("i")
    contiguous = Ramp(i * 8, const(1), 8)
    evens = Ramp(i * 8 // 8 * 0, const(2), 8)  # 0, 2, ..., 14: a gather
    x = load(A, contiguous)
    value = Select(x > Broadcast(const(0.0), 8), x * Broadcast(const(2.0), 8), load(A, evens))
    body = loop(i, 2, store(O, value, contiguous))
    assert value.condition.dtype == "boolx8" and x.dtype == "float32x8"
    a, o = np.linspace(-3, 3, 16).astype("float32"), np.zeros(16, "float32")
    run(PrimFunc("v", (A, O), body), [a, o])
    np.testing.assert_array_equal(o, np.where(a > 0, a * 2, np.tile(a[::2], 2)))


def test_reversed_and_computed_vector_indices_gather_and_scatter():
    A, O = decl_buffer((8,), "int32", "A"), decl_buffer((8,), "int32", "O")
    lanes = Ramp(ZERO, const(1), 8)
    squares_mod = floormod(lanes * lanes, Broadcast(const(8), 8))  # 0 1 4 1 0 1 4 1
    body = seq(store(O, load(A, Ramp(const(7), const(-1), 8)), lanes),
               store(O, load(O, lanes) + load(A, squares_mod), Ramp(const(7), const(-1), 8)))
    a, o = np.arange(10, 18, dtype="int32"), np.zeros(8, "int32")
    run(PrimFunc("v", (A, O), body), [a, o])
    np.testing.assert_array_equal(o, (a[::-1] + a[[0, 1, 4, 1, 0, 1, 4, 1]])[::-1])


def test_vector_out_of_bounds_and_int_lanes():
    A, O = decl_buffer((8,), "int32", "A"), decl_buffer((8,), "int32", "O")
    big = Broadcast(const(2**30), 8)
    ok = store(O, load(A, Ramp(ZERO, const(1), 8)) * big + Broadcast(const(1), 8), Ramp(ZERO, const(1), 8))
    a, o = np.arange(8, dtype="int32"), np.zeros(8, "int32")
    run(PrimFunc("v", (A, O), ok), [a, o])
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(o, a * np.int32(2**30) + 1)
    bad = store(O, load(A, Ramp(const(1), const(1), 8)), Ramp(ZERO, const(1), 8))
    with pytest.raises(TecompError, match=r"load of buffer A: index \[1, 2, 3, 4, 5, 6, 7, 8\]"):
        run(PrimFunc("v", (A, O), bad), [a, o])


# ---------------------------------------------------------------- thread blocks

def _tree_sum(blocks, threads, with_sync=True):
    """Each block sums ``threads`` elements by halving in shared memory (needs barriers)."""
    A, O = decl_buffer((blocks * threads,), "float32", "A"), decl_buffer((blocks,), "float32", "O")
    S = decl_buffer((threads,), "float32", "S", scope="shared")
    bx, tx = Var("bx"), Var("tx")
    barrier = [sync()] if with_sync else []
    steps, h = [], threads // 2
    while h:
        steps += [IfThenElse(tx < h, store(S, load(S, tx) + load(S, tx + h), tx))] + barrier
        h //= 2
    body = seq(store(S, load(A, bx * threads + tx), tx), *barrier, *steps,
               IfThenElse(tx == 0, store(O, load(S, 0), bx)))
    kernel = loop(bx, blocks, Allocate(S, loop(tx, threads, body, ForKind.THREAD_BINDING, "threadIdx.x")),
                  ForKind.THREAD_BINDING, "blockIdx.x")
    return PrimFunc("tree_sum", (A, O), kernel)


def test_shared_memory_tree_reduction_needs_barrier_semantics(rng):
    a = rng.integers(-8, 8, 4 * 32).astype("float32")
    o = np.zeros(4, "float32")
    run(_tree_sum(4, 32), [a, o])
    np.testing.assert_array_equal(o, a.reshape(4, 32).sum(axis=1))
    run(_tree_sum(4, 32, with_sync=False), [a, o])  # threads run one after the other: reads NaN
    assert np.isnan(o).all()


def test_nested_thread_loops_form_one_block_with_per_block_shared_memory(rng):
    ty, tx, bx = Var("ty"), Var("tx"), Var("bx")
    A, O = decl_buffer((2, 4, 8), "float32", "A"), decl_buffer((2, 4, 8), "float32", "O")
    S = decl_buffer((32,), "float32", "S", scope="shared")
    # Each thread writes its element, then reads its mirror image written by another thread.
    inner = Allocate(S, seq(store(S, load(A, bx, ty, tx), ty * 8 + tx), sync(),
                            store(O, load(S, 31 - (ty * 8 + tx)), bx, ty, tx)))
    body = loop(bx, 2, loop(ty, 4, loop(tx, 8, inner, ForKind.THREAD_BINDING, "threadIdx.x"),
                            ForKind.THREAD_BINDING, "threadIdx.y"), ForKind.THREAD_BINDING, "blockIdx.x")
    a, o = rng.standard_normal((2, 4, 8)).astype("float32"), np.zeros((2, 4, 8), "float32")
    run(PrimFunc("mirror", (A, O), body), [a, o])
    np.testing.assert_array_equal(o, a.reshape(2, 32)[:, ::-1].reshape(2, 4, 8))


def test_local_memory_is_private_to_each_thread():
    O = decl_buffer((8,), "int32", "O")
    L = decl_buffer((1,), "int32", "L", scope="local")
    tx = Var("tx")
    body = Allocate(L, loop(tx, 8, seq(store(L, tx * 10, 0), sync(), store(O, load(L, 0), tx)),
                            ForKind.THREAD_BINDING, "threadIdx.x"))
    o = np.zeros(8, "int32")
    run(PrimFunc("priv", (O,), body), [o])
    np.testing.assert_array_equal(o, np.arange(8) * 10)


def test_barrier_divergence_is_reported():
    O = decl_buffer((8,), "int32", "O")
    tx = Var("tx")
    body = loop(tx, 8, IfThenElse(tx < 4, seq(sync(), store(O, tx, tx))), ForKind.THREAD_BINDING, "threadIdx.x")
    with pytest.raises(TecompError, match="barrier divergence"):
        run(PrimFunc("div", (O,), body), [np.zeros(8, "int32")])


def test_barrier_inside_a_serial_loop_inside_the_thread_loop(rng):
    """Each step every thread reads its left neighbour, waits, then overwrites its own slot."""
    steps, threads = 5, 16
    A, O = decl_buffer((steps, threads), "float32", "A"), decl_buffer((threads,), "float32", "O")
    S = decl_buffer((threads,), "float32", "S", scope="shared")
    tx, s, left = Var("tx"), Var("s"), Var("left", "float32")
    step = seq(LetStmt(left, load(S, floormod(tx + threads - 1, threads)),
                       seq(sync(), store(S, left + load(A, s, tx), tx))), sync())
    body = Allocate(S, loop(tx, threads, seq(store(S, const(0.0), tx), sync(), loop(s, steps, step),
                                             store(O, load(S, tx), tx)),
                            ForKind.THREAD_BINDING, "threadIdx.x"))
    a, o = rng.standard_normal((steps, threads)).astype("float32"), np.zeros(threads, "float32")
    run(PrimFunc("shift", (A, O), body), [a, o])
    expected = np.zeros(threads, "float32")
    for k in range(steps):
        expected = np.roll(expected, 1) + a[k]
    np.testing.assert_array_equal(o, expected)
