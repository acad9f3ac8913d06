"""Kernels: groups of graph nodes compiled into one function, and their lowering to loop IR.

A ``Kernel`` is what operator fusion produces: nodes in order, the values
they read from outside (``inputs``) and the values they hand on
(``outputs``); its compiled function takes ``inputs`` then ``outputs`` as
buffers. The *anchor* is the kernel's first node that is not injective; its
default schedule (which applies the dispatched config of a tunable
workload) schedules the whole kernel, and the elementwise stages after it
are inlined into the kernel's output. A kernel of injective nodes only gets
the injective schedule. This module builds te programs; it neither chooses
groups (``fuse.py``) nor compiles (``library.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ..error import GraphError, TecompError
from . import ops
from .ir import Node, TensorType


@dataclass
class Kernel:
    """Nodes fused into one compiled function: ``name(*inputs, *outputs)``."""

    nodes: list[Node]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    name: str = ""

    @property
    def anchor(self) -> Optional[Node]:
        """The first node that is not injective, or None for an injective kernel."""
        return next((n for n in self.nodes if ops.pattern(n.op) not in (ops.ELEMWISE, ops.BROADCAST,
                                                                          ops.INJECTIVE)), None)

    @property
    def label(self) -> str:
        """The operators of the kernel joined by ``+`` (``conv2d_nchw+add+relu``)."""
        return "+".join(n.op for n in self.nodes)

    def signature(self, types: dict[str, TensorType]) -> str:
        """A key equal for kernels that compile to the same function (value names abstracted away)."""
        local: dict[str, int] = {v: k for k, v in enumerate(self.inputs)}

        def ref(v: str) -> int:
            return local.setdefault(v, len(local))

        body = [[n.op, [ref(v) for v in n.inputs], {k: ref(v) for k, v in n.kwinputs.items()}, n.attrs,
                 [ref(v) for v in n.outputs]] for n in self.nodes]
        return json.dumps([body, [ref(v) for v in self.outputs],
                           [[list(types[v].shape), types[v].dtype] for v in self.inputs + self.outputs]],
                          sort_keys=True, default=str)


def _placeholder(t: TensorType, k: int) -> Any:
    from .. import te
    return te.placeholder(t.shape, t.dtype, name=f"arg{k}")


def _copy(t: Any) -> Any:
    from .. import te
    return te.compute(t.shape, lambda *i: t[i], name="copy")


def _check_type(node: Node, value: str, tensor: Any, expected: TensorType) -> None:
    shape = tuple(int(d.value) for d in tensor.shape)
    if shape != expected.shape or tensor.dtype != expected.dtype:
        raise GraphError(f"node {node.name!r} ({node.op}): output {value!r} is {tensor.dtype}{list(shape)}, "
                         f"the graph says {expected}")


def compute(kernel: Kernel, types: dict[str, TensorType]) -> tuple[list[Any], dict[str, Any]]:
    """The te program of ``kernel``: its argument tensors (inputs, outputs) and every value's tensor."""
    env = {v: _placeholder(types[v], k) for k, v in enumerate(kernel.inputs)}
    for node in kernel.nodes:
        try:
            outs = ops.call(node.op, [env[v] for v in node.inputs],
                            {k: env[v] for k, v in node.kwinputs.items()}, node.attrs)
        except TecompError as exc:
            raise GraphError(f"node {node.name!r} ({node.op}): {exc}") from None
        except TypeError as exc:  # an attribute the operator does not take
            raise GraphError(f"node {node.name!r} ({node.op}): bad arguments: {exc}") from None
        if len(outs) != len(node.outputs):
            raise GraphError(f"node {node.name!r} ({node.op}): the operator returned {len(outs)} values, "
                             f"the node names {len(node.outputs)} outputs")
        for value, tensor in zip(node.outputs, outs):
            if any(tensor is t for t in env.values()):
                tensor = _copy(tensor)  # the operator returned an input (a no-op transform): the value needs a buffer
            _check_type(node, value, tensor, types[value])
            env[value] = tensor
    args = [env[v] for v in kernel.inputs] + [env[v] for v in kernel.outputs]
    return args, env


def inline_epilogue(s: Any, kernel: Kernel, env: dict[str, Any]) -> None:
    """Inline the elementwise node outputs from the anchor on that stay inside the kernel."""
    kept = set(kernel.outputs) | set(kernel.inputs)
    anchor = kernel.nodes.index(kernel.anchor)
    hosts = {id(st.attach_stage) for st in s.stages if st.attach_type == "scope"}
    for node in kernel.nodes[anchor:]:
        for value in node.outputs:
            if value in kept or env[value].op not in s.stage_map:  # (an output nothing reads is not computed)
                continue
            stage = s[env[value]]
            # a stage others are computed at (a reduction's write cache copied out) keeps its loops
            if stage.attach_type == "root" and not getattr(stage.op, "reduce_axis", None) and id(stage) not in hosts:
                stage.compute_inline()


def schedule(kernel: Kernel, env: dict[str, Any], gpu: bool = False) -> Any:
    """The kernel's schedule: its anchor's default schedule (the CUDA one with ``gpu``), or the injective one."""
    outs = [env[v] for v in kernel.outputs]
    anchor = kernel.anchor
    if anchor is None:
        from ..schedules import common, conv2d_nchwc, cuda
        if gpu:
            return cuda.schedule_injective(outs)
        if all(conv2d_nchwc.is_layout_transform(o) for o in outs):
            return conv2d_nchwc.schedule_layout_transform(outs)
        return common.schedule_injective(outs)
    sch = (ops.cuda_schedule(anchor.op) if gpu else ops.lookup(anchor.op).schedule)(outs)
    inline_epilogue(sch, kernel, env)
    return sch


def lower(kernel: Kernel, types: dict[str, TensorType], target: Any = None) -> Any:
    """The kernel as a PrimFunc named ``kernel.name``; for a cuda ``target``, GPU-scheduled in launch form."""
    from ..auto_scheduler.dispatch import auto_scheduled
    from ..lower.driver import lower as lower_schedule
    args, env = compute(kernel, types)
    try:
        found = auto_scheduled(kernel, types, target)  # an auto-scheduler record, under its ApplyHistoryBest
        if found is not None:
            sch, args = found
        else:
            sch = schedule(kernel, env, gpu=target is not None and target.kind == "cuda")
        return lower_schedule(sch, args, name=kernel.name, target=target)[kernel.name]
    except TecompError as exc:
        raise GraphError(f"kernel {kernel.name} ({kernel.label}, nodes "
                         f"{', '.join(repr(n.name) for n in kernel.nodes)}): {type(exc).__name__}: {exc}") from exc
