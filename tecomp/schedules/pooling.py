"""2-D pooling (ONNX MaxPool, AveragePool, GlobalAveragePool) in NCHW or blocked NCHW<b>c layout, and its schedule.

Padding is never read: window positions outside the input are skipped by a guard (max) or
left out of the sum and, unless ``count_include_pad``, out of the divisor (average).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.operation import ComputeOp
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (IntPair, check_dtype, const_shape, fail, find_by_tag, int_pair, padding4,
                     schedule_each_output)

POOL_TAG = "pool"
TEMPLATE = "schedules/pool2d"
EPILOGUE_TAG = "pool_epilogue"
_BLOCKED = re.compile(r"NCHW(\d+)c")


def _out_size(op: str, size: int, pad_begin: int, pad_end: int, kernel: int, stride: int,
              ceil_mode: bool) -> int:
    """ONNX output size; with ceil_mode a last window starting in the end padding is dropped."""
    span = size + pad_begin + pad_end - kernel
    if span < 0:
        raise fail(op, "kernel", f"kernel {kernel} exceeds padded input size {size + pad_begin + pad_end}")
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _layout_shape(op: str, x: Tensor, layout: str) -> tuple[int, ...]:
    """``x``'s shape, checked against ``layout``: "NCHW" (4-D) or blocked "NCHW<b>c" (5-D)."""
    check_dtype(x, op, "x")
    shape = const_shape(x, op, "x")
    if layout == "NCHW":
        if len(shape) != 4:
            raise fail(op, "x", f"expected 4 dimensions (N, C, H, W), got shape {shape}")
        return shape
    m = _BLOCKED.fullmatch(layout) if isinstance(layout, str) else None
    if m is None:
        raise fail(op, "layout", f"expected 'NCHW' or 'NCHW<b>c', got {layout!r}")
    if len(shape) != 5 or shape[4] != int(m.group(1)):
        raise fail(op, "x", f"expected 5 dimensions (N, C/{m.group(1)}, H, W, {m.group(1)}) for layout "
                            f"{layout}, got shape {shape}")
    return shape


def _geometry(op: str, x: Tensor, kernel: IntPair, strides: IntPair, padding: IntPair, ceil_mode: bool,
              layout: str):
    shape = _layout_shape(op, x, layout)
    k, s, p = int_pair(op, kernel, "kernel", 1), int_pair(op, strides, "strides", 1), padding4(op, padding)
    out = tuple(_out_size(op, shape[2 + i], p[i], p[i + 2], k[i], s[i], ceil_mode) for i in range(2))
    return shape, k, s, p, out


def _out_shape(shape: tuple, out_hw: tuple) -> tuple:
    return shape[:2] + tuple(out_hw) + shape[4:]


def _attrs(kind: str, shape: tuple, kernel: tuple, strides: tuple, pads: tuple, layout: str, dtype: str,
           ceil_mode: bool, count_include_pad: bool) -> dict:
    """The tuning workload of a blocked pooling (its knobs do nothing for NCHW)."""
    if layout == "NCHW":
        return {}
    return {"template": TEMPLATE, "workload": (kind, shape, kernel, strides, pads, layout, dtype, ceil_mode,
                                               count_include_pad)}


def max_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False, layout: str = "NCHW") -> Tensor:
    """ONNX MaxPool: the maximum over each window's in-bounds elements. ``layout`` "NCHW", or
    "NCHW<b>c" for blocked data (``[N, C/b, H, W, b]``, as the blocked convolutions produce)."""
    shape, (kh, kw), (sh, sw), pads, (oh, ow) = _geometry("max_pool2d", x, kernel, strides, padding,
                                                          ceil_mode, layout)
    h, w = shape[2:4]
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    lowest = te.min_value(x.dtype)

    def body(b, ch, i, j, *lane):
        y, z = i * sh + ry - pads[0], j * sw + rx - pads[1]
        inside = te.all(y >= 0, y < h, z >= 0, z < w)
        return te.max(te.if_then_else(inside, x[(b, ch, y, z) + lane], lowest), axis=[ry, rx])

    return te.compute(_out_shape(shape, (oh, ow)), body, name="max_pool2d", tag=POOL_TAG,
                      attrs=_attrs("max", shape, (kh, kw), (sh, sw), pads, layout, x.dtype, ceil_mode, False))


def _window_count(i, stride: int, kernel: int, pad: int, lo: int, hi: int):
    """Number of window positions of output ``i`` inside [lo, hi) (input coordinates)."""
    start = i * stride - pad
    return tir_op.min_expr(start + kernel, hi) - tir_op.max_expr(start, lo)


def avg_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = False, layout: str = "NCHW") -> Tensor:
    """ONNX AveragePool: window sum over in-bounds elements divided by the count of in-bounds
    elements, or of elements inside the padded input with ``count_include_pad``. ``layout`` as
    for ``max_pool2d``."""
    shape, (kh, kw), (sh, sw), pads, (oh, ow) = _geometry("avg_pool2d", x, kernel, strides, padding,
                                                          ceil_mode, layout)
    h, w = shape[2:4]
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    zero = te.const(0, x.dtype)

    def window_sum(b, ch, i, j, *lane):
        y, z = i * sh + ry - pads[0], j * sw + rx - pads[1]
        inside = te.all(y >= 0, y < h, z >= 0, z < w)
        return te.sum(te.if_then_else(inside, x[(b, ch, y, z) + lane], zero), axis=[ry, rx])

    out_shape = _out_shape(shape, (oh, ow))
    total = te.compute(out_shape, window_sum, name="avg_pool2d_sum", tag=POOL_TAG,
                       attrs=_attrs("avg", shape, (kh, kw), (sh, sw), pads, layout, x.dtype, ceil_mode,
                                    count_include_pad))
    lo_y, hi_y = (-pads[0], h + pads[2]) if count_include_pad else (0, h)
    lo_x, hi_x = (-pads[1], w + pads[3]) if count_include_pad else (0, w)

    def average(b, ch, i, j, *lane):
        count = (_window_count(i, sh, kh, pads[0], lo_y, hi_y)
                 * _window_count(j, sw, kw, pads[1], lo_x, hi_x))
        return total[(b, ch, i, j) + lane] / tir_op.cast(count, x.dtype)

    return te.compute(out_shape, average, name="avg_pool2d", tag=EPILOGUE_TAG)


def global_avg_pool2d(x: Tensor, layout: str = "NCHW") -> Tensor:
    """ONNX GlobalAveragePool: the mean over H and W, shape (N, C, 1, 1) (``[N, C/b, 1, 1, b]``
    for a blocked ``layout``)."""
    shape = _layout_shape("global_avg_pool2d", x, layout)
    h, w = shape[2:4]
    ry, rx = te.reduce_axis((0, h), name="ry"), te.reduce_axis((0, w), name="rx")
    out_shape = _out_shape(shape, (1, 1))
    total = te.compute(out_shape, lambda b, ch, i, j, *lane: te.sum(x[(b, ch, ry, rx) + lane], axis=[ry, rx]),
                       name="global_avg_pool2d_sum", tag=POOL_TAG)
    return te.compute(out_shape, lambda *i: total[i] / te.const(h * w, x.dtype),
                      name="global_avg_pool2d", tag=EPILOGUE_TAG)


@dataclass(frozen=True)
class PoolSchedule:
    """Knobs of the blocked pooling schedule: output columns per step (their windows reduced
    together, the columns unrolled) and whether the window's columns are unrolled."""

    tile_ow: int = 1
    unroll_kw: bool = False


def _schedule_blocked(s: Schedule, out: Tensor, producers: list, knobs: PoolSchedule) -> None:
    stage = s[out]
    n, c, y, x, lane = stage.op.axis
    row = stage.fuse(n, c, y)
    stage.parallel(row)
    tile = knobs.tile_ow if out.shape[3].value % knobs.tile_ow == 0 else 1
    xo, xi = stage.split(x, factor=tile)
    stage.vectorize(lane)
    for p in producers:
        s[p].compute_at(stage, xo)
    # each window reduction: its (columns, lanes) loops inside the window loops
    reductions = {t: tuple(s[t].op.axis[-2:]) for t in producers}
    if stage.op.reduce_axis:
        reductions[out] = (xi, lane)
    for t, (columns, lanes) in reductions.items():
        rstage = s[t]
        ry, rx = rstage.op.reduce_axis
        rstage.reorder(ry, rx, columns, lanes)
        rstage.unroll(columns)
        rstage.vectorize(lanes)
        if knobs.unroll_kw:
            rstage.unroll(rx)


def _schedule_output(s: Schedule, out: Tensor, knobs: PoolSchedule = PoolSchedule()) -> None:
    stage = s[out]
    op = stage.op
    producers = [t for t in op.input_tensors if isinstance(t.op, ComputeOp) and t.op.reduce_axis]
    if len(op.axis) == 5:  # blocked: rows in parallel, the channel lanes as one vector
        _schedule_blocked(s, out, producers, knobs)
        return
    fused = stage.fuse(*op.axis[:2])
    stage.parallel(fused)
    for p in producers:
        s[p].compute_at(stage, fused)


def schedule_pool(outs: Any) -> Schedule:
    """CPU schedule of the pooling operators: parallel over (n, c) (blocked layouts: over
    (n, c block, output row), with the channel lanes vectorized and the knobs the dispatch
    context picks for the workload); the window sum of an average is computed inside that
    loop, next to its division."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        pool = find_by_tag(out, POOL_TAG)
        workload = pool.op.attrs.get("workload") if pool is not None else None
        if workload is None:
            _schedule_output(s, out)
            return
        cfg = autotvm.task.dispatched_config(TEMPLATE, workload)
        _schedule_output(s, out, PoolSchedule(cfg["tile_ow"].val, bool(cfg["unroll_kw"].val)))

    return schedule_each_output(outs, schedule_output)


@autotvm.template(TEMPLATE)
def pool2d_template(kind: str, shape: tuple, kernel: IntPair, strides: IntPair, padding: IntPair,
                    layout: str = "NCHW", dtype: str = "float32", ceil_mode: bool = False,
                    count_include_pad: bool = False) -> tuple[Schedule, list[Tensor]]:
    """Tunable max ("max") or average ("avg") pooling; knobs (blocked layouts): output columns
    per step and unrolling the window's columns."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    if kind not in ("max", "avg"):
        raise fail("pool2d", "kind", f"expected 'max' or 'avg', got {kind!r}")
    if kind == "max":
        out = max_pool2d(x, kernel, strides, padding, ceil_mode, layout)
    else:
        out = avg_pool2d(x, kernel, strides, padding, ceil_mode, count_include_pad, layout)
    ow = out.shape[3].value
    cfg = autotvm.get_config()
    cfg.define_knob("tile_ow", [t for t in (1, 2, 4, 7, 8) if ow % t == 0])
    cfg.define_knob("unroll_kw", [0, 1])
    s = te.create_schedule(out.op)
    _schedule_output(s, out, PoolSchedule(cfg["tile_ow"].val, bool(cfg["unroll_kw"].val)))
    return s, [x, out]
