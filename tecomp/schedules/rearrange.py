"""Injective operators that place input elements by computed indices: ``one_hot`` (ONNX OneHot),
``pad_mode`` (ONNX Pad with modes edge, reflect and wrap) and ``channel_shuffle`` (ShuffleNet's
reshape-transpose-reshape of the channels, in the plain or the blocked layout). Schedule them
with ``schedule_injective``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import te
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import LANE_PERMUTING_TAG, check_dtype, const_shape, fail
from .conv2d_nchwc import block_of
from .elementwise import NUMERIC_DTYPES
from .reduction import normalize_axes

PAD_MODES = ("edge", "reflect", "wrap")


def one_hot(indices: te.Tensor, values: te.Tensor, depth: int, axis: int = -1) -> te.Tensor:
    """``values[1]`` where the output's index along ``axis`` equals ``indices`` (a negative index
    counts from ``depth``), ``values[0]`` elsewhere (ONNX OneHot). The output has the shape of
    ``indices`` with ``depth`` inserted at ``axis``; float indices are truncated."""
    check_dtype(indices, "one_hot", "indices", NUMERIC_DTYPES)
    check_dtype(values, "one_hot", "values", NUMERIC_DTYPES + ("bool",))
    if const_shape(values, "one_hot", "values") != (2,):
        raise fail("one_hot", "values", f"must have shape (2,) (off value, on value), got {values.shape}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise fail("one_hot", "depth", f"must be a positive int, got {depth!r}")
    shape = const_shape(indices, "one_hot", "indices")
    axis = normalize_axes("one_hot", axis, len(shape) + 1)[0]
    out_shape = shape[:axis] + (depth,) + shape[axis:]

    def fcompute(*i: PrimExpr) -> PrimExpr:
        index = tir_op.cast(indices[i[:axis] + i[axis + 1:]], "int64")
        index = te.select(index < 0, index + depth, index)
        return te.select(index == tir_op.cast(i[axis], "int64"), values[1], values[0])

    return te.compute(out_shape, fcompute, name="one_hot")


def _source(i: PrimExpr, before: int, size: int, mode: str) -> PrimExpr:
    """The input index along one axis that output index ``i`` copies."""
    j = i - before
    if mode == "edge":
        return tir_op.min_expr(tir_op.max_expr(j, 0), size - 1)
    if mode == "wrap":
        return te.floormod(j, size)
    if size == 1:  # reflect
        return tir_op.const(0, j.dtype)
    m = te.floormod(j, 2 * (size - 1))  # the mirror image repeats with this period
    return te.select(m < size, m, 2 * (size - 1) - m)


def pad_mode(x: te.Tensor, pad_before: Sequence[int], pad_after: Sequence[int], mode: str) -> te.Tensor:
    """Padding that copies input elements (ONNX Pad): ``edge`` repeats the border element,
    ``reflect`` mirrors about it (without repeating it), ``wrap`` continues periodically."""
    if mode not in PAD_MODES:
        raise fail("pad_mode", "mode", f"{mode!r} is not one of {', '.join(PAD_MODES)}")
    shape = const_shape(x, "pad_mode", "x")
    for argument, seq in (("pad_before", pad_before), ("pad_after", pad_after)):
        if len(seq) != len(shape) or any(not isinstance(p, int) or p < 0 for p in seq):
            raise fail("pad_mode", argument, f"{tuple(seq)} must be {len(shape)} non-negative ints")
    padded = [k for k, (b, a) in enumerate(zip(pad_before, pad_after)) if b or a]
    empty = [k for k in padded if shape[k] == 0]
    if empty:
        raise fail("pad_mode", "x", f"axis {empty[0]} of shape {shape} is empty: mode {mode} has nothing to copy")
    out = tuple(d + b + a for d, b, a in zip(shape, pad_before, pad_after))

    def fcompute(*i: PrimExpr) -> PrimExpr:
        return x[tuple(_source(v, pad_before[k], shape[k], mode) if k in padded else v for k, v in enumerate(i))]

    return te.compute(out, fcompute, name="pad_mode")


def channel_shuffle(x: te.Tensor, groups: int, layout: str = "NCHW") -> te.Tensor:
    """ShuffleNet's channel shuffle: the C channels seen as ``[groups, C/groups]`` are transposed,
    so output channel ``c`` is input channel ``(c % groups) * (C/groups) + c // groups`` (the
    ONNX idiom ``Reshape [N, g, C/g, H, W] -> Transpose (0, 2, 1, 3, 4) -> Reshape [N, C, H, W]``).
    ``x`` is ``[N, C, ...]`` in ``layout`` "NCHW", or ``[N, C/b, H, W, b]`` in "NCHW{b}c" (the
    output in the same layout), so a blocked network shuffles without leaving its layout."""
    shape = const_shape(x, "channel_shuffle", "x")
    block = block_of(layout, "layout")
    if block and (len(shape) != 5 or shape[-1] != block):
        raise fail("channel_shuffle", "x", f"layout {layout} needs [N, C/{block}, H, W, {block}], got {shape}")
    if len(shape) < 2:
        raise fail("channel_shuffle", "x", f"needs [N, C, ...], got {shape}")
    channels = shape[1] * block if block else shape[1]
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1 or channels % groups:
        raise fail("channel_shuffle", "groups", f"must be a positive int dividing the {channels} channels, "
                                                f"got {groups!r}")
    per_group = channels // groups

    def source(c: PrimExpr) -> PrimExpr:
        return te.floormod(c, groups) * per_group + te.floordiv(c, groups)

    if not block:
        return te.compute(shape, lambda n, c, *rest: x[(n, source(c), *rest)], name="channel_shuffle")

    def blocked(n: PrimExpr, cb: PrimExpr, h: PrimExpr, w: PrimExpr, lane: PrimExpr) -> PrimExpr:
        c = source(cb * block + lane)
        return x[n, te.floordiv(c, block), h, w, te.floormod(c, block)]

    return te.compute(shape, blocked, name="channel_shuffle", tag=LANE_PERMUTING_TAG)
