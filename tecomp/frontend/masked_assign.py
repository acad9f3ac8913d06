"""The masked assignment ``x[mask] = value`` without NonZero: owns the one rewrite that lets a model
with NonZero import.

NonZero's output shape depends on the data (one row per true element), and tecomp compiles static
shapes, so NonZero has no converter. PyTorch exports ``x[mask] = value`` (``index_put`` with a
broadcast value) as::

    indices = Transpose(NonZero(mask), perm=[1, 0])          # [N, k], k = rank(mask)
    count   = ReduceSum(Cast(Reshape(mask, [-1]), int64))    # N, at run time
    updates = Reshape(Expand(value, Concat(count, ...)), ...)  # [N, *x.shape[k:]], one row repeated
    y       = ScatterND(x, indices, updates)                 # reduction none

When ``mask.shape == x.shape[:k]`` and every update row is the same row ``r``, ``y`` is
``Where(mask[..., None, ...], r, x)``: static shapes. ``plan`` recognises the pattern on the ONNX
graph before the importer checks for unsupported operators: the NonZero and Transpose, and the
nodes that only computed the updates and their count, are dropped; the ScatterND is converted by
``_assign`` (the shape checks need the typed values the importer knows by then). A NonZero used in
any other way stays unsupported, with a reason saying why it was not rewritten.

The updates are provably one repeated row when they are an Expand of ``value`` behind ops that keep
the row-major element order (Reshape, Unsqueeze, Squeeze, Flatten, Identity) and either ``value``
has one element, or its dimensions after its leading 1s (``t``) are all greater than 1 (an Expand
cannot widen them, so the flat updates repeat ``value`` with period ``prod(t)``) and ``prod(t)``
divides the row size ``prod(x.shape[k:])``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
import onnx

from .registry import DEFAULT_DOMAINS, Converter, find, schema_version

if TYPE_CHECKING:
    from .importer import NodeContext, Value

# Operators between the Expand and ScatterND's updates that keep the row-major order of the elements.
_ORDER_KEEPING = ("Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity")
UNSUPPORTED_NONZERO = ("NonZero's output shape depends on the data (tecomp compiles static shapes); only "
                       "masked assignments x[mask] = value (NonZero -> Transpose perm=[1, 0] -> ScatterND "
                       "indices, reduction none, updates one row repeated) are rewritten, but here ")


@dataclass(frozen=True)
class Assignment:
    """One ScatterND that is ``x[mask] = value``: the ONNX values of the mask and the value."""

    nonzero: str
    mask: str
    value: str


@dataclass(frozen=True)
class Rewrite:
    """The plan for one model: nodes not converted (by index), the ScatterNDs converted as
    assignments, and why each NonZero that stays was not rewritten."""

    dropped: frozenset[int]
    assignments: dict[int, Assignment]
    refused: dict[int, str]

    def find(self, index: int, node: onnx.NodeProto, opset: int) -> tuple[Converter | None, int | None, str]:
        """``registry.find`` for node ``index`` of the model, with the rewrite applied."""
        if index in self.assignments:
            version = schema_version(node.op_type, "", opset)
            return Converter(node.op_type, (version,), partial(_assign, self.assignments[index])), version, ""
        if index in self.refused:
            return None, None, UNSUPPORTED_NONZERO + self.refused[index]
        return find(node.op_type, node.domain, opset)


def _default(node: onnx.NodeProto, op_type: str) -> bool:
    return node.op_type == op_type and node.domain in DEFAULT_DOMAINS


def _label(node: onnx.NodeProto, index: int) -> str:
    return repr(node.name or f"{node.op_type}#{index}")


def _attributes(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class _Graph:
    """Who produces and who reads each value of an ONNX graph."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.nodes = list(graph.node)
        self.outputs = {o.name for o in graph.output}
        self.producer = {out: k for k, n in enumerate(self.nodes) for out in n.output if out}
        self.readers: dict[str, list[tuple[int, int]]] = {}
        for k, n in enumerate(self.nodes):
            for slot, name in enumerate(n.input):
                if name:
                    self.readers.setdefault(name, []).append((k, slot))

    def made_by(self, value: str, op_type: str) -> int | None:
        k = self.producer.get(value)
        return k if k is not None and _default(self.nodes[k], op_type) else None


def _match(g: _Graph, index: int) -> dict[int, Assignment] | str:
    """The assignments NonZero node ``index`` serves, or why it is not the pattern."""
    nonzero = g.nodes[index]
    label = _label(nonzero, index)
    indices = nonzero.output[0] if nonzero.output else ""
    readers = g.readers.get(indices, [])
    if indices in g.outputs or len(readers) != 1 or not _default(g.nodes[readers[0][0]], "Transpose"):
        return f"the output of node {label} is not read by exactly one Transpose (and is no graph output)"
    t = readers[0][0]
    transpose = g.nodes[t]
    if list(_attributes(transpose).get("perm", [1, 0])) != [1, 0] or set(_attributes(transpose)) - {"perm"}:
        return f"the output of node {label} is transposed by {_label(transpose, t)} with other than perm=[1, 0]"
    rows = transpose.output[0]
    if rows in g.outputs or not g.readers.get(rows):
        return f"the transposed indices of node {label} are a graph output or unused"
    found = {}
    for k, slot in g.readers[rows]:
        scatter = g.nodes[k]
        attrs = _attributes(scatter)
        if not _default(scatter, "ScatterND") or slot != 1:
            return f"the transposed indices of node {label} are read by {_label(scatter, k)} ({scatter.op_type}) " \
                   f"as input {slot}, not as ScatterND's indices"
        if attrs.get("reduction", b"none") != b"none" or set(attrs) - {"reduction"}:
            return f"ScatterND {_label(scatter, k)} reducing with {attrs.get('reduction', b'').decode()} " \
                   "is not an assignment"
        value = _repeated(g, scatter.input[2] if len(scatter.input) > 2 else "")
        if value is None:
            return f"the updates of ScatterND {_label(scatter, k)} are not an Expand of one value (behind " \
                   f"{', '.join(_ORDER_KEEPING)}), so they are not known to be one row repeated"
        found[k] = Assignment(nonzero.name or f"NonZero#{index}", nonzero.input[0], value)
    return found


def _repeated(g: _Graph, updates: str) -> str | None:
    """The value an Expand repeats into ``updates`` (through order-keeping ops), if it is one."""
    while updates:
        k = g.producer.get(updates)
        if k is None:
            return None
        node = g.nodes[k]
        if _default(node, "Expand"):
            return node.input[0]
        if not any(_default(node, op) for op in _ORDER_KEEPING):
            return None
        updates = node.input[0]
    return None


def _dead(g: _Graph, assignments: dict[int, Assignment]) -> frozenset[int]:
    """The nodes nothing reads any more once the assignments read (data, mask, value) instead of
    (data, indices, updates): the NonZero, the Transpose and the updates' and count's nodes."""
    uses = Counter(name for n in g.nodes for name in n.input if name)
    uses.update(g.outputs)
    pending = []
    for k, a in assignments.items():
        scatter = g.nodes[k]
        uses.subtract(scatter.input[1:3])
        uses.update((a.mask, a.value))
        pending.extend(scatter.input[1:3])
    dead: set[int] = set()
    while pending:
        k = g.producer.get(pending.pop())
        if k is None or k in dead or any(uses[out] > 0 for out in g.nodes[k].output if out):
            continue
        dead.add(k)
        inputs = [name for name in g.nodes[k].input if name]
        uses.subtract(inputs)
        pending.extend(inputs)
    return frozenset(dead)


def plan(graph: onnx.GraphProto) -> Rewrite:
    """The masked assignments of ``graph`` (see the module docstring) and the nodes they make dead."""
    g = _Graph(graph)
    assignments: dict[int, Assignment] = {}
    refused: dict[int, str] = {}
    for k, node in enumerate(g.nodes):
        if _default(node, "NonZero"):
            found = _match(g, k)
            if isinstance(found, str):
                refused[k] = found
            else:
                assignments.update(found)
    return Rewrite(_dead(g, assignments) if assignments else frozenset(), assignments, refused)


# ---------------------------------------------------------------------------- conversion

def _row(n: NodeContext, a: Assignment, value: Value, tail: tuple[int, ...]) -> Value:
    """The one row (of shape ``tail``, or a scalar) that every update of the assignment equals."""
    from .common import prod, reshape

    if prod(value.shape) == 1:
        return reshape(n, value, ())
    dims = list(value.shape)
    while dims and dims[0] == 1:
        dims.pop(0)
    period, size = prod(dims), prod(tail)
    if period == 0 or 1 in dims or size % period:
        raise n.error(f"the updates repeat value {a.value!r} of shape {value.shape}, which is not provably one "
                      f"row of shape {tail} repeated (its dimensions after the leading 1s must all exceed 1 and "
                      f"their product divide {size}); x[mask] = value for NonZero {a.nonzero!r} is not rewritten")
    flat = reshape(n, value, (1, period))
    if size > period:
        flat = n.emit("expand", flat, shape=[size // period, period])
    return reshape(n, flat, tail)


def _assign(a: Assignment, n: NodeContext) -> Value:
    """ScatterND node ``n`` as ``Where(mask, row, data)``."""
    from .common import binary, reshape

    n.choice("reduction", "none", ("none",))
    data = n.input(0)
    what = f"ONNX node {n.name!r} (ScatterND, rewritten x[mask] = value)"
    mask, value = n.importer.lookup(a.mask, what), n.importer.lookup(a.value, what)
    k = mask.rank
    if not 1 <= k <= data.rank or mask.shape != data.shape[:k]:
        raise n.error(f"the mask {a.mask!r} of NonZero {a.nonzero!r} has shape {mask.shape}, but x[mask] = value "
                      f"is rewritten only for a mask of rank >= 1 shaped like the leading dimensions of the data "
                      f"{data.shape}")
    if value.dtype != data.dtype:
        raise n.error(f"value {a.value!r} is {value.dtype} but the data is {data.dtype}; ScatterND needs one type")
    tail = data.shape[k:]
    row = _row(n, a, value, tail)
    cond = reshape(n, mask, mask.shape + (1,) * len(tail))
    if mask.dtype == "bool":
        return n.emit("where", cond, row, data)
    return n.emit("where", binary(n, "equal", cond, n.constant(np.zeros((), mask.dtype))), data, row)
