"""What graph passes share: which values are constant, who reads a value, and fresh names for new nodes.

A pass builds a new node list; ``Rewriter`` hands out value and node names
that collide with nothing in the graph and records the type of each value it
creates, so the rewritten graph validates.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Optional

from ..ir import Graph, Node, TensorType


def constant_values(graph: Graph) -> set[str]:
    """Params, and outputs of nodes that read constant values only (computable at build time)."""
    const = set(graph.params)
    for node in graph.nodes:
        reads = node.all_inputs()
        if reads and all(v in const for v in reads):
            const.update(node.outputs)
    return const


def readers(graph: Graph) -> dict[str, list[Node]]:
    """value -> the nodes reading it (a node once per value)."""
    out: dict[str, list[Node]] = defaultdict(list)
    for node in graph.nodes:
        for v in dict.fromkeys(node.all_inputs()):
            out[v].append(node)
    return out


def only_reader(graph: Graph, value: str, reader_map: dict[str, list[Node]]) -> Optional[Node]:
    """The single node reading ``value`` when nothing else does (it is no graph output either)."""
    nodes = reader_map.get(value, [])
    if len(nodes) != 1 or value in graph.outputs:
        return None
    return nodes[0]


class Rewriter:
    """Fresh names and types for the values and nodes a pass adds to ``graph``."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.types: dict[str, TensorType] = dict(graph.types)
        self._taken = set(graph.types) | {n.name for n in graph.nodes}

    def fresh(self, hint: str) -> str:
        base = hint or "v"
        name, k = base, 1
        while name in self._taken:
            name, k = f"{base}.{k}", k + 1
        self._taken.add(name)
        return name

    def node(self, op: str, inputs: list[str], out_type: TensorType, hint: str, attrs: Optional[dict] = None,
             kwinputs: Optional[dict[str, str]] = None, output: Optional[str] = None) -> tuple[Node, str]:
        """A new node ``op(*inputs, **kwinputs, **attrs)``; its output is ``output`` or a fresh name."""
        value = output or self.fresh(hint)
        self.types[value] = out_type
        node = Node(op, list(inputs), [value], dict(attrs or {}), self.fresh(f"{hint}/{op}"), dict(kwinputs or {}))
        return node, value

    def graph_with(self, nodes: list[Node], params: Optional[dict[str, TensorType]] = None) -> Graph:
        """The graph with ``nodes`` (types of values nothing defines any more are dropped by DCE later)."""
        g = self.graph
        return Graph(dict(g.inputs), dict(params if params is not None else g.params), nodes, list(g.outputs),
                     dict(self.types))


def per_channel(shape: tuple[int, ...], channels: int, axis: int, rank: int) -> bool:
    """Whether a tensor of ``shape`` broadcast against a rank-``rank`` value varies only along ``axis``."""
    if len(shape) > rank:
        return False
    full = (1,) * (rank - len(shape)) + tuple(shape)
    return full[axis] == channels and all(d == 1 for k, d in enumerate(full) if k != axis)


def attr(node: Node, name: str, default: Any) -> Any:
    return node.attrs.get(name, default)
