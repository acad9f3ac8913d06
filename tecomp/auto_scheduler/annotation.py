"""Annotations: the sampled sizes and loop kinds that turn a sketch into transform steps.

Owns ``Candidate`` (a sketch with its parameters), random sampling of
parameters (``sample``), the evolutionary operators (``mutate``,
``crossover``) and ``to_steps``, which applies a candidate to a fresh
schedule through a step ``Recorder``. Parameters per stage rule:

* tiled stages: per spatial axis three inner tile lengths (the SSRSRS
  levels S1, S2, S3; S0 takes the rest), per reduction axis one (R1);
  usually a factorization of the extent, sometimes sizes that do not divide
  it (the loops then have tails); ``level``: where the cache (or the tiled
  stage inside its consumer) is computed, after the S0 or the S1 loops;
  ``par``: parallel over the fused S0 loops, or S0 and S1; ``unroll``: none,
  the innermost spatial loops, or those and the inner reduction loop (as
  many of them as keep the body's copies within ``MAX_UNROLLED``);
  ``vec``: vectorize the innermost spatial loop.
* simple stages: how many outer spatial loops are fused and made parallel
  (more only while the fused ones have fewer than ``PARALLEL_ENOUGH``
  iterations), the vector width of the innermost spatial loop (0: none; the
  whole loop if it is that long; a shorter last vector is a tail), and the
  unroll factor of the innermost reduction loop.
* rfactor stages: the reduction loops fused and split by ``factor``;
  ``mode`` "vector" factors the inner part (its partial sums are vector
  lanes), "parallel" the outer part (its partial sums run in parallel).

* GPU rules: see ``gpu_annotation``.

It must not measure nor rank candidates.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from ..te.schedule import Stage
from . import gpu_annotation as gpu
from .compute_dag import ComputeDAG, StageInfo
from .sketch import Sketch
from .steps import Recorder

MAX_INNER = 64          # largest innermost tile length
VECTOR_WIDTHS = (4, 8, 16, 32)
TAIL_PROBABILITY = 0.15  # share of tile sizes sampled without dividing the extent
PARALLEL_ENOUGH = 64     # parallel iterations after which a simple stage fuses no more outer loops
MAX_UNROLLED = 256       # copies of a tile's body that unrolling may make (more: builds take seconds)


@dataclass(frozen=True)
class Candidate:
    """A sketch and its parameters: ``params[i]`` for stage index ``i`` (a dict, or None)."""

    sketch: Sketch
    params: tuple


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _sample_lengths(rng: random.Random, extent: int, levels: int, innermost_cap: int) -> list[int]:
    """``levels`` inner tile lengths (outer to inner) for an axis of ``extent``."""
    if rng.random() < TAIL_PROBABILITY and extent > 8:
        lengths, left = [], extent
        for level in range(levels):
            cap = innermost_cap if level == levels - 1 else 16
            choices = [p for p in (1, 2, 4, 8, 16, 32, 64) if p <= min(cap, left)]
            pick = rng.choice(choices)
            lengths.append(pick)
            left = max(1, left // pick)
        return lengths
    lengths, left = [], extent
    for level in reversed(range(levels)):  # innermost first
        cap = innermost_cap if level == levels - 1 else left
        pick = rng.choice([d for d in _divisors(left) if d <= cap])
        lengths.append(pick)
        left //= pick
    return lengths[::-1]


def _sample_tile(rng: random.Random, info: StageInfo) -> dict:
    return {"sp": [_sample_lengths(rng, n, 3, MAX_INNER if k == len(info.spatial) - 1 else 16)
                   for k, n in enumerate(info.spatial)],
            "re": [_sample_lengths(rng, n, 1, MAX_INNER) for n in info.reduce],
            "level": rng.choice((0, 1)), "par": rng.choice((1, 2)),
            "unroll": rng.choice((0, 1, 1, 2)), "vec": rng.random() < 0.85}


def _sample_simple(rng: random.Random, info: StageInfo) -> dict:
    last = info.spatial[-1] if info.spatial else 1
    widths = [w for w in VECTOR_WIDTHS if w <= last]
    red = info.reduce[-1] if info.reduce else 1
    vec = rng.choice(widths) if widths and rng.random() < 0.8 else 0
    outer = _outside_vector(info.spatial, vec)
    # one more outer loop is fused only while the fused ones give too little parallel work (each
    # fused loop costs a division in the indices)
    fuse = [k for k in range(1, len(outer) + 1) if math.prod(outer[:k - 1]) < PARALLEL_ENOUGH] or [1]
    return {"fuse": rng.choice(fuse), "vec": vec,
            "unroll": rng.choice([u for u in (0, 2, 4, 8) if u <= red]) if info.reduce else 0}


def _outside_vector(spatial: tuple[int, ...], vec: int) -> list[int]:
    """The extents of a simple stage's spatial loops outside its vector loop of ``vec`` lanes (0:
    none): the innermost loop is split by ``vec``, or is the vector loop if it is not longer."""
    if not vec or not spatial:
        return list(spatial)
    return list(spatial[:-1]) + ([math.ceil(spatial[-1] / vec)] if vec < spatial[-1] else [])


def _sample_rfactor(rng: random.Random, info: StageInfo) -> dict:
    total = math.prod(info.reduce)
    mode = rng.choice(("vector", "parallel"))
    if mode == "vector":
        return {"mode": mode, "factor": rng.choice([w for w in VECTOR_WIDTHS + (64,) if w <= total])}
    return {"mode": mode, "factor": rng.choice([f for f in (16, 32, 64, 128, 256, 512) if 2 * f <= total] or [1])}


_SAMPLERS = {"tile": _sample_tile, "tile_cache": _sample_tile, "tile_in": _sample_tile, "simple": _sample_simple,
             "rfactor": _sample_rfactor, "gpu_tile": gpu.sample_tile, "gpu_simple": gpu.sample_simple}
_GPU_STEPS = {"gpu_tile": gpu.tile_steps, "gpu_simple": gpu.simple_steps}


def sample(rng: random.Random, dag: ComputeDAG, sketch: Sketch) -> Candidate:
    """A candidate of ``sketch`` with random parameters."""
    params: list = [None] * len(dag.stages)
    for info in dag.compute_stages():
        sampler = _SAMPLERS.get(sketch.rule(info.index)[0])
        if sampler is not None:
            params[info.index] = sampler(rng, info)
    return Candidate(sketch, tuple(params))


def mutate(rng: random.Random, dag: ComputeDAG, cand: Candidate) -> Candidate:
    """``cand`` with one parameter of one stage resampled (a tile size, an annotation, a location)."""
    stages = [i for i, p in enumerate(cand.params) if p]
    if not stages:
        return cand
    index = rng.choice(stages)
    info = dag.stages[index]
    fresh = _SAMPLERS[cand.sketch.rule(index)[0]](rng, info)
    params = dict(cand.params[index])
    key = rng.choice(sorted(params))
    if key in ("sp", "re") and params[key]:
        axis = rng.randrange(len(params[key]))
        params[key] = [list(v) for v in params[key]]
        params[key][axis] = fresh[key][axis]
    else:
        params[key] = fresh[key]
    new = list(cand.params)
    new[index] = params
    return Candidate(cand.sketch, tuple(new))


def crossover(rng: random.Random, a: Candidate, b: Candidate) -> Candidate:
    """Per stage, the parameters of ``a`` or ``b`` (same sketch), chosen at random."""
    if a.sketch != b.sketch:
        return a
    return Candidate(a.sketch, tuple(pa if rng.random() < 0.5 else pb for pa, pb in zip(a.params, b.params)))


# ---------------------------------------------------------------- to steps

def to_steps(dag: ComputeDAG, cand: Candidate) -> list[list]:
    """The transform steps of ``cand`` (applied to a fresh schedule as they are recorded)."""
    rec = Recorder(dag.init_schedule())
    stages = list(rec.sch.stages)  # the initial stage objects, by index
    order = list(reversed(dag.compute_stages()))
    if any(r is not None and r[0] in _GPU_STEPS for r in cand.sketch.rules):
        # inlined first, so that a shared-memory copy reads through the producers inlined into it
        order.sort(key=lambda info: cand.sketch.rule(info.index)[0] != "inline")
    for info in order:
        rule, partner = cand.sketch.rule(info.index)
        params = cand.params[info.index]
        stage = stages[info.index]
        if rule in _GPU_STEPS:
            _GPU_STEPS[rule](rec, stage, info, params)
        elif rule == "inline":
            rec.compute_inline(stage)
        elif rule == "simple":
            _simple(rec, stage, info, params)
        elif rule == "tile":
            _tile_inner(rec, stage, params, levels=4)
            _outer_parallel(rec, stage, info, params, levels=[0, 1][:params["par"]], count=len(info.spatial))
        elif rule == "tile_cache":
            cache = rec.cache_write(stage, "local")
            _tile_pair(rec, stage, cache, info, params)
        elif rule == "tile_in":
            _tile_pair(rec, stages[partner], stage, info, params)
        elif rule == "rfactor":
            _rfactor(rec, stage, info, params)
    return rec.steps


def _rfactor(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> None:
    n_sp = len(info.spatial)
    reduce = list(stage.leaf_iter_vars[n_sp:])
    loop = rec.fuse(stage, reduce)
    outer, inner = rec.split(stage, loop, [params["factor"]])
    if params["mode"] == "vector":
        rf = rec.rfactor(stage, inner)   # rf: spatial..., outer (reduce), inner (data-parallel, innermost)
        rec.annotate(rf, rf.leaf_iter_vars[-1], "vectorize")
        if n_sp and math.prod(info.spatial) > 1:
            _parallel_prefix(rec, rf, n_sp)
    else:
        rf = rec.rfactor(stage, outer)   # rf: spatial..., outer (data-parallel), inner (reduce)
        leaves = list(rf.leaf_iter_vars)
        rec.reorder(rf, [leaves[n_sp]] + leaves[:n_sp] + leaves[n_sp + 1:])
        _parallel_prefix(rec, rf, n_sp + 1)
    if n_sp and math.prod(info.spatial) > 1:
        _parallel_prefix(rec, stage, n_sp)


def _parallel_prefix(rec: Recorder, stage: Stage, count: int) -> None:
    """Fuse the first ``count`` leaves of ``stage`` and make the loop parallel."""
    loops = list(stage.leaf_iter_vars[:count])
    rec.annotate(stage, rec.fuse(stage, loops), "parallel")


def _simple(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> None:
    leaves = list(stage.leaf_iter_vars)
    spatial, reduce = leaves[:len(info.spatial)], leaves[len(info.spatial):]
    extents = _outside_vector(info.spatial, params["vec"])
    vec_loop = None
    if params["vec"] and spatial:
        if params["vec"] < info.spatial[-1]:
            spatial[-1], vec_loop = rec.split(stage, spatial[-1], [params["vec"]])
        else:  # the whole innermost loop is one vector
            vec_loop = spatial.pop()
        if reduce:  # the vector loop goes innermost, under the reduction
            rec.reorder(stage, spatial + reduce + [vec_loop])
    if params["unroll"] and reduce and info.reduce[-1] % params["unroll"] == 0:
        _, inner = rec.split(stage, reduce[-1], [params["unroll"]])
        rec.annotate(stage, inner, "unroll")
    fuse = min(params["fuse"], len(spatial))
    if fuse:
        fused = rec.fuse(stage, spatial[:fuse])
        if math.prod(extents[:fuse]) > 1:
            rec.annotate(stage, fused, "parallel")
    if vec_loop is not None:
        rec.annotate(stage, vec_loop, "vectorize")


def _tile_inner(rec: Recorder, stage: Stage, params: dict, levels: int) -> dict:
    """Split the stage's own axes into its inner tile levels and order them S R S R S (``levels``
    spatial levels, the last ``levels`` of S0 S1 S2 S3); annotates the innermost ones.
    Returns the loops per level."""
    leaves = list(stage.leaf_iter_vars)
    n_sp = len(params["sp"])
    spatial, reduce = leaves[:n_sp], leaves[n_sp:]
    sp_levels: list[list] = [[] for _ in range(levels)]
    for loop, lengths in zip(spatial, params["sp"]):
        parts = rec.split(stage, loop, lengths[3 - (levels - 1):])
        for level, part in enumerate(parts):
            sp_levels[level].append(part)
    r_levels: list[list] = [[], []]
    for loop, lengths in zip(reduce, params["re"]):
        r0, r1 = rec.split(stage, loop, lengths)
        r_levels[0].append(r0)
        r_levels[1].append(r1)
    s = sp_levels
    order = s[:-2] + [r_levels[0], s[-2], r_levels[1], s[-1]]
    rec.reorder(stage, [loop for group in order for loop in group])
    innermost = params["sp"]
    unroll: list = []
    if params["unroll"] >= 1:
        unroll += [(loop, lengths[-1]) for loop, lengths in zip(s[-1][:-1], innermost[:-1]) if lengths[-1] > 1]
    if params["unroll"] >= 2:
        unroll += [(loop, lengths[-1]) for loop, lengths in zip(r_levels[1], params["re"]) if 1 < lengths[-1] <= 16]
    copies = 1
    for loop, length in unroll:  # innermost spatial first; the body is copied `copies` times in all
        if copies * length > MAX_UNROLLED:
            break
        copies *= length
        rec.annotate(stage, loop, "unroll")
    if params["vec"] and innermost and innermost[-1][-1] > 1:
        rec.annotate(stage, s[-1][-1], "vectorize")
    return {"spatial": s, "reduce": r_levels}


def _outer_parallel(rec: Recorder, stage: Stage, info: StageInfo, params: dict, levels: list[int],
                    count: int) -> Any:
    """Fuse the outer tile loops of ``levels`` (the stage's first leaves) and make them parallel;
    returns the fused loop (the last outer loop if nothing is fused)."""
    n = count * len(levels)
    outer = list(stage.leaf_iter_vars[:n])
    fused = rec.fuse(stage, outer)
    work = 1
    for level in levels:
        for extent, lengths in zip(info.spatial, params["sp"]):
            work *= math.ceil(extent / math.prod(lengths)) if level == 0 else lengths[0]
    if work > 1:
        rec.annotate(stage, fused, "parallel")
    return fused


def _tile_pair(rec: Recorder, outer: Stage, inner: Stage, info: StageInfo, params: dict) -> None:
    """``outer`` (a copy-out or an elementwise consumer) tiled by the spatial lengths up to
    ``level``; ``inner`` (the cache or the producer) computed at its tile loop and tiled inside."""
    level, lengths = params["level"], params["sp"]
    leaves = list(outer.leaf_iter_vars)[:len(lengths)]
    s_levels: list[list] = [[] for _ in range(level + 2)]
    for loop, ls in zip(leaves, lengths):
        split = [ls[0], ls[1] * ls[2]] if level == 1 else [ls[0] * ls[1] * ls[2]]
        for lvl, part in enumerate(rec.split(outer, loop, split)):
            s_levels[lvl].append(part)
    rec.reorder(outer, [loop for group in s_levels for loop in group])
    par_levels = list(range(level + 1)) if params["par"] == 2 else [0]
    fused = _outer_parallel(rec, outer, info, params, par_levels, len(lengths))
    attach = fused if len(par_levels) == level + 1 else s_levels[level][-1]
    if params["vec"] and s_levels[-1]:
        rec.annotate(outer, s_levels[-1][-1], "vectorize")
    rec.compute_at(inner, outer, attach)
    _tile_inner(rec, inner, params, levels=3 - level)

