"""dense, matmul and batch_matmul against numpy: default schedules, template configs, errors."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import OperatorError
from tecomp.schedules import dense as D
from tecomp.schedules import elementwise as E
from tecomp.target import Target


def _rand(rng, shape):
    return rng.uniform(-1, 1, size=shape).astype("float32")


@pytest.mark.parametrize("m,n,k", [(4, 16, 8), (7, 13, 5), (1, 40, 9), (9, 3, 4)])
@pytest.mark.parametrize("transpose_a,transpose_b", [(False, True), (True, False)])
def test_dense(check, rng, m, n, k, transpose_a, transpose_b):
    a_shape, w_shape = ((k, m) if transpose_a else (m, k)), ((n, k) if transpose_b else (k, n))
    A, W, B = te.placeholder(a_shape, name="A"), te.placeholder(w_shape, name="W"), te.placeholder((n,), name="b")
    out = D.dense(A, W, B, transpose_a, transpose_b)
    a, w, b = _rand(rng, a_shape), _rand(rng, w_shape), _rand(rng, (n,))
    expected = (a.T if transpose_a else a) @ (w.T if transpose_b else w) + b
    check(D.schedule_dense(out), [A, W, B, out], [a, w, b], expected, rtol=1e-5, atol=1e-5)


def test_matmul(check, rng):
    A, B = te.placeholder((6, 11), name="A"), te.placeholder((11, 33), name="B")
    out = D.matmul(A, B)
    a, b = _rand(rng, (6, 11)), _rand(rng, (11, 33))
    check(D.schedule_dense(out), [A, B, out], [a, b], a @ b, atol=1e-5)


@pytest.mark.parametrize("a_shape,b_shape,transpose_b", [
    ((2, 5, 7), (2, 7, 16), False), ((3, 4, 6), (1, 9, 6), True), ((1, 3, 5), (4, 5, 10), False),
])
def test_batch_matmul(check, rng, a_shape, b_shape, transpose_b):
    A, B = te.placeholder(a_shape, name="A"), te.placeholder(b_shape, name="B")
    out = D.batch_matmul(A, B, transpose_b)
    a, b = _rand(rng, a_shape), _rand(rng, b_shape)
    expected = a @ (b.transpose(0, 2, 1) if transpose_b else b)
    check(D.schedule_batch_matmul(out), [A, B, out], [a, b], expected, atol=1e-5)


@pytest.mark.parametrize("a_shape,b_shape,transpose_b", [
    ((3, 197, 64), (3, 64, 197), False), ((2, 13, 7), (2, 13, 7), True), ((1, 50, 11), (1, 11, 50), False),
    ((2, 7, 197), (2, 197, 24), False),
])
def test_batch_matmul_odd_shapes_keep_full_register_tiles(check, rng, a_shape, b_shape, transpose_b):
    """Token counts like 197 and 50 divide no row tile or panel: the last tile is computed in full
    (A's rows clamped, B's panel padded), so the accumulator loops have constant extents and
    vectorize; only the store to the output is guarded."""
    A, B = te.placeholder(a_shape, name="A"), te.placeholder(b_shape, name="B")
    out = D.batch_matmul(A, B, transpose_b)
    s = D.schedule_batch_matmul(out)
    text = str(tecomp.lower(s, [A, B, out], simple_mode=True))
    accumulate = [line for line in text.splitlines() if "batch_matmul.local[" in line and "= (" in line]
    assert accumulate and all("ramp(" in line for line in accumulate), text
    assert "for (j.c" not in text and "for (i.c" not in text, text  # unrolled and vectorized, not looped
    a, b = _rand(rng, a_shape), _rand(rng, b_shape)
    expected = a @ (b.transpose(0, 2, 1) if transpose_b else b)
    check(s, [A, B, out], [a, b], expected, atol=1e-4)


def test_padded_last_panel_alone_stores_per_column(check, rng):
    """Attention scores over 197 tokens: 197 columns are six full 32-column panels and a padded
    seventh. With many row blocks the panels run serially inside each one, so loop partitioning
    peels the seventh: only its stores are guarded per column, the others store whole vectors."""
    A, B = te.placeholder((3, 197, 64), name="A"), te.placeholder((3, 64, 197), name="B")
    out = D.batch_matmul(A, B)
    s = D.schedule_batch_matmul(out)
    text = str(tecomp.lower(s, [A, B, out], simple_mode=True))
    stores = [line.strip() for line in text.splitlines() if line.strip().startswith("batch_matmul[")]
    assert len(stores) == 2 and "ramp(" in stores[0] and "ramp(" not in stores[1], stores
    assert text.count("< 5)") == 1  # the column guard: the tail panel's 5 columns
    a, b = _rand(rng, (3, 197, 64)), _rand(rng, (3, 64, 197))
    check(s, [A, B, out], [a, b], a @ b, atol=1e-4)


AVX512, AVX2 = Target("llvm -mcpu=skylake-avx512"), Target("llvm -mcpu=haswell")


@pytest.mark.parametrize("target,nr,m,expected", [
    *((AVX512, 32, m, e) for m, e in [(1, 1), (2, 2), (3, 3), (8, 8), (12, 6), (13, 8), (50, 8), (197, 8)]),
    # 16 registers of 8 lanes: at most 6 rows of two-vector panels (12 accumulators)
    *((AVX2, 16, m, e) for m, e in [(1, 1), (3, 3), (8, 4), (12, 6), (13, 4), (50, 6), (197, 6)]),
])
def test_row_tile_prefers_full_register_tiles_over_divisors(target, nr, m, expected):
    with target:
        assert D.row_tile(m, nr) == expected


@pytest.mark.parametrize("target,m,n,panel,rows", [
    (AVX512, 197, 768, 32, 8), (AVX512, 1, 1000, 32, 1),
    (AVX2, 197, 768, 16, 6), (AVX2, 50, 200, 16, 6),
    (AVX2, 1, 1000, 32, 1),  # a GEMV row: four vectors of accumulators in flight
    (AVX2, 7, 40, 8, 4),     # 40 = 5 x 8 columns: no padded panel; 7 rows as 4 + 3
])
def test_register_tiles_fit_the_target_vector_registers(target, m, n, panel, rows):
    """The fallback's panel and row tile keep the accumulators within the registers of the target's
    vector unit (AVX-512: 32 of 16 lanes; AVX2: 16 of 8), so no tile spills on either."""
    with target:
        cfg = autotvm.task.dispatched_config(D.DENSE_TEMPLATE, (m, n, 64, "float32", False))
        assert (cfg["tile_n"].val, D.row_tile(m, cfg["tile_n"].val)) == (panel, rows)
        assert rows * -(-panel // (16 if target is AVX512 else 8)) <= (28 if target is AVX512 else 12)


@pytest.mark.parametrize("index", [0, 7, 29, 47])
def test_dense_template_configs(check, rng, index):
    task = autotvm.task.create("schedules/dense", (8, 24, 12, "float32"), target="llvm")
    assert len(task.config_space) == 64  # tile_n 2 x tile_m 4 x tile_k 2 x unroll 2 x vectorize 2
    config = task.config_space.get(index)
    s, tensors = task.instantiate(config)
    a, w = _rand(rng, (8, 12)), _rand(rng, (24, 12))
    nr = config["tile_n"].val
    packed = np.stack([np.pad(w, ((0, -24 % nr), (0, 0)))[p * nr:(p + 1) * nr].T for p in range(-(-24 // nr))])
    check(s, tensors, [a, packed], a @ w.T, atol=1e-5)


def test_dense_packed_with_fused_epilogue_and_tuned_panel(check, rng):
    """A constant weight packed by its own kernel; bias + relu fused after the product; the panel
    width and row tile come from the dispatched config."""
    task = autotvm.task.create("schedules/dense", (3, 40, 9, "float32", False), target="llvm")
    wanted = next(task.config_space.get(i) for i in range(len(task.config_space))
                  if task.config_space.get(i)["tile_n"].val == 16)

    class Pick(autotvm.DispatchContext):
        def lookup(self, t):
            return wanted if t.key == task.key else None

    A, W, B = te.placeholder((3, 9), name="A"), te.placeholder((40, 9), name="W"), te.placeholder((40,), name="b")
    with Pick():
        assert D.dense_panel_width(3, 40, 9) == 16
        packed = D.pack_dense_weight(W, D.dense_panel_width(3, 40, 9))
        out = E.relu(D.dense_packed(A, packed, 40, B))
        s = D.schedule_dense(out)
    a, w, b = _rand(rng, (3, 9)), _rand(rng, (40, 9)), _rand(rng, (40,))
    check(s, [A, W, B, out], [a, w, b], np.maximum(a @ w.T + b, 0), atol=1e-5)


@pytest.mark.parametrize("index", [0, 13, 46])
def test_batch_matmul_template_configs(check, rng, index):
    task = autotvm.task.create("schedules/batch_matmul", ((2, 4, 8), (2, 8, 16)), target="llvm")
    s, tensors = task.instantiate(task.config_space.get(index % len(task.config_space)))
    a, b = _rand(rng, (2, 4, 8)), _rand(rng, (2, 8, 16))
    check(s, tensors, [a, b], a @ b, atol=1e-5)


@pytest.mark.parametrize("make,pattern", [
    (lambda: D.dense(te.placeholder((3, 4)), te.placeholder((5, 6))), "dense: argument weight: reduction"),
    (lambda: D.dense(te.placeholder((3, 4, 1)), te.placeholder((5, 4))), "dense: argument data: expected rank 2"),
    (lambda: D.dense(te.placeholder((3, 4)), te.placeholder((5, 4)), te.placeholder((4,))),
     "dense: argument bias"),
    (lambda: D.dense(te.placeholder((3, 4), "int32"), te.placeholder((5, 4))), "dense: argument data: dtype"),
    (lambda: D.matmul(te.placeholder((3, 4)), te.placeholder((5, 4))), "matmul: argument b: reduction"),
    (lambda: D.batch_matmul(te.placeholder((2, 3, 4)), te.placeholder((3, 4, 5))),
     "batch_matmul: argument b: batch"),
    (lambda: D.batch_matmul(te.placeholder((2, 3, 4)), te.placeholder((2, 5, 5))), "batch_matmul: argument b"),
    (lambda: D.dense("x", te.placeholder((5, 4))), "dense: argument data: expected a tensor"),
    (lambda: D.dense_packed(te.placeholder((3, 4)), te.placeholder((2, 4, 8)), 17), "dense: argument units"),
    (lambda: D.dense_packed(te.placeholder((3, 4)), te.placeholder((2, 5, 8)), 16),
     "dense: argument packed_weight: reduction"),
    (lambda: D.pack_dense_weight(te.placeholder((3, 4)), 0), "pack_dense_weight: argument panel"),
])
def test_dense_errors(make, pattern):
    with pytest.raises(OperatorError, match=pattern):
        make()
