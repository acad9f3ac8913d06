"""2-D convolution in NCHW layout: the operator, its default CPU schedule and its tuning template.

``conv2d_nchw`` follows ONNX Conv (strides, pads, dilations, groups, depthwise when
groups == C_in == C_out) plus an optional bias/activation epilogue. The program has up to
three stages, found by tag: ``conv2d_pad`` (zero padding, inlined), ``conv2d_nchw`` (the
reduction) and ``conv2d_epilogue`` (bias and activation, elementwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from . import transform
from .common import (IntPair, check_dtype, const_shape, fail, find_by_tag, int_pair, padding4,
                     schedule_each_output)

OP = "conv2d_nchw"
PAD_TAG = "conv2d_pad"
CONV_TAG = "conv2d_nchw"
EPILOGUE_TAG = "conv2d_epilogue"

Activation = str | tuple | None


def pad_spatial(data: Tensor, pads: tuple[int, int, int, int], tag: str) -> Tensor:
    """``data`` (NCHW, or blocked NCHW<b>c) zero-padded by (top, left, bottom, right) in H and W."""
    if not any(pads):
        return data
    top, left, bottom, right = pads
    rest = (0,) * (len(data.shape) - 4)
    return transform.pad(data, (0, 0, top, left) + rest, (0, 0, bottom, right) + rest, tag=tag)


def _check_channels(dshape: tuple, kshape: tuple, groups: int) -> None:
    if len(dshape) != 4:
        raise fail(OP, "data", f"expected 4 dimensions (N, C, H, W), got shape {dshape}")
    if len(kshape) != 4:
        raise fail(OP, "kernel", f"expected 4 dimensions (OC, C/groups, KH, KW), got shape {kshape}")
    if not isinstance(groups, int) or groups < 1:
        raise fail(OP, "groups", f"must be a positive int, got {groups!r}")
    c_in, c_out = dshape[1], kshape[0]
    if c_in % groups or c_out % groups:
        raise fail(OP, "groups", f"{groups} does not divide input channels {c_in} and output channels {c_out}")
    if kshape[1] != c_in // groups:
        raise fail(OP, "kernel", f"dimension 1 is {kshape[1]}, expected C_in/groups = {c_in // groups}")


def output_size(op_name: str, size: int, kernel: int, stride: int, dilation: int, axis: str) -> int:
    """Output extent of a (padded) input ``size`` under a dilated, strided kernel."""
    extent = (kernel - 1) * dilation + 1
    if extent > size:
        raise fail(op_name, "kernel", f"dilated kernel {axis} extent {extent} exceeds padded input {axis} {size}")
    return (size - extent) // stride + 1


def apply_epilogue(v: Any, bias_value: Any, activation: Activation) -> Any:
    """``activation(v + bias_value)``; ``bias_value`` None for no bias."""
    dtype = v.dtype
    if bias_value is not None:
        v = v + bias_value
    if activation == "relu":
        return tir_op.max_expr(v, te.const(0, dtype))
    if activation is not None:
        return tir_op.min_expr(tir_op.max_expr(v, te.const(activation[1], dtype)), te.const(activation[2], dtype))
    return v


def _epilogue(conv: Tensor, bias: Tensor | None, activation: Activation) -> Tensor:
    if bias is None and activation is None:
        return conv
    return te.compute(conv.shape, lambda n, oc, y, x: apply_epilogue(
        conv[n, oc, y, x], None if bias is None else bias[oc], activation), name="conv2d_out", tag=EPILOGUE_TAG)


def check_epilogue(op_name: str, bias: Tensor | None, activation: Activation, c_out: int, dtype: str) -> None:
    """Raise OperatorError unless ``bias`` is ``[c_out]`` of ``dtype`` and ``activation`` is
    None, "relu" or ("clip", lo, hi) with lo <= hi."""
    if bias is not None:
        if const_shape(bias, op_name, "bias") != (c_out,):
            raise fail(op_name, "bias", f"expected shape ({c_out},), got {const_shape(bias, op_name, 'bias')}")
        if bias.dtype != dtype:
            raise fail(op_name, "bias", f"dtype {bias.dtype} differs from data dtype {dtype}")
    ok = activation in (None, "relu") or (isinstance(activation, tuple) and len(activation) == 3
                                          and activation[0] == "clip" and activation[1] <= activation[2])
    if not ok:
        raise fail(op_name, "activation", f"expected None, 'relu' or ('clip', lo, hi) with lo <= hi, "
                                          f"got {activation!r}")


def conv2d_nchw(data: Tensor, kernel: Tensor, strides: IntPair = 1, padding: IntPair = 0,
                dilation: IntPair = 1, groups: int = 1, bias: Tensor | None = None,
                activation: Activation = None) -> Tensor:
    """out[n, oc, y, x] = act(bias[oc] + sum_{rc, ry, rx} pad(data)[n, ic, y*sh + ry*dh, x*sw + rx*dw] * kernel[oc, rc, ry, rx]).

    ``ic = (oc // (OC/groups)) * (C/groups) + rc``. Raises OperatorError for bad arguments.
    """
    check_dtype(data, OP, "data")
    if kernel.dtype != data.dtype:
        raise fail(OP, "kernel", f"dtype {kernel.dtype} differs from data dtype {data.dtype}")
    dshape, kshape = const_shape(data, OP, "data"), const_shape(kernel, OP, "kernel")
    _check_channels(dshape, kshape, groups)
    (sh, sw), (dh, dw) = int_pair(OP, strides, "strides", 1), int_pair(OP, dilation, "dilation", 1)
    pads = padding4(OP, padding)
    check_epilogue(OP, bias, activation, kshape[0], data.dtype)
    n, _, h, w = dshape
    c_out, cpg, kh, kw = kshape
    oh = output_size(OP, h + pads[0] + pads[2], kh, sh, dh, "height")
    ow = output_size(OP, w + pads[1] + pads[3], kw, sw, dw, "width")
    padded = pad_spatial(data, pads, PAD_TAG)
    rc = te.reduce_axis((0, cpg), name="rc")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    opg = c_out // groups

    def in_channel(oc):
        if groups == 1:
            return rc
        if cpg == 1 and opg == 1:
            return oc
        return oc // opg * cpg + rc

    conv = te.compute(
        (n, c_out, oh, ow),
        lambda b, oc, y, x: te.sum(padded[b, in_channel(oc), y * sh + ry * dh, x * sw + rx * dw]
                                   * kernel[oc, rc, ry, rx], axis=[rc, ry, rx]),
        name="conv2d", tag=CONV_TAG)
    return _epilogue(conv, bias, activation)


# ----------------------------------------------------------------------------- schedule

@dataclass(frozen=True)
class ConvSchedule:
    """The knobs of the direct schedule."""
    oc_tile: int = 8
    ow_tile: int = 8
    unroll_kw: bool = True
    reduce_order: str = "rc_ry_rx"


REDUCE_ORDERS = ("rc_ry_rx", "ry_rx_rc")


def _tile(extent: int, wanted: int) -> int:
    """``wanted`` if the axis is at least that long, else the whole axis."""
    return max(1, min(wanted, extent))


def _schedule_accumulator(s: Schedule, acc: Tensor, knobs: ConvSchedule, ow_tile: int) -> None:
    stage = s[acc]
    _, oc, _, ow = stage.op.axis
    rc, ry, rx = stage.op.reduce_axis
    owo, owi = stage.split(ow, factor=ow_tile)
    reduce = (rc, ry, rx) if knobs.reduce_order == "rc_ry_rx" else (ry, rx, rc)
    stage.reorder(owo, *reduce, oc, owi)
    stage.vectorize(owi)
    kw = rx.dom.extent
    if knobs.unroll_kw and getattr(kw, "value", 0) <= 7:
        stage.unroll(rx)


def schedule_conv_output(s: Schedule, out: Tensor, knobs: ConvSchedule) -> None:
    """Schedule the conv2d ending in ``out`` (conv itself or its epilogue) inside ``s``."""
    conv = find_by_tag(out, CONV_TAG)
    padded = find_by_tag(conv, PAD_TAG)
    if padded is not None:
        s[padded].compute_inline()
    acc = s.cache_write(out, "local") if conv is out else conv
    _, c_out, _, ow = (d.value for d in out.shape)
    oc_tile, ow_tile = _tile(c_out, knobs.oc_tile), _tile(ow, knobs.ow_tile)
    stage = s[out]
    n, oc, y, x = stage.op.axis
    oco, oci = stage.split(oc, factor=oc_tile)
    xo, xi = stage.split(x, factor=ow_tile)
    stage.reorder(n, oco, y, xo, oci, xi)
    stage.parallel(stage.fuse(n, oco))
    stage.vectorize(xi)
    s[acc].compute_at(stage, xo)
    _schedule_accumulator(s, acc, knobs, ow_tile)


def schedule_conv2d_nchw(outs: Any) -> Schedule:
    """Default direct CPU schedule: parallel over (n, oc block); a local accumulator per
    (row, ow block) of an oc block, its reduction loops outside the vectorized ow loop."""
    return schedule_each_output(outs, lambda s, o: schedule_conv_output(s, o, ConvSchedule()))


@autotvm.template("schedules/conv2d_nchw")
def conv2d_nchw_template(data_shape: tuple, kernel_shape: tuple, strides: IntPair, padding: IntPair,
                         dilation: IntPair, groups: int, dtype: str) -> tuple[Schedule, list[Tensor]]:
    """Tunable conv2d: knobs oc tile, ow vector tile, unroll kw, reduce order."""
    data = te.placeholder(tuple(data_shape), dtype, name="data")
    kernel = te.placeholder(tuple(kernel_shape), dtype, name="kernel")
    out = conv2d_nchw(data, kernel, strides, padding, dilation, groups)
    cfg = autotvm.get_config()
    cfg.define_knob("tile_oc", [4, 8, 16])
    cfg.define_knob("tile_ow", [8, 16])
    cfg.define_knob("unroll_kw", [1, 0])
    cfg.define_knob("reduce_order", list(REDUCE_ORDERS))
    knobs = ConvSchedule(cfg["tile_oc"].val, cfg["tile_ow"].val, bool(cfg["unroll_kw"].val),
                         cfg["reduce_order"].val)
    s = te.create_schedule(out.op)
    schedule_conv_output(s, out, knobs)
    return s, [data, kernel, out]
