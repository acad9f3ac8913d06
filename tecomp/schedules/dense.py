"""Dense layers and matrix products: ``dense``, ``matmul``, ``batch_matmul``, their default
register-blocked CPU schedules and their tuning templates.

Every product packs its right-hand operand into ``nr``-column panels (``[N/nr, K, nr]``, the
last panel clamped at the edge) so that the innermost loop reads contiguous vectors; the
schedule keeps an ``mr x nr`` accumulator tile in registers, unrolls its rows, vectorizes
its columns and runs the (batch, row block, column block) tiles in parallel (as
``examples/matmul.py``, which parallelizes row blocks only).
"""

from __future__ import annotations

import math

from dataclasses import dataclass
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..target import Target
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (accumulator_dtype, check_dtype, const_shape, fail, find_by_tag, inline_between,
                     schedule_each_output)
from .vector_unit import vector_unit

PRODUCT_TAG = "matmul_product"
PACK_TAG = "matmul_pack"
DENSE_TEMPLATE = "schedules/dense"
BATCH_MATMUL_TEMPLATE = "schedules/batch_matmul"
ROW_TILES = (8, 6, 4, 3, 2, 1)
MIN_PANEL = 8  # narrower products are one panel
GEMV_PANEL = 32
MIN_PARALLEL_ROW_BLOCKS = 16  # enough row blocks to share among threads without the panels
# How well an mr-row accumulator tile uses the registers and the loads of B (one broadcast of A per
# row, one vector of B shared by all rows), relative to 8 rows.
_ROW_TILE_EFFICIENCY = {8: 1.0, 6: 0.95, 4: 0.85, 3: 0.7, 2: 0.5, 1: 0.3}


@dataclass(frozen=True)
class GemmSchedule:
    """The knobs of one register-blocked product schedule."""

    mr: int = 8
    k_inner: int = 1
    unroll: bool = True
    vectorize: bool = True


def col_tiles(m: int) -> tuple[int, ...]:
    """Panel widths for ``m`` rows, preferred first: two vector registers, one, and ``MIN_PANEL``
    columns (32, 16, 8 with AVX-512; 16, 8 with AVX2), led by ``GEMV_PANEL`` columns where the
    registers hold all ``m`` rows of them (a GEMV: more accumulators in flight)."""
    lanes = vector_unit().lanes()
    wide = (GEMV_PANEL,) if m <= vector_unit().rows_that_fit(GEMV_PANEL) else ()
    return tuple(dict.fromkeys(max(MIN_PANEL, t) for t in (*wide, 2 * lanes, lanes, MIN_PANEL)))


def max_rows(m: int, nr: int) -> int:
    """The most rows an accumulator tile of ``nr`` columns may have: ``m``, or fewer where the
    registers hold fewer."""
    return min(m, vector_unit().rows_that_fit(nr))


def row_tile(m: int, nr: int) -> int:
    """Rows per accumulator tile for ``m`` rows of ``nr`` columns: the tile of ``ROW_TILES`` that
    fits the registers and best balances register reuse against the rows a last, partial tile
    wastes (a partial tile is computed in full into its scratch accumulator, with A's row index
    clamped, and stored with a guard)."""
    def useful(t: int) -> float:
        return m / (-(-m // t) * t) * _ROW_TILE_EFFICIENCY[t]

    return max((t for t in ROW_TILES if t <= max_rows(m, nr)), key=useful, default=1)


def panel_width(n: int, m: int) -> int:
    """Columns per packed panel of an ``m x n`` product: the preferred of ``col_tiles`` when it
    divides ``n`` or pads it by at most an eighth (1000 classes), else a narrower tile dividing
    ``n``, else the widest (padded), or ``n`` if small."""
    tiles = col_tiles(m)
    if n < tiles[-1]:
        return n
    widest = tiles[0]
    if -n % widest <= n // 8:
        return widest
    return next((t for t in tiles if n % t == 0), widest)


def _clamp_row(i: Any, m: int) -> Any:
    """Row ``i`` of A, clamped to the last row: a row tile that does not divide M computes its
    last tile in full (rows past M repeat row M-1, never stored), so its loops stay constant."""
    return tir_op.min_expr(i, m - 1) if m % 24 else i  # 24: every row tile divides it


def _check_tensor(t: Any, op_name: str, argument: str, rank: int) -> tuple[int, ...]:
    if not isinstance(t, Tensor):
        raise fail(op_name, argument, f"expected a tensor, got {type(t).__name__}")
    check_dtype(t, op_name, argument)
    shape = const_shape(t, op_name, argument)
    if len(shape) != rank:
        raise fail(op_name, argument, f"expected rank {rank}, got shape {shape}")
    return shape


def _pack(b: Tensor, batched: bool, transpose_b: bool, n: int, k: int, nr: int) -> Tensor:
    """B as ``[(batch,) ceil(N/nr), K, nr]`` panels; columns past N repeat column N-1."""
    panels = -(-n // nr)

    def col(x: Any, z: Any) -> Any:
        return tir_op.min_expr(x * nr + z, n - 1) if n % nr else x * nr + z

    if batched:
        bb = b.shape[0].value
        return te.compute((bb, panels, k, nr), lambda q, x, y, z: (
            b[q, col(x, z), y] if transpose_b else b[q, y, col(x, z)]), name="packed_b", tag=PACK_TAG)
    return te.compute((panels, k, nr), lambda x, y, z: (
        b[col(x, z), y] if transpose_b else b[y, col(x, z)]), name="packed_b", tag=PACK_TAG)


def pack_dense_weight(weight: Tensor, panel: int, transpose_b: bool = True) -> Tensor:
    """``weight`` (``[N, K]``, or ``[K, N]`` with ``transpose_b=False``) as ``ceil(N/panel)`` panels
    ``[N/panel, K, panel]`` for ``dense_packed``; a model packs its constant weights once, at build time."""
    shape = _check_tensor(weight, "pack_dense_weight", "weight", 2)
    if not isinstance(panel, int) or panel < 1:
        raise fail("pack_dense_weight", "panel", f"must be a positive int, got {panel!r}")
    n, k = shape if transpose_b else shape[::-1]
    return _pack(weight, False, transpose_b, n, k, panel)


def dense_packed(data: Tensor, packed_weight: Tensor, units: int, bias: Tensor | None = None,
                 transpose_a: bool = False) -> Tensor:
    """``dense`` with the weight already packed by ``pack_dense_weight``: ``out[M, units]``."""
    op_name = "dense"
    ashape = _check_tensor(data, op_name, "data", 2)
    pshape = _check_tensor(packed_weight, op_name, "packed_weight", 3)
    m, k = (ashape[1], ashape[0]) if transpose_a else ashape
    panels, kw, nr = pshape
    if k != kw:
        raise fail(op_name, "packed_weight", f"reduction size {kw} does not match data's {k} "
                                             f"(data {ashape}, packed_weight {pshape})")
    if not isinstance(units, int) or not panels * nr - nr < units <= panels * nr:
        raise fail(op_name, "units", f"{units!r} does not fit {panels} panels of {nr} columns")
    if data.dtype != packed_weight.dtype:
        raise fail(op_name, "packed_weight", f"dtype {packed_weight.dtype} differs from data's {data.dtype}")
    if bias is not None:
        bshape = _check_tensor(bias, op_name, "bias", 1)
        if bshape != (units,) or bias.dtype != data.dtype:
            raise fail(op_name, "bias", f"expected shape ({units},) and dtype {data.dtype}, "
                                        f"got {bshape} {bias.dtype}")
    r = te.reduce_axis((0, k), name="k")

    def a_at(i: Any) -> Any:
        i = _clamp_row(i, m)
        return data[r, i] if transpose_a else data[i, r]

    acc = accumulator_dtype(data.dtype)
    out = te.compute((m, units), lambda i, j: te.sum(tir_op.cast(a_at(i), acc)
                                                     * tir_op.cast(packed_weight[j // nr, r, j % nr], acc), axis=r),
                     name=op_name, tag=PRODUCT_TAG,
                     attrs={"template": DENSE_TEMPLATE, "workload": (m, units, k, data.dtype, transpose_a)})
    if bias is None:
        return _rounded(out, data.dtype, op_name)
    return te.compute((m, units), lambda i, j: tir_op.cast(out[i, j] + tir_op.cast(bias[j], acc), data.dtype),
                      name=f"{op_name}_bias")


def _rounded(product: Tensor, dtype: str, op_name: str) -> Tensor:
    """``product`` (accumulated in ``accumulator_dtype``) in ``dtype``: itself, or a rounding epilogue."""
    if product.dtype == dtype:
        return product
    return te.compute(product.shape, lambda *i: tir_op.cast(product[i], dtype), name=f"{op_name}_round")


def _dense(data: Tensor, weight: Tensor, bias: Tensor | None, transpose_a: bool, transpose_b: bool,
           op_name: str, names: tuple[str, str] = ("data", "weight")) -> Tensor:
    ashape = _check_tensor(data, op_name, names[0], 2)
    wshape = _check_tensor(weight, op_name, names[1], 2)
    m, k = (ashape[1], ashape[0]) if transpose_a else ashape
    n, kw = wshape if transpose_b else (wshape[1], wshape[0])
    if k != kw:
        raise fail(op_name, names[1], f"reduction size {kw} does not match {names[0]}'s {k} "
                                      f"({names[0]} {ashape}, {names[1]} {wshape})")
    if data.dtype != weight.dtype:
        raise fail(op_name, names[1], f"dtype {weight.dtype} differs from {names[0]}'s {data.dtype}")
    nr = dense_panel_width(m, n, k, data.dtype, transpose_a)
    return dense_packed(data, _pack(weight, False, transpose_b, n, k, nr), n, bias, transpose_a)


def _panel_width(template: str, workload: tuple, n: int) -> int:
    # A GPU schedule stages B through shared memory in any layout; one panel keeps its column
    # index free of divisions (what the cuda templates tune).
    target = Target.current(allow_none=True)
    if target is not None and target.kind == "cuda":
        return n
    return autotvm.task.dispatched_config(template, workload)["tile_n"].val


def dense_panel_width(m: int, n: int, k: int, dtype: str = "float32", transpose_a: bool = False) -> int:
    """Columns per weight panel for a dense of this shape: the dispatched config's (tuned under
    ``apply_history_best``, else the fallback); ``n`` (one panel) on a cuda target."""
    return _panel_width(DENSE_TEMPLATE, (m, n, k, dtype, transpose_a), n)


def dense(data: Tensor, weight: Tensor, bias: Tensor | None = None, transpose_a: bool = False,
          transpose_b: bool = True) -> Tensor:
    """``out[M, N] = op(A) · op(B) + bias`` (ONNX Gemm with alpha = beta = 1, as TVM's nn.dense).

    By default ``data`` is ``[M, K]`` and ``weight`` is ``[N, K]`` (``out = A · Bᵀ``);
    ``transpose_a`` reads ``data`` as ``[K, M]``, ``transpose_b=False`` reads ``weight`` as
    ``[K, N]``. ``bias`` (optional) is ``[N]``, broadcast over rows. The weight is packed into
    panels inside the program; with a constant weight use ``pack_dense_weight`` + ``dense_packed``.
    """
    return _dense(data, weight, bias, transpose_a, transpose_b, "dense")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a[M, K] @ b[K, N]`` (ONNX MatMul for 2-D operands): ``dense`` with ``transpose_b=False``."""
    return _dense(a, b, None, False, False, "matmul", ("a", "b"))


def _batch_matmul(a: Tensor, b: Tensor, transpose_b: bool, nr: int | None) -> Tensor:
    op_name = "batch_matmul"
    ashape = _check_tensor(a, op_name, "a", 3)
    bshape = _check_tensor(b, op_name, "b", 3)
    ba, m, k = ashape
    bb, n, kb = bshape if transpose_b else (bshape[0], bshape[2], bshape[1])
    if k != kb:
        raise fail(op_name, "b", f"reduction size {kb} does not match a's {k} (a {ashape}, b {bshape})")
    if ba != bb and 1 not in (ba, bb):
        raise fail(op_name, "b", f"batch {bb} does not broadcast with a's batch {ba}")
    if a.dtype != b.dtype:
        raise fail(op_name, "b", f"dtype {b.dtype} differs from a's {a.dtype}")
    workload = (ashape, bshape, a.dtype, transpose_b)
    nr = nr or _panel_width(BATCH_MATMUL_TEMPLATE, workload, n)
    packed = _pack(b, True, transpose_b, n, k, nr)
    r = te.reduce_axis((0, k), name="k")

    def fcompute(q: Any, i: Any, j: Any) -> Any:
        qa = 0 if ba == 1 else q
        qb = 0 if bb == 1 else q
        return te.sum(tir_op.cast(a[qa, _clamp_row(i, m), r], acc) * tir_op.cast(packed[qb, j // nr, r, j % nr], acc),
                      axis=r)

    acc = accumulator_dtype(a.dtype)
    product = te.compute((max(ba, bb), m, n), fcompute, name=op_name, tag=PRODUCT_TAG,
                         attrs={"template": BATCH_MATMUL_TEMPLATE, "workload": workload})
    return _rounded(product, a.dtype, op_name)


def batch_matmul(a: Tensor, b: Tensor, transpose_b: bool = False) -> Tensor:
    """``out[B, M, N] = a[B, M, K] @ b[B, K, N]`` (ONNX MatMul for 3-D operands).

    ``transpose_b`` reads ``b`` as ``[B, N, K]``. A batch of 1 on either side broadcasts.
    """
    return _batch_matmul(a, b, transpose_b, None)


def _schedule_pack(s: Schedule, packed: Tensor) -> None:
    stage = s[packed]
    axes = list(stage.op.axis)
    stage.parallel(stage.fuse(*axes[:-2]) if len(axes) > 3 else axes[0])
    if packed.shape[-1].value >= 4:
        stage.vectorize(axes[-1])


def schedule_product_output(s: Schedule, out: Tensor, knobs: GemmSchedule) -> None:
    """Register-block the product ending in ``out`` (the product itself or a chain of elementwise
    ops after it, such as a bias add and an activation, inlined into one epilogue)."""
    product = find_by_tag(out, PRODUCT_TAG)
    packed = product.op.input_tensors[-1]
    if getattr(packed.op, "tag", None) == PACK_TAG:
        _schedule_pack(s, packed)
    inline_between(s, out, product)
    acc = s.cache_write(out, "local") if product is out else product
    nr = packed.shape[-1].value
    m = out.shape[-2].value
    mr = knobs.mr if knobs.mr <= max_rows(m, nr) else row_tile(m, nr)
    stage = s[out]
    *batch, i, j = stage.op.axis
    io, jo, _, ji = stage.tile(i, j, mr, nr)
    row_blocks = math.prod(d.value for d in out.shape[:-2]) * -(-m // mr)  # batches x row tiles
    if out.shape[-1].value % nr and row_blocks >= MIN_PARALLEL_ROW_BLOCKS:
        # the padded last panel's stores are guarded per column: with the panels a serial loop
        # inside each row block, loop partitioning peels that panel and the others store vectors
        block = stage.fuse(*batch, io)
        tile_root = jo
    else:
        block = tile_root = stage.fuse(*batch, io, jo)
    stage.parallel(block)
    if knobs.vectorize:
        stage.vectorize(ji)
    s[acc].compute_at(stage, tile_root)
    *_, ai, aj = s[acc].op.axis
    (ak,) = s[acc].op.reduce_axis
    if knobs.k_inner > 1:
        ko, ki = s[acc].split(ak, factor=knobs.k_inner)
        s[acc].reorder(ko, ki, ai, aj)
        s[acc].unroll(ki)
    else:
        s[acc].reorder(ak, ai, aj)
    if knobs.unroll:
        s[acc].unroll(ai)
    if knobs.vectorize:
        s[acc].vectorize(aj)


def schedule_dense(outs: Any) -> Schedule:
    """Schedule of ``dense``/``dense_packed``/``matmul``/``batch_matmul`` and elementwise ops after
    them: packed panels, an ``mr x nr`` register accumulator (rows unrolled, columns vectorized),
    parallel output tiles, with the knobs the dispatch context picks for the product's workload."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        product = find_by_tag(out, PRODUCT_TAG)
        cfg = autotvm.task.dispatched_config(product.op.attrs["template"], product.op.attrs["workload"])
        schedule_product_output(s, out, _knobs_of(cfg))

    return schedule_each_output(outs, schedule_output)


schedule_matmul = schedule_dense
schedule_batch_matmul = schedule_dense


def _define_gemm_knobs(m: int, n: int) -> None:
    cfg = autotvm.get_config()
    first = panel_width(n, m)  # the fallback's choice
    tiles = col_tiles(m)
    cfg.define_knob("tile_n", [first] + [t for t in tiles if t != first and t <= max(n, tiles[-1])])
    rows = [t for t in (8, 6, 4, 2) if t <= max_rows(m, tiles[-1])]
    cfg.define_knob("tile_m", list(dict.fromkeys([row_tile(m, first)] + rows)))
    cfg.define_knob("tile_k", [1, 4])
    cfg.define_knob("unroll", [1, 0])
    cfg.define_knob("vectorize", [1, 0])


def _knobs_of(cfg: Any) -> GemmSchedule:
    return GemmSchedule(cfg["tile_m"].val, cfg["tile_k"].val, bool(cfg["unroll"].val), bool(cfg["vectorize"].val))


@autotvm.template(DENSE_TEMPLATE)
def dense_template(m: int, n: int, k: int, dtype: str = "float32",
                   transpose_a: bool = False) -> tuple[Schedule, list[Tensor]]:
    """Tunable dense over a packed weight (as a model runs it: weights packed at build time).
    Knobs: panel width, row tile, unrolled k split, row unroll, vectorize."""
    _define_gemm_knobs(m, n)
    cfg = autotvm.get_config()
    nr = cfg["tile_n"].val
    data = te.placeholder((k, m) if transpose_a else (m, k), dtype, name="data")
    packed = te.placeholder((-(-n // nr), k, nr), dtype, name="packed_weight")
    out = dense_packed(data, packed, n, None, transpose_a)
    s = te.create_schedule(out.op)
    schedule_product_output(s, out, _knobs_of(cfg))
    return s, [data, packed, out]


@autotvm.template(BATCH_MATMUL_TEMPLATE)
def batch_matmul_template(a_shape: tuple, b_shape: tuple, dtype: str = "float32",
                          transpose_b: bool = False) -> tuple[Schedule, list[Tensor]]:
    """Tunable batch_matmul (both operands computed at run time, so packing b is timed too):
    the knobs of the dense template."""
    _define_gemm_knobs(a_shape[1], b_shape[1] if transpose_b else b_shape[2])
    cfg = autotvm.get_config()
    a = te.placeholder(tuple(a_shape), dtype, name="a")
    b = te.placeholder(tuple(b_shape), dtype, name="b")
    out = _batch_matmul(a, b, transpose_b, cfg["tile_n"].val)
    s = te.create_schedule(out.op)
    schedule_product_output(s, out, _knobs_of(cfg))
    return s, [a, b, out]
