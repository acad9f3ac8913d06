"""Index-driven gathers and scatters (ONNX GatherND, GatherElements, ScatterND, ScatterElements).

Gathers are injective: each output element loads one element of ``data`` at a
position read from ``indices`` (negative indices wrap once, indices still out
of range are clamped, so no load leaves ``data``). Schedule them with
``schedule_injective``.

Scatters write ``updates`` into a copy of ``data``. Two forms:

- ``scatter_from_sources``: the writers of every output element are known
  ahead of time (indices that are constants at import: ``scatter_sources``
  computes them with numpy). The output is then a gather: each element folds
  its (at most a few) writers into ``data``'s value in write order. Injective.
- ``scatter_nd`` / ``scatter_elements``: indices computed at run time. Each
  output element reduces over the updates that could hit it: with a
  reduction, ``reduction(updates that hit)`` combined with ``data``; without
  one (``"none"``), the last writer wins (the largest hitting update
  position, then one guarded load). Scheduled by ``schedule_scatter``
  (the reduction stage, then the injective output).

``reduction`` is one of ``none``, ``add``, ``mul``, ``max``, ``min`` (ONNX).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import te
from ..te.schedule import Schedule
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail
from .reduction import schedule_reduce

INDEX_DTYPES = ("int32", "int64")
REDUCTIONS = ("none", "add", "mul", "max", "min")
_COMBINE: dict[str, Callable[[PrimExpr, PrimExpr], PrimExpr]] = {
    "add": lambda a, b: a + b, "mul": lambda a, b: a * b,
    "max": lambda a, b: te.max(a, b), "min": lambda a, b: te.min(a, b),
}
_product = te.comm_reducer(lambda a, b: a * b, lambda t: te.const(1, t), name="product")
_REDUCERS = {"add": te.sum, "mul": _product, "max": te.max, "min": te.min}


def _shape(op_name: str, t: Any, argument: str) -> tuple[int, ...]:
    if not isinstance(t, te.Tensor):
        raise fail(op_name, argument, f"expected a tensor, got {type(t).__name__}")
    return const_shape(t, op_name, argument)


def _indices_shape(op_name: str, indices: Any) -> tuple[int, ...]:
    shape = _shape(op_name, indices, "indices")
    check_dtype(indices, op_name, "indices", INDEX_DTYPES)
    return shape


def _reduction(op_name: str, reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise fail(op_name, "reduction", f"{reduction!r} is not one of {', '.join(REDUCTIONS)}")
    return reduction


def _axis(op_name: str, axis: int, rank: int) -> int:
    if not isinstance(axis, int) or not -rank <= axis < rank:
        raise fail(op_name, "axis", f"{axis!r} is out of range for a tensor of rank {rank}")
    return axis % rank


def wrapped_index(idx: PrimExpr, dim: int) -> PrimExpr:
    """An ONNX index into a dimension of size ``dim``: negative counts from the end (once)."""
    return te.select(idx < 0, idx + dim, idx)


def bounded_index(idx: PrimExpr, dim: int) -> PrimExpr:
    """``wrapped_index`` clamped into ``[0, dim)`` so that a load with it stays inside the tensor."""
    idx = wrapped_index(idx, dim)
    return te.max(te.min(idx, te.const(dim - 1, idx.dtype)), te.const(0, idx.dtype))


def unravel(flat: PrimExpr, shape: Sequence[int]) -> tuple[PrimExpr, ...]:
    """Row-major coordinates of the flat position ``flat`` in ``shape``."""
    coords = []
    for d in reversed(shape):
        coords.append(te.floormod(flat, d))
        flat = te.floordiv(flat, d)
    return tuple(reversed(coords))


def gather_nd(data: te.Tensor, indices: te.Tensor, batch_dims: int = 0) -> te.Tensor:
    """ONNX GatherND: slices of ``data`` addressed by the last axis of ``indices``.

    With ``b = batch_dims`` and ``k = indices.shape[-1]``, the output has shape
    ``indices.shape[:-1] + data.shape[b + k:]``; output ``(i, j)`` (``i`` over
    ``indices.shape[:-1]``) is ``data[i[:b], indices[i], j]``.
    """
    shape = _shape("gather_nd", data, "data")
    ishape = _indices_shape("gather_nd", indices)
    if not isinstance(batch_dims, int) or batch_dims < 0:
        raise fail("gather_nd", "batch_dims", f"must be a non-negative int, got {batch_dims!r}")
    if len(ishape) < 1 or batch_dims >= len(ishape):
        raise fail("gather_nd", "indices", f"rank {len(ishape)} must exceed batch_dims={batch_dims}")
    b, k = batch_dims, ishape[-1]
    if not 1 <= b + k <= len(shape):
        raise fail("gather_nd", "indices", f"last dimension {k} with batch_dims={b} addresses more than the "
                                           f"{len(shape)} axes of data, or none")
    if ishape[:b] != shape[:b]:
        raise fail("gather_nd", "indices", f"batch dimensions {ishape[:b]} differ from data's {shape[:b]}")
    lead = len(ishape) - 1

    def fcompute(*o: PrimExpr) -> PrimExpr:
        head = tuple(o[:lead])
        picked = tuple(bounded_index(indices[head + (t,)], shape[b + t]) for t in range(k))
        return data[tuple(o[:b]) + picked + tuple(o[lead:])]

    return te.compute(ishape[:-1] + shape[b + k:], fcompute, name="gather_nd")


def gather_elements(data: te.Tensor, indices: te.Tensor, axis: int = 0) -> te.Tensor:
    """ONNX GatherElements: ``out[i] = data[i with i[axis] replaced by indices[i]]`` (shape of ``indices``)."""
    shape = _shape("gather_elements", data, "data")
    ishape = _indices_shape("gather_elements", indices)
    ax = _axis("gather_elements", axis, len(shape))
    if len(ishape) != len(shape):
        raise fail("gather_elements", "indices", f"rank {len(ishape)} differs from data's rank {len(shape)}")
    if any(i > d for a, (i, d) in enumerate(zip(ishape, shape)) if a != ax):
        raise fail("gather_elements", "indices", f"shape {ishape} exceeds data's {shape} off axis {ax}")

    def fcompute(*i: PrimExpr) -> PrimExpr:
        return data[tuple(i[:ax]) + (bounded_index(indices[i], shape[ax]),) + tuple(i[ax + 1:])]

    return te.compute(ishape, fcompute, name="gather_elements")


# ---------------------------------------------------------------------------- known writers

def scatter_sources(data_shape: Sequence[int], targets: np.ndarray, reduction: str) -> np.ndarray:
    """The writers of each element of ``data_shape``, for ``scatter_from_sources``.

    ``targets[u]`` is the flat output position update element ``u`` (row-major
    over the updates) writes. Returns int32 ``sources`` of shape
    ``data_shape + (h,)``: the update positions writing each element in write
    order, padded with -1; for ``"none"`` only the last writer (``h = 1``).
    """
    size = int(np.prod(data_shape, dtype=np.int64))
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    order = np.argsort(targets, kind="stable")          # writers grouped by target, in write order
    counts = np.bincount(targets, minlength=size)
    if reduction == "none":
        sources = np.full(size, -1, np.int64)
        np.maximum.at(sources, targets, np.arange(targets.size))  # the last writer wins
        return sources.astype(np.int32).reshape(tuple(data_shape) + (1,))
    hits = max(int(counts.max(initial=0)), 1)
    rank = np.arange(targets.size) - np.repeat(np.cumsum(counts) - counts, counts)
    sources = np.full((size, hits), -1, np.int64)
    sources[targets[order], rank] = order
    return sources.astype(np.int32).reshape(tuple(data_shape) + (hits,))


def scatter_from_sources(data: te.Tensor, updates: te.Tensor, sources: te.Tensor,
                         reduction: str = "none") -> te.Tensor:
    """A scatter whose writers are known (``scatter_sources``): ``data`` with each element's writers
    (flat positions into ``updates``, -1 for none) folded in with ``reduction`` (``none``: replaced)."""
    name = "scatter_from_sources"
    shape = _shape(name, data, "data")
    ushape = _shape(name, updates, "updates")
    sshape = _shape(name, sources, "sources")
    check_dtype(sources, name, "sources", INDEX_DTYPES)
    _reduction(name, reduction)
    if updates.dtype != data.dtype:
        raise fail(name, "updates", f"dtype {updates.dtype} differs from data's {data.dtype}")
    if sshape[:-1] != shape or len(sshape) != len(shape) + 1 or (reduction == "none" and sshape[-1] != 1):
        raise fail(name, "sources", f"shape {sshape} must be data's {shape} plus one axis of writers "
                                    "(of size 1 for reduction none)")
    count = int(np.prod(ushape, dtype=np.int64))

    def fcompute(*i: PrimExpr) -> PrimExpr:
        acc = data[i]
        for h in range(sshape[-1]):
            src = sources[tuple(i) + (h,)]
            value = updates[unravel(te.max(te.min(src, count - 1), 0), ushape)]
            new = value if reduction == "none" else _COMBINE[reduction](acc, value)
            acc = te.if_then_else(src >= 0, new, acc)
        return acc

    return te.compute(shape, fcompute, name=name)


# ---------------------------------------------------------------------------- run-time indices

def _finish(name: str, data: te.Tensor, reduction: str, hit_value: Callable[..., PrimExpr],
            winner_load: Callable[..., PrimExpr] | None = None) -> te.Tensor:
    """The output: ``data`` combined with what hit each element (``none``: the winner's update, if any)."""
    shape = tuple(int(d.value) for d in data.shape)
    if winner_load is not None:
        return te.compute(shape, lambda *i: te.if_then_else(winner_load(*i) >= 0, hit_value(*i), data[i]),
                          name=name)
    return te.compute(shape, lambda *i: _COMBINE[reduction](data[i], hit_value(*i)), name=name)


def scatter_nd(data: te.Tensor, indices: te.Tensor, updates: te.Tensor, reduction: str = "none") -> te.Tensor:
    """ONNX ScatterND with indices computed at run time.

    ``indices`` has shape ``(..., k)``; update row ``u`` (over ``indices.shape[:-1]``)
    writes ``updates[u]`` (shape ``data.shape[k:]``) at ``data[indices[u]]``.
    Indices out of range after wrapping write nothing.
    """
    name = "scatter_nd"
    shape = _shape(name, data, "data")
    ishape = _indices_shape(name, indices)
    ushape = _shape(name, updates, "updates")
    _reduction(name, reduction)
    if not ishape or not 1 <= ishape[-1] <= len(shape):
        raise fail(name, "indices", f"shape {ishape}: the last dimension must be in [1, {len(shape)}]")
    k, rows = ishape[-1], ishape[:-1]
    if ushape != rows + shape[k:]:
        raise fail(name, "updates", f"shape {ushape} must be {rows + shape[k:]}")
    if updates.dtype != data.dtype:
        raise fail(name, "updates", f"dtype {updates.dtype} differs from data's {data.dtype}")
    count = int(np.prod(rows, dtype=np.int64))

    def hits(u: PrimExpr, i: Sequence[PrimExpr]) -> PrimExpr:
        row = unravel(u, rows)
        return te.all(*[wrapped_index(indices[row + (t,)], shape[t]) == i[t] for t in range(k)])

    if reduction == "none":
        u = te.reduce_axis((0, count), name="u")
        winner = te.compute(shape[:k], lambda *i: te.max(u, axis=u, where=hits(u, i)), name=f"{name}_writer")
        return _finish(name, data, reduction,
                       lambda *i: updates[unravel(te.max(winner[i[:k]], 0), rows) + tuple(i[k:])],
                       lambda *i: winner[i[:k]])
    u = te.reduce_axis((0, count), name="u")
    combined = te.compute(shape, lambda *i: _REDUCERS[reduction](updates[unravel(u, rows) + tuple(i[k:])],
                                                                 axis=u, where=hits(u, i)),
                          name=f"{name}_{reduction}")
    return _finish(name, data, reduction, lambda *i: combined[i])


def scatter_elements(data: te.Tensor, indices: te.Tensor, updates: te.Tensor, axis: int = 0,
                     reduction: str = "none") -> te.Tensor:
    """ONNX ScatterElements with indices computed at run time: ``updates[p]`` goes to ``data`` at
    ``p`` with ``p[axis]`` replaced by ``indices[p]``. Indices out of range after wrapping write nothing."""
    name = "scatter_elements"
    shape = _shape(name, data, "data")
    ishape = _indices_shape(name, indices)
    ushape = _shape(name, updates, "updates")
    ax = _axis(name, axis, len(shape))
    _reduction(name, reduction)
    if ushape != ishape or len(ishape) != len(shape):
        raise fail(name, "updates", f"shape {ushape} must equal indices' {ishape}, of data's rank {len(shape)}")
    if any(i > d for a, (i, d) in enumerate(zip(ishape, shape)) if a != ax):
        raise fail(name, "indices", f"shape {ishape} exceeds data's {shape} off axis {ax}")
    if updates.dtype != data.dtype:
        raise fail(name, "updates", f"dtype {updates.dtype} differs from data's {data.dtype}")
    others = [a for a in range(len(shape)) if a != ax]

    def at(i: Sequence[PrimExpr], r: PrimExpr) -> tuple[PrimExpr, ...]:
        """Position ``r`` along the axis of the update row in line with output ``i`` (clamped inside)."""
        return tuple(r if a == ax else te.min(i[a], ishape[a] - 1) for a in range(len(shape)))

    def hits(i: Sequence[PrimExpr], r: PrimExpr) -> PrimExpr:
        inside = [i[a] < ishape[a] for a in others if ishape[a] < shape[a]]
        return te.all(*inside, wrapped_index(indices[at(i, r)], shape[ax]) == i[ax])

    r = te.reduce_axis((0, ishape[ax]), name="r")
    if reduction == "none":
        winner = te.compute(shape, lambda *i: te.max(r, axis=r, where=hits(i, r)), name=f"{name}_writer")
        return _finish(name, data, reduction, lambda *i: updates[at(i, te.max(winner[i], 0))],
                       lambda *i: winner[i])
    combined = te.compute(shape, lambda *i: _REDUCERS[reduction](updates[at(i, r)], axis=r, where=hits(i, r)),
                          name=f"{name}_{reduction}")
    return _finish(name, data, reduction, lambda *i: combined[i])


def schedule_scatter(outs: Any) -> Schedule:
    """Schedule of ``scatter_nd`` / ``scatter_elements``: the per-element reduction over the updates
    in parallel, then the output (injective)."""
    return schedule_reduce(outs)
