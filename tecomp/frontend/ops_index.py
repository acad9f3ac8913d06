"""ONNX converters for index-driven data movement and resampling: GatherND, GatherElements,
ScatterND, ScatterElements, Resize.

Scatters with indices known at import (initializers, constants) become
``scatter_from_sources``: the writers of every output element are listed with
numpy here, so the scatter is a gather (indices out of range are an import
error). Indices computed at run time use the library's reducing
``scatter_nd`` / ``scatter_elements``. Resize needs its scales or sizes (and
roi for ``tf_crop_and_resize``) at import: the output shape and the per-axis
sampling taps (``schedules.resize.resize_taps``) are computed here and passed
to the library's ``resize`` as constant tables.
"""

from __future__ import annotations

import numpy as np

from ..schedules import resize as resize_lib
from ..schedules.gather import scatter_sources
from .common import axes as norm_axes
from .common import axis as norm_axis
from .common import prod, same_dtype
from .importer import NodeContext, Value
from .registry import converter

# More writers than this for one element (scatters with a reduction and constant indices) and the
# run-time form (a reduction over the updates) is used instead of unrolling the writers.
MAX_UNROLLED_WRITERS = 8


@converter("GatherND", versions=(13,))
def _gather_nd(n: NodeContext) -> Value:
    data, indices = n.input(0), n.input(1)
    batch_dims = n.attr("batch_dims", 0)
    if not 0 <= batch_dims < min(data.rank, indices.rank):
        raise n.error(f"batch_dims={batch_dims} must be in [0, {min(data.rank, indices.rank)})")
    return n.emit("gather_nd", data, indices, batch_dims=batch_dims)


@converter("GatherElements", versions=(13,))
def _gather_elements(n: NodeContext) -> Value:
    data, indices = n.input(0), n.input(1)
    return n.emit("gather_elements", data, indices, axis=norm_axis(n, n.attr("axis", 0), data.rank))


def _reduction(n: NodeContext) -> str:
    if n.version < 16:
        return "none"
    allowed = ("none", "add", "mul") if n.version < 18 else ("none", "add", "mul", "max", "min")
    return n.choice("reduction", "none", allowed)


def _wrapped(n: NodeContext, indices: np.ndarray, dims: np.ndarray | int, what: str) -> np.ndarray:
    """Constant ONNX indices made non-negative; GraphError when one is out of range."""
    indices = indices.astype(np.int64)
    bad = (indices < -dims) | (indices >= dims)
    if bad.any():
        first = tuple(int(k) for k in np.argwhere(bad)[0])
        raise n.error(f"{what} at {first} is {int(indices[first])}, out of range for a dimension of size "
                      f"{int(np.broadcast_to(dims, indices.shape)[first])}")
    return np.where(indices < 0, indices + dims, indices)


def _scatter(n: NodeContext, targets: np.ndarray | None, runtime_op: str, **attrs: object) -> Value:
    """A scatter of ``updates`` into ``data``: through its writers when the flat ``targets`` of the
    update elements are known (and few per element), else the run-time operator."""
    data, indices, updates = n.input(0), n.input(1), n.input(2)
    same_dtype(n, [data, updates], "data and updates")
    reduction = _reduction(n)
    if targets is not None:
        sources = scatter_sources(data.shape, targets, reduction)
        if sources.shape[-1] <= MAX_UNROLLED_WRITERS:
            return n.emit("scatter_from_sources", data, updates, n.constant(sources), reduction=reduction)
    return n.emit(runtime_op, data, indices, updates, reduction=reduction, **attrs)


@converter("ScatterND", versions=(13, 16, 18))
def _scatter_nd(n: NodeContext) -> Value:
    data, indices = n.input(0), n.input(1)
    targets = None
    if indices.const is not None:
        k = indices.shape[-1] if indices.rank else 0
        if not 1 <= k <= data.rank:
            raise n.error(f"indices of shape {indices.shape}: the last dimension must be in [1, {data.rank}]")
        rows = _wrapped(n, indices.const.reshape(-1, k), np.array(data.shape[:k]), "indices")
        tail = prod(data.shape[k:])
        first = np.ravel_multi_index(tuple(rows.T), data.shape[:k]) if rows.size else np.zeros(0, np.int64)
        targets = (first[:, None] * tail + np.arange(tail)[None, :]).reshape(-1)
    return _scatter(n, targets, "scatter_nd")


@converter("ScatterElements", versions=(13, 16, 18))
def _scatter_elements(n: NodeContext) -> Value:
    data, indices = n.input(0), n.input(1)
    ax = norm_axis(n, n.attr("axis", 0), data.rank)
    targets = None
    if indices.const is not None and indices.rank == data.rank:
        coords = list(np.indices(indices.shape))
        coords[ax] = _wrapped(n, indices.const, data.shape[ax], "indices")
        if any(c.size and c.max() >= d for c, d in zip(coords, data.shape)):
            raise n.error(f"indices of shape {indices.shape} exceed data's shape {data.shape} off axis {ax}")
        targets = np.ravel_multi_index(tuple(coords), data.shape).reshape(-1)
    return _scatter(n, targets, "scatter_elements", axis=ax)


# ---------------------------------------------------------------------------- Resize

def _floats(n: NodeContext, k: int, what: str) -> list[np.floating] | None:
    """Optional float input ``k`` (absent or empty: None), known at import, as numpy scalars of its dtype."""
    if not n.has_input(k):
        return None
    array = n.const(k, what)
    if array.size and array.dtype.kind != "f":
        raise n.error(f"input {k} ({what}) must be floats, got {array.dtype}")
    return None if array.size == 0 else list(array.reshape(-1))


def _resize_shape(n: NodeContext, x: Value, axes: list[int]) -> tuple[list[int], dict[int, float]]:
    """The output shape and the scale of each resized axis, from scales or sizes."""
    scales = _floats(n, 2, "scales")
    sizes = n.ints(3, "sizes") if n.has_input(3) and n.const(3, "sizes").size else None
    policy = n.choice("keep_aspect_ratio_policy", "stretch", ("stretch", "not_larger", "not_smaller")) \
        if n.version >= 18 else "stretch"
    if (scales is None) == (sizes is None):
        raise n.error("exactly one of scales and sizes must be given (and not empty)")
    given = scales if scales is not None else sizes
    if len(given) != len(axes):
        raise n.error(f"{'scales' if scales is not None else 'sizes'} has {len(given)} entries for {len(axes)} axes")
    out = list(x.shape)
    if scales is not None:
        if min(scales) <= 0:
            raise n.error(f"scales {scales} must be positive")
        factor = {a: float(s) for a, s in zip(axes, scales)}
        for a, s in factor.items():
            out[a] = int(np.float64(s) * x.shape[a])
    else:
        if min(sizes) <= 0:
            raise n.error(f"sizes {sizes} must be positive")
        factor = {a: d / x.shape[a] for a, d in zip(axes, sizes)}
        for a, d in zip(axes, sizes):
            out[a] = d
        if policy != "stretch":  # one scale for all axes, the sizes rounded half up from it
            common = (min if policy == "not_larger" else max)(factor.values())
            factor = dict.fromkeys(axes, common)
            for a in axes:
                out[a] = int(common * x.shape[a] + 0.5)
    if min(out, default=1) <= 0:
        raise n.error(f"the output shape {out} is empty (input {x.shape}); tecomp needs a non-empty output")
    return out, factor


@converter("Resize", versions=(13, 18, 19))
def _resize(n: NodeContext) -> Value:
    x = n.input(0)
    mode = n.choice("mode", "nearest", resize_lib.MODES)
    coordinate_modes = resize_lib.COORDINATE_MODES if n.version >= 19 else \
        tuple(m for m in resize_lib.COORDINATE_MODES if m != "half_pixel_symmetric")
    coordinate_mode = n.choice("coordinate_transformation_mode", "half_pixel", coordinate_modes)
    nearest_mode = n.choice("nearest_mode", "round_prefer_floor", resize_lib.NEAREST_MODES)
    cubic_coeff_a = float(n.attr("cubic_coeff_a", -0.75))
    exclude_outside = bool(n.choice("exclude_outside", 0, (0, 1)))
    extrapolation_value = float(n.attr("extrapolation_value", 0.0))
    antialias = bool(n.choice("antialias", 0, (0, 1))) if n.version >= 18 else False
    axes = n.attr("axes", None) if n.version >= 18 else None
    axes = list(range(x.rank)) if axes is None else norm_axes(n, axes, x.rank)
    out, factor = _resize_shape(n, x, axes)
    roi = [0.0, 1.0] * len(axes)
    if coordinate_mode == "tf_crop_and_resize":
        given = _floats(n, 1, "roi")
        if given is None or len(given) != 2 * len(axes):
            raise n.error(f"coordinate_transformation_mode=tf_crop_and_resize needs roi with {2 * len(axes)} "
                          f"values (starts, then ends, of the {len(axes)} resized axes), got {given}")
        roi = [v for k in range(len(axes)) for v in (given[k], given[k + len(axes)])]
    if mode != "nearest" and x.dtype not in resize_lib.INTERPOLATED_IN:
        raise n.error(f"mode={mode} interpolates {', '.join(resize_lib.INTERPOLATED_IN)} data, the input is "
                      f"{x.dtype} (mode nearest copies any dtype)")
    resized, taps = [], []
    for k, a in enumerate(axes):
        index, weight = resize_lib.resize_taps(
            x.shape[a], out[a], factor[a], mode, coordinate_mode, nearest_mode, cubic_coeff_a, exclude_outside,
            antialias and mode != "nearest", roi[2 * k:2 * k + 2])  # antialias widens linear/cubic only
        if not resize_lib.is_identity(index, weight, x.shape[a]):
            resized.append(a)
            taps.append((index, weight))
    if not resized:
        return x
    index, weight = resize_lib.stack_taps(taps, resize_lib.INTERPOLATED_IN.get(x.dtype))
    extrapolate = any((i < 0).any() for i, _ in taps)
    tables = [n.constant(index)] + ([] if weight is None else [n.constant(weight)])
    return n.emit("resize", x, *tables, axes=resized, shape=out,
                  extrapolation_value=extrapolation_value if extrapolate else None)
