"""CUDA schedule of injective operators (elementwise, broadcast, layout transforms).

Intermediate elementwise stages are inlined; every output is fused into one
loop and spread over blocks of ``threads`` threads, each thread handling
``vector`` consecutive elements (vectorized: ``float4`` accesses when the
total divides and the addresses align).
"""

from __future__ import annotations

from typing import Any

from ...te.operation import ComputeOp
from ...te.schedule import Schedule, create_schedule
from ...te.tensor import Tensor
from ..common import as_list
from .common import DEFAULT_THREADS, bind_flat, fuse_all, num_elements


def schedule_injective_stage(s: Schedule, out: Tensor, threads: int = DEFAULT_THREADS, vector: int = 4) -> None:
    """Bind one elementwise output stage to blocks x threads (x vector lanes)."""
    stage = s[out]
    if not stage.op.axis:
        return  # a 0-d output runs as a kernel of one thread
    total = num_elements(out)
    if total is None or total % vector or total < vector * threads:
        vector = 1
    bind_flat(stage, fuse_all(stage), threads, vector)


def schedule_injective(outs: Any, threads: int = DEFAULT_THREADS, vector: int = 4) -> Schedule:
    """A CUDA schedule for injective outputs; elementwise producers are inlined."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for stage in s.stages:
        if isinstance(stage.op, ComputeOp) and not stage.is_output and not stage.op.reduce_axis:
            stage.compute_inline()
    for o in outs:
        schedule_injective_stage(s, o, threads, vector)
    return s
