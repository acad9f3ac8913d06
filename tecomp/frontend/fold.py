"""Import-time evaluation of small constant subgraphs: numpy versions of library operators.

The ONNX importer calls ``evaluate`` for a node whose inputs are all known at
import time and small (shape arithmetic: ``Shape -> Gather -> Concat ->
Reshape``, constant scalars). Each function here mirrors the semantics of the
``tecomp.schedules`` operator of the same name (truncating integer division,
ONNX slice clamping, clamped gather indices). Only correctly rounded operations
are listed (arithmetic, comparisons, sqrt, data movement; no transcendental
functions), so a folded value is what the compiled operator computes. Anything
else stays in the graph, where the graph compiler's constant folding evaluates
it with tecomp itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# Inputs larger than this stay in the graph: folding is for shape-sized data.
MAX_ELEMENTS = 4096


def _divide(a: np.ndarray, b: Any) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b, dtype=a.dtype)
    if a.dtype.kind == "f":
        return a / b
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.floor_divide(a, b)
        inexact = np.remainder(a, b) != 0
    return np.where(inexact & ((a < 0) != (b < 0)), q + 1, q)


def _slice_index(dim: int, start: int, end: int, step: int) -> np.ndarray:
    """The indices ONNX Slice takes along one axis (same clamping as ``strided_slice``)."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        count = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        count = max(0, -(-(start - end) // -step))
    return start + step * np.arange(count)


def _strided_slice(x: np.ndarray, begin: Sequence[int], end: Sequence[int],
                   strides: Sequence[int] | None = None, axes: Sequence[int] | None = None) -> np.ndarray:
    axes = range(len(begin)) if axes is None else axes
    strides = [1] * len(begin) if strides is None else strides
    for a, b, e, s in zip(axes, begin, end, strides):
        x = np.take(x, _slice_index(x.shape[a], b, e, s), axis=a)
    return x


def _bounded(indices: np.ndarray, dims: Any) -> np.ndarray:
    """ONNX indices wrapped once and clamped into ``[0, dims)`` (the library's ``bounded_index``)."""
    return np.clip(np.where(indices < 0, indices + dims, indices), 0, np.asarray(dims) - 1)


def _take(x: np.ndarray, indices: np.ndarray, axis: int = 0) -> np.ndarray:
    return np.take(x, _bounded(indices, x.shape[axis]), axis=axis)


def _gather_nd(data: np.ndarray, indices: np.ndarray, batch_dims: int = 0) -> np.ndarray:
    k = indices.shape[-1]
    idx = _bounded(indices, np.array(data.shape[batch_dims:batch_dims + k]))
    batches = data.reshape((-1,) + data.shape[batch_dims:])
    picked = [d[tuple(np.moveaxis(i, -1, 0))] for d, i in zip(batches, idx.reshape((len(batches), -1, k)))]
    return np.stack(picked).reshape(indices.shape[:-1] + data.shape[batch_dims + k:])


def _gather_elements(data: np.ndarray, indices: np.ndarray, axis: int = 0) -> np.ndarray:
    window = tuple(slice(None) if a == axis else slice(0, d) for a, d in enumerate(indices.shape))
    return np.take_along_axis(data[window], _bounded(indices, data.shape[axis]), axis)


def _scatter_from_sources(data: np.ndarray, updates: np.ndarray, sources: np.ndarray,
                          reduction: str = "none") -> np.ndarray:
    out, flat, sources = data.reshape(-1).copy(), updates.reshape(-1), sources.reshape(data.size, -1)
    combine = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
    for h in range(sources.shape[1]):  # writers in write order, as the library folds them
        hit = sources[:, h] >= 0
        value = flat[sources[hit, h]]
        out[hit] = value if reduction == "none" else combine[reduction](out[hit], value)
    return out.reshape(data.shape)


def _reshape(x: np.ndarray, newshape: Sequence[int]) -> np.ndarray:
    return x.reshape([x.shape[k] if d == 0 else d for k, d in enumerate(newshape)])


def _expand(x: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    return np.broadcast_to(x, np.broadcast_shapes(x.shape, tuple(shape))).copy()


def _split(x: np.ndarray, indices_or_sections: Any, axis: int = 0) -> list[np.ndarray]:
    return np.split(x, indices_or_sections, axis=axis)


def _reduce(fn: Callable) -> Callable:
    def reduce(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        return fn(x, axis=None if axis is None else tuple(np.atleast_1d(axis)), keepdims=keepdims)
    return reduce


def _pad(x: np.ndarray, pad_before: Sequence[int], pad_after: Sequence[int], pad_value: float = 0.0) -> np.ndarray:
    return np.pad(x, list(zip(pad_before, pad_after)), constant_values=pad_value)


def _clip(x: np.ndarray, a_min: Any = None, a_max: Any = None) -> np.ndarray:
    if a_min is not None:
        x = np.maximum(x, np.asarray(a_min, x.dtype))
    if a_max is not None:
        x = np.minimum(x, np.asarray(a_max, x.dtype))
    return x


def _mod(a: np.ndarray, b: Any, fmod: bool = False) -> np.ndarray:
    """ONNX Mod as the library's ``mod``: the sign of ``b`` (floor), or of ``a`` with ``fmod``."""
    return (np.fmod if fmod else np.mod)(a, np.asarray(b, dtype=a.dtype))


def _binary(fn: Callable) -> Callable:
    """A numpy ufunc called like a library binary operator, ``b`` possibly a keyword scalar."""
    return lambda a, b: fn(a, np.asarray(b, dtype=a.dtype) if np.isscalar(b) else b)


NUMPY_OPS: dict[str, Callable[..., Any]] = {
    **{name: _binary(fn) for name, fn in (
        ("add", np.add), ("subtract", np.subtract), ("multiply", np.multiply), ("divide", _divide),
        ("maximum", np.maximum), ("minimum", np.minimum), ("equal", np.equal), ("less", np.less),
        ("less_equal", np.less_equal), ("greater", np.greater), ("greater_equal", np.greater_equal),
        ("logical_and", np.logical_and), ("logical_or", np.logical_or), ("logical_xor", np.logical_xor))},
    "mod": _mod, "negative": np.negative, "abs": np.abs, "sqrt": np.sqrt, "logical_not": np.logical_not,
    "relu": lambda x: np.maximum(x, np.zeros((), x.dtype)), "clip": _clip, "where": np.where,
    "cast": lambda x, dtype: x.astype(dtype), "reshape": _reshape,
    "flatten": lambda x, axis=1: x.reshape(int(np.prod(x.shape[:axis])), -1),
    "transpose": lambda x, axes=None: np.transpose(x, axes), "concatenate": lambda xs, axis=0: np.concatenate(xs, axis),
    "split": _split, "strided_slice": _strided_slice, "take": _take, "expand": _expand, "pad": _pad,
    "sum": _reduce(np.sum), "max": _reduce(np.max), "min": _reduce(np.min),
    "gather_nd": _gather_nd, "gather_elements": _gather_elements, "scatter_from_sources": _scatter_from_sources,
}


def foldable(op: str, inputs: Sequence[np.ndarray]) -> bool:
    """Whether ``op`` on these constant ``inputs`` is evaluated at import time."""
    return op in NUMPY_OPS and all(a.size <= MAX_ELEMENTS for a in inputs)


def evaluate(op: str, inputs: Sequence[np.ndarray], attrs: dict[str, Any], list_input: bool) -> list[np.ndarray]:
    """``op(*inputs, **attrs)`` in numpy; ``list_input`` passes the inputs as one list (concatenate)."""
    args = [list(inputs)] if list_input else list(inputs)
    with np.errstate(all="ignore"):
        result = NUMPY_OPS[op](*args, **attrs)
    return [np.asarray(r) for r in (result if isinstance(result, list) else [result])]
