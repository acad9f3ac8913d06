"""Bound inference computes a local cache's last, partial tile in full only where that is safe."""

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


def test_global_stages_keep_their_clamped_tiles(check, rng):
    A = te.placeholder((13,), name="A")
    B = te.compute((13,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((13,), lambda i: B[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    xo, _ = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    a = rng.uniform(-1, 1, 13).astype("float32")
    check(s, [A, C], [a], (a + 1) * 2)
