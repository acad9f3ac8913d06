"""2-D convolution in the blocked NCHW[x]c layout: layout transforms, the packed operators,
their CPU schedules and tuning templates.

Data in ``NCHW{b}c`` is ``[N, C/b, H, W, b]``: channel ``c`` lives in block ``c // b`` at lane
``c % b``. A packed kernel is ``[OC/ob, C/ib, KH, KW, ib, ob]``, so the innermost loop of a
convolution multiplies one broadcast input value by ``ob`` contiguous weights and accumulates
``ob`` output channels at once: a register tile of ``reg_n`` output columns times ``ob``
channels stays in vector registers over the whole reduction.

``conv2d_nchwc`` (any groups whose channel counts the blocks divide) and
``depthwise_conv2d_nchwc`` (one input channel per output channel, kernel ``[C/b, KH, KW, b]``) take and return blocked tensors. A model keeps conv
chains blocked; ``layout_transform`` converts at the edges and packs weights (constant folded
in a model). A model's layout pass picks the blocks (``conv2d_nchwc_blocks``); each blocked
kernel then asks for the config of its workload with those blocks fixed, so tuning a model's
kernels changes their register tiles, never the layout between them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional

from .. import te
from .. import tuner as autotvm
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import dtype as tir_dtype
from ..tir import op as tir_op
from .common import (IntPair, accumulator_dtype, check_dtype, const_shape, fail, find_by_tag, inline_between, int_pair, padding4,
                     row_lanes, schedule_each_output, schedule_injective, schedule_injective_stage)
from .conv2d import Activation, apply_epilogue, check_epilogue, output_size, pad_spatial
from .vector_unit import vector_unit

OP = "conv2d_nchwc"
DW_OP = "depthwise_conv2d_nchwc"
PAD_TAG = "conv2d_nchwc_pad"
CONV_TAG = "conv2d_nchwc"
LAYOUT_TAG = "layout_transform"
TEMPLATE = "schedules/conv2d_nchwc"
DW_TEMPLATE = "schedules/depthwise_conv2d_nchwc"
COPY_LANES = 16  # vector width of the layout transforms' copies (wider than a register is fine there)
MAX_ROWS_PER_TASK = 8  # output rows a depthwise task pads its input for at once
PADDED_CHUNK_BYTES = 96 << 10  # the padded input rows of one task: L2-resident on any x86 core
MIN_TASKS = 16  # parallel tasks a depthwise conv keeps when it groups rows
L1_BYTES = 32 << 10  # a core's L1 data cache (Zen 2-4, Skylake): a 1x1 conv's weights beyond it get chunked

_BLOCKED = re.compile(r"NCHW(\d+)c")


# ----------------------------------------------------------------------------- layouts

def block_of(layout: str, argument: str) -> int:
    """0 for "NCHW", b for "NCHW{b}c"."""
    if layout == "NCHW":
        return 0
    m = _BLOCKED.fullmatch(layout)
    if m is None or int(m.group(1)) < 1:
        raise fail(LAYOUT_TAG, argument, f"expected 'NCHW' or 'NCHW<b>c' with b >= 1, got {layout!r}")
    return int(m.group(1))


def layout_transform(x: Tensor, src_layout: str, dst_layout: str) -> Tensor:
    """Convert ``x`` between ``NCHW`` and blocked ``NCHW{b}c`` layouts (either direction, or
    between two block sizes). The channel count must be a multiple of every block size."""
    src, dst = block_of(src_layout, "src_layout"), block_of(dst_layout, "dst_layout")
    shape = const_shape(x, LAYOUT_TAG, "x")
    if len(shape) != (5 if src else 4):
        raise fail(LAYOUT_TAG, "x", f"shape {shape} does not match layout {src_layout}")
    if src and shape[-1] != src:
        raise fail(LAYOUT_TAG, "x", f"last dimension {shape[-1]} is not the block size of {src_layout}")
    n, c, h, w = (shape[0], shape[1] * src, shape[2], shape[3]) if src else shape
    if dst and c % dst:
        raise fail(LAYOUT_TAG, "dst_layout", f"{c} channels are not a multiple of the block size {dst}")
    if src == dst:
        return x

    def load(b: Any, ch: Any, y: Any, z: Any) -> Any:
        return x[b, ch // src, y, z, ch % src] if src else x[b, ch, y, z]

    if dst:
        return te.compute((n, c // dst, h, w, dst), lambda b, cc, y, z, cb: load(b, cc * dst + cb, y, z),
                          name="layout_transform", tag=LAYOUT_TAG)
    return te.compute((n, c, h, w), load, name="layout_transform", tag=LAYOUT_TAG)


def pack_conv2d_kernel(kernel: Tensor, ic_block: int, oc_block: int) -> Tensor:
    """An ``OIHW`` kernel as ``[OC/ob, C/ib, KH, KW, ib, ob]`` (for ``conv2d_nchwc``)."""
    oc, ic, kh, kw = _rank4(kernel, "kernel", LAYOUT_TAG)
    if ic % ic_block or oc % oc_block:
        raise fail(LAYOUT_TAG, "kernel", f"channels ({oc} out, {ic} in) are not multiples of the blocks "
                                         f"({oc_block} out, {ic_block} in)")
    return te.compute((oc // oc_block, ic // ic_block, kh, kw, ic_block, oc_block),
                      lambda o, i, y, x, ib, ob: kernel[o * oc_block + ob, i * ic_block + ib, y, x],
                      name="packed_kernel", tag=LAYOUT_TAG)


def pack_depthwise_kernel(kernel: Tensor, block: int) -> Tensor:
    """A depthwise ``[C, 1, KH, KW]`` kernel as ``[C/b, KH, KW, b]`` (for ``depthwise_conv2d_nchwc``)."""
    c, one, kh, kw = _rank4(kernel, "kernel", LAYOUT_TAG)
    if one != 1 or c % block:
        raise fail(LAYOUT_TAG, "kernel", f"expected [C, 1, KH, KW] with C a multiple of {block}, "
                                         f"got {(c, one, kh, kw)}")
    return te.compute((c // block, kh, kw, block), lambda o, y, x, b: kernel[o * block + b, 0, y, x],
                      name="packed_kernel", tag=LAYOUT_TAG)


def _rank4(t: Tensor, argument: str, op_name: str) -> tuple[int, int, int, int]:
    shape = const_shape(t, op_name, argument)
    if len(shape) != 4:
        raise fail(op_name, argument, f"expected 4 dimensions, got shape {shape}")
    return shape


# ----------------------------------------------------------------------------- operators

def _workload(data_shape: tuple, kernel_shape: tuple, g: "_Geometry", dtype: str,
              blocks: tuple[int, int]) -> tuple:
    """The template arguments of a blocked conv: NCHW data and OIHW kernel shapes, and the
    (input, output) channel blocks the kernel runs in, so its task tunes only the knobs that
    keep the layout the model chose."""
    return (data_shape, kernel_shape, g.strides, g.pads, g.dilation, dtype, blocks)


@dataclass(frozen=True)
class _Geometry:
    strides: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    out_h: int
    out_w: int


def _geometry(op_name: str, h: int, w: int, kh: int, kw: int, strides: IntPair, padding: IntPair,
              dilation: IntPair) -> _Geometry:
    st, dl = int_pair(op_name, strides, "strides", 1), int_pair(op_name, dilation, "dilation", 1)
    pads = padding4(op_name, padding)
    oh = output_size(op_name, h + pads[0] + pads[2], kh, st[0], dl[0], "height")
    ow = output_size(op_name, w + pads[1] + pads[3], kw, st[1], dl[1], "width")
    return _Geometry(st, dl, pads, oh, ow)


def blocked_data(data: Tensor, op_name: str) -> tuple[int, ...]:
    check_dtype(data, op_name, "data")
    shape = const_shape(data, op_name, "data")
    if len(shape) != 5:
        raise fail(op_name, "data", f"expected 5 dimensions (N, C/b, H, W, b), got shape {shape}")
    return shape


def blocked_epilogue(conv: Tensor, bias: Tensor | None, activation: Activation, op_name: str,
                      dtype: str) -> Tensor:
    """``conv`` plus bias (``[OC]``, in plain channel order) and activation, still blocked, rounded to
    ``dtype`` when the convolution accumulates in another (float16)."""
    _, occ, _, _, ob = (d.value for d in conv.shape)
    check_epilogue(op_name, bias, activation, occ * ob, dtype)
    if bias is None and activation is None and conv.dtype == dtype:
        return conv
    return te.compute(conv.shape, lambda n, c, y, x, b: apply_epilogue(
        conv[n, c, y, x, b], None if bias is None else bias[c * ob + b], activation, dtype),
        name=f"{op_name}_out", tag=f"{op_name}_epilogue")


def conv2d_nchwc(data: Tensor, kernel: Tensor, strides: IntPair = 1, padding: IntPair = 0,
                 dilation: IntPair = 1, bias: Tensor | None = None, activation: Activation = None,
                 groups: int = 1) -> Tensor:
    """Blocked convolution: ``data [N, C/ib, H, W, ib]``, ``kernel [OC/ob, C/groups/ib, KH, KW, ib, ob]``
    (see ``pack_conv2d_kernel``) -> ``[N, OC/ob, OH, OW, ob]``; the arithmetic of ``conv2d_nchw``.

    With ``groups`` > 1 each output block lies in one group (``ob`` divides OC/groups) and reads
    the input blocks of that group only (``ib`` divides C/groups). ``bias`` is ``[OC]``;
    ``activation`` None, "relu" or ("clip", lo, hi).
    """
    n, icc, h, w, ib = blocked_data(data, OP)
    kshape = const_shape(kernel, OP, "kernel")
    if kernel.dtype != data.dtype:
        raise fail(OP, "kernel", f"dtype {kernel.dtype} differs from data dtype {data.dtype}")
    if not isinstance(groups, int) or groups < 1 or icc % groups:
        raise fail(OP, "groups", f"must be a positive int dividing the {icc} input blocks of {ib} channels, "
                                 f"got {groups!r}")
    group_blocks = icc // groups
    if len(kshape) != 6 or kshape[1] != group_blocks or kshape[4] != ib:
        raise fail(OP, "kernel", f"expected [OC/ob, {group_blocks}, KH, KW, {ib}, ob] for data "
                                 f"{(n, icc, h, w, ib)} and groups={groups}, got {kshape}")
    occ, _, kh, kw, _, ob = kshape
    if occ % groups:
        raise fail(OP, "kernel", f"{occ} output blocks of {ob} channels do not split into {groups} groups")
    out_blocks_per_group = occ // groups
    g = _geometry(OP, h, w, kh, kw, strides, padding, dilation)
    padded = pad_spatial(data, g.pads, PAD_TAG)
    (sh, sw), (dh, dw) = g.strides, g.dilation
    acc = accumulator_dtype(data.dtype)
    ric = te.reduce_axis((0, group_blocks), name="ic_outer")
    rib = te.reduce_axis((0, ib), name="ic_inner")
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")

    def in_block(oc: Any) -> Any:
        return ric if groups == 1 else oc // out_blocks_per_group * group_blocks + ric

    conv = te.compute(
        (n, occ, g.out_h, g.out_w, ob),
        lambda b, oc, y, x, lane: te.sum(
            tir_op.cast(padded[b, in_block(oc), y * sh + ry * dh, x * sw + rx * dw, rib], acc)
            * tir_op.cast(kernel[oc, ric, ry, rx, rib, lane], acc), axis=[ric, ry, rx, rib]),
        name="conv2d_nchwc", tag=CONV_TAG,
        attrs={"template": TEMPLATE, "workload": _workload((n, icc * ib, h, w),
                                                           (occ * ob, group_blocks * ib, kh, kw), g, data.dtype,
                                                           (ib, ob))})
    return blocked_epilogue(conv, bias, activation, OP, data.dtype)


def depthwise_conv2d_nchwc(data: Tensor, kernel: Tensor, strides: IntPair = 1, padding: IntPair = 0,
                           dilation: IntPair = 1, bias: Tensor | None = None,
                           activation: Activation = None) -> Tensor:
    """Blocked depthwise convolution: ``data [N, C/b, H, W, b]``, ``kernel [C/b, KH, KW, b]``
    (see ``pack_depthwise_kernel``) -> ``[N, C/b, OH, OW, b]``."""
    n, cc, h, w, b = blocked_data(data, DW_OP)
    kshape = const_shape(kernel, DW_OP, "kernel")
    if kernel.dtype != data.dtype:
        raise fail(DW_OP, "kernel", f"dtype {kernel.dtype} differs from data dtype {data.dtype}")
    if len(kshape) != 4 or kshape[0] != cc or kshape[3] != b:
        raise fail(DW_OP, "kernel", f"expected [{cc}, KH, KW, {b}] for data {(n, cc, h, w, b)}, got {kshape}")
    _, kh, kw, _ = kshape
    g = _geometry(DW_OP, h, w, kh, kw, strides, padding, dilation)
    padded = pad_spatial(data, g.pads, PAD_TAG)
    (sh, sw), (dh, dw) = g.strides, g.dilation
    ry = te.reduce_axis((0, kh), name="ry")
    rx = te.reduce_axis((0, kw), name="rx")
    acc = accumulator_dtype(data.dtype)
    conv = te.compute(
        (n, cc, g.out_h, g.out_w, b),
        lambda i, c, y, x, lane: te.sum(tir_op.cast(padded[i, c, y * sh + ry * dh, x * sw + rx * dw, lane], acc)
                                        * tir_op.cast(kernel[c, ry, rx, lane], acc), axis=[ry, rx]),
        name="depthwise_conv2d_nchwc", tag=CONV_TAG,
        attrs={"template": DW_TEMPLATE, "workload": _workload((n, cc * b, h, w), (cc * b, 1, kh, kw), g,
                                                              data.dtype, (b, b))})
    return blocked_epilogue(conv, bias, activation, DW_OP, data.dtype)


# ----------------------------------------------------------------------------- schedule

@dataclass(frozen=True)
class NchwcSchedule:
    """Knobs of the blocked schedule: output columns per register tile, kw unrolled, output
    channel blocks per register tile, input channel blocks per reduction chunk (0: the whole
    reduction inside each register tile)."""

    reg_n: int = 8
    unroll_kw: bool = True
    oc_blocks: int = 1
    ic_chunk: int = 0


def default_reg_n(out_w: int, limit: int) -> int:
    """The widest register tile up to ``limit`` that divides the output width (never guarded)."""
    return next(t for t in range(min(limit, out_w), 0, -1) if out_w % t == 0)


def _even_tiles(out_w: int, limit: int) -> int:
    """The tile that covers ``out_w`` columns in the fewest tiles of at most ``limit``, as equal as
    they can be (13 columns, limit 9: 7, the tail of 6 peeled by loop partitioning)."""
    return -(-out_w // -(-out_w // limit))


def accumulator_limit(wanted: int, lanes: int) -> int:
    """Up to ``wanted`` rows of ``lanes``-channel accumulators, as many as the vector registers hold."""
    return max(1, min(wanted, vector_unit().rows_that_fit(lanes)))


def register_tile(out_w: int, wanted: int, lanes: int) -> int:
    """Output columns per accumulator tile of ``lanes`` channels: ``wanted`` when it divides the
    width and its accumulators fit the vector registers; else the widest tile that fits, a
    divisor of the width or equal tiles with a peeled tail, whichever is wider (a prime width
    such as 13 gets 7 + 6 columns, not 1)."""
    limit = accumulator_limit(wanted, lanes)
    return max(default_reg_n(out_w, limit), _even_tiles(out_w, limit))


def schedule_layout_stage(s: Schedule, t: Tensor) -> None:
    """A layout transform (or blocked padding) as rows in parallel and a vector per row step:
    into a blocked layout the lanes are the vector, out of one a 16-wide run of columns."""
    axes = list(s[t].op.axis)
    if len(axes) == 5:
        _schedule_into_blocks(s, t)
    elif len(axes) == 4:
        _schedule_out_of_blocks(s, t)
    else:
        schedule_injective_stage(s, t)


def _schedule_into_blocks(s: Schedule, t: Tensor) -> None:
    stage = s[t]
    axes = list(stage.op.axis)
    row = stage.fuse(*axes[:3])
    stage.parallel(row)
    lanes, width = t.shape[4].value, t.shape[3].value
    if lanes >= 8 or width % COPY_LANES:
        stage.vectorize(axes[4])
        return
    # few lanes (an image's 3 channels): vector reads along each source row instead (where the
    # width is a multiple of 16: a padded 226 with a peeled last run measured 5-15% slower)
    xo, xi = stage.split(axes[3], factor=COPY_LANES)
    stage.reorder(row, xo, axes[4], xi)
    stage.unroll(axes[4])
    stage.vectorize(xi)


def _schedule_out_of_blocks(s: Schedule, t: Tensor) -> None:
    """NCHW rows from NCHW[x]c: a vector of columns gathers one channel of ``x``-lane pixels, so
    the channels of one block are the loop inside each (block, row) task, which then reads its
    source row from the L1 cache once per channel instead of from memory."""
    stage = s[t]
    n, c, y, x = stage.op.axis
    sources = [u for u in t.op.input_tensors if len(u.shape) == 5]
    block = sources[0].shape[4].value if len(sources) == 1 else 0
    if block > 1 and t.shape[1].value % block == 0:
        co, ci = stage.split(c, factor=block)
        stage.reorder(n, co, y, ci, x)
        stage.parallel(stage.fuse(n, co, y))
    else:
        stage.parallel(stage.fuse(n, c, y))
    width = t.shape[3].value
    if width >= COPY_LANES:
        _, inner = stage.split(x, factor=row_lanes(width))  # 8 lanes for 56 or 200: no peeled tail
        stage.vectorize(inner)
    elif width >= 4:
        stage.vectorize(x)


def schedule_layout_transform(outs: Any) -> Schedule:
    """Schedule of ``layout_transform`` kernels (elementwise producers inlined, each output by
    ``schedule_layout_stage``)."""
    return schedule_injective(outs, schedule_layout_stage)


def is_layout_transform(t: Tensor) -> bool:
    """Whether ``t`` is computed by ``layout_transform``."""
    return getattr(t.op, "tag", None) == LAYOUT_TAG


def _schedule_inputs(s: Schedule, conv: Tensor) -> Optional[Tensor]:
    """Layout transforms and padding feeding ``conv`` run as parallel root stages (a transform
    feeding the padding is inlined into it), so the conv's inner loop reads plain memory.
    Returns a depthwise conv's padding of a plain input instead, left for the caller to compute
    per task of output rows (``padded_rows_per_task``: its rows of one channel block stay in
    cache; no padded copy of the whole input goes through memory)."""
    per_task = None
    for t in conv.op.input_tensors:
        tag = getattr(t.op, "tag", None)
        if tag == PAD_TAG:
            source = t.op.input_tensors[0]
            if is_layout_transform(source):
                s[source].compute_inline()
            elif conv.op.attrs.get("template") == DW_TEMPLATE:
                per_task = t
                continue
            schedule_layout_stage(s, t)
        elif tag == LAYOUT_TAG:
            schedule_layout_stage(s, t)
    return per_task


def schedule_nchwc_output(s: Schedule, out: Tensor, knobs: NchwcSchedule) -> None:
    """Schedule the blocked conv ending in ``out`` (the conv or its epilogue) inside ``s``.

    ``out`` may be any chain of elementwise ops after the conv (inlined into one epilogue).
    Output rows (for a depthwise conv padding inside the loop, groups of rows) run in parallel;
    per ``reg_n`` output columns an accumulator tile
    ``[reg_n, ob]`` is computed with the reduction outside the unrolled columns and the
    vectorized channel lanes.
    """
    conv = find_by_tag(out, CONV_TAG)
    padded_per_task = _schedule_inputs(s, conv)
    inline_between(s, out, conv)
    acc = s.cache_write(out, "local") if conv is out else conv
    blocks = knobs.oc_blocks if _can_tile_blocks(conv, knobs.oc_blocks) else 1
    reg_n = register_tile(out.shape[3].value, knobs.reg_n, blocks * out.shape[4].value)
    stage = s[out]
    n, oc, y, x, lane = stage.op.axis
    xo, xi = stage.split(x, factor=reg_n)
    tiled_blocks = []  # the output blocks inside one register tile, if several
    if blocks > 1:
        oc, oci = stage.split(oc, factor=blocks)
        tiled_blocks = [oci]
    if padded_per_task is None:
        stage.reorder(n, oc, y, xo, *tiled_blocks, xi, lane)
        task = stage.fuse(n, oc, y)
    else:
        yo, yi = stage.split(y, factor=padded_rows_per_task(conv, padded_per_task))
        stage.reorder(n, oc, yo, yi, xo, xi, lane)
        task = stage.fuse(n, oc, yo)
        s[padded_per_task].compute_at(stage, task)
        s[padded_per_task].vectorize(s[padded_per_task].op.axis[-1])
    stage.parallel(task)
    stage.vectorize(lane)
    acc_stage = s[acc]
    _, aoc, _, ax, alane = acc_stage.op.axis
    reduce = acc_stage.op.reduce_axis
    if knobs.ic_chunk and conv.op.attrs.get("template") == TEMPLATE:
        # the task's accumulators stay in L1 while each chunk of input channels runs through
        # all its register tiles: the chunk's weights are read from L1 once per tile, not the
        # whole kernel block from L2 (a 960-channel 1x1 conv: 61 KB per output block)
        acc_stage.compute_at(stage, task)
        ax, axi = acc_stage.split(ax, factor=reg_n)
        chunks, in_chunk = acc_stage.split(reduce[0], factor=knobs.ic_chunk)
        acc_stage.reorder(chunks, ax, in_chunk, *reduce[1:], aoc, axi, alane)
        ax = axi
    else:
        acc_stage.compute_at(stage, xo)
        acc_stage.reorder(*reduce, aoc, ax, alane)
    if blocks > 1:
        acc_stage.unroll(aoc)
    acc_stage.unroll(ax)
    acc_stage.vectorize(alane)
    if knobs.unroll_kw:
        rx = reduce[-2] if len(reduce) == 4 else reduce[-1]
        acc_stage.unroll(rx)


def _can_tile_blocks(conv: Tensor, blocks: int) -> bool:
    """Whether ``blocks`` output channel blocks can share a register tile: an ungrouped, not
    depthwise conv whose output blocks they divide (each broadcast input value then feeds
    ``blocks`` multiply-adds)."""
    if blocks == 1 or conv.op.attrs.get("template") != TEMPLATE:
        return False
    data_shape, kernel_shape = conv.op.attrs["workload"][:2]
    return data_shape[1] == kernel_shape[1] and conv.shape[1].value % blocks == 0


def padded_rows_per_task(conv: Tensor, padded: Tensor) -> int:
    """Output rows per parallel task of a depthwise conv that pads its input inside the task: the
    most, up to ``MAX_ROWS_PER_TASK`` and dividing the output height, whose padded input rows fit
    ``PADDED_CHUNK_BYTES`` and that leave ``MIN_TASKS`` tasks. One row per task pads its KH input
    rows for each output row; R rows pad (R-1)*stride + KH of them once."""
    n, blocks, out_h = (d.value for d in conv.shape[:3])
    _, kernel_shape, (stride, _), _, (dilation, _), *_ = conv.op.attrs["workload"]
    kh = (kernel_shape[2] - 1) * dilation + 1
    row_bytes = padded.shape[3].value * padded.shape[4].value * tir_dtype.parse(padded.dtype).bits // 8

    def fits(rows: int) -> bool:
        return (out_h % rows == 0 and ((rows - 1) * stride + kh) * row_bytes <= PADDED_CHUNK_BYTES
                and n * blocks * (out_h // rows) >= MIN_TASKS)

    return max(r for r in range(1, MAX_ROWS_PER_TASK + 1) if r == 1 or fits(r))


def _knobs_of(cfg: Any) -> NchwcSchedule:
    knobs = getattr(cfg, "space", cfg).knobs  # a config, or the space while a template defines it
    oc_blocks = cfg["tile_ocn"].val if "tile_ocn" in knobs else 1  # the depthwise template has none
    chunk_channels = cfg["ic_chunk"].val if "ic_chunk" in knobs else 0
    ic_chunk = max(1, chunk_channels // cfg["tile_ic"].val) if chunk_channels else 0
    return NchwcSchedule(cfg["tile_ow"].val, bool(cfg["unroll_kw"].val), oc_blocks, ic_chunk)


def schedule_conv2d_nchwc(outs: Any) -> Schedule:
    """Schedule of ``conv2d_nchwc``/``depthwise_conv2d_nchwc`` and any elementwise ops after them,
    with the knobs the dispatch context picks for the conv's workload (tuned under
    ``apply_history_best``, else the fallback)."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        conv = find_by_tag(out, CONV_TAG)
        cfg = autotvm.task.dispatched_config(conv.op.attrs["template"], conv.op.attrs["workload"])
        schedule_nchwc_output(s, out, _knobs_of(cfg))

    return schedule_each_output(outs, schedule_output)


schedule_depthwise_conv2d_nchwc = schedule_conv2d_nchwc


def conv2d_nchwc_blocks(data_shape: tuple, kernel_shape: tuple, strides: IntPair = 1, padding: IntPair = 0,
                        dilation: IntPair = 1, dtype: str = "float32") -> tuple[int, int]:
    """(input block, output block) for a conv of NCHW ``data_shape`` and OIHW ``kernel_shape``: the
    layout the dispatched config (tuned or fallback) was measured with. Depthwise kernels
    (``[C, 1, KH, KW]`` with C == data channels > 1) get one block for both."""
    depthwise = kernel_shape[1] == 1 and kernel_shape[0] == data_shape[1] > 1
    name = DW_TEMPLATE if depthwise else TEMPLATE
    args = (tuple(data_shape), tuple(kernel_shape), int_pair(name, strides, "strides", 1),
            padding4(name, padding), int_pair(name, dilation, "dilation", 1), dtype)
    cfg = autotvm.task.dispatched_config(name, args)
    if depthwise:
        return cfg["tile_c"].val, cfg["tile_c"].val
    return cfg["tile_ic"].val, cfg["tile_oc"].val


# ----------------------------------------------------------------------------- templates



def _vector_efficiency(block: int, lanes: int) -> float:
    """The share of the vector lanes a block of ``block`` channels fills (40 of 16 lanes -> 40/48)."""
    return block / (-(-block // lanes) * lanes)


def _block_candidates(channels: int, preferred_vectors: tuple[float, ...]) -> list[int]:
    """Blocks dividing ``channels`` in order of preference; all channels in one block if few.

    ``preferred_vectors`` are the preferred blocks in vector registers of the target (2: 32
    channels with AVX-512, 16 with AVX2). Where no preferred block fills the vectors well (1000
    or 200 channels: only 8 divides), the divisor up to the largest preferred block that fills
    them best comes first (40 with AVX-512)."""
    lanes = vector_unit().lanes()
    preferred = tuple(dict.fromkeys(max(1, int(v * lanes)) for v in preferred_vectors))
    blocks = [b for b in preferred if channels % b == 0]
    if channels <= max(preferred) and channels not in blocks:
        blocks.insert(0, channels)
    divisors = [d for d in range(lanes, max(preferred) + 1) if channels % d == 0]
    best = max(divisors, key=lambda d: (_vector_efficiency(d, lanes), d), default=None)
    if best is not None and (not blocks or _vector_efficiency(best, lanes) > _vector_efficiency(blocks[0], lanes)):
        blocks = [best] + [b for b in blocks if b != best]
    return blocks or [1]


def _reg_n_candidates(out_w: int, count: int = 5) -> list[int]:
    """Divisors of the output width up to 32, those nearest 14 columns first; where no divisor
    comes near (111 = 3 x 37), 14-column tiles with a tail come first."""
    divisors = sorted((d for d in range(1, min(out_w, 32) + 1) if out_w % d == 0), key=lambda d: (abs(d - 14), -d))
    if divisors[0] < 8:
        divisors = list(dict.fromkeys([_even_tiles(out_w, 14)] + divisors))
    return divisors[:count]


def _ic_chunk_candidates(channels: int, ob: int, out_w: int, item_bytes: int) -> list[int]:
    """Input channels per reduction chunk to try for a 1x1 conv, the default first; none where an
    output block's weights fit the L1 cache or one register tile covers a row (nothing to reuse).

    Measured on Zen 3 (AVX2, 16-channel blocks): a 960 -> 160 conv on a 14x14 map went from 77 to
    91 GFLOP/s with 64-channel chunks, 2048 -> 512 on 7x7 from 67 to 79 with 16; 480 channels
    (31 KB of weights per block) gained nothing."""
    tiles = -(-out_w // register_tile(out_w, _reg_n_candidates(out_w)[0], ob))
    if channels * ob * item_bytes <= L1_BYTES or tiles < 2:
        return []
    default = 64 if tiles >= 3 else 16
    return list(dict.fromkeys([default, 0, 16, 32, 64]))


def _template_geometry(name: str, data_shape: tuple, kernel_shape: tuple, strides: IntPair,
                       padding: IntPair, dilation: IntPair) -> _Geometry:
    _, _, h, w = data_shape
    _, _, kh, kw = kernel_shape
    return _geometry(name, h, w, kh, kw, strides, padding, dilation)


def _pinned(name: str, blocks: Optional[tuple], channels: tuple[int, ...]) -> Optional[tuple[int, ...]]:
    """``blocks`` checked against the channel counts each must divide (None: blocks are knobs)."""
    if blocks is None:
        return None
    if not isinstance(blocks, (tuple, list)) or len(blocks) != len(channels) or any(
            not isinstance(b, int) or b < 1 or c % b for b, c in zip(blocks, channels)):
        raise fail(name, "blocks", f"expected {len(channels)} positive channel blocks dividing {channels}, "
                                   f"got {blocks!r}")
    return tuple(blocks)


@autotvm.template(TEMPLATE)
def conv2d_nchwc_template(data_shape: tuple, kernel_shape: tuple, strides: IntPair, padding: IntPair,
                          dilation: IntPair, dtype: str = "float32",
                          blocks: Optional[tuple[int, int]] = None) -> tuple[Schedule, list[Tensor]]:
    """Tunable blocked conv of NCHW ``data_shape`` and OIHW ``kernel_shape`` (grouped when the
    kernel's input channels are a fraction of the data's); the kernel takes blocked data and a
    packed kernel. Knobs: input block, output block (fixed when ``blocks`` = (input, output)
    gives them, as a model's kernels do), register tile width, unroll kw, output blocks per
    register tile, and for a 1x1 conv whose weights outgrow the L1 cache input channels per
    reduction chunk."""
    n, c, h, w = data_shape
    oc, group_c, kh, kw = kernel_shape
    groups = c // group_c
    g = _template_geometry(TEMPLATE, data_shape, kernel_shape, strides, padding, dilation)
    pinned = _pinned(TEMPLATE, blocks, (group_c, oc // groups))
    cfg = autotvm.get_config()
    cfg.define_knob("tile_ic", [pinned[0]] if pinned else _block_candidates(group_c, (1, 0.5, 2, 0.25, 0.125)))
    oc_blocks = [pinned[1]] if pinned else _block_candidates(oc // groups, (2, 1, 4, 0.5))
    cfg.define_knob("tile_oc", oc_blocks)
    cfg.define_knob("tile_ow", _reg_n_candidates(g.out_w))
    cfg.define_knob("unroll_kw", [1, 0])
    out_blocks = oc // pinned[1] if pinned else 2
    cfg.define_knob("tile_ocn", [1, 2] if groups == 1 and out_blocks % 2 == 0 else [1])
    if groups == 1 and kh * kw == 1:
        chunks = _ic_chunk_candidates(c, oc_blocks[0], g.out_w, tir_dtype.parse(dtype).bits // 8)
        if chunks:
            cfg.define_knob("ic_chunk", chunks)
    ib, ob = cfg["tile_ic"].val, cfg["tile_oc"].val
    data = te.placeholder((n, c // ib, h, w, ib), dtype, name="data")
    kernel = te.placeholder((oc // ob, group_c // ib, kh, kw, ib, ob), dtype, name="kernel")
    out = conv2d_nchwc(data, kernel, g.strides, g.pads, g.dilation, groups=groups)
    s = te.create_schedule(out.op)
    schedule_nchwc_output(s, out, _knobs_of(cfg))
    return s, [data, kernel, out]


@autotvm.template(DW_TEMPLATE)
def depthwise_conv2d_nchwc_template(data_shape: tuple, kernel_shape: tuple, strides: IntPair,
                                    padding: IntPair, dilation: IntPair, dtype: str = "float32",
                                    blocks: Optional[tuple[int, int]] = None) -> tuple[Schedule, list[Tensor]]:
    """Tunable blocked depthwise conv of NCHW ``data_shape`` and ``[C, 1, KH, KW]`` kernel.
    Knobs: channel block (fixed when ``blocks`` = (b, b) gives it), register tile width, unroll kw."""
    n, c, h, w = data_shape
    _, _, kh, kw = kernel_shape
    g = _template_geometry(DW_TEMPLATE, data_shape, kernel_shape, strides, padding, dilation)
    pinned = _pinned(DW_TEMPLATE, blocks, (c, c))
    if pinned and pinned[0] != pinned[1]:
        raise fail(DW_TEMPLATE, "blocks", f"a depthwise conv has one channel block for input and output, got {blocks}")
    cfg = autotvm.get_config()
    cfg.define_knob("tile_c", [pinned[0]] if pinned else _block_candidates(c, (1, 2, 0.5)))
    cfg.define_knob("tile_ow", _reg_n_candidates(g.out_w))
    cfg.define_knob("unroll_kw", [1, 0])
    b = cfg["tile_c"].val
    data = te.placeholder((n, c // b, h, w, b), dtype, name="data")
    kernel = te.placeholder((c // b, kh, kw, b), dtype, name="kernel")
    out = depthwise_conv2d_nchwc(data, kernel, g.strides, g.pads, g.dilation)
    s = te.create_schedule(out.op)
    schedule_nchwc_output(s, out, _knobs_of(cfg))
    return s, [data, kernel, out]
