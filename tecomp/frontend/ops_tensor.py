"""ONNX converters for constants, shapes and layout: Constant, ConstantOfShape, Range, Shape, Size,
Reshape, Flatten, Squeeze/Unsqueeze, Transpose, Concat, Split, Slice, Gather, Expand, Pad (constant,
edge, reflect and wrap modes).

Shapes are static, so ``Shape``, ``Size``, ``ConstantOfShape`` and ``Range`` give import-time
constants, and every operand that shapes an output (Reshape's shape, Slice's starts, ...) must be
one. Shape-only ops become one ``reshape`` with the resolved target shape.
"""

from __future__ import annotations

import numpy as np

from .common import axes, axes_operand, prod, reshape
from .common import axis as norm_axis
from .importer import NodeContext, Value
from .registry import converter

_VERSIONS_TO_25 = (13, 14, 19, 21, 23, 24, 25)


@converter("Constant", versions=(13, 19, 21, 23, 24, 25))
def _constant(n: NodeContext) -> Value:
    given = {name: n.attr(name, None) for name in ("value", "value_float", "value_floats", "value_int",
                                                    "value_ints", "value_string", "value_strings", "sparse_value")}
    given = {k: v for k, v in given.items() if v is not None}
    if len(given) != 1:
        raise n.error(f"expected exactly one value attribute, got {sorted(given) or 'none'}")
    kind, value = next(iter(given.items()))
    if kind in ("value_string", "value_strings", "sparse_value"):
        raise n.error(f"attribute {kind} is not supported (tecomp has no string or sparse tensors)")
    dtype = {"value_float": "float32", "value_floats": "float32", "value_int": "int64", "value_ints": "int64"}
    return n.constant(value, dtype.get(kind))


@converter("ConstantOfShape", versions=(9, 20, 21, 23, 24, 25))
def _constant_of_shape(n: NodeContext) -> Value:
    shape = n.ints(0, "shape")
    if any(d < 0 for d in shape):
        raise n.error(f"shape {shape} has a negative dimension")
    value = n.attr("value", None)
    fill = np.zeros((), "float32") if value is None else value.reshape(-1)
    if fill.size != 1:
        raise n.error(f"attribute value must hold one element, got {fill.size}")
    return n.constant(np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype))


@converter("Range", versions=(11, 27))
def _range(n: NodeContext) -> Value:
    n.ignore("stash_type")  # numpy computes every element as start + i * delta, exactly for the allowed types
    start, limit, delta = (n.const(k, what) for k, what in enumerate(("start", "limit", "delta")))
    if start.size != 1 or limit.size != 1 or delta.size != 1:
        raise n.error("start, limit and delta must be scalars")
    start, limit, delta = (a.reshape(-1)[0] for a in (start, limit, delta))
    if delta == 0:
        raise n.error("delta is 0")
    count = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    return n.constant(start + np.arange(count).astype(start.dtype) * delta, start.dtype)


@converter("Shape", versions=(13, 15, 19, 21, 23, 24, 25))
def _shape(n: NodeContext) -> Value:
    x = n.input(0)
    start, end = n.attr("start", 0), n.attr("end", None)
    return n.constant(np.array(x.shape[slice(start, end)], dtype="int64"))


@converter("Size", versions=(13, 19, 21, 23, 24, 25))
def _size(n: NodeContext) -> Value:
    return n.constant(np.array(prod(n.input(0).shape), dtype="int64"))


def _reshape_target(n: NodeContext, shape: tuple[int, ...], spec: list[int], allowzero: bool) -> tuple[int, ...]:
    out = [shape[k] if d == 0 and not allowzero else d for k, d in enumerate(spec)]
    if any(d == 0 and not allowzero and k >= len(shape) for k, d in enumerate(spec)):
        raise n.error(f"shape {spec} copies (0) a dimension beyond the input's rank {len(shape)}")
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise n.error(f"shape {spec} must hold sizes, 0 and at most one -1")
    if -1 in out:
        known = prod([d for d in out if d != -1])
        if known == 0 or prod(shape) % known:
            raise n.error(f"cannot infer the -1 of shape {spec} for an input of shape {shape}")
        out[out.index(-1)] = prod(shape) // known
    if prod(out) != prod(shape):
        raise n.error(f"shape {spec} (= {tuple(out)}) does not hold the {prod(shape)} elements of shape {shape}")
    return tuple(out)


@converter("Reshape", versions=_VERSIONS_TO_25)
def _reshape(n: NodeContext) -> Value:
    x = n.input(0)
    allowzero = bool(n.attr("allowzero", 0)) if n.version >= 14 else False
    return reshape(n, x, _reshape_target(n, x.shape, n.ints(1, "shape"), allowzero))


@converter("Flatten", versions=(13, 21, 23, 24, 25))
def _flatten(n: NodeContext) -> Value:
    x = n.input(0)
    split = norm_axis(n, n.attr("axis", 1), x.rank, allow_end=True)
    return reshape(n, x, (prod(x.shape[:split]), prod(x.shape[split:])))


@converter("Squeeze", versions=(13, 21, 23, 24, 25))
def _squeeze(n: NodeContext) -> Value:
    x = n.input(0)
    which = axes_operand(n, 1, "axes", 13)
    if which is None:
        which = [k for k, d in enumerate(x.shape) if d == 1]
    which = axes(n, which, x.rank)
    wrong = [a for a in which if x.shape[a] != 1]
    if wrong:
        raise n.error(f"cannot squeeze axes {wrong} of shape {x.shape}: their size is not 1")
    return reshape(n, x, [d for k, d in enumerate(x.shape) if k not in which])


@converter("Unsqueeze", versions=(13, 21, 23, 24, 25))
def _unsqueeze(n: NodeContext) -> Value:
    x = n.input(0)
    which = axes_operand(n, 1, "axes", 13)
    if which is None:
        raise n.error("axes are required")
    rank = x.rank + len(which)
    which = axes(n, which, rank)
    dims = iter(x.shape)
    return reshape(n, x, [1 if k in which else next(dims) for k in range(rank)])


@converter("Transpose", versions=(13, 21, 23, 24, 25))
def _transpose(n: NodeContext) -> Value:
    x = n.input(0)
    perm = n.attr("perm", None)
    perm = list(range(x.rank))[::-1] if perm is None else axes(n, perm, x.rank, "perm")
    if sorted(perm) != list(range(x.rank)):
        raise n.error(f"perm={perm} is not a permutation of the {x.rank} axes")
    if perm == list(range(x.rank)):
        return x
    return n.emit("transpose", x, axes=perm)


@converter("Concat", versions=(13,))
def _concat(n: NodeContext) -> Value:
    values = n.inputs()
    ax = norm_axis(n, n.attr("axis"), values[0].rank)
    nonempty = [v for v in values if v.shape[ax] != 0] or values[:1]
    if len(nonempty) == 1:
        return nonempty[0]
    return n.emit("concatenate", *nonempty, axis=ax)


@converter("Split", versions=(13, 18))
def _split(n: NodeContext) -> list[Value]:
    x = n.input(0)
    ax = norm_axis(n, n.attr("axis", 0), x.rank)
    dim = x.shape[ax]
    count = len(n.node.output)
    sizes = n.ints(1, "split") if n.has_input(1) else None
    num_outputs = n.attr("num_outputs", None) if n.version >= 18 else None
    if sizes is None and num_outputs is not None:
        if num_outputs != count:
            raise n.error(f"num_outputs={num_outputs} but the node has {count} outputs")
        chunk = -(-dim // num_outputs)
        sizes = [min(chunk, dim - k * chunk) for k in range(num_outputs)]
    elif sizes is None:
        if dim % count:
            raise n.error(f"dimension {ax} of size {dim} does not split into {count} equal parts")
        sizes = [dim // count] * count
    if len(sizes) != count or sum(sizes) != dim or min(sizes) < 0:
        raise n.error(f"split sizes {sizes} do not cut dimension {ax} of size {dim} into {count} parts")
    cuts = list(np.cumsum(sizes)[:-1])
    return n.emit_multi("split", [x], count, indices_or_sections=cuts, axis=ax)


@converter("Slice", versions=(13,))
def _slice(n: NodeContext) -> Value:
    x = n.input(0)
    starts, ends = n.ints(1, "starts"), n.ints(2, "ends")
    which = axes(n, n.ints(3, "axes"), x.rank) if n.has_input(3) else list(range(len(starts)))
    steps = n.ints(4, "steps") if n.has_input(4) else [1] * len(starts)
    if not len(starts) == len(ends) == len(which) == len(steps):
        raise n.error(f"starts, ends, axes and steps have different lengths "
                      f"({len(starts)}, {len(ends)}, {len(which)}, {len(steps)})")
    if 0 in steps:
        raise n.error("a step is 0")

    def clamp(v: int, dim: int) -> int:  # same slice, without INT64_MAX-sized attributes
        return min(max(v, -dim - 1), dim)

    begin = [clamp(s, x.shape[a]) for s, a in zip(starts, which)]
    end = [clamp(e, x.shape[a]) for e, a in zip(ends, which)]
    return n.emit("strided_slice", x, begin=begin, end=end, strides=steps, axes=which)


@converter("Gather", versions=(13,))
def _gather(n: NodeContext) -> Value:
    x, indices = n.input(0), n.input(1)
    return n.emit("take", x, indices, axis=norm_axis(n, n.attr("axis", 0), x.rank))


@converter("Expand", versions=(13,))
def _expand(n: NodeContext) -> Value:
    x = n.input(0)
    shape = n.ints(1, "shape")
    try:
        out = tuple(int(d) for d in np.broadcast_shapes(x.shape, tuple(shape)))
    except ValueError:
        raise n.error(f"shape {shape} does not broadcast with the input's shape {x.shape}") from None
    return x if out == x.shape else n.emit("expand", x, shape=list(out))


@converter("Pad", versions=(13, 18, 19, 21, 23, 24, 25))
def _pad(n: NodeContext) -> Value:
    x = n.input(0)
    mode = n.choice("mode", "constant", ("constant", "edge", "reflect") + (("wrap",) if n.version >= 19 else ()))
    pads = n.ints(1, "pads")
    which = axes(n, n.ints(3, "axes"), x.rank) if n.version >= 18 and n.has_input(3) else list(range(x.rank))
    if len(pads) != 2 * len(which):
        raise n.error(f"pads has {len(pads)} entries; expected 2 x {len(which)} axes")
    before, after = [0] * x.rank, [0] * x.rank
    for k, a in enumerate(which):
        before[a], after[a] = pads[k], pads[k + len(which)]
    if min(before + after) < 0:  # negative pads crop
        x = n.emit("strided_slice", x, begin=[max(0, -b) for b in before],
                   end=[d - max(0, -e) for d, e in zip(x.shape, after)], axes=list(range(x.rank)))
        before, after = [max(0, b) for b in before], [max(0, e) for e in after]
    if not any(before + after):
        return x
    if mode != "constant":  # constant_value, if given, does not apply
        return n.emit("pad_mode", x, pad_before=before, pad_after=after, mode=mode)
    fill = n.const(2, "constant_value").reshape(-1) if n.has_input(2) else np.zeros(1)
    return n.emit("pad", x, pad_before=before, pad_after=after, pad_value=fill[0].item() if fill.size else 0.0)

