"""Batch-norm folding: ``conv2d_nchw -> batch_norm_inference`` with constant statistics becomes one conv.

With ``s = gamma / sqrt(var + eps)`` per output channel, the conv's kernel
becomes ``W * s[oc]`` and its bias ``(bias - mean) * s + beta`` (``beta - mean * s``
without a bias). The new weights are computed by new graph nodes reading
constants only, so constant folding evaluates them with tecomp itself. A conv
with an activation, or whose output anything else reads, is left alone.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Graph, Node, TensorType
from .rewrite import Rewriter, constant_values, only_reader, readers


def _foldable(conv: Node, bn: Node, graph: Graph, const: set[str]) -> bool:
    if conv.op != "conv2d_nchw" or bn.op != "batch_norm_inference" or conv.attrs.get("activation") is not None:
        return False
    if len(bn.inputs) != 5 or bn.inputs[0] != conv.outputs[0] or bn.attrs.get("axis", 1) not in (1, -3):
        return False
    stats = bn.inputs[1:]
    return conv.inputs[1] in const and all(v in const for v in stats) and \
        all(v in const for v in conv.kwinputs.values())


def _folded(conv: Node, bn: Node, graph: Graph, rw: Rewriter) -> list[Node]:
    gamma, beta, mean, var = bn.inputs[1:]
    kernel = conv.inputs[1]
    kt = graph.types[kernel]
    channel = graph.types[gamma]
    eps = float(bn.attrs.get("epsilon", 1e-5))
    hint = bn.name or bn.outputs[0]
    new: list[Node] = []

    def emit(op: str, inputs: list[str], t: TensorType, attrs: Optional[dict] = None) -> str:
        node, value = rw.node(op, inputs, t, hint, attrs)
        new.append(node)
        return value

    shifted_var = emit("add", [var], channel, {"b": eps})
    scale = emit("divide", [gamma, emit("sqrt", [shifted_var], channel)], channel)
    scale4 = emit("reshape", [scale], TensorType((kt.shape[0], 1, 1, 1), kt.dtype), {"newshape": [kt.shape[0], 1, 1, 1]})
    new_kernel = emit("multiply", [kernel, scale4], kt)
    if "bias" in conv.kwinputs:
        centred = emit("subtract", [conv.kwinputs["bias"], mean], channel)
        bias = emit("add", [emit("multiply", [centred, scale], channel), beta], channel)
    else:
        bias = emit("subtract", [beta, emit("multiply", [mean, scale], channel)], channel)
    new.append(Node("conv2d_nchw", [conv.inputs[0], new_kernel] + conv.inputs[2:], list(bn.outputs),
                    dict(conv.attrs), conv.name, {**conv.kwinputs, "bias": bias}))
    return new


def fold_batch_norm(graph: Graph, params: Optional[dict[str, np.ndarray]]) -> tuple[Graph, Optional[dict]]:
    """Fold each inference batch norm that directly follows a conv2d_nchw into the conv."""
    rw = Rewriter(graph)
    const = constant_values(graph)
    reader_map = readers(graph)
    replaced: dict[int, list[Node]] = {}   # node position -> nodes standing in its place
    dropped: set[int] = set()
    position = {id(n): k for k, n in enumerate(graph.nodes)}
    for k, conv in enumerate(graph.nodes):
        if conv.op != "conv2d_nchw" or len(conv.outputs) != 1:
            continue
        bn = only_reader(graph, conv.outputs[0], reader_map)
        if bn is None or not _foldable(conv, bn, graph, const):
            continue
        dropped.add(k)
        replaced[position[id(bn)]] = _folded(conv, bn, graph, rw)
    nodes: list[Node] = []
    for k, node in enumerate(graph.nodes):
        if k in dropped:
            continue
        nodes.extend(replaced.get(k, [node]))
    return rw.graph_with(nodes), params
