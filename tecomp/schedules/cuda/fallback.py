"""The generic CUDA schedule: a thread per output element, for operators without a schedule of their own.

Every intermediate stage without a reduction is inlined. A reduction of the
output's shape (a pool's window reduction before its divide or a fused relu)
is accumulated in a register by the thread that owns the output element.
Any other reduction (a row statistic read by every element of the row, as
layer norm's mean and variance are) runs as a kernel of its own, one thread
per element with a register accumulator, and hands its result to the next
kernel through global memory. A reduction to 0-d runs as one block whose
threads combine their partials (a cross-thread reduction); a 0-d elementwise
stage runs as a one-thread kernel.
Pooling and layer norm use this schedule in a model; it is correct for any
program, and fast where each output element's work is small.
"""

from __future__ import annotations

from typing import Any

from ...te.operation import ComputeOp
from ...te.schedule import Schedule, create_schedule
from ...te.tensor import Tensor
from ..common import PARTIAL_TAG, as_list
from .common import (BLOCK_X, DEFAULT_THREADS, THREAD_X, axis, fuse_all, reduce_across_threads,
                     reduce_per_thread)


def _shape(t: Tensor) -> tuple:
    return tuple(int(d.value) for d in t.shape)


def _thread_per_element(s: Schedule, t: Tensor, threads: int) -> Any:
    """Bind ``t``'s fused axes to blocks x threads; returns the thread loop (None for a 0-d stage)."""
    stage = s[t]
    if not stage.op.axis:
        return None
    bx, tx = stage.split(fuse_all(stage), factor=threads)
    stage.bind(bx, axis(BLOCK_X))
    stage.bind(tx, axis(THREAD_X))
    return tx


def _reduction_kernel(s: Schedule, t: Tensor, threads: int) -> None:
    """``t`` (a reduction) as its own kernel, each thread accumulating in a register (a 0-d one:
    a block of threads combining their partials)."""
    if t.op.axis:
        reduce_per_thread(s, t, threads)
    else:
        reduce_across_threads(s, t, threads)


def schedule_fallback(outs: Any, threads: int = DEFAULT_THREADS) -> Schedule:
    """A CUDA schedule for any program (see the module docstring)."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    outputs = {o.op for o in outs}
    reductions = []
    for stage in s.stages:
        if not isinstance(stage.op, ComputeOp) or stage.op in outputs:
            continue
        if stage.op.tag == PARTIAL_TAG:
            continue  # lane partials: kept in registers by the reduction over their lanes
        if stage.op.reduce_axis:
            reductions.append(stage.op.output(0))
        else:
            stage.compute_inline()
    for out in outs:
        if out.op.reduce_axis:
            _reduction_kernel(s, out, threads)
            continue
        local = [r for r in reductions if out.shape and _shape(r) == _shape(out)]
        tx = _thread_per_element(s, out, threads)
        for r in local:
            for t in [r] + [p for p in r.op.input_tensors if getattr(p.op, "tag", None) == PARTIAL_TAG]:
                s[t].set_scope("local")
                s[t].compute_at(s[out], tx)
            reductions.remove(r)
    for r in reductions:
        _reduction_kernel(s, r, threads)
    return s
