"""CUDA schedules of ``dense``/``matmul``/``batch_matmul`` (shared-memory tiled, register-blocked) and
their tuning template.

A block of ``threads_y x threads_x`` threads computes a ``(threads_y*rows) x (threads_x*cols)``
tile of the output; each thread keeps its ``rows x cols`` sub-tile in registers (a ``local``
accumulator, rows unrolled, columns vectorized). The reduction runs ``k_tile`` at a time: the
block first copies the ``A`` and ``B`` tiles it needs into shared memory (every thread a part,
neighbouring threads neighbouring elements, four at a time where that aligns), waits, then
accumulates from shared memory. ``B`` is the operand as the compute definition packs it
(``packed_b``): the packing is inlined into the shared-memory copy, so the GPU reads the
weight in its own layout. Elementwise stages after the product (bias, activation) are
computed by the thread that owns the element.

Any panel width works; one panel (``gpu_dense``, what the template tunes) keeps column
indices free of divisions, so the accumulator reads ``B`` as ``float4`` vectors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import te
from ... import tuner as autotvm
from ...te.operation import ComputeOp
from ...te.schedule import Schedule
from ...te.tensor import Tensor
from ...tir.expr import ProducerLoad
from ...tir.functor import collect_vars, post_order_visit
from ...tuner.space import FallbackConfigEntity
from ..common import find_by_tag, inline_between, schedule_each_output
from ..dense import PACK_TAG, PRODUCT_TAG, batch_matmul, dense_packed, pack_dense_weight
from .common import (BLOCK_X, BLOCK_Y, BLOCK_Z, THREAD_X, THREAD_Y, axis, dispatched,
                     fetch_cooperatively)

TEMPLATE = "schedules/cuda/dense"
BATCH_TEMPLATE = "schedules/cuda/batch_matmul"


@dataclass(frozen=True)
class GemmTiles:
    """The knobs of one product schedule (defaults: 64x64 tiles, 256 threads, 4x4 per thread)."""

    threads_y: int = 16
    threads_x: int = 16
    rows: int = 4
    cols: int = 4
    k_tile: int = 8


def _contiguous_last(stage_op: ComputeOp) -> list[int]:
    """Axis order of a copy of ``stage_op`` that reads its source contiguously (source-last axis last)."""
    loads: list = []
    post_order_visit(stage_op.body[0], lambda n: loads.append(n) if isinstance(n, ProducerLoad) else None)
    order = list(range(len(stage_op.axis)))
    if not loads:
        return order
    last = collect_vars(loads[0].indices[-1])
    inner = [k for k, iv in enumerate(stage_op.axis) if iv.var in last]
    if len(inner) == 1 and inner[0] != order[-1]:
        order.remove(inner[0])
        order.append(inner[0])
    return order


def schedule_product_output(s: Schedule, out: Tensor, tiles: GemmTiles) -> None:
    """Schedule the product ending in ``out`` (the product or an elementwise chain after it)."""
    product = find_by_tag(out, PRODUCT_TAG)
    lhs, rhs = product.op.input_tensors[0], product.op.input_tensors[-1]
    inline_between(s, out, product)
    if product is out:
        acc = s.cache_write(out, "local")
    else:
        acc = product
        s[acc].set_scope("local")
    ty, tx, rm, rn = tiles.threads_y, tiles.threads_x, tiles.rows, tiles.cols

    stage = s[out]
    *batch, i, j = stage.op.axis
    io, ii = stage.split(i, factor=ty * rm)
    jo, ji = stage.split(j, factor=tx * rn)
    ity, irm = stage.split(ii, factor=rm)
    jtx, jrn = stage.split(ji, factor=rn)
    stage.reorder(*batch, io, jo, ity, jtx, irm, jrn)
    if batch:
        stage.bind(stage.fuse(*batch) if len(batch) > 1 else batch[0], axis(BLOCK_Z))
    stage.bind(io, axis(BLOCK_Y))
    stage.bind(jo, axis(BLOCK_X))
    stage.bind(ity, axis(THREAD_Y))
    stage.bind(jtx, axis(THREAD_X))
    stage.unroll(irm)
    if rn % 4 == 0:
        stage.vectorize(jrn)
    s[acc].compute_at(stage, jtx)

    acc_stage = s[acc]
    *acc_batch, ai, aj = acc_stage.op.axis
    (k,) = acc_stage.op.reduce_axis
    ko, ki = acc_stage.split(k, factor=tiles.k_tile)
    acc_stage.reorder(ko, ki, *acc_batch, ai, aj)
    acc_stage.unroll(ki)
    acc_stage.unroll(ai)
    if rn % 4 == 0:
        acc_stage.vectorize(aj)

    threads = [(THREAD_X, tx), (THREAD_Y, ty)]
    a_shared = s.cache_read(lhs, "shared", [acc])
    packed_inline = isinstance(rhs.op, ComputeOp) and rhs.op.tag == PACK_TAG
    if packed_inline:
        s[rhs].compute_inline()  # the copy to shared memory reads the weight in its own layout
    b_shared = s.cache_read(rhs, "shared", [acc])
    for cached in (a_shared, b_shared):
        s[cached].compute_at(acc_stage, ko)
        order = _contiguous_last(rhs.op if cached is b_shared and packed_inline else s[cached].op)
        vector = 4 if order == list(range(len(order))) else 1
        fetch_cooperatively(s, cached, threads, vector, order)


def fit_tile(extent: int, threads: int, per_thread: int) -> tuple[int, int]:
    """(threads, per_thread), each at most the given, whose product divides ``extent`` and is largest;
    the given pair when nothing above a quarter of it divides (the last tile is then guarded)."""
    best = None
    t = threads
    while t >= 1:
        p = per_thread
        while p >= 1:
            if extent % (t * p) == 0 and (best is None or t * p > best[0] * best[1]):
                best = (t, p)
            p //= 2
        t //= 2
    if best is None or best[0] * best[1] * 4 < min(threads * per_thread, extent):
        return threads, per_thread
    return best


def default_tiles(m: int, n: int, k: int) -> GemmTiles:
    """The hand schedule's tiles: 64x64 blocks of 16x16 threads, shrunk to tiles that divide the
    problem where that keeps at least a quarter of them (a partial tile costs guards and shared memory)."""
    base = GemmTiles()
    ty, rm = fit_tile(m, base.threads_y, base.rows)
    tx, rn = fit_tile(n, base.threads_x, base.cols)
    k_tile = next((t for t in (8, 16, 4) if k % t == 0), base.k_tile)
    return GemmTiles(ty, tx, rm, rn, k_tile)


def gpu_dense(data: Tensor, weight: Tensor, transpose_a: bool = False, transpose_b: bool = True) -> Tensor:
    """``dense`` with the weight packed as one panel: the layout a GPU wants (the packing, a plain
    or transposing copy, is inlined into the shared-memory copy, and column indices need no
    division by a panel width)."""
    n = weight.shape[0].value if transpose_b else weight.shape[1].value
    return dense_packed(data, pack_dense_weight(weight, n, transpose_b), n, None, transpose_a)


def _tiles(cfg: Any) -> GemmTiles:
    return GemmTiles(cfg["threads_y"].val, cfg["threads_x"].val, cfg["rows"].val, cfg["cols"].val,
                     cfg["k_tile"].val)


def _define_knobs(cfg: Any) -> None:
    cfg.define_knob("threads_y", [16, 8, 32])
    cfg.define_knob("threads_x", [16, 8, 32])
    cfg.define_knob("rows", [4, 8, 2, 1])
    cfg.define_knob("cols", [4, 8, 2, 1])
    cfg.define_knob("k_tile", [8, 16, 4, 32])


def _reads_first(consumer: ComputeOp, source: Tensor, var: Any) -> bool:
    """Whether ``consumer`` reads ``source`` with ``var`` in its first index (a transposed operand)."""
    found: list = []
    post_order_visit(consumer.body[0], lambda n: found.append(n) if isinstance(n, ProducerLoad)
                     and n.producer.op is source.op else None)
    return bool(found) and var in collect_vars(found[0].indices[0])


def _workload(product: Tensor) -> tuple[str, tuple]:
    """The cuda template and workload of a product stage."""
    lhs, rhs = product.op.input_tensors[0], product.op.input_tensors[-1]
    k_axis = product.op.reduce_axis[0]
    k = k_axis.dom.extent.value
    dims = tuple(d.value for d in product.shape)
    if len(dims) == 3:
        return BATCH_TEMPLATE, (tuple(d.value for d in lhs.shape), dims, k, product.dtype)
    transpose_a = _reads_first(product.op, lhs, k_axis.var)
    transpose_b = True
    if isinstance(rhs.op, ComputeOp) and rhs.op.tag == PACK_TAG:
        weight = rhs.op.input_tensors[0]
        transpose_b = not _reads_first(rhs.op, weight, rhs.op.axis[1].var)
    elif len(rhs.shape) == 3:  # a weight packed ahead of time ([1, K, N]) reads like an untransposed one
        transpose_b = False
    return TEMPLATE, (dims[0], dims[1], k, product.dtype, transpose_a, transpose_b)


def schedule_dense(outs: Any, tiles: GemmTiles | None = None) -> Schedule:
    """CUDA schedule of dense/matmul/batch_matmul (and elementwise ops after them), with the
    tiles given, else those of the best record under ``apply_history_best``, else
    ``default_tiles`` for the product's shape."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        chosen = tiles
        if chosen is None:
            product = find_by_tag(out, PRODUCT_TAG)
            template, workload = _workload(product)
            cfg = dispatched(template, workload)
            if isinstance(cfg, FallbackConfigEntity):
                *_, m, n = (d.value for d in product.shape)
                chosen = default_tiles(m, n, product.op.reduce_axis[0].dom.extent.value)
            else:
                chosen = _tiles(cfg)
        schedule_product_output(s, out, chosen)

    return schedule_each_output(outs, schedule_output)


schedule_matmul = schedule_dense
schedule_batch_matmul = schedule_dense


@autotvm.template(TEMPLATE)
def dense_template(m: int, n: int, k: int, dtype: str = "float32", transpose_a: bool = False,
                   transpose_b: bool = True) -> tuple[Schedule, list[Tensor]]:
    """Tunable CUDA dense: ``data`` [M, K] (or [K, M]), ``weight`` [N, K] (or [K, N] without
    ``transpose_b``). Knobs: threads per block in y and x, rows and columns per thread, k tile."""
    data = te.placeholder((k, m) if transpose_a else (m, k), dtype, name="data")
    weight = te.placeholder((n, k) if transpose_b else (k, n), dtype, name="weight")
    out = gpu_dense(data, weight, transpose_a, transpose_b)
    cfg = autotvm.get_config()
    _define_knobs(cfg)
    s = te.create_schedule(out.op)
    schedule_product_output(s, out, _tiles(cfg))
    return s, [data, weight, out]


@autotvm.template(BATCH_TEMPLATE)
def batch_matmul_template(a_shape: tuple, out_shape: tuple, k: int,
                          dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """Tunable CUDA batch_matmul ``a[B, M, K] @ b[B, K, N]``; the knobs of the dense template."""
    a = te.placeholder(tuple(a_shape), dtype, name="a")
    b = te.placeholder((a_shape[0], k, out_shape[2]), dtype, name="b")
    out = batch_matmul(a, b)
    cfg = autotvm.get_config()
    _define_knobs(cfg)
    s = te.create_schedule(out.op)
    schedule_product_output(s, out, _tiles(cfg))
    return s, [a, b, out]
