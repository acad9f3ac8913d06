"""Annotations of the GPU sketch rules: sampled tile sizes and thread counts, and their steps.

Owns the samplers and the step builders of ``gpu_tile`` and ``gpu_simple``
(see ``sketch``); ``annotation`` dispatches to them. Parameters:

* ``gpu_tile``: per spatial axis a thread length and a per-thread length
  (the block length is the rest); per reduction axis the inner length of
  the split at whose outer loop the inputs are copied to shared memory;
  ``unroll``: unroll the per-thread loops and the inner reduction loops.
  Blocks have at most ``MAX_THREADS`` threads and each thread at most
  ``MAX_PER_THREAD`` accumulators.
* ``gpu_simple``: threads per block, the unroll factor of the innermost
  reduction loop, and for a reduction of at least ``CROSS_THREAD_MIN``
  elements ``cross``: one block per output element whose threads reduce
  together (TVM's cross-thread reduction) instead of one thread per element
  (a full reduction always reduces across the block's threads).

It must not measure nor rank candidates.
"""

from __future__ import annotations

import math
import random

from ..te.schedule import Stage
from .compute_dag import StageInfo
from .steps import Recorder

MAX_THREADS = 1024
MAX_PER_THREAD = 64
THREAD_COUNTS = (32, 64, 128, 256, 512)
CROSS_THREAD_MIN = 64
_LENGTHS = (1, 2, 4, 8, 16, 32)


def _pick(rng: random.Random, extent: int, cap: int) -> int:
    """A length for an axis of ``extent``: usually a divisor, else a power of two (a tail), at most ``cap``."""
    divisors = [d for d in range(1, min(extent, cap) + 1) if extent % d == 0]
    if rng.random() < 0.75:
        return rng.choice(divisors)
    return rng.choice([p for p in _LENGTHS if p <= min(extent, cap)])


def sample_tile(rng: random.Random, info: StageInfo) -> dict:
    for _ in range(32):
        sp = []
        for extent in info.spatial:
            threads = _pick(rng, extent, 32)
            sp.append([threads, _pick(rng, max(1, extent // threads), 8)])
        threads = math.prod(t for t, _ in sp)
        if threads <= MAX_THREADS and math.prod(i for _, i in sp) <= MAX_PER_THREAD \
                and (threads >= 32 or threads * 4 >= math.prod(info.spatial)):
            break
    return {"sp": sp, "re": [[_pick(rng, n, 32)] for n in info.reduce], "unroll": rng.random() < 0.7}


def sample_simple(rng: random.Random, info: StageInfo) -> dict:
    cross = math.prod(info.reduce) >= CROSS_THREAD_MIN and rng.random() < 0.5
    work = math.prod(info.reduce) if cross or math.prod(info.spatial) <= 1 else math.prod(info.spatial)
    red = info.reduce[-1] if info.reduce else 1
    return {"threads": rng.choice([t for t in THREAD_COUNTS if t <= max(32, work)]),
            "unroll": rng.choice([u for u in (0, 2, 4, 8) if u <= red]) if info.reduce and not cross else 0,
            "cross": cross}


def tile_steps(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> None:
    """Block x thread x per-thread tiles of ``stage``; its accumulation in a local cache at the thread
    loop, the inputs copied to shared memory by the whole block at the outer reduction loop."""
    cache = rec.cache_write(stage, "local")
    n = len(info.spatial)
    levels: list[list] = [[], [], []]
    for loop, lengths in zip(list(stage.leaf_iter_vars)[:n], params["sp"]):
        for level, part in enumerate(rec.split(stage, loop, lengths)):
            levels[level].append(part)
    rec.reorder(stage, levels[0] + levels[1] + levels[2])
    rec.annotate(stage, rec.fuse(stage, levels[0]), "blockIdx.x")
    rec.annotate(stage, rec.fuse(stage, levels[1]), "threadIdx.x")
    thread_loop = stage.leaf_iter_vars[1]
    if params["unroll"]:
        for loop, (_, per_thread) in zip(levels[2], params["sp"]):
            if per_thread > 1:
                rec.annotate(stage, loop, "unroll")
    rec.compute_at(cache, stage, thread_loop)
    if not params["re"]:
        return
    leaves = list(cache.leaf_iter_vars)
    outer, inner = [], []
    for loop, lengths in zip(leaves[n:], params["re"]):
        o, i = rec.split(cache, loop, lengths)
        outer.append(o)
        inner.append(i)
    rec.reorder(cache, outer + inner + leaves[:n])
    if params["unroll"]:
        for loop, (length,) in zip(inner, params["re"]):
            if 1 < length <= 16:
                rec.annotate(cache, loop, "unroll")
    threads = math.prod(t for t, _ in params["sp"])
    for tensor in dict.fromkeys(cache.op.input_tensors):
        shared = rec.cache_read(rec.sch[tensor], "shared", [cache])
        rec.compute_at(shared, cache, outer[-1])
        fused = rec.fuse(shared, list(shared.leaf_iter_vars))
        if threads > 1:
            rec.annotate(shared, rec.split(shared, fused, [threads])[1], "threadIdx.x")


def simple_steps(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> None:
    """One thread per output element (the fused spatial loops split into blocks of threads), or one
    block per output element whose threads reduce together (``cross``, or no spatial work)."""
    n = len(info.spatial)
    leaves = list(stage.leaf_iter_vars)
    spatial, reduce = leaves[:n], leaves[n:]
    if reduce and (params.get("cross") or math.prod(info.spatial) <= 1):
        loop = rec.fuse(stage, reduce)
        rec.annotate(stage, rec.split(stage, loop, [params["threads"]])[1], "threadIdx.x")
        if math.prod(info.spatial) > 1:
            rec.annotate(stage, rec.fuse(stage, spatial), "blockIdx.x")
        return
    if params["unroll"] and reduce and info.reduce[-1] % params["unroll"] == 0:
        rec.annotate(stage, rec.split(stage, reduce[-1], [params["unroll"]])[1], "unroll")
    if spatial:
        fused = rec.fuse(stage, spatial)
        blocks, threads = rec.split(stage, fused, [params["threads"]])
        rec.annotate(stage, blocks, "blockIdx.x")
        rec.annotate(stage, threads, "threadIdx.x")
