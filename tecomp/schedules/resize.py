"""Resizing (ONNX Resize): per-axis sampling taps computed ahead of time, and the operator using them.

Resize is separable: along each resized axis, output position ``o`` reads a
few input positions (its *taps*) with weights that depend only on ``o``, the
sizes, the scale and the modes. ``resize_taps`` computes one axis's taps with
numpy in float64 (ONNX semantics: every coordinate transformation mode,
nearest rounding modes, linear and cubic kernels, antialiasing, excluded
outside taps, crop-and-resize extrapolation); shapes are static, so a frontend
computes them once and passes them as constants. ``resize`` is the te operator:
each output element is the weighted sum of ``prod(taps per axis)`` input
elements (one load for nearest), an injective-like gather that fuses and
vectorizes with ``schedule_injective``. Interpolating several axes runs one
pass per axis, the intermediates kept in memory (``KEEP_TAG``): each pass
reads two to four taps where one pass over all axes would read their product,
and only the pass along the innermost axis gathers lane by lane.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import te
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import FLOAT_DTYPES, KEEP_TAG, check_dtype, const_shape, fail

COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_crop_and_resize")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MODES = ("nearest", "linear", "cubic")
# The dtype each data dtype is interpolated in (weights have it too); integers are rounded half to even
# and saturated back. 64-bit integers are only resized by nearest (a float64 sum would lose their digits).
INTERPOLATED_IN = {"float16": "float32", "float32": "float32", "float64": "float64", "int8": "float32",
                   "uint8": "float32", "int16": "float32", "uint16": "float32", "int32": "float64",
                   "uint32": "float64"}


def source_coordinates(out_len: int, in_len: int, scale: float, coordinate_mode: str,
                       roi: Sequence[float] = (0.0, 1.0)) -> np.ndarray:
    """The input coordinate (float64) each output position of one axis samples (``roi``: the
    crop's start and end, fractions of the input, for ``tf_crop_and_resize``)."""
    if coordinate_mode not in COORDINATE_MODES:
        raise fail("resize_taps", "coordinate_mode", f"{coordinate_mode!r} is not one of "
                                                     f"{', '.join(COORDINATE_MODES)}")
    y = np.arange(out_len, dtype=np.float64)
    out_width = scale * in_len
    if coordinate_mode == "align_corners":
        return np.zeros(out_len) if out_width == 1 else y * (in_len - 1) / (out_width - 1)
    if coordinate_mode == "asymmetric":
        return y / scale
    if coordinate_mode == "tf_crop_and_resize":
        start, end = roi[0], roi[1]  # numpy scalars stay in their dtype: ONNX rounds roi arithmetic in it
        x = np.full(out_len, (end - start) * (in_len - 1) / 2) if out_width == 1 \
            else y * (end - start) * (in_len - 1) / (out_width - 1)
        return x + start * (in_len - 1)
    if coordinate_mode == "pytorch_half_pixel" and out_width == 1:
        return np.full(out_len, -0.5)
    offset = 0.0
    if coordinate_mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / out_width)
    return offset + (y + 0.5) / scale - 0.5


def _cubic_kernel(d: np.ndarray, a: float) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


def _linear_kernel(d: np.ndarray) -> np.ndarray:
    return np.clip(1 - np.abs(d), 0, 1)


def resize_taps(in_len: int, out_len: int, scale: float, mode: str = "nearest",
                coordinate_mode: str = "half_pixel", nearest_mode: str = "round_prefer_floor",
                cubic_coeff_a: float = -0.75, exclude_outside: bool = False, antialias: bool = False,
                roi: Sequence[float] = (0.0, 1.0)) -> tuple[np.ndarray, np.ndarray | None]:
    """The taps of one resized axis: ``(index, weight)``, each ``[out_len, taps]``.

    ``index`` (int32) holds input positions, clamped into ``[0, in_len)`` (edge
    padding); a row of -1 marks an output position whose source lies outside the
    input (``tf_crop_and_resize``: it takes the extrapolation value). ``weight``
    (float64) is None for ``nearest`` (one tap of weight 1). ``antialias`` widens
    the linear / cubic kernel by ``1 / scale`` when downsampling.
    """
    if mode not in MODES:
        raise fail("resize_taps", "mode", f"{mode!r} is not one of {', '.join(MODES)}")
    if nearest_mode not in NEAREST_MODES:
        raise fail("resize_taps", "nearest_mode", f"{nearest_mode!r} is not one of {', '.join(NEAREST_MODES)}")
    if in_len < 1 or out_len < 1 or not scale > 0:
        raise fail("resize_taps", "scale", f"sizes {in_len} -> {out_len} at scale {scale} are not positive")
    x = source_coordinates(out_len, in_len, scale, coordinate_mode, roi)
    whole = x == np.floor(x)
    base = np.where(whole, x - 1, np.floor(x)).astype(np.int64)    # ratio in (0, 1]: prefer the left pixel
    ratio = x - base
    outside = (x < 0) | (x > in_len - 1) if coordinate_mode == "tf_crop_and_resize" else np.zeros(out_len, bool)
    if mode == "nearest":
        if nearest_mode == "round_prefer_floor":
            up = ratio > 0.5
        elif nearest_mode == "round_prefer_ceil":
            up = ratio >= 0.5
        else:
            up = np.full(out_len, nearest_mode == "ceil")
        index = (base + np.where(whole | up, 1, 0))[:, None]
        weight = None
    else:
        radius = 1 if mode == "linear" else 2
        s = min(scale, 1.0) if antialias else 1.0
        start = math.floor(-radius / s) + 1
        offsets = np.arange(start, 2 - start)
        d = (offsets[None, :] - ratio[:, None]) * s
        weight = _linear_kernel(d) if mode == "linear" else _cubic_kernel(d, cubic_coeff_a)
        if antialias:
            weight = weight / weight.sum(axis=1, keepdims=True)
        index = base[:, None] + offsets[None, :]
        if exclude_outside:
            weight = np.where((index < 0) | (index >= in_len), 0.0, weight)
            total = weight.sum(axis=1, keepdims=True)
            weight = weight / np.where(total == 0, 1.0, total)
    index = np.clip(index, 0, in_len - 1).astype(np.int32)
    index[outside] = -1
    return index, weight


def is_identity(index: np.ndarray, weight: np.ndarray | None, in_len: int) -> bool:
    """Whether the taps of an axis copy it unchanged: every output position ``o`` of the ``in_len``
    reads input position ``o`` with total weight exactly 1 and nothing else."""
    if index.shape[0] != in_len:
        return False
    weight = np.ones(index.shape) if weight is None else weight
    own = index == np.arange(in_len)[:, None]
    return bool(np.all(np.where(own, weight, 0.0).sum(axis=1) == 1.0) and np.all(np.where(own, 0.0, weight) == 0))


def stack_taps(taps: Sequence[tuple[np.ndarray, np.ndarray | None]], dtype: str) -> tuple[np.ndarray, Any]:
    """The per-axis taps as ``resize``'s ``index``/``weight`` tables ``[axes, max taps, max length]``
    (tap-major, so neighbouring output positions read neighbouring entries; shorter axes and fewer
    taps padded with index 0 and weight 0)."""
    length = max(i.shape[0] for i, _ in taps)
    width = max(i.shape[1] for i, _ in taps)
    index = np.zeros((len(taps), width, length), np.int32)
    weights = None if taps[0][1] is None else np.zeros((len(taps), width, length), dtype)
    for a, (i, w) in enumerate(taps):
        index[a, :i.shape[1], :i.shape[0]] = i.T
        if weights is not None:
            weights[a, :w.shape[1], :w.shape[0]] = w.T
    return index, weights


def resize(x: te.Tensor, index: te.Tensor, weight: te.Tensor | None = None, axes: Sequence[int] = (),
           shape: Sequence[int] = (), extrapolation_value: float | None = None) -> te.Tensor:
    """Resample ``x`` to ``shape`` along ``axes`` through tap tables (``resize_taps``, ``stack_taps``).

    Along ``axes[a]``, output position ``o`` reads ``x`` at ``index[a, t, o]``
    (clamped into the axis), weighted by ``weight[a, t, o]`` and summed over the
    taps ``t`` (no ``weight``: the first tap alone, nearest). With
    ``extrapolation_value``, an output whose first tap on any axis is -1 takes
    that value. Other axes keep their size. With weights, data is interpolated in
    ``INTERPOLATED_IN[x.dtype]`` (integers rounded half to even and saturated), one
    axis per pass (``_pass_order``); without, any dtype is copied in one pass.
    """
    name = "resize"
    xshape = const_shape(x, name, "x")
    ishape = const_shape(index, name, "index")
    check_dtype(index, name, "index", ("int32", "int64"))
    axes = [int(a) for a in axes]
    shape = tuple(int(d) for d in shape)
    if len(shape) != len(xshape) or any(d < 1 for d in shape):
        raise fail(name, "shape", f"{shape} must give {len(xshape)} positive sizes")
    if len(set(axes)) != len(axes) or any(not 0 <= a < len(xshape) for a in axes):
        raise fail(name, "axes", f"{axes} must be distinct axes of a rank-{len(xshape)} tensor")
    if any(shape[a] != xshape[a] for a in range(len(xshape)) if a not in axes):
        raise fail(name, "shape", f"{shape} changes an axis not in axes={axes} of {xshape}")
    if len(ishape) != 3 or ishape[0] != len(axes) or any(shape[a] > ishape[2] for a in axes):
        raise fail(name, "index", f"shape {ishape} must be [{len(axes)} axes, taps, >= the output lengths]")
    acc = INTERPOLATED_IN.get(x.dtype)
    if weight is not None:
        check_dtype(x, name, "x", tuple(INTERPOLATED_IN))
        if const_shape(weight, name, "weight") != ishape or weight.dtype != acc:
            raise fail(name, "weight", f"must be {acc} of the index's shape {ishape}, got "
                                       f"{weight.dtype}{list(const_shape(weight, name, 'weight'))}")
    passes = _pass_order(axes, xshape, shape) if weight is not None else [list(range(len(axes)))]
    src, current = x, list(xshape)
    for k, group in enumerate(passes):
        for a in group:
            current[axes[a]] = shape[axes[a]]
        last = k == len(passes) - 1
        src = _resample(src, index, weight, axes, group, tuple(current), acc,
                        finish=(x.dtype, extrapolation_value) if last else None)
    return src


def _pass_order(axes: list[int], xshape: tuple, shape: tuple) -> list[list[int]]:
    """Positions in ``axes``, one interpolated axis per pass. Only a pass along the innermost
    dimension gathers (its taps differ lane by lane; the other passes read whole rows), so it
    runs where the data is smallest: first when it enlarges the axis, last when it shrinks it.
    The other axes keep ONNX's order."""
    innermost = len(xshape) - 1
    inner = [a for a, ax in enumerate(axes) if ax == innermost]
    rest = [a for a, ax in enumerate(axes) if ax != innermost]
    if inner and shape[innermost] >= xshape[innermost]:
        return [[a] for a in inner + rest]
    return [[a] for a in rest + inner]


def _resample(src: te.Tensor, index: te.Tensor, weight: te.Tensor | None, axes: list[int], group: list[int],
              shape: tuple, acc: str | None, finish: tuple[str, float | None] | None) -> te.Tensor:
    """One pass of ``resize``: ``src`` sampled along the axes at positions ``group`` of ``axes``.
    An intermediate pass keeps the interpolation dtype ``acc`` and is tagged ``KEEP_TAG`` (the next
    pass reads each of its elements several times); ``finish`` = (dtype, extrapolation value) makes
    the final pass, which rounds, saturates and casts to ``dtype``."""
    src_shape = const_shape(src, "resize", "x")

    def fcompute(*o: PrimExpr) -> PrimExpr:
        def tap(a: int, t: int) -> PrimExpr:
            i = index[a, t, o[axes[a]]]
            return te.max(te.min(i, te.const(src_shape[axes[a]] - 1, i.dtype)), te.const(0, i.dtype))

        def gather(g: int, coords: list) -> PrimExpr:
            """The sum over the taps of ``group[g]``, ``group[g - 1]``, ... ``group[0]``, the first axis
            innermost: within a pass, the order of ONNX's axis-by-axis reference."""
            if g < 0:
                value = src[tuple(coords)]
                return value if weight is None else tir_op.cast(value, acc)
            a = group[g]
            total = None
            for t in range(1 if weight is None else index.shape[1].value):
                coords[axes[a]] = tap(a, t)
                term = gather(g - 1, coords)
                if weight is not None:
                    term = term * weight[a, t, o[axes[a]]]
                total = term if total is None else total + term
            return total

        value = gather(len(group) - 1, list(o))
        if finish is None:
            return value
        dtype, extrapolation_value = finish
        if weight is not None and dtype not in FLOAT_DTYPES:
            bounds = (tir_op.min_value(dtype).value, tir_op.max_value(dtype).value)
            lo, hi = (te.const(float(v), acc) for v in bounds)
            value = te.max(te.min(te.round(value), hi), lo)
        value = tir_op.cast(value, dtype)
        if extrapolation_value is None:
            return value
        inside = te.all(*[index[a, 0, o[ax]] >= 0 for a, ax in enumerate(axes)])
        return te.if_then_else(inside, value, te.const(extrapolation_value, dtype))

    if finish is None:
        return te.compute(shape, fcompute, name="resize_pass", tag=KEEP_TAG)
    return te.compute(shape, fcompute, name="resize")
