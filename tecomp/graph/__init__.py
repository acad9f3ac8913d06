"""Whole models: the graph IR, ``build`` (passes, fusion, memory plan, one shared library) and ``load``.

``build`` and everything it uses import the compiler, lazily; ``load`` and
``GraphModule`` need numpy and ctypes only, so an exported model runs where
llvmlite, xgboost and onnx are absent. docs/graph.md describes the pipeline,
the export format and the C ABI.
"""

from __future__ import annotations

from typing import Any

from .ir import Graph, Node, TensorType
from .memory import MemoryPlan
from .module import GraphModule, KernelTime, TensorSpec, load


def build(graph: Graph, target: Any = "llvm", params: Any = None, **options: Any) -> GraphModule:
    """Compile ``graph`` with ``params`` into a ``GraphModule`` (see ``tecomp.graph.builder.build``)."""
    from .builder import build as _build
    return _build(graph, target, params, **options)


__all__ = ["Graph", "GraphModule", "KernelTime", "MemoryPlan", "Node", "TensorSpec", "TensorType", "build", "load"]
