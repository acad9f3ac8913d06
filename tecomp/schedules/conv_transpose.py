"""Transposed convolution (ONNX ConvTranspose) as a convolution: the two data-movement operators
that rewrite it, both injective (scheduled by ``schedule_injective``).

A transposed convolution with strides ``s``, dilations ``d``, pads ``(pb, pe)`` and output
padding ``op`` equals a stride-1 convolution (dilations ``d``) of

- ``dilate_pad(x, s, d*(K-1) - pb, d*(K-1) - pe + op)``: ``s - 1`` zeros between neighbouring
  input elements, then zero padding (negative padding crops), and
- ``conv_transpose_kernel(w, groups)``: the weight ``[C_in, C_out/g, K...]`` with input and output
  channels exchanged within each group and every spatial axis reversed, ``[C_out, C_in/g, K...]``.

So the convolution runs in the library's fast convolution schedules (the graph's blocked layout
for 2-D with a constant weight, which the kernel transform then folds into at build time), with no
guards in its inner loops; the zero rows and columns cost ``s`` times the products per axis.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import te
from ..te.tensor import Tensor
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail


def dilate_pad(x: Tensor, strides: Sequence[int], pad_before: Sequence[int], pad_after: Sequence[int]) -> Tensor:
    """``x`` (``[N, C, spatial...]``) with ``strides[i] - 1`` zeros inserted between neighbours along
    spatial axis ``i``, then padded with zeros by ``pad_before[i]``/``pad_after[i]`` (negative: cropped).

    ``out[n, c, j...] = x[n, c, (j - pad_before) / strides]`` where that divides exactly and lies in
    ``x``, else 0."""
    op_name = "dilate_pad"
    check_dtype(x, op_name, "x")
    shape = const_shape(x, op_name, "x")
    spatial = len(shape) - 2
    if spatial < 1:
        raise fail(op_name, "x", f"expected (N, C, spatial...) with at least one spatial axis, got shape {shape}")
    for argument, values, minimum in (("strides", strides, 1), ("pad_before", pad_before, None),
                                      ("pad_after", pad_after, None)):
        if len(values) != spatial or not all(isinstance(v, int) for v in values) \
                or (minimum is not None and min(values) < minimum):
            raise fail(op_name, argument, f"expected {spatial} ints{' >= 1' if minimum else ''}, got {values!r}")
    dilated = [(n - 1) * s + 1 for n, s in zip(shape[2:], strides)]
    out = tuple(d + b + a for d, b, a in zip(dilated, pad_before, pad_after))
    if min(out) < 1:
        raise fail(op_name, "pad_after", f"cropping leaves no elements (output spatial shape {out})")

    def fcompute(b: PrimExpr, c: PrimExpr, *j: PrimExpr) -> PrimExpr:
        conditions, index = [], []
        for v, s, before, after, extent in zip(j, strides, pad_before, pad_after, dilated):
            offset = v - before
            if before > 0:
                conditions.append(offset >= 0)
            if after > 0:
                conditions.append(offset < extent)
            if s > 1:
                conditions.append(te.floormod(offset, s) == 0)
                index.append(te.floordiv(offset, s))
            else:
                index.append(offset)
        value = x[(b, c) + tuple(index)]
        return te.if_then_else(te.all(*conditions), value, te.const(0, x.dtype)) if conditions else value

    return te.compute(shape[:2] + out, fcompute, name="dilate_pad")


def conv_transpose_kernel(w: Tensor, groups: int = 1) -> Tensor:
    """ConvTranspose's weight ``[C_in, C_out/g, K...]`` as the kernel of the equivalent convolution,
    ``[C_out, C_in/g, K...]``: ``out[g*opg + o, i, k...] = w[g*cpg + i, o, K-1-k...]``."""
    op_name = "conv_transpose_kernel"
    check_dtype(w, op_name, "w")
    shape = const_shape(w, op_name, "w")
    if len(shape) < 3:
        raise fail(op_name, "w", f"expected (C_in, C_out/groups, kernel...), got shape {shape}")
    if not isinstance(groups, int) or groups < 1 or shape[0] % groups:
        raise fail(op_name, "groups", f"must be a positive int dividing C_in={shape[0]}, got {groups!r}")
    c_in, opg, kernel = shape[0], shape[1], shape[2:]
    cpg = c_in // groups

    def fcompute(oc: PrimExpr, i: PrimExpr, *k: PrimExpr) -> PrimExpr:
        flipped = tuple(extent - 1 - v for v, extent in zip(k, kernel))
        if groups == 1:
            return w[(i, oc) + flipped]
        return w[(te.floordiv(oc, opg) * cpg + i, te.floormod(oc, opg)) + flipped]

    return te.compute((opg * groups, cpg) + kernel, fcompute, name="conv_transpose_kernel")
