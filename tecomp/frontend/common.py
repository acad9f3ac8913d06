"""Helpers the ONNX converters share: axis normalisation, reshapes, broadcasting binary operators,
axes given as attribute or input, auto_pad arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .importer import NodeContext, Value

COMMUTATIVE = ("add", "multiply", "maximum", "minimum", "equal", "logical_and", "logical_or", "logical_xor")
MIRRORED = {"less": "greater", "greater": "less", "less_equal": "greater_equal", "greater_equal": "less_equal"}


def axis(n: NodeContext, value: int, rank: int, what: str = "axis", allow_end: bool = False) -> int:
    """``value`` (``-rank <= value < rank``, or ``<= rank`` with ``allow_end``) as a non-negative axis."""
    hi = rank if allow_end else rank - 1
    if not -rank <= value <= hi:
        raise n.error(f"{what}={value} is out of range [{-rank}, {hi}] for a tensor of rank {rank}")
    return value + rank if value < 0 else value


def axes(n: NodeContext, values: Sequence[int], rank: int, what: str = "axes") -> list[int]:
    out = [axis(n, a, rank, what) for a in values]
    if len(set(out)) != len(out):
        raise n.error(f"{what}={list(values)} names an axis twice")
    return out


def axes_operand(n: NodeContext, input_index: int, attr_name: str, since: int) -> list[int] | None:
    """Axes that moved from an attribute to input ``input_index`` at operator version ``since``;
    None when absent."""
    if n.version >= since:
        return n.ints(input_index, attr_name) if n.has_input(input_index) else None
    value = n.attr(attr_name, None)
    return None if value is None else list(value)


def reshape(n: NodeContext, x: Value, shape: Sequence[int]) -> Value:
    """``x`` in ``shape`` (no node when it already has it)."""
    shape = tuple(int(d) for d in shape)
    if shape == x.shape:
        return x
    if prod(shape) == 0:  # nothing to compute (and the library's reshape reads 0 as "keep this dimension")
        return n.constant(np.zeros(shape, x.dtype))
    return n.emit("reshape", x, newshape=list(shape))


def scalar_of(value: Value) -> Any:
    """The Python number of a one-element constant, typed like its dtype."""
    item = value.const.reshape(-1)[0].item()
    return bool(item) if value.dtype == "bool" else item


def _is_scalar_operand(operand: Value, other: Value) -> bool:
    """``operand`` is a one-element constant that does not widen ``other`` when broadcast."""
    return operand.const is not None and operand.const.size == 1 and operand.rank <= other.rank \
        and other.const is None and operand.dtype == other.dtype


def binary(n: NodeContext, op: str, a: Value, b: Value) -> Value:
    """``op(a, b)`` with broadcasting; a one-element constant operand becomes a scalar attribute."""
    if _is_scalar_operand(b, a):
        return n.emit(op, a, b=scalar_of(b))
    if _is_scalar_operand(a, b):
        if op in COMMUTATIVE:
            return n.emit(op, b, b=scalar_of(a))
        if op in MIRRORED:
            return n.emit(MIRRORED[op], b, b=scalar_of(a))
    return n.emit(op, a, b)


def same_dtype(n: NodeContext, values: Sequence[Value], what: str = "inputs") -> None:
    dtypes = sorted({v.dtype for v in values})
    if len(dtypes) > 1:
        raise n.error(f"{what} have different dtypes {dtypes}; ONNX requires one type here")


def prod(dims: Sequence[int]) -> int:
    return int(math.prod(dims))


def spatial_pads(n: NodeContext, in_shape: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
                 dilations: Sequence[int]) -> list[int]:
    """ONNX ``pads`` (all begins, then all ends) from ``auto_pad`` and ``pads`` for convolutions and pools."""
    rank = len(in_shape)
    mode = n.choice("auto_pad", "NOTSET", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"))
    pads = n.attr("pads", None)
    if mode == "NOTSET":
        pads = list(pads) if pads is not None else [0] * (2 * rank)
        if len(pads) != 2 * rank or min(pads) < 0:
            raise n.error(f"pads={pads} must be {2 * rank} non-negative ints")
        return pads
    if pads is not None and any(pads):
        raise n.error(f"pads={pads} given together with auto_pad={mode}")
    if mode == "VALID":
        return [0] * (2 * rank)
    begins, ends = [], []
    for size, k, s, d in zip(in_shape, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small = total // 2
        begins.append(small if mode == "SAME_UPPER" else total - small)
        ends.append(total - begins[-1])
    return begins + ends
