"""Reduction operators (sum, prod, mean, max, min, logsumexp over axes; argmax/argmin along one
axis) and their default schedule ``schedule_reduce``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import math

from .. import te
from ..te.operation import ComputeOp
from ..te.schedule import Schedule, create_schedule
from ..tir import dtype as dt
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import accumulator_dtype, as_list, check_dtype, const_shape, fail, schedule_injective_stage
from .elementwise import ALL_FLOATS, FLOATS, NUMERIC_DTYPES

# value(x_indices, output_indices) -> the expression reduced (x at x_indices by default)
Value = Callable[[tuple, tuple], PrimExpr]

Axis = None | int | Sequence[int]
KEPT_INNER_ATTR = "reduce_keeps_inner_axis"


def normalize_axes(op_name: str, axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as sorted non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    if not axes:
        raise fail(op_name, "axis", "is empty; give None to reduce over every axis")
    out = []
    for a in axes:
        if not isinstance(a, int) or not -ndim <= a < ndim:
            raise fail(op_name, "axis", f"{a!r} is out of range for a tensor of rank {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise fail(op_name, "axis", f"{axes} names an axis twice")
    return tuple(sorted(out))


def _reduce(op_name: str, x: te.Tensor, axis: Axis, keepdims: bool,
            reducer: Callable[..., PrimExpr], allowed: Sequence[str], value: Value | None = None) -> te.Tensor:
    if not isinstance(x, te.Tensor):
        raise fail(op_name, "x", f"expected a tensor, got {type(x).__name__}")
    check_dtype(x, op_name, "x", allowed)
    shape = const_shape(x, op_name, "x")
    axes = normalize_axes(op_name, axis, len(shape))
    rvs = [te.reduce_axis((0, shape[a]), name=f"r{a}") for a in axes]
    kept = [k for k in range(len(shape)) if k not in axes]
    out_shape = [1 if k in axes else d for k, d in enumerate(shape)] if keepdims else [shape[k] for k in kept]

    def fcompute(*i: PrimExpr) -> PrimExpr:
        data = list(i) if keepdims else [None] * len(shape)
        if not keepdims:
            for k, v in zip(kept, i):
                data[k] = v
        for a, rv in zip(axes, rvs):
            data[a] = rv
        return reducer(x[tuple(data)] if value is None else value(tuple(data), i), axis=rvs)

    # the last axis kept: the output's last axis walks x's contiguous one, a vector of rows
    attrs = {KEPT_INNER_ATTR: True} if len(shape) - 1 not in axes and len(out_shape) > 0 else {}
    return te.compute(tuple(out_shape), fcompute, name=op_name, attrs=attrs)


def _wide_sum(op_name: str, x: te.Tensor, axis: Axis, keepdims: bool, allowed: Sequence[str]) -> te.Tensor:
    """The sum stage of ``sum``/``mean``, accumulated in ``accumulator_dtype`` (float32 for float16)."""
    acc = accumulator_dtype(x.dtype) if isinstance(x, te.Tensor) else None
    if acc is None or acc == x.dtype:
        return _reduce(op_name, x, axis, keepdims, te.sum, allowed)
    return _reduce(op_name, x, axis, keepdims, te.sum, allowed, lambda data, i: tir_op.cast(x[data], acc))


def sum(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Sum over ``axis`` (ONNX ReduceSum); negative axes count from the end. float16 accumulates in float32."""
    total = _wide_sum("sum", x, axis, keepdims, NUMERIC_DTYPES)
    if total.dtype == x.dtype:
        return total
    return te.compute(total.shape, lambda *i: tir_op.cast(total[i], x.dtype), name="sum_round")


def _from_infinity(reducer: Callable[..., PrimExpr], start: float) -> Callable[..., PrimExpr]:
    """``te.max``/``te.min`` starting from -inf/+inf for floats (not the finite lowest/highest value),
    so a row of infinities keeps its infinity."""

    def reduce(expr: PrimExpr, axis: Any) -> PrimExpr:
        init = te.const(start, expr.dtype) if dt.is_float(expr.dtype) else None
        return reducer(expr, axis=axis, init=init)

    return reduce


max_reducer = _from_infinity(te.max, -math.inf)
min_reducer = _from_infinity(te.min, math.inf)


def max(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Maximum over ``axis`` (ONNX ReduceMax); -inf for floats over an empty axis."""
    return _reduce("max", x, axis, keepdims, max_reducer, NUMERIC_DTYPES)


def min(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Minimum over ``axis`` (ONNX ReduceMin); +inf for floats over an empty axis."""
    return _reduce("min", x, axis, keepdims, min_reducer, NUMERIC_DTYPES)


prod_reducer = te.comm_reducer(lambda a, b: a * b, lambda dtype: te.const(1, dtype), name="prod")


def prod(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Product over ``axis`` (ONNX ReduceProd)."""
    return _reduce("prod", x, axis, keepdims, prod_reducer, NUMERIC_DTYPES)


def _kept_row(x_indices: tuple, axes: tuple[int, ...]) -> tuple:
    """The indices into a keepdims reduction over ``axes`` of the row holding x's element ``x_indices``."""
    return tuple(0 if k in axes else v for k, v in enumerate(x_indices))


def _out_to_kept(i: tuple, axes: tuple[int, ...], ndim: int, keepdims: bool) -> tuple:
    """Indices into a keepdims reduction from the indices ``i`` of the output with/without kept dims."""
    if keepdims:
        return tuple(i)
    it = iter(i)
    return tuple(0 if k in axes else next(it) for k in range(ndim))


def logsumexp(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """``log(sum(exp(x)))`` over ``axis`` (ONNX ReduceLogSumExp), shifted by the row maximum so it does
    not overflow; rows of -inf (or holding +inf) give -inf (+inf). float16 sums in float32."""
    shape = const_shape(x, "logsumexp", "x")
    axes = normalize_axes("logsumexp", axis, len(shape))
    top = _reduce("logsumexp_max", x, axes, True, max_reducer, ALL_FLOATS)
    acc = accumulator_dtype(x.dtype)

    def shift(row: tuple) -> PrimExpr:
        m = tir_op.cast(top[row], acc)
        return te.select(te.abs(m) == te.const(math.inf, acc), te.const(0, acc), m)

    total = _reduce("logsumexp", x, axes, keepdims, te.sum, ALL_FLOATS,
                    lambda data, i: te.exp(tir_op.cast(x[data], acc) - shift(_kept_row(data, axes))))
    return te.compute(total.shape, lambda *i: tir_op.cast(
        te.log(total[i]) + shift(_out_to_kept(i, axes, len(shape), keepdims)), x.dtype), name="logsumexp_log")


def _arg_extremum(op_name: str, x: te.Tensor, axis: int, keepdims: bool, select_last_index: bool,
                  extremum: Callable[..., PrimExpr]) -> te.Tensor:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise fail(op_name, "axis", f"expected one int, got {axis!r}")
    shape = const_shape(x, op_name, "x")
    axes = normalize_axes(op_name, axis, len(shape))
    if shape[axes[0]] == 0:
        raise fail(op_name, "x", f"axis {axis} of shape {shape} is empty: there is no index to return")
    best = _reduce(f"{op_name}_value", x, axes, True, extremum, NUMERIC_DTYPES)
    # the first (last) index holding the extremum: min (max) over the matching indices
    pick, miss = (te.max, -1) if select_last_index else (te.min, shape[axes[0]])

    def value(data: tuple, i: tuple) -> PrimExpr:
        at = tir_op.cast(data[axes[0]].var, "int64")
        extremum = best[_kept_row(data, axes)]
        # a NaN extremum matches every index, so the answer stays an index of the axis
        return te.select(te.any(x[data] == extremum, extremum != extremum), at, te.const(miss, "int64"))

    return _reduce(op_name, x, axes, keepdims, pick, NUMERIC_DTYPES, value)


def argmax(x: te.Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False) -> te.Tensor:
    """The int64 index of the maximum along ``axis`` (ONNX ArgMax): the first one, or the last with
    ``select_last_index``."""
    return _arg_extremum("argmax", x, axis, keepdims, select_last_index, max_reducer)


def argmin(x: te.Tensor, axis: int = 0, keepdims: bool = True, select_last_index: bool = False) -> te.Tensor:
    """The int64 index of the minimum along ``axis`` (ONNX ArgMin): the first one, or the last with
    ``select_last_index``."""
    return _arg_extremum("argmin", x, axis, keepdims, select_last_index, min_reducer)


def mean(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Arithmetic mean over ``axis`` (ONNX ReduceMean, float dtypes): a sum stage (float32 for float16),
    then a divide."""
    total = _wide_sum("mean", x, axis, keepdims, ALL_FLOATS)
    shape = const_shape(x, "mean", "x")
    count = 1
    for a in normalize_axes("mean", axis, len(shape)):
        count *= shape[a]
    return te.compute(total.shape, lambda *i: tir_op.cast(total[i] / te.const(float(count), total.dtype), x.dtype),
                      name="mean_div")


def _schedule_across_rows(s: Schedule, t: Any) -> bool:
    """A reduction keeping x's contiguous last axis (a spatial mean over NCHW16c, a sum over
    rows): 16 output columns at a time in a vector accumulator, the reduce loops outside the
    lanes. False (nothing done) unless whole vectors of 16 or 8 columns tile the kept axis."""
    width = t.shape[-1].value if t.op.attrs.get(KEPT_INNER_ATTR) else 0
    lanes = next((n for n in (16, 8) if width and width % n == 0), None)
    if lanes is None:
        return False
    acc = s.cache_write(t, "local")
    stage = s[t]
    *outer, last = stage.op.axis
    lane_outer, lanes_axis = stage.split(last, factor=lanes)
    outer.append(lane_outer)
    stage.reorder(*outer, lanes_axis)
    row = stage.fuse(*outer) if len(outer) > 1 else outer[0]
    stage.parallel(row)
    stage.vectorize(lanes_axis)
    s[acc].compute_at(stage, row)
    acc_stage = s[acc]
    *acc_outer, acc_lanes = acc_stage.op.axis
    acc_stage.reorder(*acc_outer, *acc_stage.op.reduce_axis, acc_lanes)
    acc_stage.vectorize(acc_lanes)
    return True


def _schedule_reduce_stage(s: Schedule, t: Any) -> None:
    if _schedule_across_rows(s, t):
        return
    stage = s[t]
    axes = list(stage.op.axis)
    if len(axes) > 1:
        stage.parallel(stage.fuse(*axes))
    elif axes:
        stage.parallel(axes[0])


def schedule_reduce(outs: Any) -> Schedule:
    """Default schedule of reductions.

    Elementwise producers are inlined; each reduction stage runs its fused
    data-parallel axes in parallel with the reduce loops inside; elementwise
    outputs (mean's divide) get the injective schedule.
    """
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for stage in list(s.stages):
        op = stage.op
        if not isinstance(op, ComputeOp):
            continue
        if op.reduce_axis:
            _schedule_reduce_stage(s, op.output(0))
        elif not stage.is_output:
            stage.compute_inline()
    for o in outs:
        if not o.op.reduce_axis:
            schedule_injective_stage(s, o)
    return s
