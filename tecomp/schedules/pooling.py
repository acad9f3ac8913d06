"""2-D pooling in NCHW layout (ONNX MaxPool, AveragePool, GlobalAveragePool) and its schedule.

Padding is never read: window positions outside the input are skipped by a guard (max) or
left out of the sum and, unless ``count_include_pad``, out of the divisor (average).
"""

from __future__ import annotations

from typing import Any

from .. import te
from ..te.operation import ComputeOp
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (IntPair, check_dtype, const_shape, fail, int_pair, padding4,
                     schedule_each_output)


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


def _geometry(op: str, x: Tensor, kernel: IntPair, strides: IntPair, padding: IntPair, ceil_mode: bool):
    check_dtype(x, op, "x")
    shape = const_shape(x, op, "x")
    if len(shape) != 4:
        raise fail(op, "x", f"expected 4 dimensions (N, C, H, W), got shape {shape}")
    k, s, p = int_pair(op, kernel, "kernel", 1), int_pair(op, strides, "strides", 1), padding4(op, padding)
    out = tuple(_out_size(op, shape[2 + i], p[i], p[i + 2], k[i], s[i], ceil_mode) for i in range(2))
    return shape, k, s, p, out


def max_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False) -> Tensor:
    """ONNX MaxPool (NCHW): the maximum over each window's in-bounds elements."""
    (n, c, h, w), (kh, kw), (sh, sw), pads, (oh, ow) = _geometry("max_pool2d", x, kernel, strides,
                                                                  padding, ceil_mode)
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    lowest = te.min_value(x.dtype)

    def body(b, ch, i, j):
        y, z = i * sh + ry - pads[0], j * sw + rx - pads[1]
        inside = te.all(y >= 0, y < h, z >= 0, z < w)
        return te.max(te.if_then_else(inside, x[b, ch, y, z], lowest), axis=[ry, rx])

    return te.compute((n, c, oh, ow), body, name="max_pool2d", tag="pool")


def _window_count(i, stride: int, kernel: int, pad: int, lo: int, hi: int):
    """Number of window positions of output ``i`` inside [lo, hi) (input coordinates)."""
    start = i * stride - pad
    return tir_op.min_expr(start + kernel, hi) - tir_op.max_expr(start, lo)


def avg_pool2d(x: Tensor, kernel: IntPair, strides: IntPair = 1, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = False) -> Tensor:
    """ONNX AveragePool (NCHW): window sum over in-bounds elements divided by the count of
    in-bounds elements, or of elements inside the padded input with ``count_include_pad``."""
    (n, c, h, w), (kh, kw), (sh, sw), pads, (oh, ow) = _geometry("avg_pool2d", x, kernel, strides,
                                                                  padding, ceil_mode)
    ry, rx = te.reduce_axis((0, kh), name="ry"), te.reduce_axis((0, kw), name="rx")
    zero = te.const(0, x.dtype)

    def window_sum(b, ch, i, j):
        y, z = i * sh + ry - pads[0], j * sw + rx - pads[1]
        inside = te.all(y >= 0, y < h, z >= 0, z < w)
        return te.sum(te.if_then_else(inside, x[b, ch, y, z], zero), axis=[ry, rx])

    total = te.compute((n, c, oh, ow), window_sum, name="avg_pool2d_sum", tag="pool")
    lo_y, hi_y = (-pads[0], h + pads[2]) if count_include_pad else (0, h)
    lo_x, hi_x = (-pads[1], w + pads[3]) if count_include_pad else (0, w)

    def average(b, ch, i, j):
        count = (_window_count(i, sh, kh, pads[0], lo_y, hi_y)
                 * _window_count(j, sw, kw, pads[1], lo_x, hi_x))
        return total[b, ch, i, j] / tir_op.cast(count, x.dtype)

    return te.compute((n, c, oh, ow), average, name="avg_pool2d", tag="pool_epilogue")


def global_avg_pool2d(x: Tensor) -> Tensor:
    """ONNX GlobalAveragePool (NCHW): the mean over H and W, shape (N, C, 1, 1)."""
    check_dtype(x, "global_avg_pool2d", "x")
    shape = const_shape(x, "global_avg_pool2d", "x")
    if len(shape) != 4:
        raise fail("global_avg_pool2d", "x", f"expected 4 dimensions (N, C, H, W), got shape {shape}")
    n, c, h, w = shape
    ry, rx = te.reduce_axis((0, h), name="ry"), te.reduce_axis((0, w), name="rx")
    total = te.compute((n, c, 1, 1), lambda b, ch, i, j: te.sum(x[b, ch, ry, rx], axis=[ry, rx]),
                       name="global_avg_pool2d_sum", tag="pool")
    return te.compute((n, c, 1, 1), lambda b, ch, i, j: total[b, ch, i, j] / te.const(h * w, x.dtype),
                      name="global_avg_pool2d", tag="pool_epilogue")


def _schedule_output(s: Schedule, out: Tensor) -> None:
    stage = s[out]
    op = stage.op
    producers = [t for t in op.input_tensors if isinstance(t.op, ComputeOp) and t.op.reduce_axis]
    fused = stage.fuse(*op.axis[:2])
    stage.parallel(fused)
    for p in producers:
        s[p].compute_at(stage, fused)


def schedule_pool(outs: Any) -> Schedule:
    """Default CPU schedule of the pooling operators: parallel over (n, c); the window sum of
    an average is computed inside that loop, next to its division."""
    return schedule_each_output(outs, _schedule_output)
