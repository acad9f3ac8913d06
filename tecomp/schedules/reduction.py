"""Reduction operators (sum, mean, max, min over axes) and their default schedule ``schedule_reduce``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import te
from ..te.operation import ComputeOp
from ..te.schedule import Schedule, create_schedule
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import accumulator_dtype, as_list, check_dtype, const_shape, fail, schedule_injective_stage
from .elementwise import ALL_FLOATS, FLOATS, NUMERIC_DTYPES

# value(x_indices, output_indices) -> the expression reduced (x at x_indices by default)
Value = Callable[[tuple, tuple], PrimExpr]

Axis = None | int | Sequence[int]


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

    return te.compute(tuple(out_shape), fcompute, name=op_name)


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


def max(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Maximum over ``axis`` (ONNX ReduceMax)."""
    return _reduce("max", x, axis, keepdims, te.max, NUMERIC_DTYPES)


def min(x: te.Tensor, axis: Axis = None, keepdims: bool = False) -> te.Tensor:
    """Minimum over ``axis`` (ONNX ReduceMin)."""
    return _reduce("min", x, axis, keepdims, te.min, NUMERIC_DTYPES)


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


def _schedule_reduce_stage(s: Schedule, t: Any) -> None:
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
