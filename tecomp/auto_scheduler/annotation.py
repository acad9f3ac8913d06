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
  unroll factor of the innermost reduction loop. A producer with a row host
  (see ``sketch``) also has a location ``at``: 0 at root, or ``d``: computed
  at the host's loop over its first ``d`` axes, once per row of the host
  while the row is in cache (its own loops then stay serial inside the
  host's parallel loop, and its row axes are not vectorized; a row
  reduction with no other spatial axis reduces in vector lanes of the
  sampled width instead, ``rfactor``, its partial results computed at the
  same loop). Only legal
  locations are sampled (``location_error``): the host must have a loop
  over exactly those axes (not one fused with the next axis), and the
  producer's other consumers must be computed inside that loop too.
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
from typing import Any, Optional, Sequence

from ..error import TuningError
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
    return Candidate(sketch, _place(rng, dag, sketch, params, resample={i for i, p in enumerate(params) if p}))


def _guests(dag: ComputeDAG, sketch: Sketch) -> list[StageInfo]:
    """The simple producers with a row host, consumers first (a host's own location comes first)."""
    return [info for info in reversed(dag.compute_stages())
            if sketch.rule(info.index)[0] == "simple" and sketch.rule(info.index)[1] is not None]


def _place(rng: random.Random, dag: ComputeDAG, sketch: Sketch, params: list, resample: set) -> tuple:
    """``params`` with a location sampled for the guests in ``resample`` and for those whose
    location is no longer legal (their host's loops changed)."""
    for info in _guests(dag, sketch):
        at = params[info.index].get("at")
        if info.index in resample or at is None or location_error(dag, sketch, params, info.index, at):
            legal = [d for d in range(_host_rows(sketch, info) + 1)
                     if not location_error(dag, sketch, params, info.index, d)]
            params[info.index] = dict(params[info.index], at=rng.choice(legal))
    return tuple(params)


def _host_rows(sketch: Sketch, info: StageInfo) -> int:
    """At how many leading axes the row host of ``info`` reads it."""
    return info.row_reads[info.consumers.index(sketch.rule(info.index)[1])]


def location_error(dag: ComputeDAG, sketch: Sketch, params: Sequence, index: int, at: int) -> Optional[str]:
    """Why stage ``index`` cannot be computed at its row host's loop over the host's first ``at``
    axes with these ``params`` (None where it can; ``at`` 0 is root)."""
    if not at:
        return None
    info, host = dag.stages[index], sketch.rule(index)[1]
    if sketch.rule(index)[0] != "simple" or host is None:
        return f"stage {info.name} has no row host to be computed at"
    host_info = dag.stages[host]
    where = f"stage {info.name} cannot be computed at the loop over the first {at} axes of stage {host_info.name}"
    if at > _host_rows(sketch, info):
        return f"{where}: it reads {info.name} at its first {_host_rows(sketch, info)} axes only"
    first = _fused_count(host_info, params[host])
    if not first <= at < len(host_info.spatial):
        return f"{where}: it has no such loop (its outer loop fuses its first {first} axes)"
    outside = [c for c in info.consumers if c != host and params[c].get("at", 0) < at]
    if outside:
        return f"{where}: its consumer {dag.stages[outside[0]].name} is not computed inside that loop"
    return None


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
    elif key != "at":
        params[key] = fresh[key]
    new = list(cand.params)
    new[index] = params
    # a host's changed loops may leave its guests' locations illegal: those are resampled too
    return Candidate(cand.sketch, _place(rng, dag, cand.sketch, new, resample={index} if key == "at" else set()))


def crossover(rng: random.Random, a: Candidate, b: Candidate) -> Candidate:
    """Per stage, the parameters of ``a`` or ``b`` (same sketch), chosen at random (a guest's location
    may then be illegal under its host's loops: ``to_steps`` rejects it)."""
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
    rows: dict[int, dict[int, Any]] = {}  # simple stages' row loops by depth
    for info in order:
        rule, partner = cand.sketch.rule(info.index)
        params = cand.params[info.index]
        stage = stages[info.index]
        if rule in _GPU_STEPS:
            _GPU_STEPS[rule](rec, stage, info, params)
        elif rule == "inline":
            rec.compute_inline(stage)
        elif rule == "simple":
            error = location_error(dag, cand.sketch, cand.params, info.index, params.get("at", 0))
            if error:
                raise TuningError(error)
            host = (stages[partner], rows[partner][params["at"]]) if params.get("at") else None
            rows[info.index] = _located_simple(rec, stage, info, params, host)
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


def _located_simple(rec: Recorder, stage: Stage, info: StageInfo, params: dict,
                    host: Optional[tuple[Stage, Any]]) -> dict[int, Any]:
    """A simple stage at root, or computed at ``host`` (its host stage and row loop, already
    transformed); returns its own row loops by depth."""
    if host is None:
        return _simple(rec, stage, info, params)
    if info.reduce and params["vec"] and len(info.spatial) <= params["at"]:
        # no spatial loop left inside the host to vectorize: the vector width goes to the reduction
        return _row_reduction_in_lanes(rec, stage, info, params["vec"], *host)
    rows = _simple(rec, stage, info, params)
    rec.compute_at(stage, *host)
    return rows


def _row_reduction_in_lanes(rec: Recorder, stage: Stage, info: StageInfo, vec: int, host: Stage,
                            loop: Any) -> dict[int, Any]:
    """``stage``'s reduction factored in ``vec`` vector lanes, it and its partial results computed at
    ``loop`` of ``host`` (a scalar row reduction would wait on every addition); returns its row loops."""
    n_sp = len(info.spatial)
    _, inner = _split_reduction(rec, stage, n_sp, vec)
    rf = _factor_in_lanes(rec, stage, inner)
    rec.compute_at(rf, host, loop)
    rec.compute_at(stage, host, loop)
    return {d: row for d, row in enumerate(stage.leaf_iter_vars[:n_sp - 1], start=1)}


def _split_reduction(rec: Recorder, stage: Stage, n_sp: int, factor: int) -> list:
    """The reduction loops of ``stage`` (after its ``n_sp`` spatial ones) fused and split by ``factor``."""
    return rec.split(stage, rec.fuse(stage, list(stage.leaf_iter_vars[n_sp:])), [factor])


def _factor_in_lanes(rec: Recorder, stage: Stage, inner: Any) -> Stage:
    """The factored stage of ``rfactor`` over ``inner``: its partial results in vector lanes."""
    rf = rec.rfactor(stage, inner)   # rf: spatial..., outer (reduce), inner (data-parallel, innermost)
    rec.annotate(rf, rf.leaf_iter_vars[-1], "vectorize")
    return rf


def _rfactor(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> None:
    n_sp = len(info.spatial)
    outer, inner = _split_reduction(rec, stage, n_sp, params["factor"])
    if params["mode"] == "vector":
        rf = _factor_in_lanes(rec, stage, inner)
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


def _fused_count(info: StageInfo, params: dict) -> int:
    """How many outer spatial loops of a simple stage are fused into its outer loop (inside a row
    host: none, its first loop stays as it is)."""
    if params.get("at"):
        return min(1, len(info.spatial))
    whole = len(info.spatial) - (1 if params["vec"] and info.spatial and params["vec"] >= info.spatial[-1] else 0)
    return min(params["fuse"], whole)


def _simple(rec: Recorder, stage: Stage, info: StageInfo, params: dict) -> dict[int, Any]:
    """Returns the stage's row loops by depth ``d`` (its loop over exactly its first ``d`` axes)."""
    at = params.get("at", 0)
    vec = params["vec"] if len(info.spatial) > at else 0  # rows computed one at a time: no vector
    leaves = list(stage.leaf_iter_vars)
    spatial, reduce = leaves[:len(info.spatial)], leaves[len(info.spatial):]
    extents = _outside_vector(info.spatial, vec)
    vec_loop = None
    if vec and spatial:
        if vec < info.spatial[-1]:
            spatial[-1], vec_loop = rec.split(stage, spatial[-1], [vec])
        else:  # the whole innermost loop is one vector
            vec_loop = spatial.pop()
        if reduce:  # the vector loop goes innermost, under the reduction
            rec.reorder(stage, spatial + reduce + [vec_loop])
    if params["unroll"] and reduce and info.reduce[-1] % params["unroll"] == 0:
        _, inner = rec.split(stage, reduce[-1], [params["unroll"]])
        rec.annotate(stage, inner, "unroll")
    fuse = _fused_count(info, params)
    rows: dict[int, Any] = {}
    if fuse:
        fused = rec.fuse(stage, spatial[:fuse])
        if not at and math.prod(extents[:fuse]) > 1:  # inside a host, the host's loop is the parallel one
            rec.annotate(stage, fused, "parallel")
        rows = {d: loop for d, loop in enumerate([fused] + spatial[fuse:], start=fuse) if d < len(info.spatial)}
    if vec_loop is not None:
        rec.annotate(stage, vec_loop, "vectorize")
    return rows


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

