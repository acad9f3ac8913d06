"""What the CUDA schedules share: thread axes, cooperative fetching, the injective binding, configs.

``fetch_cooperatively`` is the classic staging step: every thread of the
block copies part of a tile into shared memory, consecutive threads taking
consecutive elements (coalesced reads), optionally ``vector`` elements at a
time. ``bind_flat`` maps a fused loop onto (blocks, threads[, vector lanes]);
``reduce_per_thread`` gives each output of a reduction a thread, ``reduce_across_threads``
a block of threads.
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
from ..common import PARTIAL_TAG

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


def reduce_per_thread(s: Schedule, t: Tensor, threads: int) -> None:
    """A reduction as one thread per output element, ``threads`` per block, accumulating in a
    register (a lane-partial stage it reads, ``lane_split_reduce``, in registers too)."""
    acc = s.cache_write(t, "local")
    stage = s[t]
    bx, tx = stage.split(fuse_all(stage), factor=threads)
    stage.bind(bx, axis(BLOCK_X))
    stage.bind(tx, axis(THREAD_X))
    for partial in acc.op.input_tensors:
        if getattr(partial.op, "tag", None) == PARTIAL_TAG:
            s[partial].set_scope("local")
            s[partial].compute_at(stage, tx)
    s[acc].compute_at(stage, tx)


def reduce_across_threads(s: Schedule, t: Tensor, threads: int) -> None:
    """A reduction as one block per output element (one block for a 0-d result): the element's
    reduction is spread over ``threads`` threads, whose partials are combined across the block (a
    cross-thread reduction). A reduction over the lanes of a lane-partial stage
    (``lane_split_reduce``) binds the lanes to threads instead, each thread computing its lane's
    partial in a register."""
    stage = s[t]
    if stage.op.axis:
        stage.bind(fuse_all(stage), axis(BLOCK_X))
    axes = list(stage.op.reduce_axis)
    partials = [p for p in t.op.input_tensors if getattr(p.op, "tag", None) == PARTIAL_TAG]
    if partials and len(axes) == 1:
        stage.bind(axes[0], axis(THREAD_X))
        s[partials[0]].set_scope("local")
        s[partials[0]].compute_at(stage, axes[0])
        return
    _, inner = stage.split(stage.fuse(*axes) if len(axes) > 1 else axes[0], factor=threads)
    stage.bind(inner, axis(THREAD_X))


def default_row_threads(rows: int, row_length: int) -> int:
    """Threads per row of a row statistic: a block per row while the rows alone would leave most
    of a GPU idle (fewer than 8192 of 64+ elements), one thread per row otherwise."""
    return 32 if rows < 8192 and row_length >= 64 else 1


def largest_factor(n: int, limit: int) -> int:
    """The largest divisor of ``n`` not above ``limit`` (at least 1)."""
    for f in range(min(n, limit), 0, -1):
        if n % f == 0:
            return f
    return 1
