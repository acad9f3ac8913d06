"""CUDA schedules of ``conv2d_nchw`` (direct, shared-memory staged; depthwise when groups equal the
channels) and their tuning templates.

A block computes ``f_threads*f_per_thread`` output channels of a ``y_threads x x_threads`` patch
of one image; each thread keeps ``f_per_thread`` channels of one output pixel in registers. The
input channels are reduced ``rc_tile`` at a time: the block copies the padded input window
(``rc_tile`` channels, the patch grown by the kernel's reach) and the matching kernel slice into
shared memory, waits, then accumulates over the kernel window from shared memory. Padding is
computed during that copy (the padded tensor never exists). A bias/activation epilogue is
applied by the thread that owns the pixel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ... import te
from ... import tuner as autotvm
from ...te.operation import ComputeOp
from ...te.schedule import Schedule
from ...te.tensor import Tensor
from ...tir import op as tir_op
from ...tir.expr import IntImm, ProducerLoad
from ...tir.functor import post_order_visit, substitute
from ...tir.simplify import Analyzer
from ...tuner.space import FallbackConfigEntity
from ..common import find_by_tag, schedule_each_output
from ..conv2d import CONV_TAG, PAD_TAG, conv2d_nchw
from .common import (BLOCK_X, BLOCK_Y, BLOCK_Z, THREAD_X, THREAD_Y, THREAD_Z, axis, dispatched,
                     fetch_cooperatively, largest_factor)

TEMPLATE = "schedules/cuda/conv2d_nchw"
DEPTHWISE_TEMPLATE = "schedules/cuda/depthwise_conv2d_nchw"
MAX_THREADS = 256


@dataclass(frozen=True)
class ConvTiles:
    """The knobs of the direct schedule (threads per block: f_threads * y_threads * x_threads)."""

    f_threads: int = 4
    f_per_thread: int = 4
    y_threads: int = 4
    x_threads: int = 8
    rc_tile: int = 8


def default_tiles(c_out: int, oh: int, ow: int, channels_per_group: int) -> ConvTiles:
    """Tiles that divide the output (no guarded partial patch) with at most 256 threads."""
    x = largest_factor(ow, 16)
    y = largest_factor(oh, max(1, 64 // x))
    fr = largest_factor(c_out, 4)
    ft = largest_factor(c_out // fr, max(1, MAX_THREADS // (x * y)))
    return ConvTiles(ft, fr, y, x, largest_factor(channels_per_group, 8))


def _operands(conv: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
    """(the tensor the conv reads its window from, the pad stage or None, the kernel)."""
    padded = find_by_tag(conv, PAD_TAG)
    window, kernel = conv.op.input_tensors[0], conv.op.input_tensors[1]
    if padded is not None and window.op is not padded.op:
        window, kernel = kernel, window
    return window, padded, kernel


def schedule_conv_output(s: Schedule, out: Tensor, tiles: ConvTiles) -> None:
    """Schedule the conv2d ending in ``out`` (the conv or its bias/activation epilogue) inside ``s``."""
    conv = find_by_tag(out, CONV_TAG)
    window, padded, kernel = _operands(conv)
    if conv is out:
        acc = s.cache_write(out, "local")
    else:
        acc = conv
        s[acc].set_scope("local")
    ft, fr, ty, tx = tiles.f_threads, tiles.f_per_thread, tiles.y_threads, tiles.x_threads

    stage = s[out]
    n, f, y, x = stage.op.axis
    fo, fi = stage.split(f, factor=ft * fr)
    fz, fv = stage.split(fi, factor=fr)
    yo, yt = stage.split(y, factor=ty)
    xo, xt = stage.split(x, factor=tx)
    stage.reorder(n, fo, yo, xo, fz, yt, xt, fv)
    stage.bind(stage.fuse(n, fo), axis(BLOCK_Z))
    stage.bind(yo, axis(BLOCK_Y))
    stage.bind(xo, axis(BLOCK_X))
    stage.bind(fz, axis(THREAD_Z))
    stage.bind(yt, axis(THREAD_Y))
    stage.bind(xt, axis(THREAD_X))
    stage.unroll(fv)
    s[acc].compute_at(stage, xt)

    acc_stage = s[acc]
    an, af, ay, ax = acc_stage.op.axis
    rc, ry, rx = acc_stage.op.reduce_axis
    rco, rci = acc_stage.split(rc, factor=tiles.rc_tile)
    acc_stage.reorder(rco, rci, ry, rx, an, ay, ax, af)
    acc_stage.unroll(af)
    for r in (ry, rx):
        if isinstance(r.dom.extent, IntImm) and r.dom.extent.value <= 7:
            acc_stage.unroll(r)

    window_shared = s.cache_read(window, "shared", [acc])
    if padded is not None:
        s[padded].compute_inline()  # pad while copying to shared memory
    kernel_shared = s.cache_read(kernel, "shared", [acc])
    threads = [(THREAD_X, tx), (THREAD_Y, ty), (THREAD_Z, ft)]
    for cached in (window_shared, kernel_shared):
        s[cached].compute_at(acc_stage, rco)
        fetch_cooperatively(s, cached, threads)


def _coefficient(index: Any, var: Any, others: list) -> int:
    """The constant coefficient of ``var`` in an affine ``index`` (others set to 0)."""
    zero = {v: tir_op.const(0, v.dtype) for v in others + [var]}
    one = dict(zero)
    one[var] = tir_op.const(1, var.dtype)
    az = Analyzer()
    c = az.simplify(tir_op.sub(substitute(index, one), substitute(index, zero)))
    return c.value if isinstance(c, IntImm) else 1


def _loads_of(op: ComputeOp, source: Tensor) -> list:
    found: list = []
    post_order_visit(op.body[0], lambda n: found.append(n) if isinstance(n, ProducerLoad)
                     and n.producer.op is source.op else None)
    return found


def conv_workload(conv: Tensor) -> tuple:
    """The conv2d's arguments (data shape, kernel shape, strides, padding, dilation, groups, dtype)."""
    window, padded, kernel = _operands(conv)
    data = padded.op.input_tensors[0] if padded is not None else window
    (load,) = _loads_of(conv.op, window)[:1]
    _, _, y, x = (iv.var for iv in conv.op.axis)
    _, ry, rx = (iv.var for iv in conv.op.reduce_axis)
    others = [iv.var for iv in conv.op.axis + conv.op.reduce_axis]
    strides = (_coefficient(load.indices[2], y, others), _coefficient(load.indices[3], x, others))
    dilation = (_coefficient(load.indices[2], ry, others), _coefficient(load.indices[3], rx, others))
    dshape = tuple(d.value for d in data.shape)
    kshape = tuple(d.value for d in kernel.shape)
    pads = (0, 0, 0, 0)
    if padded is not None:
        (pload,) = _loads_of(padded.op, data)[:1]
        pvars = [iv.var for iv in padded.op.axis]
        zero = {v: tir_op.const(0, v.dtype) for v in pvars}
        top = -Analyzer().simplify(substitute(pload.indices[2], zero)).value
        left = -Analyzer().simplify(substitute(pload.indices[3], zero)).value
        ph, pw = padded.shape[2].value, padded.shape[3].value
        pads = (top, left, ph - dshape[2] - top, pw - dshape[3] - left)
    groups = dshape[1] // kshape[1]
    return dshape, kshape, strides, pads, dilation, groups, conv.dtype


def _tiles(cfg: Any) -> ConvTiles:
    return ConvTiles(cfg["f_threads"].val, cfg["f_per_thread"].val, cfg["y_threads"].val,
                     cfg["x_threads"].val, cfg["rc_tile"].val)


def schedule_conv2d_nchw(outs: Any, tiles: ConvTiles | None = None) -> Schedule:
    """CUDA schedule of conv2d_nchw (and its epilogue): the tiles given, else the best record
    under ``apply_history_best``, else ``default_tiles`` for the layer's shape."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        chosen = tiles
        if chosen is None:
            conv = find_by_tag(out, CONV_TAG)
            dshape, kshape, strides, pads, dilation, groups, dtype = conv_workload(conv)
            depthwise = groups == dshape[1] == kshape[0] and groups > 1
            workload = (dshape, kshape, strides, pads, dilation, dtype) if depthwise else \
                (dshape, kshape, strides, pads, dilation, groups, dtype)
            cfg = dispatched(DEPTHWISE_TEMPLATE if depthwise else TEMPLATE, workload)
            if isinstance(cfg, FallbackConfigEntity):
                _, c_out, oh, ow = (d.value for d in conv.shape)
                chosen = default_tiles(c_out, oh, ow, kshape[1])
            else:
                chosen = _tiles(cfg)
        schedule_conv_output(s, out, chosen)

    return schedule_each_output(outs, schedule_output)


schedule_depthwise_conv2d_nchw = schedule_conv2d_nchw


def _define_knobs(cfg: Any, depthwise: bool) -> None:
    cfg.define_knob("f_threads", [4, 2, 8, 1, 16])
    cfg.define_knob("f_per_thread", [4, 2, 1, 8] if not depthwise else [1, 2, 4])
    cfg.define_knob("y_threads", [4, 2, 8, 1, 7])
    cfg.define_knob("x_threads", [8, 16, 4, 7, 14, 32])
    cfg.define_knob("rc_tile", [8, 4, 16, 1] if not depthwise else [1])


def _template(data_shape: tuple, kernel_shape: tuple, strides: Any, padding: Any, dilation: Any,
              groups: int, dtype: str) -> tuple[Schedule, list[Tensor]]:
    data = te.placeholder(tuple(data_shape), dtype, name="data")
    kernel = te.placeholder(tuple(kernel_shape), dtype, name="kernel")
    out = conv2d_nchw(data, kernel, strides, padding, dilation, groups)
    cfg = autotvm.get_config()
    _define_knobs(cfg, depthwise=groups > 1 and groups == data_shape[1])
    s = te.create_schedule(out.op)
    schedule_conv_output(s, out, _tiles(cfg))
    return s, [data, kernel, out]


@autotvm.template(TEMPLATE)
def conv2d_nchw_template(data_shape: tuple, kernel_shape: tuple, strides: Any, padding: Any,
                         dilation: Any, groups: int, dtype: str) -> tuple[Schedule, list[Tensor]]:
    """Tunable CUDA conv2d: threads along channels, rows and columns, channels per thread, rc tile."""
    return _template(data_shape, kernel_shape, strides, padding, dilation, groups, dtype)


@autotvm.template(DEPTHWISE_TEMPLATE)
def depthwise_conv2d_nchw_template(data_shape: tuple, kernel_shape: tuple, strides: Any, padding: Any,
                                   dilation: Any, dtype: str) -> tuple[Schedule, list[Tensor]]:
    """Tunable CUDA depthwise conv2d (groups = channels): the knobs of the conv2d template, rc tile 1."""
    return _template(data_shape, kernel_shape, strides, padding, dilation, data_shape[1], dtype)
