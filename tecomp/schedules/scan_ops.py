"""Operators that order or accumulate along one axis: ``cumsum`` (ONNX CumSum) and ``topk`` (ONNX
TopK), with their default schedules.

te has no sequential scan, so both are written as reductions over the axis: ``cumsum`` sums the
masked prefix of each element (``O(n^2)`` per row), ``topk`` ranks every element by counting the
elements before it in the order (``O(n^2)``) and then gathers the element of each rank below k
(``O(n k)``). Rows of a few thousand elements stay cheap; the work is parallel over the other axes.
"""

from __future__ import annotations

from typing import Any

from .. import te
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail
from .elementwise import NUMERIC_DTYPES
from .reduction import normalize_axes, schedule_reduce


def _one_axis(op_name: str, x: te.Tensor, axis: int) -> tuple[tuple[int, ...], int]:
    if not isinstance(x, te.Tensor):
        raise fail(op_name, "x", f"expected a tensor, got {type(x).__name__}")
    check_dtype(x, op_name, "x", NUMERIC_DTYPES)
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise fail(op_name, "axis", f"expected one int, got {axis!r}")
    shape = const_shape(x, op_name, "x")
    if not shape:
        raise fail(op_name, "x", "needs rank 1 or more, got a scalar")
    return shape, normalize_axes(op_name, axis, len(shape))[0]


def _with(indices: tuple, axis: int, value: Any) -> tuple:
    return tuple(value if k == axis else v for k, v in enumerate(indices))


def cumsum(x: te.Tensor, axis: int = 0, exclusive: bool = False, reverse: bool = False) -> te.Tensor:
    """Running sums along ``axis`` (ONNX CumSum): ``exclusive`` leaves the element itself out,
    ``reverse`` sums from the end."""
    shape, axis = _one_axis("cumsum", x, axis)
    r = te.reduce_axis((0, shape[axis]), name="r")

    def fcompute(*i: PrimExpr) -> PrimExpr:
        here, other = i[axis], r.var
        if reverse:
            taken = other > here if exclusive else other >= here
        else:
            taken = other < here if exclusive else other <= here
        return te.sum(te.select(taken, x[_with(i, axis, r)], te.const(0, x.dtype)), axis=r)

    return te.compute(shape, fcompute, name="cumsum")


def topk(x: te.Tensor, k: int, axis: int = -1, largest: bool = True) -> list[te.Tensor]:
    """The ``k`` largest (or smallest) elements along ``axis`` and their int64 indices, sorted; equal
    elements keep their order (the lower index first), as ONNX TopK specifies."""
    shape, axis = _one_axis("topk", x, axis)
    n = shape[axis]
    if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k <= n:
        raise fail("topk", "k", f"must be an int in [0, {n}] (the size of axis {axis}), got {k!r}")
    before = ">" if largest else "<"
    j = te.reduce_axis((0, n), name="j")

    def rank_of(*i: PrimExpr) -> PrimExpr:
        mine, other = x[i], x[_with(i, axis, j)]
        ahead = te.any(tir_op.cmp(before, other, mine), te.all(other == mine, j.var < i[axis]))
        return te.sum(tir_op.cast(ahead, "int64"), axis=j)

    rank = te.compute(shape, rank_of, name="topk_rank")
    src = te.reduce_axis((0, n), name="src")
    out_shape = _with(shape, axis, k)

    def index_of(*p: PrimExpr) -> PrimExpr:
        hit = rank[_with(p, axis, src)] == tir_op.cast(p[axis], "int64")
        return te.sum(te.select(hit, tir_op.cast(src.var, "int64"), te.const(0, "int64")), axis=src)

    indices = te.compute(out_shape, index_of, name="topk_indices")
    values = te.compute(out_shape, lambda *p: x[_with(p, axis, indices[p])], name="topk_values")
    return [values, indices]


# Each reduction stage (the sums, the ranks, the indices) runs its other axes in parallel; topk's
# gather of the values is an injective output stage.
schedule_cumsum = schedule_topk = schedule_reduce
