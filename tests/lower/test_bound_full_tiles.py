"""Bound inference computes the last, partial tile of a stage private to its attach loop in full
only where that is safe."""

from __future__ import annotations

import numpy as np

import tecomp
from tecomp import te


def _cached(reads, n: int = 13, factor: int = 4):
    A = te.placeholder((n + 3,), name="A")
    C = te.compute((n,), lambda i: reads(A, i) * 2.0, name="C")
    s = te.create_schedule(C.op)
    CL = s.cache_write(C, "local")
    xo, _ = s[C].split(C.op.axis[0], factor=factor)
    s[CL].compute_at(s[C], xo)
    return s, A, C


def test_partial_tile_computed_in_full_when_reads_stay_in_bounds(check, rng):
    s, A, C = _cached(lambda A, i: A[i])  # A has 3 spare elements: a full tile of 4 reads at most A[15]
    text = str(tecomp.lower(s, [A, C], simple_mode=True))
    assert "for (i.c, 4)" in text, text
    a = rng.uniform(-1, 1, 16).astype("float32")
    check(s, [A, C], [a], a[:13] * 2)


def test_partial_tile_stays_clamped_when_a_full_tile_would_read_past_the_end(check, rng):
    s, A, C = _cached(lambda A, i: A[i + 3])  # a full last tile would read A[16]: out of bounds
    text = str(tecomp.lower(s, [A, C], simple_mode=True))
    assert "C.local[0] = (A[15] * 2.0f)" in text, text  # the peeled last tile computes one element
    a = rng.uniform(-1, 1, 16).astype("float32")
    check(s, [A, C], [a], a[3:] * 2)


def _global_producer(n_a: int):
    A = te.placeholder((n_a,), name="A")
    B = te.compute((13,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((13,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    xo, _ = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    return s, A, C


def test_global_stage_at_a_tile_computes_its_last_tile_in_full_when_safe(check, rng):
    s, A, C = _global_producer(16)  # a product computed at its epilogue's tile (dense + bias)
    text = str(tecomp.lower(s, [A, C], simple_mode=True))
    assert text.count("for (i, 4)") == 2, text  # the peeled last tile too
    a = rng.uniform(-1, 1, 16).astype("float32")
    check(s, [A, C], [a], (a[:13] + 1) * 2)


def test_global_stage_keeps_its_clamped_tile_when_a_full_one_would_read_past_the_end(check, rng):
    s, A, C = _global_producer(13)
    text = str(tecomp.lower(s, [A, C], simple_mode=True))
    assert "B[0] = (A[12] + 1.0f)" in text, text  # the peeled last tile computes one element
    a = rng.uniform(-1, 1, 13).astype("float32")
    check(s, [A, C], [a], (a + 1) * 2)


def test_dense_with_bias_keeps_a_constant_register_tile_on_odd_rows(check, rng):
    from tecomp.schedules import dense as D
    m, k, n = 50, 24, 64
    x = te.placeholder((m, k), name="x")
    packed = te.placeholder((n // 32, k, 32), name="packed")
    bias = te.placeholder((n,), name="bias")
    out = D.dense_packed(x, packed, n, bias)
    s = D.schedule_dense([out])
    text = str(tecomp.lower(s, [x, packed, bias, out], simple_mode=True))
    assert "for (i," not in text, text  # the 8 accumulator rows are unrolled in every tile, the last too
    a = rng.uniform(-1, 1, (m, k)).astype("float32")
    w = rng.uniform(-1, 1, (n, k)).astype("float32")
    b = rng.uniform(-1, 1, n).astype("float32")
    p = w.reshape(n // 32, 32, k).transpose(0, 2, 1).copy()
    check(s, [x, packed, bias, out], [a, p, b], a @ w.T + b, rtol=1e-5)
