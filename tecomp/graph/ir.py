"""The model graph IR: typed values and operator nodes in topological order.

A ``Node`` is one call of an operator function of ``tecomp.schedules``: ``op``
is the function's name (``"conv2d_nchw"``, ``"dense"``, ``"add"``, ...),
``inputs`` name the values passed positionally as its tensor arguments, and
``attrs`` are its keyword arguments (JSON-able: ints, floats, strings, bools,
lists, None). ``outputs`` name what it returns (one value, or one per element
of the list an operator like ``split`` returns). ``kwinputs`` (optional) name
values passed as tensor *keyword* arguments, such as ``conv2d_nchw``'s and
``dense``'s ``bias=``; an operator taking a list of tensors (``concatenate``)
gets all of ``inputs`` as that list.

A ``Graph`` has runtime ``inputs``, constant ``params`` (their values travel
beside the graph as a ``{name: numpy array}`` dict, never inside it), the
nodes, and the names of its ``outputs``; ``types`` holds the type of every
value. The IR is plain data: ``to_json``/``from_json`` round-trip it, which is
how an exported model carries its graph (no pickle).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..error import GraphError


@dataclass(frozen=True)
class TensorType:
    """A value's static shape and dtype."""

    shape: tuple[int, ...]
    dtype: str

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}"

    @property
    def nbytes(self) -> int:
        """The bytes of a compact buffer of this type."""
        return compact_nbytes(self.shape, self.dtype)


def compact_nbytes(shape: tuple[int, ...], dtype: str) -> int:
    """The bytes of a compact (row-major, unpadded) buffer of ``shape`` and ``dtype``."""
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


@dataclass
class Node:
    """One operator call: ``op(*inputs, **attrs) -> outputs``."""

    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    kwinputs: dict[str, str] = field(default_factory=dict)

    def all_inputs(self) -> list[str]:
        """Every value the node reads: positional inputs, then keyword tensor inputs."""
        return list(self.inputs) + list(self.kwinputs.values())


@dataclass
class Graph:
    """A model: inputs and params (name -> type), nodes in topological order, output names."""

    inputs: dict[str, TensorType]
    params: dict[str, TensorType]
    nodes: list[Node]
    outputs: list[str]
    types: dict[str, TensorType]

    def validate(self) -> None:
        """Raise GraphError unless every value is defined once, before use, and typed."""
        defined = set(self.inputs) | set(self.params)
        if len(defined) != len(self.inputs) + len(self.params):
            raise GraphError(f"graph: names {sorted(set(self.inputs) & set(self.params))} are both input and param")
        names = set()
        for node in self.nodes:
            if node.name in names:
                raise GraphError(f"graph: two nodes are named {node.name!r}")
            names.add(node.name)
            for value in node.all_inputs():
                if value not in defined:
                    raise GraphError(f"node {node.name!r} ({node.op}): input {value!r} is not defined before it")
            for value in node.outputs:
                if value in defined:
                    raise GraphError(f"node {node.name!r} ({node.op}): output {value!r} is defined twice")
                defined.add(value)
        for value in self.outputs:
            if value not in defined:
                raise GraphError(f"graph output {value!r} is not produced by any node, input or param")
        untyped = sorted(defined - set(self.types))
        if untyped:
            raise GraphError(f"graph: values without a type: {untyped}")

    def __str__(self) -> str:
        lines = [f"graph({', '.join(f'{n}: {t}' for n, t in self.inputs.items())}) {{"]
        for name, t in self.params.items():
            lines.append(f"  param {name}: {t}")
        for node in self.nodes:
            attrs = ", ".join([f"{k}={v}" for k, v in node.kwinputs.items()]
                              + [f"{k}={v!r}" for k, v in node.attrs.items()])
            outs = ", ".join(f"{o}: {self.types[o]}" for o in node.outputs)
            lines.append(f"  {outs} = {node.op}({', '.join(node.inputs)}{', ' if attrs else ''}{attrs})"
                         f"  # {node.name}")
        lines.append(f"  return {', '.join(self.outputs)}")
        lines.append("}")
        return "\n".join(lines)

    def to_json(self) -> str:
        def types(d: dict) -> dict:
            return {k: {"shape": list(t.shape), "dtype": t.dtype} for k, t in d.items()}

        return json.dumps({"inputs": types(self.inputs), "params": types(self.params),
                           "nodes": [{"op": n.op, "inputs": n.inputs, "outputs": n.outputs, "attrs": n.attrs,
                                      "name": n.name, **({"kwinputs": n.kwinputs} if n.kwinputs else {})}
                                     for n in self.nodes],
                           "outputs": self.outputs, "types": types(self.types)})

    @staticmethod
    def from_json(text: str) -> "Graph":
        try:
            data = json.loads(text)

            def types(d: dict) -> dict:
                return {k: TensorType(tuple(int(x) for x in t["shape"]), str(t["dtype"])) for k, t in d.items()}

            graph = Graph(types(data["inputs"]), types(data["params"]),
                          [Node(n["op"], list(n["inputs"]), list(n["outputs"]), dict(n["attrs"]), n["name"],
                                dict(n.get("kwinputs", {})))
                           for n in data["nodes"]],
                          list(data["outputs"]), types(data["types"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise GraphError(f"graph JSON is malformed: {type(exc).__name__}: {exc}") from None
        graph.validate()
        return graph
