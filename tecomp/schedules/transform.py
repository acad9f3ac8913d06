"""Layout and indexing operators: transpose, reshape, flatten, concatenate, split, slice, pad, take, expand.

All are injective: schedule them with ``schedule_injective``. Shapes must be
constant; argument problems raise OperatorError when the operator is defined.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from .. import te
from ..tir.expr import PrimExpr
from .common import check_dtype, const_shape, fail
from .elementwise import broadcast_load, broadcast_shape
from .gather import bounded_index


def _shape(op_name: str, x: te.Tensor, argument: str = "x") -> tuple[int, ...]:
    if not isinstance(x, te.Tensor):
        raise fail(op_name, argument, f"expected a tensor, got {type(x).__name__}")
    return const_shape(x, op_name, argument)


def _axis(op_name: str, axis: int, ndim: int, argument: str = "axis") -> int:
    if not isinstance(axis, int) or not -ndim <= axis < ndim:
        raise fail(op_name, argument, f"{axis!r} is out of range for a tensor of rank {ndim}")
    return axis % ndim


def _prod(dims: Sequence[int]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def transpose(x: te.Tensor, axes: Sequence[int] | None = None) -> te.Tensor:
    """Permute the axes of ``x`` (ONNX Transpose); output axis k is input axis ``axes[k]``; default reverses."""
    shape = _shape("transpose", x)
    ndim = len(shape)
    perm = tuple(reversed(range(ndim))) if axes is None else tuple(_axis("transpose", a, ndim, "axes") for a in axes)
    if sorted(perm) != list(range(ndim)):
        raise fail("transpose", "axes", f"{tuple(axes or ())} is not a permutation of the {ndim} axes")

    def fcompute(*i: PrimExpr) -> PrimExpr:
        src = [None] * ndim
        for k, p in enumerate(perm):
            src[p] = i[k]
        return x[tuple(src)]

    return te.compute(tuple(shape[p] for p in perm), fcompute, name="transpose")


def _reshape_target(shape: tuple[int, ...], newshape: Sequence[int]) -> tuple[int, ...]:
    out = [shape[k] if d == 0 and k < len(shape) else d for k, d in enumerate(newshape)]
    if any(not isinstance(d, int) or d < -1 or (d == 0 and k >= len(shape)) for k, d in enumerate(newshape)):
        raise fail("reshape", "newshape", f"{tuple(newshape)} has an entry that is not -1, 0 (within rank) "
                                          "or a positive size")
    if out.count(-1) > 1:
        raise fail("reshape", "newshape", f"{tuple(newshape)} has more than one -1")
    total, known = _prod(shape), _prod(d for d in out if d != -1)
    if -1 in out:
        if known == 0 or total % known:
            raise fail("reshape", "newshape", f"cannot infer -1 in {tuple(newshape)} for shape {shape}")
        out[out.index(-1)] = total // known
    if _prod(out) != total:
        raise fail("reshape", "newshape", f"{tuple(newshape)} has {_prod(out)} elements, the input {shape} "
                                          f"has {total}")
    return tuple(out)


def reshape(x: te.Tensor, newshape: Sequence[int]) -> te.Tensor:
    """``x`` in a new shape, same row-major order (ONNX Reshape: 0 copies the input dim, -1 is inferred)."""
    shape = _shape("reshape", x)
    out = _reshape_target(shape, newshape)

    def fcompute(*i: PrimExpr) -> PrimExpr:
        flat: PrimExpr | int = 0
        for k, d in enumerate(out):
            flat = flat * d + i[k]
        src = []
        for d in reversed(shape):
            src.append(te.floormod(flat, d))
            flat = te.floordiv(flat, d)
        return x[tuple(reversed(src))]

    return te.compute(out, fcompute, name="reshape")


def flatten(x: te.Tensor, axis: int = 1) -> te.Tensor:
    """A 2-D view: dims before ``axis`` form rows, the rest columns (ONNX Flatten, axis in [-r, r])."""
    shape = _shape("flatten", x)
    if not isinstance(axis, int) or not -len(shape) <= axis <= len(shape):
        raise fail("flatten", "axis", f"{axis!r} is out of range [-{len(shape)}, {len(shape)}]")
    if axis < 0:
        axis += len(shape)
    return reshape(x, (_prod(shape[:axis]), _prod(shape[axis:])))


def concatenate(tensors: Sequence[te.Tensor], axis: int = 0) -> te.Tensor:
    """Join ``tensors`` along ``axis`` (ONNX Concat); other dims and dtypes must agree."""
    if not tensors:
        raise fail("concatenate", "tensors", "is empty")
    shapes = [_shape("concatenate", t, f"tensors[{k}]") for k, t in enumerate(tensors)]
    ax = _axis("concatenate", axis, len(shapes[0]))
    for k, (t, s) in enumerate(zip(tensors, shapes)):
        if len(s) != len(shapes[0]) or any(d != d0 for j, (d, d0) in enumerate(zip(s, shapes[0])) if j != ax):
            raise fail("concatenate", f"tensors[{k}]", f"shape {s} does not match {shapes[0]} off axis {ax}")
        if t.dtype != tensors[0].dtype:
            raise fail("concatenate", f"tensors[{k}]", f"dtype {t.dtype} differs from {tensors[0].dtype}")
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + s[ax])

    def fcompute(*i: PrimExpr) -> PrimExpr:
        def load(k: int) -> PrimExpr:
            return tensors[k][i[:ax] + (i[ax] - offsets[k],) + i[ax + 1:]]
        expr = load(len(tensors) - 1)
        for k in reversed(range(len(tensors) - 1)):
            expr = te.if_then_else(i[ax] < offsets[k + 1], load(k), expr)
        return expr

    out_shape = shapes[0][:ax] + (offsets[-1],) + shapes[0][ax + 1:]
    return te.compute(out_shape, fcompute, name="concatenate")


def split(x: te.Tensor, indices_or_sections: int | Sequence[int], axis: int = 0) -> list[te.Tensor]:
    """Split ``x`` along ``axis`` (numpy.split): into N equal parts, or at the given sorted indices."""
    shape = _shape("split", x)
    ax = _axis("split", axis, len(shape))
    dim = shape[ax]
    if isinstance(indices_or_sections, int):
        n = indices_or_sections
        if n <= 0 or dim % n:
            raise fail("split", "indices_or_sections", f"{n} sections do not divide dimension {ax} of size {dim}")
        cuts = [dim // n * k for k in range(1, n)]
    else:
        cuts = list(indices_or_sections)
        if any(not isinstance(c, int) or not 0 <= c <= dim for c in cuts) or cuts != sorted(cuts):
            raise fail("split", "indices_or_sections", f"{cuts} must be sorted ints within [0, {dim}]")
    bounds = [0] + cuts + [dim]
    return [strided_slice(x, [lo], [hi], axes=[ax]) for lo, hi in pairwise(bounds)]


def _slice_axis(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX Slice clamping: the effective start and the output length."""
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return start, max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, max(0, -(-(start - end) // -step))



def strided_slice(x: te.Tensor, begin: Sequence[int], end: Sequence[int],
                  strides: Sequence[int] | None = None, axes: Sequence[int] | None = None) -> te.Tensor:
    """ONNX Slice: elements ``begin[k]:end[k]:strides[k]`` along ``axes[k]`` (default the first axes).

    Negative begin/end count from the end; both are clamped to the dimension
    (to [0, dim] for a positive stride, [-1, dim-1] for a negative one).
    """
    shape = _shape("strided_slice", x)
    n = len(begin)
    axes = list(range(n)) if axes is None else [_axis("strided_slice", a, len(shape), "axes") for a in axes]
    strides = [1] * n if strides is None else list(strides)
    for argument, seq in (("end", end), ("strides", strides), ("axes", axes)):
        if len(seq) != n:
            raise fail("strided_slice", argument, f"has {len(seq)} entries, begin has {n}")
    if len(set(axes)) != n or n > len(shape):
        raise fail("strided_slice", "axes", f"{axes} repeats an axis or exceeds rank {len(shape)}")
    if 0 in strides:
        raise fail("strided_slice", "strides", "a stride is 0")
    starts, steps, out = [0] * len(shape), [1] * len(shape), list(shape)
    for a, b, e, st in zip(axes, begin, end, strides):
        starts[a], out[a] = _slice_axis(shape[a], b, e, st)
        steps[a] = st
    return te.compute(tuple(out), lambda *i: x[tuple(s + v * st for s, v, st in zip(starts, i, steps))],
                      name="strided_slice")


def pad(x: te.Tensor, pad_before: Sequence[int], pad_after: Sequence[int], pad_value: float = 0.0,
        tag: str = "") -> te.Tensor:
    """Constant padding (ONNX Pad, mode constant); padded positions never load from ``x``.
    ``tag`` marks the stage for the schedule of an operator that pads its input."""
    shape = _shape("pad", x)
    for argument, seq in (("pad_before", pad_before), ("pad_after", pad_after)):
        if len(seq) != len(shape) or any(not isinstance(p, int) or p < 0 for p in seq):
            raise fail("pad", argument, f"{tuple(seq)} must be {len(shape)} non-negative ints")
    out = tuple(d + b + a for d, b, a in zip(shape, pad_before, pad_after))

    def fcompute(*i: PrimExpr) -> PrimExpr:
        inside = [te.all(v >= b, v < b + d)
                  for v, b, a, d in zip(i, pad_before, pad_after, shape) if b or a]
        value = x[tuple(v - b for v, b in zip(i, pad_before))]
        return te.if_then_else(te.all(*inside), value, te.const(pad_value, x.dtype)) if inside else value

    return te.compute(out, fcompute, name="pad", tag=tag)


def take(x: te.Tensor, indices: te.Tensor, axis: int = 0) -> te.Tensor:
    """ONNX Gather: ``x`` indexed along ``axis`` by ``indices`` (int32/int64).

    Output shape is ``x.shape[:axis] + indices.shape + x.shape[axis+1:]``.
    Negative indices wrap once; indices still out of range are clamped so no
    load leaves ``x``.
    """
    shape = _shape("take", x)
    ishape = _shape("take", indices, "indices")
    check_dtype(indices, "take", "indices", ("int32", "int64"))
    ax = _axis("take", axis, len(shape))
    dim = shape[ax]
    if dim == 0:
        raise fail("take", "x", f"dimension {ax} is empty")
    out = shape[:ax] + ishape + shape[ax + 1:]

    def fcompute(*i: PrimExpr) -> PrimExpr:
        idx = bounded_index(indices[tuple(i[ax:ax + len(ishape)])], dim)
        return x[tuple(i[:ax]) + (idx,) + tuple(i[ax + len(ishape):])]

    return te.compute(out, fcompute, name="take")


def expand(x: te.Tensor, shape: Sequence[int]) -> te.Tensor:
    """ONNX Expand: broadcast ``x`` and ``shape`` together (a dim of 1 in ``shape`` keeps x's dim)."""
    xshape = _shape("expand", x)
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise fail("expand", "shape", f"{tuple(shape)} must be non-negative ints")
    out = broadcast_shape(xshape, tuple(shape), "expand")
    return te.compute(out, lambda *i: broadcast_load(x, xshape, out, i), name="expand")
