"""Direct convolution in channels-first layout: ``conv2d_nchw`` (its default CPU schedule and
tuning template) and ``conv3d_ncdhw``, which share one compute and one schedule.

Both follow ONNX Conv (strides, pads, dilations, groups, depthwise when groups == C_in ==
C_out) plus an optional bias/activation epilogue. The program has up to three stages, found by
tag: ``conv2d_pad`` (zero padding, inlined), ``conv2d_nchw`` (the reduction, whatever the
number of spatial dimensions) and ``conv2d_epilogue`` (bias and activation, elementwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from . import transform
from .common import (IntPair, accumulator_dtype, check_dtype, const_shape, fail, find_by_tag, int_pair, padding4,
                     schedule_each_output)

IntSeq = int | Sequence[int]


def int_tuple(op_name: str, value: IntSeq, count: int, argument: str, minimum: int) -> tuple[int, ...]:
    """``count`` ints from an int or a sequence of ``count`` ints, each at least ``minimum``."""
    values = (value,) * count if isinstance(value, int) else tuple(value)
    if len(values) != count or not all(isinstance(v, int) for v in values):
        raise fail(op_name, argument, f"expected an int or {count} ints, got {value!r}")
    if min(values) < minimum:
        raise fail(op_name, argument, f"values must be >= {minimum}, got {value!r}")
    return values


def spatial_pads(op_name: str, padding: IntSeq, spatial: int) -> tuple[int, ...]:
    """Non-negative pads (all begins, then all ends) from an int, ``spatial`` ints (both sides) or
    ``2 * spatial`` ints."""
    pads = (padding,) * spatial if isinstance(padding, int) else tuple(padding)
    if len(pads) == spatial:
        pads = pads * 2
    if len(pads) != 2 * spatial or not all(isinstance(p, int) for p in pads) or min(pads) < 0:
        raise fail(op_name, "padding", f"expected a non-negative int, {spatial} or {2 * spatial} of them, "
                                       f"got {padding!r}")
    return pads

OP = "conv2d_nchw"
PAD_TAG = "conv2d_pad"
CONV_TAG = "conv2d_nchw"
EPILOGUE_TAG = "conv2d_epilogue"

Activation = str | tuple | None


def pad_spatial(data: Tensor, pads: tuple[int, ...], tag: str) -> Tensor:
    """``data`` (NC + spatial, or blocked NCHW<b>c) zero-padded in its spatial dimensions by ``pads``
    (all begins, then all ends: (top, left, bottom, right) in 2-D)."""
    if not any(pads):
        return data
    spatial = len(pads) // 2
    rest = (0,) * (len(data.shape) - 2 - spatial)
    return transform.pad(data, (0, 0) + tuple(pads[:spatial]) + rest, (0, 0) + tuple(pads[spatial:]) + rest,
                         tag=tag)


_LAYOUTS = {2: "(N, C, H, W)", 3: "(N, C, D, H, W)"}


def _check_channels(op_name: str, dshape: tuple, kshape: tuple, groups: int, spatial: int) -> None:
    if len(dshape) != spatial + 2:
        raise fail(op_name, "data", f"expected {spatial + 2} dimensions {_LAYOUTS[spatial]}, got shape {dshape}")
    if len(kshape) != spatial + 2:
        raise fail(op_name, "kernel", f"expected {spatial + 2} dimensions (OC, C/groups, kernel...), "
                                      f"got shape {kshape}")
    if not isinstance(groups, int) or groups < 1:
        raise fail(op_name, "groups", f"must be a positive int, got {groups!r}")
    c_in, c_out = dshape[1], kshape[0]
    if c_in % groups or c_out % groups:
        raise fail(op_name, "groups", f"{groups} does not divide input channels {c_in} and output channels "
                                      f"{c_out}")
    if kshape[1] != c_in // groups:
        raise fail(op_name, "kernel", f"dimension 1 is {kshape[1]}, expected C_in/groups = {c_in // groups}")


def output_size(op_name: str, size: int, kernel: int, stride: int, dilation: int, axis: str) -> int:
    """Output extent of a (padded) input ``size`` under a dilated, strided kernel."""
    extent = (kernel - 1) * dilation + 1
    if extent > size:
        raise fail(op_name, "kernel", f"dilated kernel {axis} extent {extent} exceeds padded input {axis} {size}")
    return (size - extent) // stride + 1


def apply_epilogue(v: Any, bias_value: Any, activation: Activation, out_dtype: str | None = None) -> Any:
    """``activation(v + bias_value)`` in ``v``'s dtype (the accumulator's), rounded to ``out_dtype``
    (default ``v``'s); ``bias_value`` None for no bias."""
    dtype = v.dtype
    if bias_value is not None:
        v = v + tir_op.cast(bias_value, dtype)
    if activation == "relu":
        v = tir_op.max_expr(v, te.const(0, dtype))
    elif activation is not None:
        v = tir_op.min_expr(tir_op.max_expr(v, te.const(activation[1], dtype)), te.const(activation[2], dtype))
    return tir_op.cast(v, out_dtype or dtype)


def _epilogue(conv: Tensor, bias: Tensor | None, activation: Activation, dtype: str) -> Tensor:
    """Bias and activation after ``conv``, and the rounding to ``dtype`` when it accumulates in another."""
    if bias is None and activation is None and conv.dtype == dtype:
        return conv
    def body(n, oc, *rest):
        return apply_epilogue(conv[(n, oc) + rest], None if bias is None else bias[oc], activation, dtype)

    if len(conv.shape) == 4:  # the lambda names the axes (loop names in printed IR)
        return te.compute(conv.shape, lambda n, oc, y, x: body(n, oc, y, x), name="conv2d_out", tag=EPILOGUE_TAG)
    return te.compute(conv.shape, body, name="conv2d_out", tag=EPILOGUE_TAG)


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
    window = (int_pair(OP, strides, "strides", 1), padding4(OP, padding), int_pair(OP, dilation, "dilation", 1))
    return _conv(OP, 2, data, kernel, window, groups, bias, activation)


def conv3d_ncdhw(data: Tensor, kernel: Tensor, strides: IntSeq = 1, padding: IntSeq = 0,
                 dilation: IntSeq = 1, groups: int = 1, bias: Tensor | None = None,
                 activation: Activation = None) -> Tensor:
    """3-D convolution, the same as ``conv2d_nchw`` with a depth axis: data ``[N, C, D, H, W]``, kernel
    ``[OC, C/groups, KD, KH, KW]``; ``strides``/``dilation`` an int or three, ``padding`` an int, three
    or six (all begins, then all ends)."""
    op_name = "conv3d_ncdhw"
    window = (int_tuple(op_name, strides, 3, "strides", 1), spatial_pads(op_name, padding, 3),
              int_tuple(op_name, dilation, 3, "dilation", 1))
    return _conv(op_name, 3, data, kernel, window, groups, bias, activation)


_AXES = ("depth", "height", "width")


def _conv(op_name: str, spatial: int, data: Tensor, kernel: Tensor, window: tuple, groups: int,
          bias: Tensor | None, activation: Activation) -> Tensor:
    """The direct convolution over ``spatial`` dimensions; ``window`` is (strides, pads, dilations)."""
    check_dtype(data, op_name, "data")
    if kernel.dtype != data.dtype:
        raise fail(op_name, "kernel", f"dtype {kernel.dtype} differs from data dtype {data.dtype}")
    dshape, kshape = const_shape(data, op_name, "data"), const_shape(kernel, op_name, "kernel")
    _check_channels(op_name, dshape, kshape, groups, spatial)
    strides, pads, dilations = window
    check_epilogue(op_name, bias, activation, kshape[0], data.dtype)
    c_out, cpg = kshape[:2]
    out_spatial = tuple(output_size(op_name, dshape[2 + i] + pads[i] + pads[spatial + i], kshape[2 + i],
                                    strides[i], dilations[i], _AXES[3 - spatial + i]) for i in range(spatial))
    padded = pad_spatial(data, pads, PAD_TAG)
    rc = te.reduce_axis((0, cpg), name="rc")
    names = ("rz", "ry", "rx")[3 - spatial:]
    rs = [te.reduce_axis((0, k), name=name) for k, name in zip(kshape[2:], names)]
    opg = c_out // groups

    def in_channel(oc):
        if groups == 1:
            return rc
        if cpg == 1 and opg == 1:
            return oc
        return oc // opg * cpg + rc

    def body(b, oc, *o):
        taps = tuple(v * s + r * d for v, s, r, d in zip(o, strides, rs, dilations))
        return te.sum(tir_op.cast(padded[(b, in_channel(oc)) + taps], acc)
                      * tir_op.cast(kernel[(oc, rc) + tuple(rs)], acc), axis=[rc] + rs)

    acc = accumulator_dtype(data.dtype)

    # the lambdas name the output axes (loop names in printed IR and tuning features)
    if spatial == 2:
        conv = te.compute((dshape[0], c_out) + out_spatial, lambda b, oc, y, x: body(b, oc, y, x),
                          name="conv2d", tag=CONV_TAG)
    else:
        conv = te.compute((dshape[0], c_out) + out_spatial, lambda b, oc, z, y, x: body(b, oc, z, y, x),
                          name="conv3d", tag=CONV_TAG)
    return _epilogue(conv, bias, activation, data.dtype)


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
    oc, ow = stage.op.axis[1], stage.op.axis[-1]
    rc, *taps = stage.op.reduce_axis
    rx = taps[-1]
    owo, owi = stage.split(ow, factor=ow_tile)
    reduce = (rc, *taps) if knobs.reduce_order == "rc_ry_rx" else (*taps, rc)
    stage.reorder(owo, *reduce, oc, owi)
    stage.vectorize(owi)
    kw = rx.dom.extent
    if knobs.unroll_kw and getattr(kw, "value", 0) <= 7:
        stage.unroll(rx)


def schedule_conv_output(s: Schedule, out: Tensor, knobs: ConvSchedule) -> None:
    """Schedule the convolution (2-D or 3-D) ending in ``out`` (conv itself or its epilogue) inside ``s``."""
    conv = find_by_tag(out, CONV_TAG)
    padded = find_by_tag(conv, PAD_TAG)
    if padded is not None:
        s[padded].compute_inline()
    acc = s.cache_write(out, "local") if conv is out else conv
    c_out, ow = out.shape[1].value, out.shape[-1].value
    oc_tile, ow_tile = _tile(c_out, knobs.oc_tile), _tile(ow, knobs.ow_tile)
    stage = s[out]
    n, oc, *rows, x = stage.op.axis
    oco, oci = stage.split(oc, factor=oc_tile)
    xo, xi = stage.split(x, factor=ow_tile)
    stage.reorder(n, oco, *rows, xo, oci, xi)
    stage.parallel(stage.fuse(n, oco))
    stage.vectorize(xi)
    s[acc].compute_at(stage, xo)
    _schedule_accumulator(s, acc, knobs, ow_tile)


def schedule_conv2d_nchw(outs: Any) -> Schedule:
    """Default direct CPU schedule: parallel over (n, oc block); a local accumulator per
    (row, ow block) of an oc block, its reduction loops outside the vectorized ow loop."""
    return schedule_each_output(outs, lambda s, o: schedule_conv_output(s, o, ConvSchedule()))


schedule_conv3d_ncdhw = schedule_conv2d_nchw


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
