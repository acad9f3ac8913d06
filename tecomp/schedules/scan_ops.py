"""Operators that order or accumulate along one axis: ``cumsum`` (ONNX CumSum) and ``topk`` (ONNX
TopK), with their default schedules.

``cumsum`` is a ``te.scan`` along the axis (``O(n)``). ``topk`` is written as reductions over the
axis: it ranks every element by counting the elements before it in the order (``O(n^2)``) and
then gathers the element of each rank below k (``O(n k)``). Rows of a few thousand elements stay
cheap; the work is parallel over the other axes.
"""

from __future__ import annotations

from typing import Any

from .. import te
from ..target import Target
from ..tir import op as tir_op
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail
from .elementwise import NUMERIC_DTYPES
from .recurrent import schedule_recurrent
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
    ``reverse`` sums from the end. One ``te.scan`` over the axis (a serial loop, ``O(n)``), its
    state laid out axis first and read back in ``x``'s layout; on a cuda target, whose schedules
    have no scan yet, each element sums its prefix (``O(n^2)``, parallel)."""
    shape, axis = _one_axis("cumsum", x, axis)
    target = Target.current(allow_none=True)
    if target is not None and target.kind == "cuda":
        return _prefix_sums(x, shape, axis, exclusive, reverse)
    n = shape[axis]
    rest = shape[:axis] + shape[axis + 1:]

    def source(step: Any, other: tuple) -> PrimExpr:
        """x at scan step ``step`` (counted from the end with ``reverse``) and the other indices."""
        position = n - 1 - step if reverse else step
        return x[other[:axis] + (position,) + other[axis:]]

    zero = te.const(0, x.dtype)
    state = te.placeholder((n,) + rest, x.dtype, name="cumsum_state")
    init = te.compute((1,) + rest, lambda _, *o: zero if exclusive else source(0, o), name="cumsum_init")
    update = te.compute((n,) + rest, lambda t, *o: state[(t - 1,) + o] + source(t - 1 if exclusive else t, o),
                        name="cumsum_update")
    sums = te.scan(init, update, state, name="cumsum_scan")

    def read_back(*i: PrimExpr) -> PrimExpr:
        step = n - 1 - i[axis] if reverse else i[axis]
        return sums[(step,) + i[:axis] + i[axis + 1:]]

    return te.compute(shape, read_back, name="cumsum")


def _prefix_sums(x: te.Tensor, shape: tuple[int, ...], axis: int, exclusive: bool, reverse: bool) -> te.Tensor:
    """cumsum as a masked sum over the axis for every element."""
    r = te.reduce_axis((0, shape[axis]), name="r")

    def fcompute(*i: PrimExpr) -> PrimExpr:
        here, other = i[axis], r.var
        if reverse:
            taken = other > here if exclusive else other >= here
        else:
            taken = other < here if exclusive else other <= here
        return te.sum(te.select(taken, x[_with(i, axis, r)], te.const(0, x.dtype)), axis=r)

    return te.compute(shape, fcompute, name="cumsum")


# The scan's per-step update vectorized over its last axis, the read-back injective: the
# recurrent layers' scan schedule.
schedule_cumsum = schedule_recurrent


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


# Each reduction stage (the ranks, the indices) runs its other axes in parallel; topk's gather of
# the values is an injective output stage.
schedule_topk = schedule_reduce
