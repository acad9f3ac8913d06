"""Sketch rules: the high-level structures of a schedule, derived from the compute DAG.

Owns ``Sketch`` (one rule per compute stage) and ``generate_sketches``. The
rules, applied consumers first (as TVM's auto-scheduler does on CPU):

* ``inline``: a non-output stage without a reduction is substituted into its
  consumers, unless it calls an expensive function (exp, log, ...), which
  would then be recomputed; a cheap one read by a stage with data reuse is
  offered both inlined and computed once at root.
* ``tile``: multi-level tiling of a stage with data reuse (an input does not
  depend on every spatial axis: matmul, convolution), space-space-reduce-
  space-reduce-space (SSRSRS), the innermost level vectorized.
* ``tile_cache``: the same with a write cache: the stage's values are
  accumulated in a ``local`` cache computed at the tile loop of the stage,
  which only copies them out (registers hold the accumulator tile).
* ``tile_in`` / ``host``: a tiled stage whose only consumer is an
  elementwise stage of the same shape (a bias, an activation) is computed at
  that consumer's tile loop instead, so the consumer is the copy-out.
* ``rfactor``: a reduction without reuse whose spatial loops leave little
  parallel work (at most ``RFACTOR_MAX_SPATIAL`` points) over a long
  reduction is split and factored (``Schedule.rfactor``): the partial
  reductions run in parallel or in vector lanes, the stage sums them.
* ``simple``: every other stage (reductions without reuse, elementwise
  outputs, expensive producers): outer loops fused and parallel, the inner
  loop vectorized. A simple producer gets a row host (its partner): the
  simple consumer that reads it at its own leading axes (softmax's row max
  ``mx[i]`` read by ``e[i, j]``) and that hosts every other consumer of it;
  the annotation then samples whether it is computed at root or at one of
  the host's row loops.

For a GPU (``gpu=True``) the rules are TVM's GPU sketch rules, simplified:

* ``inline`` as on a CPU, for every cheap non-output stage without a
  reduction (its values are then computed where they are read, also inside
  a shared-memory copy);
* ``gpu_tile``: a stage with data reuse accumulates in a ``local`` write
  cache; its spatial axes are tiled into blocks (``blockIdx.x``), threads
  (``threadIdx.x``) and a per-thread register tile; the reduction is split
  and, at its outer loop, every input is copied into ``shared`` memory by
  all threads of the block (cooperative fetching);
* ``gpu_simple``: every other stage, one thread per output element
  (``blockIdx.x``/``threadIdx.x`` over the fused spatial axes), reductions
  in the thread; a stage with no spatial work (a full reduction) reduces
  across the threads of one block instead.

What each rule's loops become is ``annotation``'s job. A ``Sketch`` also
carries the notes of stages no rule could transform (they keep the
default loops). It must not sample sizes nor measure.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Optional

from .compute_dag import ComputeDAG, StageInfo

MAX_SKETCHES = 8
RFACTOR_MAX_SPATIAL = 64
RFACTOR_MIN_REDUCE = 256


@dataclass(frozen=True)
class Sketch:
    """One rule per compute stage: ``rules[i] = (rule, partner)`` for stage index ``i`` of the initial
    schedule (``partner``: the host of a ``tile_in`` stage, the guest of a ``host``, the row host of
    a ``simple`` producer)."""

    rules: tuple

    def rule(self, index: int) -> tuple[str, Optional[int]]:
        return self.rules[index]

    def __str__(self) -> str:
        return ", ".join(f"{i}:{r[0]}" + (f"->{r[1]}" if r[1] is not None else "")
                         for i, r in enumerate(self.rules) if r is not None)


def generate_sketches(dag: ComputeDAG, gpu: bool = False) -> list[Sketch]:
    """The sketches of ``dag`` (at most ``MAX_SKETCHES``), the richest first; ``gpu``: the GPU rules."""
    stages = dag.compute_stages()
    options = []
    for info in reversed(stages):
        choices = _gpu_choices(info) if gpu else _choices(dag, info)
        options.append([(info.index, choice) for choice in choices])
    sketches, seen = [], set()
    for combo in itertools.product(*options):
        rules: list = [None] * len(dag.stages)
        for index, (rule, partner) in combo:
            rules[index] = (rule, partner)
        if not _consistent(rules):
            continue
        for index, (rule, partner) in combo:
            if rule == "tile_in":
                rules[partner] = ("host", index)
            elif rule == "simple":  # consumers first: a row host's own host is already known
                rules[index] = ("simple", _row_host(dag, dag.stages[index], rules))
        sketch = Sketch(tuple(rules))
        if sketch not in seen:
            seen.add(sketch)
            sketches.append(sketch)
        if len(sketches) == MAX_SKETCHES:
            break
    return sketches


def _choices(dag: ComputeDAG, info: StageInfo) -> list[tuple[str, Optional[int]]]:
    if info.data_reuse:
        host = _elementwise_host(dag, info)
        return ([("tile_in", host)] if host is not None else []) + [("tile_cache", None), ("tile", None)]
    if not info.is_output and not info.reduce:
        if info.expensive:
            return [("simple", None)]
        feeds_reuse = any(dag.stages[c].data_reuse for c in info.consumers)
        return [("inline", None), ("simple", None)] if feeds_reuse else [("inline", None)]
    if info.reduce and math.prod(info.spatial) <= RFACTOR_MAX_SPATIAL and math.prod(info.reduce) >= RFACTOR_MIN_REDUCE:
        return [("rfactor", None), ("simple", None)]
    return [("simple", None)]


def _gpu_choices(info: StageInfo) -> list[tuple[str, Optional[int]]]:
    if info.data_reuse:
        return [("gpu_tile", None)]
    if not info.is_output and not info.reduce and not info.expensive:
        return [("inline", None)]
    return [("gpu_simple", None)]


def _consistent(rules: list) -> bool:
    """A host must stay a plain stage (not inlined, not itself tiled), and host only one guest."""
    hosts = [r[1] for r in rules if r is not None and r[0] == "tile_in"]
    return len(hosts) == len(set(hosts)) and all(rules[h] is not None and rules[h][0] == "simple" for h in hosts)


def _elementwise_host(dag: ComputeDAG, info: StageInfo) -> Optional[int]:
    """The one consumer of ``info`` that reads it exactly at its own axes and has its shape, if any."""
    if info.is_output or len(info.consumers) != 1:
        return None
    host = dag.stages[info.consumers[0]]
    if host is None or host.reduce or host.spatial != info.spatial:
        return None
    return host.index if info.row_reads[0] == len(info.spatial) else None


def _row_host(dag: ComputeDAG, info: StageInfo, rules: list) -> Optional[int]:
    """The consumer of ``info`` whose row loops may compute it: a simple stage that reads ``info`` at
    its leading axes and has a row loop (an axis besides its innermost), and that hosts every other
    consumer of ``info``."""
    for host, rows in zip(info.consumers, info.row_reads):
        others = [c for c in info.consumers if c != host]
        if (rules[host] is not None and rules[host][0] == "simple" and rows and len(dag.stages[host].spatial) > 1
                and all(rules[c] == ("simple", host) for c in others)):
            return host
    return None
