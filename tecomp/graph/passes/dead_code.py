"""Dead-node elimination: drop nodes no graph output depends on, and params nothing reads."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..ir import Graph


def eliminate_dead_nodes(graph: Graph, params: Optional[dict[str, np.ndarray]]) -> tuple[Graph, Optional[dict]]:
    """The graph without nodes whose outputs nothing reads (walking back from the outputs) and unread params.

    Runtime inputs are kept even when unread: they are the model's signature.
    """
    live = set(graph.outputs)
    kept = []
    for node in reversed(graph.nodes):
        if any(v in live for v in node.outputs):
            kept.append(node)
            live.update(node.all_inputs())
    kept.reverse()
    used_params = {k: t for k, t in graph.params.items() if k in live}
    defined = set(graph.inputs) | set(used_params) | {v for n in kept for v in n.outputs}
    types = {k: t for k, t in graph.types.items() if k in defined}
    new_params = None if params is None else {k: v for k, v in params.items() if k in used_params}
    return Graph(dict(graph.inputs), used_params, kept, list(graph.outputs), types), new_params
