"""What the CUDA schedules share: thread axes, cooperative fetching, the injective binding, configs.

``fetch_cooperatively`` is the classic staging step: every thread of the
block copies part of a tile into shared memory, consecutive threads taking
consecutive elements (coalesced reads), optionally ``vector`` elements at a
time. ``bind_flat`` maps a fused loop onto (blocks, threads[, vector lanes]);
``reduce_across_threads`` spreads a full reduction over the threads of one block.
``dispatched`` reads a template's config for a workload with a cuda target
in scope, so a schedule called outside ``with Target("cuda")`` still picks
the cuda record or fallback.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ... import te
from ... import tuner as autotvm
from ...target import Target
from ...te.schedule import Schedule, Stage
from ...te.tensor import IterVar, Tensor
from ...tir.expr import IntImm

BLOCK_X, BLOCK_Y, BLOCK_Z = "blockIdx.x", "blockIdx.y", "blockIdx.z"
THREAD_X, THREAD_Y, THREAD_Z = "threadIdx.x", "threadIdx.y", "threadIdx.z"
DEFAULT_THREADS = 256


def axis(tag: str) -> IterVar:
    return te.thread_axis(tag)


def cuda_target() -> Target:
    """The cuda target in scope, else plain ``cuda``."""
    current = Target.current(allow_none=True)
    return current if current is not None and current.kind == "cuda" else Target("cuda")


def dispatched(template: str, workload: tuple) -> Any:
    """The config of ``template`` for ``workload`` on the cuda target in scope (tuned record or fallback)."""
    with cuda_target():
        return autotvm.task.dispatched_config(template, workload)


def num_elements(t: Tensor) -> Optional[int]:
    total = 1
    for d in t.shape:
        if not isinstance(d, IntImm):
            return None
        total *= d.value
    return total


def fuse_all(stage: Stage) -> IterVar:
    axes = list(stage.op.axis)
    return stage.fuse(*axes) if len(axes) > 1 else axes[0]


def bind_flat(stage: Stage, loop: IterVar, threads: int, vector: int = 1) -> None:
    """``loop`` as blockIdx.x x threadIdx.x (x ``vector`` vectorized lanes innermost)."""
    if vector > 1:
        loop, lanes = stage.split(loop, factor=vector)
        stage.vectorize(lanes)
    bx, tx = stage.split(loop, factor=threads)
    stage.bind(bx, axis(BLOCK_X))
    stage.bind(tx, axis(THREAD_X))


def fetch_cooperatively(s: Schedule, cache: Tensor, threads: Sequence[tuple[str, int]], vector: int = 1,
                        order: Optional[Sequence[int]] = None) -> None:
    """Copy ``cache``'s tile with every thread of the block (innermost thread tag first in ``threads``).

    ``order`` permutes the cache's axes before fusing (put the axis that is
    contiguous in the source last, so neighbouring threads read neighbours).
    """
    stage = s[cache]
    axes = list(stage.op.axis)
    if order is not None:
        axes = [axes[k] for k in order]
        stage.reorder(*axes)
    lanes = None
    if vector > 1:
        # Split the contiguous axis itself, so each vector's index is a plain ramp.
        axes[-1], lanes = stage.split(axes[-1], factor=vector)
    loop = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    if lanes is not None:
        stage.vectorize(lanes)
    for tag, extent in threads:
        if extent > 1:
            loop, t = stage.split(loop, factor=extent)
            stage.bind(t, axis(tag))


def reduce_across_threads(s: Schedule, t: Tensor, threads: int) -> None:
    """A reduction to a 0-d tensor as one block: its reduction axes fused and spread over
    ``threads`` threads, whose partials are combined across the block (a cross-thread reduction)."""
    stage = s[t]
    axes = list(stage.op.reduce_axis)
    _, inner = stage.split(stage.fuse(*axes) if len(axes) > 1 else axes[0], factor=threads)
    stage.bind(inner, axis(THREAD_X))


def largest_factor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` not above ``limit`` (at least 1)."""
    for f in range(min(n, limit), 0, -1):
        if n % f == 0:
            return f
    return 1
