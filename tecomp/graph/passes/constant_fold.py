"""Constant folding: nodes that read constants only are evaluated at build time, by tecomp itself.

The constant nodes form a subgraph whose runtime inputs are the params they
read; it is compiled like any model (fusion, one library, no passes) and run
once, and the values
the rest of the graph reads become params. Without param values (task
extraction), folded values become params with a type and no value.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ...target import Target
from ..ir import Graph
from .rewrite import constant_values


def fold_constants(graph: Graph, params: Optional[dict[str, np.ndarray]],
                   target: Target) -> tuple[Graph, Optional[dict]]:
    """The graph with every all-constant node replaced by a param holding its value."""
    const = constant_values(graph)
    folded = [n for n in graph.nodes if n.all_inputs() and all(v in const for v in n.all_inputs())]
    if not folded:
        return graph, params
    kept = [n for n in graph.nodes if not (n.all_inputs() and all(v in const for v in n.all_inputs()))]
    wanted = [v for v in dict.fromkeys(v for n in kept for v in n.all_inputs()) if v in const and v not in graph.params]
    wanted += [v for v in graph.outputs if v in const and v not in graph.params and v not in wanted]
    new_params = dict(graph.params)
    new_params.update({v: graph.types[v] for v in wanted})
    values = None
    if params is not None and wanted:
        values = dict(params)
        values.update(zip(wanted, _evaluate(graph, folded, wanted, params, target)))
    elif params is not None:
        values = dict(params)
    return Graph(dict(graph.inputs), new_params, kept, list(graph.outputs), dict(graph.types)), values


def _evaluate(graph: Graph, nodes: list, wanted: list[str], params: dict[str, np.ndarray],
              target: Target) -> list[np.ndarray]:
    from ..builder import build

    read = {v for n in nodes for v in n.all_inputs()}
    # the params it reads are the subgraph's runtime inputs: no copy of them goes into its library
    sub_inputs = {v: t for v, t in graph.params.items() if v in read}
    sub = Graph(sub_inputs, {}, nodes, list(wanted), dict(graph.types))
    host = target if target.kind == "llvm" else Target.host()  # folding runs here, at build time
    module = build(sub, host, {}, optimize=False)
    return module.run(**{v: params[v] for v in sub_inputs})
