"""Concatenations and splits without copies: parts that are contiguous byte ranges of one buffer.

Along an axis with only unit dimensions before it (the channels of a batch-1 NCHW or NCHW[x]c
tensor), each input of a concatenation is one contiguous byte range of its result, and each part
of a split one range of its input. Such a kernel need not run: the kernels producing a
concatenation's inputs write them straight into their range of its buffer, and a split's readers
read their range of its input. ``elide`` finds those kernels and records each part as a *view*,
``(value it lies in, byte offset)``; the memory plan then gives the whole buffer one lifetime, from
its first writer to its last reader. A part must be a buffer of the model's own (not an input,
weight or output of the model, nor a view already), and every range must start on the memory
plan's alignment, so the kernels' pointer alignment holds. SqueezeNet's fire modules,
GoogLeNet's inception blocks, U-Net's skip connections and ShuffleNet's channel split qualify.
"""

from __future__ import annotations

from typing import Optional

from .ir import Graph
from .kernel import Kernel
from .memory import ALIGN

View = tuple[str, int]  # (the value whose storage a value lies in, byte offset into it)


def _contiguous_offsets(graph: Graph, whole: str, parts: list[str], axis: int) -> Optional[list[int]]:
    """The byte offset of each part in ``whole`` when they tile it along ``axis`` as aligned
    contiguous ranges, else None."""
    shape = graph.types[whole].shape
    if any(d != 1 for d in shape[:axis % len(shape)]) or len(set(parts)) != len(parts):
        return None
    offsets, at = [], 0
    for part in parts:
        if at % ALIGN:
            return None
        offsets.append(at)
        at += graph.types[part].nbytes
    return offsets


def _whole_and_parts(kernel: Kernel) -> Optional[tuple[str, list[str], int]]:
    """(the whole buffer, its parts, the axis) when ``kernel`` is one ``concatenate`` or ``split``."""
    if len(kernel.nodes) != 1 or kernel.nodes[0].kwinputs:
        return None
    node = kernel.nodes[0]
    if list(node.outputs) != list(kernel.outputs) or list(node.inputs) != list(kernel.inputs):
        return None
    if node.op == "concatenate":
        return node.outputs[0], list(node.inputs), node.attrs.get("axis", 0)
    if node.op == "split":
        return node.inputs[0], list(node.outputs), node.attrs.get("axis", 0)
    return None


def _own_buffer(graph: Graph, value: str, produced: set[str], views: dict[str, View]) -> bool:
    """Whether ``value`` is an intermediate written by a kernel into memory of its own."""
    return value in produced and value not in graph.outputs and value not in views


def elide(graph: Graph, kernels: list[Kernel], views: dict[str, View]) -> list[Kernel]:
    """``kernels`` without the concatenations and splits whose parts can be views; adds those
    views to ``views`` (which holds the reshapes' views already)."""
    produced = {v for k in kernels for v in k.outputs}
    kept = []
    for kernel in kernels:
        found = _whole_and_parts(kernel)
        if found is not None and all(_own_buffer(graph, v, produced, views) for v in [found[0], *found[1]]):
            whole, parts, axis = found
            offsets = _contiguous_offsets(graph, whole, parts, axis)
            if offsets is not None:
                views.update({v: (whole, off) for v, off in zip(parts, offsets)})
                continue
        kept.append(kernel)
    return kept
