"""Epilogue absorption: bias adds and activations after conv2d_nchw / dense become their arguments.

``conv2d_nchw -> add(per-channel constant) -> relu | clip`` becomes
``conv2d_nchw(bias=, activation=)``, ``dense | matmul -> add(constant row)``
becomes ``dense(bias=)`` (a matmul is a dense with ``transpose_b=False``). The
bias is reshaped to the operator's ``[channels]`` by a new node, which
constant folding evaluates. Only a value read by the absorbed node alone is
rewritten. Later passes rely on this form: batch-norm folding adds the folded
shift as the conv's bias, and the layout pass keeps bias and activation inside
the blocked conv.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Graph, Node, TensorType
from .rewrite import Rewriter, constant_values, only_reader, per_channel, readers

_BIAS_AXIS = {"conv2d_nchw": 1, "dense": 1, "matmul": 1}


def _bias_operand(anchor: Node, consumer: Node, graph: Graph, const: set[str]) -> Optional[str]:
    """The constant per-channel operand when ``consumer`` adds one to ``anchor``'s output."""
    value = anchor.outputs[0]
    if consumer.op != "add" or len(consumer.inputs) != 2 or consumer.attrs or consumer.kwinputs:
        return None
    other = consumer.inputs[1] if consumer.inputs[0] == value else consumer.inputs[0]
    if other == value or other not in const:
        return None
    t_out, t_b = graph.types[value], graph.types[other]
    if t_b.dtype != t_out.dtype or graph.types[consumer.outputs[0]] != t_out:
        return None
    axis = _BIAS_AXIS[anchor.op]
    return other if per_channel(t_b.shape, t_out.shape[axis], axis, len(t_out.shape)) else None


def _activation(anchor: Node, consumer: Node) -> Optional[object]:
    if anchor.op != "conv2d_nchw" or anchor.attrs.get("activation") is not None:
        return None
    if consumer.op == "relu" and not consumer.attrs:
        return "relu"
    if consumer.op == "clip":
        lo, hi = consumer.attrs.get("a_min"), consumer.attrs.get("a_max")
        if lo is not None and hi is not None and lo <= hi:
            return ["clip", float(lo), float(hi)]
        if lo == 0 and hi is None:
            return "relu"
    return None


def _absorb(anchor: Node, consumer: Node, graph: Graph, const: set[str], rw: Rewriter) -> Optional[list[Node]]:
    """Nodes replacing ``anchor -> consumer``, or None if the consumer cannot be absorbed."""
    if "bias" not in anchor.kwinputs and anchor.attrs.get("activation") is None:
        bias = _bias_operand(anchor, consumer, graph, const)
        if bias is not None:
            t_out = graph.types[anchor.outputs[0]]
            channels = t_out.shape[_BIAS_AXIS[anchor.op]]
            new = []
            if graph.types[bias].shape != (channels,):
                reshape, bias = rw.node("reshape", [bias], TensorType((channels,), t_out.dtype),
                                        f"{consumer.name}/bias", {"newshape": [channels]})
                new.append(reshape)
            op, attrs = anchor.op, dict(anchor.attrs)
            if op == "matmul":
                op, attrs = "dense", {"transpose_b": False}
            new.append(Node(op, list(anchor.inputs), list(consumer.outputs), attrs, anchor.name,
                            {**anchor.kwinputs, "bias": bias}))
            return new
    activation = _activation(anchor, consumer)
    if activation is not None:
        return [Node(anchor.op, list(anchor.inputs), list(consumer.outputs), {**anchor.attrs, "activation": activation},
                     anchor.name, dict(anchor.kwinputs))]
    return None


def absorb_epilogues(graph: Graph, params: Optional[dict[str, np.ndarray]]) -> tuple[Graph, Optional[dict]]:
    """Fold bias adds and activations into the conv2d_nchw / dense / matmul nodes they follow."""
    rw = Rewriter(graph)
    const = constant_values(graph)
    nodes = list(graph.nodes)
    changed = True
    while changed:
        changed = False
        current = Graph(graph.inputs, graph.params, nodes, graph.outputs, rw.types)
        reader_map = readers(current)
        for k, anchor in enumerate(nodes):
            if anchor.op not in _BIAS_AXIS or len(anchor.outputs) != 1:
                continue
            consumer = only_reader(current, anchor.outputs[0], reader_map)
            if consumer is None:
                continue
            replacement = _absorb(anchor, consumer, current, const, rw)
            if replacement is None:
                continue
            j = nodes.index(consumer)
            nodes = nodes[:k] + nodes[k + 1:j] + replacement + nodes[j + 1:]
            changed = True
            break
    return rw.graph_with(nodes), params
