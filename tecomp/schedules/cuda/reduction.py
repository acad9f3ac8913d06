"""CUDA schedules of reductions (sum, max, min, mean over the last axes) and their template.

One thread per output element accumulates in a register (a ``local`` cache of
the reduction) over the reduced axes, ``threads`` outputs per block. For the
common 2-D case (one kept axis, one reduced axis, as a row reduction is) with
a row count that ``threads`` divides, the block stages its rows through
shared memory ``k_tile`` columns at a time:
the copy is coalesced (neighbouring threads read neighbouring columns) and
padded by one element per row so the threads' column reads do not collide in
shared-memory banks. An elementwise output after the reduction (mean's
divide) is computed by the same thread. A reduction of every axis (a 0-d
result) runs as one block whose threads combine their partials (a
cross-thread reduction).
"""

from __future__ import annotations

from typing import Any

from ... import te
from ... import tuner as autotvm
from ...te.operation import ComputeOp
from ...te.schedule import Schedule, create_schedule
from ...te.tensor import Tensor
from .. import reduction as reduce_ops
from ..common import as_list
from .common import (BLOCK_X, THREAD_X, axis, dispatched, fetch_cooperatively, largest_factor,
                     reduce_across_threads)
from .injective import schedule_injective_stage

TEMPLATE = "schedules/cuda/reduce"
SHARED_ROW_BYTES = 16 * 1024


def _find_reduction(out: Tensor) -> Tensor | None:
    if isinstance(out.op, ComputeOp) and out.op.reduce_axis:
        return out
    for t in out.op.input_tensors:
        if isinstance(t.op, ComputeOp) and t.op.reduce_axis:
            return t
    return None


def schedule_reduce_output(s: Schedule, out: Tensor, threads: int = 64, k_tile: int = 32) -> None:
    """Schedule the reduction ending in ``out`` (the reduction, or one elementwise stage after it)."""
    red = _find_reduction(out)
    if red is None:
        schedule_injective_stage(s, out)
        return
    for t in red.op.input_tensors:
        if isinstance(t.op, ComputeOp) and not t.op.reduce_axis:
            s[t].compute_inline()
    if not out.shape:  # a full reduction: one block; an elementwise stage after it is a one-thread kernel
        reduce_across_threads(s, red, threads)
        return
    if red is out:
        acc = s.cache_write(out, "local")
    else:
        acc = red
        s[acc].set_scope("local")
    stage = s[out]
    fused = stage.fuse(*stage.op.axis) if len(stage.op.axis) > 1 else stage.op.axis[0]
    bx, tx = stage.split(fused, factor=threads)
    stage.bind(bx, axis(BLOCK_X))
    stage.bind(tx, axis(THREAD_X))
    s[acc].compute_at(stage, tx)
    _stage_rows(s, acc, threads, k_tile)


def _stage_rows(s: Schedule, acc: Tensor, threads: int, k_tile: int) -> None:
    """Stage a 2-D input's rows through padded shared memory, ``k_tile`` columns at a time."""
    stage = s[acc]
    (source,) = acc.op.input_tensors if len(acc.op.input_tensors) == 1 else (None,)
    if source is None or len(acc.op.axis) != 1 or len(acc.op.reduce_axis) != 1 or len(source.shape) != 2:
        return
    if acc.shape[0].value % threads:
        return  # the last block's rows would differ per thread; barriers need every thread alike
    (k,) = stage.op.reduce_axis
    extent = k.dom.extent.value
    k_tile = min(k_tile, extent)
    if extent % k_tile and largest_factor(extent, k_tile) * 2 >= k_tile:
        k_tile = largest_factor(extent, k_tile)  # no ragged last tile
    if threads * (k_tile + 1) * 4 > SHARED_ROW_BYTES:
        return
    ko, ki = stage.split(k, factor=k_tile)
    # Reduction loops outermost: the staging at ko is then the same for every thread of the block.
    stage.reorder(ko, ki, *stage.op.axis)
    cached = s.cache_read(source, "shared", [acc])
    s[cached].compute_at(stage, ko)
    s[cached].storage_align(s[cached].op.axis[0], 2, 1)  # an odd row stride: no bank conflicts
    fetch_cooperatively(s, cached, [(THREAD_X, threads)])


def schedule_reduce(outs: Any, threads: int | None = None, k_tile: int | None = None) -> Schedule:
    """CUDA schedule of reductions over the last axes (and an elementwise stage after them)."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for o in outs:
        red = _find_reduction(o)
        knobs = {"threads": threads or 64, "k_tile": k_tile or 32}
        if red is not None and (threads is None or k_tile is None):
            cfg = dispatched(TEMPLATE, _workload(red))
            knobs = {"threads": threads or cfg["threads"].val, "k_tile": k_tile or cfg["k_tile"].val}
        schedule_reduce_output(s, o, **knobs)
    return s


def _workload(red: Tensor) -> tuple:
    source = red.op.input_tensors[0] if red.op.input_tensors else red
    shape = tuple(d.value for d in source.shape)
    rows = 1
    for d in red.shape:
        rows *= d.value
    return (shape, rows, red.dtype)


@autotvm.template(TEMPLATE)
def reduce_template(shape: tuple, rows: int, dtype: str = "float32") -> tuple[Schedule, list[Tensor]]:
    """Tunable row reduction: a sum over the trailing axes of ``shape`` leaving ``rows`` outputs.
    Knobs: threads per block, columns staged per step."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    kept, size = 0, 1
    while kept < len(shape) and size < rows:
        size *= shape[kept]
        kept += 1
    out = reduce_ops.sum(x, axis=tuple(range(kept, len(shape))) or None)
    cfg = autotvm.get_config()
    cfg.define_knob("threads", [64, 128, 32, 256])
    cfg.define_knob("k_tile", [32, 16, 64])
    s = create_schedule(out.op)
    schedule_reduce_output(s, out, cfg["threads"].val, cfg["k_tile"].val)
    return s, [x, out]
