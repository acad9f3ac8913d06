"""Pooling (ONNX MaxPool with its Indices, AveragePool, LpPool, GlobalAveragePool) and its schedule:
2-D in NCHW or blocked NCHW<b>c layout (``max_pool2d``, ``avg_pool2d``, ``global_avg_pool2d``), any
number of spatial axes in NC-first layout (``max_pool_nd``, ``avg_pool_nd``, ``lp_pool``,
``max_pool_argmax``); windows may be dilated.

Padding is never read: window positions outside the input are skipped by a guard (max) or
left out of the sum and, unless ``count_include_pad``, out of the divisor (average).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from collections.abc import Callable, Sequence
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.operation import ComputeOp
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (FLOAT_DTYPES, IntPair, check_dtype, const_shape, fail, find_by_tag, padding4,
                     schedule_each_output)
from .conv2d import IntSeq, int_tuple, spatial_pads

POOL_TAG = "pool"
TEMPLATE = "schedules/pool2d"
EPILOGUE_TAG = "pool_epilogue"
_BLOCKED = re.compile(r"NCHW(\d+)c")
BLOCKED_ATTR = "pool_blocked"  # marks the window stage of a pooling in a blocked layout
# max pooling (and its argmax) also takes integers
MAX_DTYPES = FLOAT_DTYPES + ("int8", "uint8", "int16", "uint16", "int32", "int64")


@dataclass(frozen=True)
class Window:
    """A pooling window over the spatial axes: per axis kernel, stride, dilation, output size;
    ``pads`` all begins, then all ends."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads: tuple[int, ...]
    out: tuple[int, ...]

    def taps(self, o: Sequence[Any], r: Sequence[Any]) -> tuple[Any, ...]:
        """Input coordinates of tap ``r`` of output position ``o`` (negative or past the end in padding)."""
        return tuple(v * s + t * d - p for v, s, t, d, p in zip(o, self.strides, r, self.dilations, self.pads))


def _out_size(op: str, size: int, pad_begin: int, pad_end: int, kernel: int, stride: int, dilation: int,
              ceil_mode: bool) -> int:
    """ONNX output size; with ceil_mode a last window starting in the end padding is dropped."""
    span = size + pad_begin + pad_end - ((kernel - 1) * dilation + 1)
    if span < 0:
        raise fail(op, "kernel", f"kernel {kernel} (dilation {dilation}) exceeds padded input size "
                                 f"{size + pad_begin + pad_end}")
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _window(op: str, sizes: Sequence[int], kernel: IntSeq, strides: IntSeq, padding: IntSeq, dilation: IntSeq,
            ceil_mode: bool) -> Window:
    n = len(sizes)
    k, st = int_tuple(op, kernel, n, "kernel", 1), int_tuple(op, strides, n, "strides", 1)
    d, p = int_tuple(op, dilation, n, "dilation", 1), spatial_pads(op, padding, n)
    out = tuple(_out_size(op, sizes[i], p[i], p[n + i], k[i], st[i], d[i], ceil_mode) for i in range(n))
    return Window(k, st, d, p, out)


def _layout_shape(op: str, x: Tensor, layout: str, dtypes: Sequence[str]) -> tuple[int, ...]:
    """``x``'s shape, checked against ``layout``: "NCHW" (4-D) or blocked "NCHW<b>c" (5-D)."""
    check_dtype(x, op, "x", dtypes)
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


def _nd_shape(op: str, x: Tensor, dtypes: Sequence[str]) -> tuple[int, ...]:
    """``x``'s shape: ``[N, C, spatial...]`` with at least one spatial axis."""
    check_dtype(x, op, "x", dtypes)
    shape = const_shape(x, op, "x")
    if len(shape) < 3:
        raise fail(op, "x", f"expected (N, C, spatial...) with at least one spatial axis, got shape {shape}")
    return shape


def _attrs(kind: str, shape: tuple, w: Window, layout: str, dtype: str, ceil_mode: bool,
           count_include_pad: bool) -> dict:
    """The tuning workload of a blocked pooling (its knobs do nothing for NCHW)."""
    if layout == "NCHW":
        return {}
    dilation = (w.dilations,) if any(d != 1 for d in w.dilations) else ()
    return {BLOCKED_ATTR: True, "template": TEMPLATE, "workload": (kind, shape, w.kernel, w.strides, w.pads, layout, dtype, ceil_mode,
                                               count_include_pad) + dilation}


def _reduce_axes(kernel: Sequence[int]) -> list:
    names = ("rz", "ry", "rx")[3 - len(kernel):] if len(kernel) <= 3 else [f"r{k}" for k in range(len(kernel))]
    return [te.reduce_axis((0, k), name=name) for k, name in zip(kernel, names)]


def _compute(shape: tuple, spatial: int, body: Callable[..., Any], name: str, tag: str = "",
             attrs: dict | None = None) -> Tensor:
    """``te.compute`` of ``body(b, ch, spatial_indices, lane_indices)``; 2-D axes named b, ch, i, j."""
    if spatial == 2:
        return te.compute(shape, lambda b, ch, i, j, *lane: body(b, ch, (i, j), lane), name=name, tag=tag,
                          attrs=attrs)
    return te.compute(shape, lambda b, ch, *rest: body(b, ch, rest[:spatial], rest[spatial:]), name=name, tag=tag,
                      attrs=attrs)


def _inside(coords: Sequence[Any], sizes: Sequence[int]) -> Any:
    return te.all(*[bound for c, n in zip(coords, sizes) for bound in (c >= 0, c < n)])


def _max(name: str, x: Tensor, shape: tuple, w: Window, attrs: dict | None = None) -> Tensor:
    spatial = len(w.kernel)
    sizes = shape[2:2 + spatial]
    rs = _reduce_axes(w.kernel)
    lowest = te.min_value(x.dtype)

    def body(b, ch, o, lane):
        coords = w.taps(o, rs)
        return te.max(te.if_then_else(_inside(coords, sizes), x[(b, ch) + coords + lane], lowest), axis=rs)

    return _compute(shape[:2] + w.out + shape[2 + spatial:], spatial, body, name, POOL_TAG, attrs)


def _window_count(o: Any, stride: int, kernel: int, dilation: int, pad: int, lo: int, hi: int) -> Any:
    """Number of window taps of output ``o`` inside [lo, hi) (input coordinates)."""
    start = o * stride - pad
    if dilation == 1:
        return tir_op.min_expr(start + kernel, hi) - tir_op.max_expr(start, lo)
    first = tir_op.max_expr(te.floordiv(lo - start + dilation - 1, dilation), 0)
    last = tir_op.min_expr(te.floordiv(hi - 1 - start, dilation), kernel - 1)
    return tir_op.max_expr(last - first + 1, 0)


def _window_sum(name: str, x: Tensor, shape: tuple, w: Window, term: Callable[[Any], Any],
                attrs: dict | None = None) -> Tensor:
    """The sum of ``term(element)`` over each window's in-bounds elements."""
    spatial = len(w.kernel)
    sizes = shape[2:2 + spatial]
    rs = _reduce_axes(w.kernel)
    zero = te.const(0, x.dtype)

    def body(b, ch, o, lane):
        coords = w.taps(o, rs)
        return te.sum(te.if_then_else(_inside(coords, sizes), term(x[(b, ch) + coords + lane]), zero), axis=rs)

    return _compute(shape[:2] + w.out + shape[2 + spatial:], spatial, body, name, POOL_TAG, attrs)


def _avg(name: str, x: Tensor, shape: tuple, w: Window, count_include_pad: bool, attrs: dict | None = None) -> Tensor:
    spatial = len(w.kernel)
    total = _window_sum(f"{name}_sum", x, shape, w, lambda v: v, attrs)
    bounds = [(-w.pads[i], shape[2 + i] + w.pads[spatial + i]) if count_include_pad else (0, shape[2 + i])
              for i in range(spatial)]

    def average(b, ch, o, lane):
        count = None
        for i, v in enumerate(o):
            axis = _window_count(v, w.strides[i], w.kernel[i], w.dilations[i], w.pads[i], *bounds[i])
            count = axis if count is None else count * axis
        return total[(b, ch) + tuple(o) + tuple(lane)] / tir_op.cast(count, x.dtype)

    return _compute(tuple(d.value for d in total.shape), spatial, average, name, EPILOGUE_TAG)


def max_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False, layout: str = "NCHW", dilation: IntPair = 1) -> Tensor:
    """ONNX MaxPool: the maximum over each (dilated) window's in-bounds elements. ``layout`` "NCHW", or
    "NCHW<b>c" for blocked data (``[N, C/b, H, W, b]``, as the blocked convolutions produce)."""
    shape = _layout_shape("max_pool2d", x, layout, MAX_DTYPES)
    w = _window("max_pool2d", shape[2:4], kernel, strides, padding4("max_pool2d", padding), dilation, ceil_mode)
    return _max("max_pool2d", x, shape, w, _attrs("max", shape, w, layout, x.dtype, ceil_mode, False))


def avg_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = False, layout: str = "NCHW",
               dilation: IntPair = 1) -> Tensor:
    """ONNX AveragePool: window sum over in-bounds elements divided by the count of in-bounds
    elements, or of elements inside the padded input with ``count_include_pad``. ``layout`` as
    for ``max_pool2d``."""
    shape = _layout_shape("avg_pool2d", x, layout, FLOAT_DTYPES)
    w = _window("avg_pool2d", shape[2:4], kernel, strides, padding4("avg_pool2d", padding), dilation, ceil_mode)
    return _avg("avg_pool2d", x, shape, w, count_include_pad,
                _attrs("avg", shape, w, layout, x.dtype, ceil_mode, count_include_pad))


def max_pool_nd(x: Tensor, kernel: IntSeq, strides: IntSeq = 1, padding: IntSeq = 0, dilation: IntSeq = 1,
                ceil_mode: bool = False) -> Tensor:
    """``max_pool2d`` over any number of spatial axes, ``[N, C, spatial...]`` (3-D pooling); ``padding``
    an int, one per axis or all begins then all ends."""
    shape = _nd_shape("max_pool_nd", x, MAX_DTYPES)
    w = _window("max_pool_nd", shape[2:], kernel, strides, padding, dilation, ceil_mode)
    return _max("max_pool_nd", x, shape, w)


def avg_pool_nd(x: Tensor, kernel: IntSeq, strides: IntSeq = 1, padding: IntSeq = 0, dilation: IntSeq = 1,
                ceil_mode: bool = False, count_include_pad: bool = False) -> Tensor:
    """``avg_pool2d`` over any number of spatial axes (arguments as for ``max_pool_nd``)."""
    shape = _nd_shape("avg_pool_nd", x, FLOAT_DTYPES)
    w = _window("avg_pool_nd", shape[2:], kernel, strides, padding, dilation, ceil_mode)
    return _avg("avg_pool_nd", x, shape, w, count_include_pad)


def lp_pool(x: Tensor, kernel: IntSeq, p: int = 2, strides: IntSeq = 1, padding: IntSeq = 0, dilation: IntSeq = 1,
            ceil_mode: bool = False) -> Tensor:
    """ONNX LpPool over ``[N, C, spatial...]``: ``(sum |v|^p)^(1/p)`` over each window's in-bounds
    elements (padding adds nothing). Arguments as for ``max_pool_nd``."""
    shape = _nd_shape("lp_pool", x, FLOAT_DTYPES)
    if not isinstance(p, int) or p < 1:
        raise fail("lp_pool", "p", f"must be a positive int, got {p!r}")
    w = _window("lp_pool", shape[2:], kernel, strides, padding, dilation, ceil_mode)
    if p == 1:
        return _window_sum("lp_pool", x, shape, w, te.abs)
    term = (lambda v: v * v) if p == 2 else (lambda v: te.power(te.abs(v), te.const(float(p), x.dtype)))
    total = _window_sum("lp_pool_sum", x, shape, w, term)
    root = te.sqrt if p == 2 else (lambda v: te.power(v, te.const(1.0 / p, x.dtype)))
    return te.compute(total.shape, lambda *i: root(total[i]), name="lp_pool", tag=EPILOGUE_TAG)


def max_pool_argmax(x: Tensor, pooled: Tensor, kernel: IntSeq, strides: IntSeq = 1, padding: IntSeq = 0,
                    dilation: IntSeq = 1, ceil_mode: bool = False, storage_order: int = 0) -> Tensor:
    """ONNX MaxPool's Indices output for ``[N, C, spatial...]`` data: the int64 flat index into ``x`` of
    the first element (in window order) of each window equal to its maximum ``pooled`` (the
    ``max_pool_nd`` of the same arguments). ``storage_order`` 0 counts the spatial axes row-major,
    1 column-major (the first spatial axis fastest); batch and channel always come first."""
    op = "max_pool_argmax"
    shape = _nd_shape(op, x, MAX_DTYPES)
    w = _window(op, shape[2:], kernel, strides, padding, dilation, ceil_mode)
    out_shape = shape[:2] + w.out
    if const_shape(pooled, op, "pooled") != out_shape or pooled.dtype != x.dtype:
        raise fail(op, "pooled", f"expected shape {out_shape} and dtype {x.dtype}, got "
                                 f"{tuple(d.value for d in pooled.shape)} {pooled.dtype}")
    if storage_order not in (0, 1):
        raise fail(op, "storage_order", f"must be 0 (row-major) or 1 (column-major), got {storage_order!r}")
    spatial, sizes = len(w.kernel), shape[2:]
    rs = _reduce_axes(w.kernel)
    none = te.max_value("int64")

    def flat(b, ch, coords):
        index = tir_op.cast(b, "int64") * shape[1] + tir_op.cast(ch, "int64")
        for c, n in zip(coords, sizes):
            index = index * n + tir_op.cast(c, "int64")
        return index

    def first(b, ch, o, lane):
        coords = w.taps(o, rs)
        hit = te.if_then_else(x[(b, ch) + coords] == pooled[(b, ch) + tuple(o)], flat(b, ch, coords), none)
        return te.min(te.if_then_else(_inside(coords, sizes), hit, none), axis=rs)

    row_major = _compute(out_shape, spatial, first, f"{op}_rows", POOL_TAG)
    if storage_order == 0 or spatial == 1:
        return row_major
    plane = 1
    for n in sizes:
        plane *= n

    def column_major(b, ch, o, lane):
        r = row_major[(b, ch) + tuple(o)]
        offset, index, stride = te.floormod(r, plane), r - te.floormod(r, plane), 1
        for k in range(spatial):  # coordinate k of the row-major offset, at column-major stride
            inner = 1
            for n in sizes[k + 1:]:
                inner *= n
            index = index + te.floormod(te.floordiv(offset, inner), sizes[k]) * stride
            stride *= sizes[k]
        return index

    return _compute(out_shape, spatial, column_major, op, EPILOGUE_TAG)


def global_avg_pool2d(x: Tensor, layout: str = "NCHW") -> Tensor:
    """ONNX GlobalAveragePool: the mean over H and W, shape (N, C, 1, 1) (``[N, C/b, 1, 1, b]``
    for a blocked ``layout``)."""
    shape = _layout_shape("global_avg_pool2d", x, layout, FLOAT_DTYPES)
    h, w = shape[2:4]
    ry, rx = te.reduce_axis((0, h), name="ry"), te.reduce_axis((0, w), name="rx")
    out_shape = shape[:2] + (1, 1) + shape[4:]
    total = te.compute(out_shape, lambda b, ch, i, j, *lane: te.sum(x[(b, ch, ry, rx) + lane], axis=[ry, rx]),
                       name="global_avg_pool2d_sum", tag=POOL_TAG,
                       attrs={BLOCKED_ATTR: True} if layout != "NCHW" else None)
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
    pool = find_by_tag(out, POOL_TAG)
    if pool is not None and pool.op.attrs.get(BLOCKED_ATTR):  # blocked: rows in parallel, the channel lanes as one vector
        _schedule_blocked(s, out, producers, knobs)
        return
    fused = stage.fuse(*op.axis[:2])
    stage.parallel(fused)
    for p in producers:
        s[p].compute_at(stage, fused)


def schedule_pool(outs: Any) -> Schedule:
    """CPU schedule of the pooling operators (any number of spatial axes, the argmax of
    ``max_pool_argmax`` too): parallel over (n, c) (blocked layouts: over
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
                    count_include_pad: bool = False, dilation: IntPair = 1) -> tuple[Schedule, list[Tensor]]:
    """Tunable max ("max") or average ("avg") pooling; knobs (blocked layouts): output columns
    per step and unrolling the window's columns."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    if kind not in ("max", "avg"):
        raise fail("pool2d", "kind", f"expected 'max' or 'avg', got {kind!r}")
    if kind == "max":
        out = max_pool2d(x, kernel, strides, padding, ceil_mode, layout, dilation)
    else:
        out = avg_pool2d(x, kernel, strides, padding, ceil_mode, count_include_pad, layout, dilation)
    ow = out.shape[3].value
    cfg = autotvm.get_config()
    cfg.define_knob("tile_ow", [t for t in (1, 2, 4, 7, 8) if ow % t == 0])
    cfg.define_knob("unroll_kw", [0, 1])
    s = te.create_schedule(out.op)
    _schedule_output(s, out, PoolSchedule(cfg["tile_ow"].val, bool(cfg["unroll_kw"].val)))
    return s, [x, out]
