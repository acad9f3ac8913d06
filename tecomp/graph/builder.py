"""``tecomp.graph.build``: a model graph and its params -> a compiled ``GraphModule``.

The pipeline: check the params against the graph, run the graph passes
(``passes.optimize``), fuse nodes into kernels (``fuse.py``), lower each
distinct kernel (the library's schedules, CUDA ones for a cuda target, apply
the config the dispatch context picks for their workload: tuned under
``apply_history_best``), plan the intermediate memory (``memory.py``), lay
the used params out as the weights blob, write the executor (``executor_c.py``;
a GPU model gets the description alone, its steps run from Python) and link
everything into one library (``library.py``). The model metadata built here
(``info``) is the JSON the library returns from ``tecomp_model_info``.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from ..error import GraphError
from ..target import Target
from . import in_place
from .fuse import fuse
from .in_place import View
from .ir import Graph, TensorType
from .kernel import Kernel
from .memory import ALIGN, MemoryPlan, plan_memory
from .module import FORMAT, FORMAT_VERSION, GraphModule

def check_params(graph: Graph, params: Optional[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The graph's param values as contiguous arrays of the declared types; GraphError naming a bad one."""
    params = dict(params or {})
    out = {}
    for name, t in graph.params.items():
        if name not in params:
            raise GraphError(f"param {name!r} ({t}) has no value in params")
        try:
            value = np.asarray(params[name])
        except Exception as exc:  # noqa: BLE001 - any conversion failure is a bad param value
            raise GraphError(f"param {name!r}: cannot convert {type(params[name]).__name__} to an array: {exc}") \
                from None
        if value.shape != t.shape or value.dtype != np.dtype(t.dtype):
            raise GraphError(f"param {name!r}: the graph declares {t}, the value is {value.dtype}{list(value.shape)}")
        out[name] = np.require(value, requirements="C")  # keeps 0-d arrays 0-d (ascontiguousarray does not)
    return out


@dataclass
class CompiledGraph:
    """What ``plan`` decides before any code is generated."""

    graph: Graph
    params: dict[str, np.ndarray]
    kernels: list[Kernel]        # in execution order; kernels with equal signatures share a name
    distinct: list[Kernel]       # one kernel per function name
    views: dict[str, View]       # value -> (the value whose storage it lies in, byte offset); no kernel runs

    def storage_of(self, value: str) -> View:
        """The value whose buffer holds ``value``'s bytes, and where in it they start."""
        offset = 0
        while value in self.views:
            value, at = self.views[value]
            offset += at
        return value, offset


VIEW_OPS = ("reshape", "flatten")


def _is_view(kernel: Kernel, graph: Graph) -> bool:
    """Only reshapes of one value that is not returned: the result is the same bytes."""
    return (all(n.op in VIEW_OPS for n in kernel.nodes) and len(kernel.inputs) == 1 and len(kernel.outputs) == 1
            and kernel.outputs[0] not in graph.outputs)


def _function_name(index: int, kernel: Kernel) -> str:
    label = re.sub(r"[^A-Za-z0-9_]", "_", "_".join(n.op for n in kernel.nodes[:4]))
    return f"tecomp_k{index}_{label}"


def plan(graph: Graph, params: Optional[dict[str, Any]], target: Target, fuse_ops: bool = True,
         optimize: bool = True) -> CompiledGraph:
    """Passes and fusion: the kernels to build, named (equal kernels share one function)."""
    from .passes import eliminate_dead_nodes, optimize as run_passes

    graph.validate()
    values = check_params(graph, params) if params is not None else None
    if optimize:
        graph, values = run_passes(graph, values, target)
    else:
        graph, values = eliminate_dead_nodes(graph, values)
    kernels, views = [], {}
    for kernel in fuse(graph, enabled=fuse_ops):
        if _is_view(kernel, graph):
            views[kernel.outputs[0]] = (kernel.inputs[0], 0)
        else:
            kernels.append(kernel)
    kernels = in_place.elide(graph, kernels, views)
    by_signature: dict[str, Kernel] = {}
    distinct = []
    for kernel in kernels:
        sig = kernel.signature(graph.types)
        first = by_signature.get(sig)
        if first is None:
            kernel.name = _function_name(len(distinct), kernel)
            by_signature[sig] = kernel
            distinct.append(kernel)
        else:
            kernel.name = first.name
    return CompiledGraph(graph, values if values is not None else {}, kernels, distinct, views)


def _weights(graph: Graph, params: dict[str, np.ndarray], used: list[str]) -> tuple[bytes, dict[str, int]]:
    blob = bytearray()
    offsets = {}
    for name in dict.fromkeys(used):
        blob.extend(b"\0" * (-len(blob) % ALIGN))
        offsets[name] = len(blob)
        blob.extend(params[name].tobytes())
    return bytes(blob), offsets


def _spec(name: str, t: TensorType) -> dict:
    return {"name": name, "shape": list(t.shape), "dtype": t.dtype, "nbytes": t.nbytes}


def model_info(compiled: CompiledGraph, target: Target) -> tuple[dict, bytes]:
    """The model metadata (steps, locations, memory plan) and the weights blob."""
    graph = compiled.graph
    types = graph.types
    where: dict[str, list] = {v: ["input", k] for k, v in enumerate(graph.inputs)}
    produced = {v for kern in compiled.kernels for v in kern.outputs}
    for k, v in enumerate(graph.outputs):
        if v in produced and v not in where:
            where[v] = ["output", k]
    copies = [(k, v) for k, v in enumerate(graph.outputs) if where.get(v) != ["output", k]]
    storage = compiled.storage_of
    reads = [[storage(v)[0] for v in kern.inputs] for kern in compiled.kernels]
    writes = [[storage(v)[0] for v in kern.outputs] for kern in compiled.kernels]
    used_params = [v for r in reads for v in r if v in graph.params]
    used_params += [v for _, v in copies if v in graph.params]
    weights, offsets = _weights(graph, compiled.params, used_params)
    where.update({v: ["param", off] for v, off in offsets.items()})
    sizes = {v: types[v].nbytes for w in writes for v in w if v not in where}
    memory: MemoryPlan = plan_memory(list(zip(reads, writes)), sizes)
    where.update({v: ["arena", off] for v, off in memory.offsets.items()})

    def location(value: str) -> list:
        base, offset = storage(value)
        kind, at = where[base]
        return [kind, at + offset]  # a nonzero offset (a range of a buffer) is always into the arena

    steps = [{"kind": "call", "func": kern.name, "label": kern.label, "nodes": [n.name for n in kern.nodes],
              "args": [location(v) for v in kern.inputs + kern.outputs]} for kern in compiled.kernels]
    steps += [{"kind": "copy", "label": f"copy {v} to output {k}", "src": where[v], "dst": ["output", k],
               "bytes": types[v].nbytes} for k, v in copies]
    from .. import __version__
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "tecomp_version": __version__,
            "target": str(target), "inputs": [_spec(v, t) for v, t in graph.inputs.items()],
            "outputs": [_spec(v, types[v]) for v in graph.outputs],
            "kernels": [{"name": kern.name, "label": kern.label} for kern in compiled.distinct],
            "steps": steps, "memory": memory.to_json(), "weights_bytes": len(weights),
            "weights_crc32": zlib.crc32(weights), "graph": json.loads(graph.to_json())}
    return info, weights


def build(graph: Graph, target: Union[str, Target, None] = "llvm", params: Optional[dict[str, Any]] = None,
          *, fuse_ops: bool = True, optimize: bool = True, progress: bool = False) -> GraphModule:
    """Compile ``graph`` with its ``params`` into a runnable ``GraphModule``.

    Inside ``tecomp.tuner.apply_history_best(db)`` kernels whose anchor has a
    tuning template use the best recorded config. ``fuse_ops=False`` and
    ``optimize=False`` turn fusion and the graph passes off (for comparison).
    """
    from ..build_module import resolve_target
    from .executor_c import description_source, executor_source
    from .kernel import lower
    from ..codegen.parallel_objects import ObjectCompiler
    from .library import cuda_kernels_object, link_model

    tgt = resolve_target(target)
    if not isinstance(graph, Graph):
        raise GraphError(f"tecomp.graph.build expects a tecomp.graph.Graph, got {type(graph).__name__}")
    compiled = plan(graph, params if params is not None else {}, tgt, fuse_ops, optimize)
    bar = _progress(progress, len(compiled.distinct) + 1)
    gpu = tgt.kind == "cuda"
    with tgt, contextlib.ExitStack() as stack:
        # A CPU build compiles each kernel's LLVM module in the background while the next is lowered.
        llvm_objects = None if gpu else stack.enter_context(ObjectCompiler(tgt, len(compiled.distinct)))
        funcs = []
        for kernel in compiled.distinct:
            bar.set_postfix_str(kernel.label[:40], refresh=False)
            funcs.append(lower(kernel, compiled.graph.types, tgt))
            if llvm_objects is not None:
                llvm_objects.add(funcs[-1:])
            bar.update()
        bar.set_postfix_str("nvcc" if gpu else "LLVM optimization")
        if gpu:
            objects = [cuda_kernels_object(funcs, tgt)] if funcs else []
        else:
            objects = llvm_objects.finish()
    info, weights = model_info(compiled, tgt)
    holder = tempfile.TemporaryDirectory(prefix="tecomp-model-")
    bar.set_postfix_str("linking")
    source = description_source(info) if gpu else executor_source(info)
    so_path = link_model(objects, source, weights, Path(holder.name))
    bar.update()
    bar.close()
    return GraphModule(so_path, owner=holder)


def _progress(shown: bool, total: int) -> Any:
    """A tqdm bar over the build's steps (lowering each kernel, then codegen and linking)."""
    from tqdm import tqdm
    return tqdm(total=total, desc="compiling", unit="step", disable=not shown, dynamic_ncols=True)
