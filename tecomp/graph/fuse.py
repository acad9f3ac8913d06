"""Operator fusion: partition a graph's nodes into kernels.

Walking the nodes in order, a node joins the kernel that produced one of its
inputs when that kernel is still *open* (exactly one of its values is
visible outside it: the one this node reads, read by nobody else and not a
graph output) and the patterns allow it (see ``ops.py``):

- an injective kernel (elemwise / broadcast / injective nodes only) takes any
  injective node; it is scheduled as one loop nest with every stage inlined;
- an elemwise or broadcast node whose output has the shape of the kernel's
  anchor output joins an ``anchor`` or ``reduce`` kernel as its epilogue
  (conv2d + add + relu, dense + gelu, mean + divide);
- a ``reduce`` node joins an open injective kernel (its producers are
  inlined into the reduction: ``sum(x * x)`` is one pass);
- a blocked conv joins the kernel of the single layout transform packing its
  data (the conv's schedule runs it as a parallel root stage);
- ``opaque`` nodes are kernels of their own, and nothing joins them.

The single-visible-value rule keeps the kernel graph acyclic: a kernel that
another kernel already reads from can never wait for that kernel.

One exception: a *gate*, elementwise nodes that read one value several times
and merge back into one (SiLU ``x * sigmoid(x)``, hard-swish, GELU), reading
nothing else but graph inputs and params. It joins the kernel open through
that value as a whole or not at all, so the value is read only inside the
kernel and the rule above still holds once the gate is in.
"""

from __future__ import annotations

from . import ops
from .ir import Graph, Node
from .kernel import Kernel

_INJECTIVE = (ops.ELEMWISE, ops.BROADCAST, ops.INJECTIVE)
_MAX_GATE_NODES = 8


class _Group:
    def __init__(self, node: Node) -> None:
        self.nodes = [node]
        self.anchor = None if ops.pattern(node.op) in _INJECTIVE else node
        self.produced = set(node.outputs)

    @property
    def tail(self) -> str:
        return self.nodes[-1].outputs[0]


def _can_join(group: _Group, node: Node, value: str, graph: Graph) -> bool:
    other_inputs = [v for v in node.all_inputs() if v != value]
    if any(v in group.produced for v in other_inputs):
        return False
    return _fits(group, node, value, graph)


def _fits(group: _Group, node: Node, value: str, graph: Graph) -> bool:
    """Whether ``node``, reading the group's ``value``, fits the group's pattern."""
    kind = ops.pattern(node.op)
    if group.anchor is None:
        if kind == ops.ANCHOR:  # a producer the anchor's schedule takes in (a layout transform before a conv)
            allowed = ops.PRODUCERS_FUSED.get(node.op, ())
            return value == node.inputs[0] and len(group.nodes) == 1 and group.nodes[0].op in allowed
        return kind in _INJECTIVE or kind == ops.REDUCE
    if kind not in (ops.ELEMWISE, ops.BROADCAST) or ops.pattern(group.anchor.op) not in (ops.ANCHOR, ops.REDUCE):
        return False
    out_type = graph.types[node.outputs[0]]
    return out_type == graph.types[group.anchor.outputs[0]] and out_type.shape == graph.types[value].shape


def _readers(graph: Graph) -> dict[str, list[int]]:
    """Value -> the indices of the nodes reading it, in graph order (a node once however often it reads)."""
    readers: dict[str, list[int]] = {}
    for k, n in enumerate(graph.nodes):
        for v in dict.fromkeys(n.all_inputs()):
            readers.setdefault(v, []).append(k)
    return readers


def _gates(graph: Graph, readers: dict[str, list[int]]) -> dict[str, list[Node]]:
    """Value -> the nodes of the gate reading it (in graph order, the last one its only exit).

    A gate starts at a value read by several nodes; following the readers in graph order, every
    node met must be elementwise and read only gate values, graph inputs and params, until one
    value alone is left unread by gate nodes: the gate's exit."""
    produced = {v for n in graph.nodes for v in n.outputs}
    gates = {}
    for start, first_readers in readers.items():
        if start not in produced or len(first_readers) < 2 or start in graph.outputs:
            continue
        nodes = _gate_from(graph, start, readers, produced)
        if nodes:
            gates[start] = nodes
    return gates


def _gate_from(graph: Graph, start: str, readers: dict[str, list[int]], produced: set) -> list[Node]:
    pending = {start: set(readers[start])}  # gate value -> indices of its readers not yet taken in
    taken: list[Node] = []
    while pending:
        k = min(min(r) for r in pending.values())
        node = graph.nodes[k]
        if (len(taken) == _MAX_GATE_NODES or len(node.outputs) != 1
                or ops.pattern(node.op) not in (ops.ELEMWISE, ops.BROADCAST)
                or any(v in produced and v not in pending for v in node.all_inputs())):
            return []
        taken.append(node)
        for v in set(node.all_inputs()) & set(pending):
            pending[v].discard(k)
            if not pending[v]:
                del pending[v]
        if not pending:  # every gate value is read: this node is the exit
            break
        out = node.outputs[0]
        if out not in readers or out in graph.outputs:
            return []
        pending[out] = set(readers[out])
    return taken if len(taken) > 1 else []


def fuse(graph: Graph, enabled: bool = True) -> list[Kernel]:
    """The graph's nodes grouped into kernels, in an order that respects every dependency.

    With ``enabled=False`` every node is a kernel of its own.
    """
    readers = _readers(graph)
    graph_outputs = set(graph.outputs)
    open_groups: dict[str, _Group] = {}  # tail value -> group that may still grow through it
    groups: list[_Group] = []
    gates = _gates(graph, readers) if enabled else {}
    gate_start = {id(nodes[0]): start for start, nodes in gates.items()}
    joining: dict[int, _Group] = {}  # id of a gate node -> the group its whole gate joins
    for node in graph.nodes:
        target = joining.get(id(node))
        start = gate_start.get(id(node)) if target is None else None
        group = open_groups.get(start) if start is not None else None
        if group is not None and all(_fits(group, n, start, graph) for n in gates[start]):
            joining.update((id(n), group) for n in gates[start])
            target = group
        if target is None and enabled and ops.pattern(node.op) != ops.OPAQUE:
            for value in dict.fromkeys(node.all_inputs()):
                group = open_groups.get(value)
                if group is not None and len(readers[value]) == 1 and _can_join(group, node, value, graph):
                    target = group
                    break
        if target is None:
            target = _Group(node)
            groups.append(target)
        else:
            open_groups.pop(target.tail, None)
            target.nodes.append(node)
            target.produced.update(node.outputs)
            if target.anchor is None and ops.pattern(node.op) in (ops.REDUCE, ops.ANCHOR):
                target.anchor = node
        if len(node.outputs) == 1 and node.outputs[0] not in graph_outputs and ops.pattern(node.op) != ops.OPAQUE:
            open_groups[node.outputs[0]] = target
    return _with_io(_ordered(groups, graph), graph)


def _ordered(groups: list[_Group], graph: Graph) -> list[_Group]:
    """Groups in the graph order of their last node: a group only reads values produced before that."""
    index = {id(n): k for k, n in enumerate(graph.nodes)}
    return sorted(groups, key=lambda g: max(index[id(n)] for n in g.nodes))


def _with_io(groups: list[_Group], graph: Graph) -> list[Kernel]:
    """Kernels with their inputs (read, produced elsewhere) and outputs (read elsewhere or returned)."""
    group_of = {id(n): k for k, g in enumerate(groups) for n in g.nodes}
    read_by: dict[str, set[int]] = {}
    for n in graph.nodes:
        for v in n.all_inputs():
            read_by.setdefault(v, set()).add(group_of[id(n)])
    kernels = []
    for k, g in enumerate(groups):
        inputs = list(dict.fromkeys(v for n in g.nodes for v in n.all_inputs() if v not in g.produced))
        outputs = [v for n in g.nodes for v in n.outputs
                   if v in graph.outputs or read_by.get(v, set()) - {k}]
        kernels.append(Kernel(g.nodes, inputs, outputs))
    return kernels
