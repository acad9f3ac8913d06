"""A stage computed at the outer loop of a split fused loop covers only its tile's rows and columns.

When the split factor divides the inner axis's extent, a tile of the fused loop never wraps to a
second row, so the producer needs just the tile's columns of one row (TVM's bound for a split of
a fused axis); otherwise it needs whole rows.
"""

from __future__ import annotations

import tecomp
from tecomp import te


def _fused_split(factor: int, rows: int = 5, cols: int = 6):
    A = te.placeholder((rows, cols), name="A")
    B = te.compute((rows, cols), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((rows, cols), lambda i, j: B[i, j] + 3.0, name="C")
    s = te.create_schedule(C.op)
    xo, _ = s[C].split(s[C].fuse(*C.op.axis), factor)
    s[B].compute_at(s[C], xo)
    return s, A, B, C


def test_a_dividing_tile_needs_only_its_columns(check, rng):
    s, A, B, C = _fused_split(3)
    bounds = te.schedule.InferBound(s)
    assert bounds[B.op.axis[1]].extent.value == 3
    assert "for (j, 3)" in str(tecomp.lower(s, [A, C], simple_mode=True))
    a = rng.uniform(-1, 1, (5, 6)).astype("float32")
    check(s, [A, C], [a], a * 2 + 3)


def test_a_wrapping_tile_needs_whole_rows(check, rng):
    s, A, B, C = _fused_split(4)  # tiles of 4 over rows of 6 cross row ends
    assert te.schedule.InferBound(s)[B.op.axis[1]].extent.value == 6
    a = rng.uniform(-1, 1, (5, 6)).astype("float32")
    check(s, [A, C], [a], a * 2 + 3)
