"""Winograd convolution F(m x m, 3 x 3) in the blocked NCHW[x]c layout: its matrices, the kernel
transform, the operator and its CPU schedule.

A 3x3 convolution at stride 1 computes each ``m x m`` tile of its output from an
``(m + 2) x (m + 2)`` tile of its input with ``(m + 2)^2`` products per channel pair instead of
``9 m^2`` (F(4, 3): 36 instead of 144). Three steps, each one or two te computes:

- the input transform ``V = B^T d B`` per tile and input channel, ``[a, a, C/ib, P, ib]``
  (``a = m + 2``, ``P`` tiles), read from the zero-padded input;
- ``a * a`` independent products over the input channels,
  ``M[e, n] = V[e, n] @ U[e, n]``, ``[a, a, OC/ob, P, ob]``, where ``U = G g G^T`` is the
  kernel transformed once (``pack_winograd_kernel``, constant folded in a model);
- the output transform ``Y = A^T M A`` per tile, written straight into the blocked output
  ``[N, OC/ob, OH, OW, ob]`` (tiles past the edge of an output whose size ``m`` does not divide
  are computed and not stored).

The transform matrices' entries are constants: each transform is written as the sum of its
non-zero terms for every position of the tile (a table of expressions selected by the
position), and the schedule unrolls the position each table selects on, so every copy holds one
entry and no multiplication by a zero entry runs.
The interpolation points are 0, +-1, +-2 (and infinity); the rounding error of F(4, 3) in
float32 is about 1e-5 relative, that of F(2, 3) about 1e-6.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from typing import Any, Callable, Optional

import numpy as np

from .. import te
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import (KEEP_TAG, IntPair, accumulator_dtype, const_shape, fail, find_by_tag, inline_between, int_pair,
                     padding4, schedule_each_output)
from .conv2d import Activation, output_size, pad_spatial
from .conv2d_nchwc import (LAYOUT_TAG, accumulator_limit, blocked_data, blocked_epilogue, default_reg_n,
                           is_layout_transform, register_tile, schedule_layout_stage)

OP = "conv2d_winograd_nchwc"
PACK_OP = "pack_winograd_kernel"
PAD_TAG = "winograd_pad"
INPUT_TAG = "winograd_input"
PRODUCT_TAG = "winograd_product"
OUTPUT_TAG = "winograd_output"
TILE_SIZES = (2, 4)
KERNEL = 3
_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0)  # the finite interpolation points, the first m + 1 used
GEMM_ROWS = 14  # tiles per register tile of the product stage, at most (accumulators: rows x ob/lanes)
MIN_CHANNELS = 16  # fewer input or output channels: the transforms cost more than the products save
MIN_TILES = 16  # F(4, 3) from this many output tiles, F(2, 3) below
# A smaller conv keeps the direct algorithm: what Winograd saves on it is about a tenth of a
# millisecond or less, and its kernel takes several times longer to compile than the direct one.
MIN_FLOP = 40e6


@lru_cache(maxsize=None)
def winograd_matrices(tile: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A, B, G) of F(tile x tile, 3 x 3): ``Y = A^T [(G g G^T) * (B^T d B)] A`` for a 3x3 kernel
    ``g`` and a ``(tile + 2)``-square input tile ``d``. Shapes ``(a, tile)``, ``(a, a)``, ``(a, 3)``.

    Toom-Cook: A and G evaluate polynomials at the points (the last at infinity), B interpolates;
    each row of B^T is scaled to a smallest non-zero entry of +-1 (Lavin and Gray's matrices for
    F(2, 3) and F(4, 3)), its reciprocal moved into G's row."""
    if tile not in TILE_SIZES:
        raise fail(OP, "tile", f"expected one of {TILE_SIZES}, got {tile!r}")
    alpha = tile + KERNEL - 1
    points = _POINTS[:alpha - 1]

    def vandermonde(columns: int) -> np.ndarray:
        rows = [[p ** k for k in range(columns)] for p in points]
        return np.array(rows + [[0.0] * (columns - 1) + [1.0]])

    a, g = vandermonde(tile), vandermonde(KERNEL)
    bt = np.linalg.inv(vandermonde(alpha)).T
    bt[np.abs(bt) < 1e-9] = 0.0
    scale = np.array([np.abs(row[row != 0]).min() for row in bt])
    bt /= scale[:, None]
    g *= scale[:, None]
    # the entries are rationals of small denominators: snap away the inversion's rounding, so that
    # the tables skip zeros and add (not multiply) entries of +-1
    exact = np.vectorize(lambda x: float(Fraction(x).limit_denominator(1000)))
    return exact(a), exact(bt.T), exact(g)


def _choose(index: PrimExpr, count: int, entry: Callable[[int], PrimExpr]) -> PrimExpr:
    """``entry(index)`` for an index expression below ``count``: a chain of selects that folds to
    one entry once the index is a constant (an unrolled loop)."""
    value = entry(count - 1)
    for i in range(count - 2, -1, -1):
        value = tir_op.select(index == i, entry(i), value)
    return value


def _weighted_sum(terms: list[tuple[float, PrimExpr]], dtype: str) -> PrimExpr:
    """sum(c * x) over the terms with a non-zero c; a coefficient of +-1 adds or subtracts x."""
    total = None
    for c, x in sorted((t for t in terms if t[0] != 0.0), key=lambda t: t[0] < 0):  # a positive term first
        if total is None:
            total = x if c == 1.0 else x * tir_op.const(c, dtype)
        elif abs(c) == 1.0:
            total = total + x if c > 0 else total - x
        else:
            total = total + x * tir_op.const(c, dtype)
    return tir_op.const(0.0, dtype) if total is None else total


def _transform(matrix: np.ndarray, index: PrimExpr, read: Callable[[int], PrimExpr], dtype: str) -> PrimExpr:
    """Row ``index`` of ``matrix^T x`` for the vector ``x[k] = read(k)``: sum_k matrix[k, index] x[k]."""
    return _choose(index, matrix.shape[1],
                   lambda i: _weighted_sum([(matrix[k, i], read(k)) for k in range(matrix.shape[0])], dtype))


def pack_winograd_kernel(kernel: Tensor, tile: int = 4, oc_block: int = 16) -> Tensor:
    """An ``OIHW`` 3x3 kernel transformed for ``conv2d_winograd_nchwc``: ``G g G^T`` per channel
    pair, as ``[a, a, OC/ob, C, ob]`` (``a = tile + 2``)."""
    oc, ic, kh, kw = const_shape(kernel, PACK_OP, "kernel")
    if (kh, kw) != (KERNEL, KERNEL):
        raise fail(PACK_OP, "kernel", f"expected a 3x3 kernel, got {kh}x{kw}")
    if not isinstance(oc_block, int) or oc_block < 1 or oc % oc_block:
        raise fail(PACK_OP, "oc_block", f"must divide the {oc} output channels, got {oc_block!r}")
    g_t = winograd_matrices(tile)[2].T
    alpha = tile + KERNEL - 1
    dtype = kernel.dtype
    rows = te.compute((alpha, KERNEL, oc // oc_block, ic, oc_block),
                      lambda e, x, kb, c, o: _transform(g_t, e, lambda y: kernel[kb * oc_block + o, c, y, x], dtype),
                      name="winograd_kernel_rows", tag=KEEP_TAG)
    return te.compute((alpha, alpha, oc // oc_block, ic, oc_block),
                      lambda e, n, kb, c, o: _transform(g_t, n, lambda x: rows[e, x, kb, c, o], dtype),
                      name="winograd_kernel", tag=LAYOUT_TAG)


def winograd_tile(data_shape: tuple, kernel_shape: tuple, strides: IntPair = 1, padding: IntPair = 0,
                  dilation: IntPair = 1, groups: int = 1, dtype: str = "float32") -> Optional[int]:
    """The tile of the Winograd convolution to run in place of the NCHW conv of ``data_shape`` and
    OIHW ``kernel_shape``, or None where only the direct one applies: a float32 3x3 kernel at
    stride and dilation 1, no groups, at least ``MIN_CHANNELS`` channels in and out.

    F(4, 3) where it makes ``MIN_TILES`` tiles or more; fewer tiles (a 7x7 output) get F(2, 3),
    whose transformed kernel is under half as large: with few tiles each weight is used a few
    times only, and streaming the kernel costs more than the products save. F(2, 3) also where
    its tiles divide the output and F(4, 3)'s do not (14x14): no partial tiles, less code."""
    if dtype != "float32" or groups != 1 or len(data_shape) != 4 or len(kernel_shape) != 4:
        return None
    n, c, h, w = data_shape
    oc, kc, kh, kw = kernel_shape
    if (kh, kw) != (KERNEL, KERNEL) or kc != c or min(c, oc) < MIN_CHANNELS:
        return None
    if int_pair(OP, strides, "strides", 1) != (1, 1) or int_pair(OP, dilation, "dilation", 1) != (1, 1):
        return None
    pads = padding4(OP, padding)
    out_h, out_w = h + pads[0] + pads[2] - 2, w + pads[1] + pads[3] - 2
    if out_h < 1 or out_w < 1 or 2 * n * oc * c * KERNEL * KERNEL * out_h * out_w < MIN_FLOP:
        return None
    th, tw = winograd_tiles(out_h, out_w, 4)
    if n * th * tw < MIN_TILES or (out_h % 4 or out_w % 4) and not (out_h % 2 or out_w % 2):
        return 2
    return 4


def winograd_tiles(out_h: int, out_w: int, tile: int) -> tuple[int, int]:
    """Tiles along the height and width covering an ``out_h x out_w`` output."""
    return -(-out_h // tile), -(-out_w // tile)


def conv2d_winograd_nchwc(data: Tensor, kernel: Tensor, strides: IntPair = 1, padding: IntPair = 0,
                          dilation: IntPair = 1, bias: Tensor | None = None,
                          activation: Activation = None) -> Tensor:
    """3x3 convolution at stride 1 by Winograd's algorithm: ``data [N, C/ib, H, W, ib]``, ``kernel``
    from ``pack_winograd_kernel`` (``[a, a, OC/ob, C, ob]``; the tile is ``a - 2``) ->
    ``[N, OC/ob, OH, OW, ob]``; the arithmetic of ``conv2d_nchw`` up to rounding."""
    n, icc, h, w, ib = blocked_data(data, OP)
    kshape = const_shape(kernel, OP, "kernel")
    if kernel.dtype != data.dtype:
        raise fail(OP, "kernel", f"dtype {kernel.dtype} differs from data dtype {data.dtype}")
    if len(kshape) != 5 or kshape[0] != kshape[1] or kshape[0] - 2 not in TILE_SIZES or kshape[3] != icc * ib:
        raise fail(OP, "kernel", f"expected [a, a, OC/ob, {icc * ib}, ob] with a - 2 in {TILE_SIZES} "
                                 f"(see pack_winograd_kernel), got {kshape}")
    if int_pair(OP, strides, "strides", 1) != (1, 1) or int_pair(OP, dilation, "dilation", 1) != (1, 1):
        raise fail(OP, "strides", f"Winograd convolution needs strides and dilation 1, got strides={strides!r}, "
                                  f"dilation={dilation!r}")
    alpha, _, occ, _, ob = kshape
    tile = alpha - 2
    a_mat, b_mat, _ = winograd_matrices(tile)
    pads = padding4(OP, padding)
    out_h = output_size(OP, h + pads[0] + pads[2], KERNEL, 1, 1, "height")
    out_w = output_size(OP, w + pads[1] + pads[3], KERNEL, 1, 1, "width")
    th, tw = winograd_tiles(out_h, out_w, tile)
    # pad the bottom and right edges to whole tiles as well
    extra_h, extra_w = th * tile + 2 - (h + pads[0] + pads[2]), tw * tile + 2 - (w + pads[1] + pads[3])
    padded = pad_spatial(data, (pads[0], pads[1], pads[2] + extra_h, pads[3] + extra_w), PAD_TAG)
    acc = accumulator_dtype(data.dtype)
    tiles = n * th * tw

    def tile_origin(p: Any) -> tuple[Any, Any, Any]:
        return p // (th * tw), p // tw % th * tile, p % tw * tile

    def input_rows(e: Any, x: Any, cb: Any, p: Any, ci: Any) -> PrimExpr:
        b, y0, x0 = tile_origin(p)
        return _transform(b_mat, e, lambda y: tir_op.cast(padded[b, cb, y0 + y, x0 + x, ci], acc), acc)

    rows = te.compute((alpha, alpha, icc, tiles, ib), input_rows, name="winograd_input_rows")
    v = te.compute((alpha, alpha, icc, tiles, ib),
                   lambda e, nu, cb, p, ci: _transform(b_mat, nu, lambda x: rows[e, x, cb, p, ci], acc),
                   name="winograd_input", tag=INPUT_TAG, attrs={"tiles_per_row": tw})
    rcb = te.reduce_axis((0, icc), name="ic_outer")
    rci = te.reduce_axis((0, ib), name="ic_inner")
    product = te.compute(
        (alpha, alpha, occ, tiles, ob),
        lambda e, nu, kb, p, o: te.sum(v[e, nu, rcb, p, rci] * tir_op.cast(kernel[e, nu, kb, rcb * ib + rci, o], acc),
                                       axis=[rcb, rci]),
        name="winograd_product", tag=PRODUCT_TAG)
    out_rows = te.compute(
        (occ, tiles, tile, alpha, ob),
        lambda kb, p, i, c, o: _transform(a_mat, i, lambda r: product[r, c, kb, p, o], acc),
        name="winograd_output_rows")

    def output_transform(b: Any, kb: Any, y: Any, x: Any, o: Any) -> PrimExpr:
        p = (b * th + y // tile) * tw + x // tile
        return _transform(a_mat, x % tile, lambda c: out_rows[kb, p, y % tile, c, o], acc)

    out = te.compute((n, occ, out_h, out_w, ob), output_transform, name="winograd_output", tag=OUTPUT_TAG)
    return blocked_epilogue(out, bias, activation, OP, data.dtype)


# ----------------------------------------------------------------------------- schedule

def _schedule_input(s: Schedule, v: Tensor) -> None:
    """Tiles of each input block in parallel; a tile's transforms as in ``_unroll_table``. The
    padding is read inside (no padded copy); a layout transform feeding it runs at root."""
    rows = v.op.input_tensors[0]
    for t in rows.op.input_tensors:
        if getattr(t.op, "tag", None) == PAD_TAG:
            s[t].compute_inline()
            t = t.op.input_tensors[0]
        if is_layout_transform(t):
            schedule_layout_stage(s, t)
    stage = s[v]
    e, nu, cb, p, ci = stage.op.axis
    tile_row, tile = stage.split(p, factor=v.op.attrs["tiles_per_row"])  # plain indices within a row of tiles
    stage.reorder(cb, tile_row, tile, e, nu, ci)
    stage.parallel(stage.fuse(cb, tile_row))
    _unroll_table(stage, e, nu, ci)
    s[rows].compute_at(stage, tile)
    e, x, _, _, ci = s[rows].op.axis
    _unroll_table(s[rows], x, e, ci)


def _unroll_table(stage: Any, position: Any, table: Any, lanes: Any) -> None:
    """A transform stage's loops inside a tile: the position that only indexes a loop, the one that
    selects the transform's entry unrolled (its table folds to one entry per copy), the lanes a
    vector. Unrolling both would make the kernel no faster and several times longer to compile."""
    stage.reorder(position, table, lanes)
    stage.unroll(table)
    stage.vectorize(lanes)


def _schedule_product(s: Schedule, product: Tensor) -> None:
    """Each position's product as a register-blocked GEMM: ``rows`` tiles x ``ob`` lanes of
    accumulators over the input channels, positions and output blocks in parallel."""
    acc = s.cache_write(product, "local")
    stage = s[product]
    e, nu, kb, p, o = stage.op.axis
    rows = _gemm_rows(product.shape[3].value, product.shape[4].value)
    po, pi = stage.split(p, factor=rows)
    stage.reorder(e, nu, kb, po, pi, o)
    stage.parallel(stage.fuse(e, nu, kb))
    stage.vectorize(o)
    s[acc].compute_at(stage, po)
    acc_stage = s[acc]
    *_, ap, ao = acc_stage.op.axis
    acc_stage.reorder(*acc_stage.op.reduce_axis, ap, ao)
    acc_stage.unroll(ap)
    acc_stage.vectorize(ao)


def _gemm_rows(tiles: int, lanes: int) -> int:
    """Tiles per register tile: a divisor of the tile count of at least half ``GEMM_ROWS`` where
    one exists (49 tiles: 7, not 13 with a peeled tail of 10, whose copy of the unrolled tile
    costs compile time for little speed), else ``register_tile``'s choice."""
    limit = accumulator_limit(GEMM_ROWS, lanes)
    divisor = default_reg_n(tiles, limit)
    return divisor if 2 * divisor >= limit else register_tile(tiles, GEMM_ROWS, lanes)


def _schedule_output(s: Schedule, out: Tensor, out_rows: Tensor, tile: int) -> None:
    """Output tile rows in parallel, a tile's transforms as in ``_unroll_table``, the first pass
    computed per tile."""
    stage = s[out]
    n, kb, y, x, o = stage.op.axis
    yo, yi = stage.split(y, factor=tile)
    xo, xi = stage.split(x, factor=tile)
    stage.reorder(n, kb, yo, xo, yi, xi, o)
    stage.parallel(stage.fuse(n, kb, yo))
    _unroll_table(stage, yi, xi, o)
    s[out_rows].compute_at(stage, xo)
    *_, i, c, lanes = s[out_rows].op.axis
    _unroll_table(s[out_rows], c, i, lanes)


def schedule_conv2d_winograd_nchwc(outs: Any) -> Schedule:
    """Schedule of ``conv2d_winograd_nchwc`` and any elementwise ops after it (inlined into the
    output transform): the input transform, the products and the output transform each at root,
    the first pass of each transform computed per tile inside its second."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        y = find_by_tag(out, OUTPUT_TAG)
        product = find_by_tag(y, PRODUCT_TAG)
        _schedule_input(s, find_by_tag(product, INPUT_TAG))
        _schedule_product(s, product)
        inline_between(s, out, y)
        if out is not y:
            s[y].compute_inline()
        _schedule_output(s, out, y.op.input_tensors[0], product.shape[0].value - 2)

    return schedule_each_output(outs, schedule_output)
