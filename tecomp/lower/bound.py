"""Bound inference: the range of every iteration variable of every stage.

Consumers are processed before producers. A stage at the root covers its
whole shape. A stage computed at loop L of a consumer covers the region its
consumers touch in one iteration of L: the consumers' access indices are
evaluated as intervals with the loops outside and at L fixed and the loops
inside L relaxed over their extents (see docs/architecture.md and the
lowering notes). Leaf loops are normalised to start at zero; a root
variable's value is ``root.min + value(leaves)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..error import LoweringError
from ..te.operation import ScanOp
from ..te.relations import pass_down, pass_up
from ..te.schedule import Schedule, Stage
from ..te.tensor import IterVar, Range
from ..tir import op as _op
from ..tir.expr import IntImm, PrimExpr, ProducerLoad
from ..tir.functor import post_order_visit, substitute
from ..tir.interval import Interval, eval_interval
from ..tir.simplify import Analyzer


@dataclass
class StageBounds:
    """Ranges of one stage's loops.

    ``root_ranges``: each root IterVar's Range. ``extents``: every IterVar's
    loop extent. ``values``: every IterVar's value (from 0) as an expression
    of the leaf loop variables.
    """

    root_ranges: dict = field(default_factory=dict)
    extents: dict = field(default_factory=dict)
    values: dict = field(default_factory=dict)

    def root_index(self, iv: IterVar) -> PrimExpr:
        return _op.add(self.root_ranges[iv].min, self.values[iv])


def derive_loops(stage: Stage, root_ranges: dict, analyzer: Analyzer) -> StageBounds:
    """Extents of split/fused variables (downward) and root values from leaves (upward)."""
    sb = StageBounds(root_ranges=root_ranges)
    for iv, rng in root_ranges.items():
        sb.extents[iv] = rng.extent
    pass_down(stage.relations, sb.extents, analyzer)
    for leaf in stage.leaf_iter_vars:
        sb.values[leaf] = leaf.var
    pass_up(stage.relations, sb.extents, sb.values)
    return sb


def loop_chain(stage: Stage) -> list[tuple[Stage, IterVar]]:
    """The loops enclosing ``stage``'s body, innermost first, across attach points."""
    chain: list[tuple[Stage, IterVar]] = [(stage, iv) for iv in reversed(stage.leaf_iter_vars)]
    cur = stage
    while cur.attach_type == "scope":
        parent, at = cur.attach_stage, cur.attach_ivar
        leaves = parent.leaf_iter_vars
        pos = leaves.index(at)
        chain.extend((parent, iv) for iv in reversed(leaves[:pos + 1]))
        cur = parent
    return chain


def _thread_relaxed(stage: Stage, iv: IterVar, scope: str) -> bool:
    """Loops bound to threads sharing ``scope`` storage see the whole region."""
    tag = _thread_tag(stage, iv)
    if not tag:
        return False
    if scope == "shared":
        return tag.startswith("threadIdx")
    if scope == "warp":  # the lanes of a warp share it
        return tag == "threadIdx.x"
    if scope == "global":
        return tag.startswith(("threadIdx", "blockIdx"))
    return False


def _thread_tag(stage: Stage, iv: IterVar) -> str:
    attr = stage.iter_var_attrs.get(iv)
    return attr.bind_thread.thread_tag if attr is not None and attr.bind_thread is not None else ""


def _same_thread_loops(chain: list, attach: tuple, scope: str) -> dict:
    """Loops inside the attach point that stand for a thread index already fixed outside it, each
    mapped to the outer loop's variable, where each such thread keeps its own copy of ``scope``
    storage (``local``: every thread; ``shared``: every block).

    A consumer loop bound to the ``threadIdx.x`` that a loop enclosing the attach point is bound
    to runs, on the GPU, only at that loop's index: a ``local`` stage there computes one thread's
    part, not the whole extent of the inner loop (TVM's rule)."""
    private = ("threadIdx", "blockIdx") if scope == "local" else ("blockIdx",) if scope == "shared" else ()
    pos = next(k for k, (st, iv) in enumerate(chain) if st is attach[0] and iv is attach[1])
    outer: dict = {}
    for st, iv in chain[pos:]:
        outer.setdefault(_thread_tag(st, iv), iv.var)
    found = {}
    for st, iv in chain[:pos]:
        tag = _thread_tag(st, iv)
        if tag and tag.startswith(private) and tag in outer:
            var = outer[tag]
            found[iv.var] = var if var.dtype == iv.var.dtype else _op.cast(var, iv.var.dtype)
    return found


class BoundInferrer:
    """Runs bound inference over a schedule's stages (consumers first)."""

    def __init__(self, schedule: Schedule, stages: list[Stage], bodies: dict, analyzer: Analyzer):
        self.schedule = schedule
        self.stages = stages
        self.bodies = bodies
        self.analyzer = analyzer
        self.bounds: dict[Stage, StageBounds] = {}
        self.capacity: dict[tuple, int] = {}

    def run(self) -> dict[Stage, StageBounds]:
        for stage in reversed(self.stages):
            roots = self._root_ranges(stage)
            sb = self.bounds[stage] = derive_loops(stage, roots, self.analyzer)
            for leaf in stage.leaf_iter_vars:
                extent = sb.extents[leaf]
                self.analyzer.bind(leaf.var, (_op.const(0, extent.dtype), extent))
        return self.bounds

    def _root_ranges(self, stage: Stage) -> dict:
        op = stage.op
        if isinstance(op, ScanOp):  # the scan axis and the states' spatial axes: their own domains
            return {iv: iv.dom for iv in op.root_iter_vars}
        ranges = {iv: iv.dom for iv in op.reduce_axis}
        if stage.attach_type != "scope":
            for iv, extent in zip(op.axis, op.shape):
                ranges[iv] = Range(_op.const(0, extent.dtype), extent)
            return ranges
        region = self._attached_region(stage)
        for iv, rng in zip(op.axis, region):
            ranges[iv] = rng
        return ranges

    def _attached_region(self, stage: Stage) -> list[Range]:
        attach = (stage.attach_stage, stage.attach_ivar)
        lows: list[Any] = [None] * len(stage.op.shape)
        highs: list[Any] = [None] * len(stage.op.shape)
        for consumer in self.stages:
            accesses = self._accesses(consumer, stage)
            if not accesses:
                continue
            chain = loop_chain(consumer)
            if not any(st is attach[0] and iv is attach[1] for st, iv in chain):
                raise LoweringError(
                    f"stage {stage.name} is computed at {attach[0].name}.{attach[1].name}, but its "
                    f"consumer {consumer.name} runs outside that loop; compute {stage.name} at a loop "
                    f"that encloses every stage reading it (or at root)")
            cb = self.bounds[consumer]
            root_vmap = {iv.var: cb.root_index(iv) for iv in cb.root_ranges}
            for indices in accesses:
                for dim, idx in enumerate(indices):
                    lo, hi = self._relax(substitute(idx, root_vmap), chain, attach, stage.scope)
                    lows[dim] = _merge(lows[dim], lo, _op.min_expr)
                    highs[dim] = _merge(highs[dim], hi, _op.max_expr)
        region, full_tiles = [], []
        for dim, extent in enumerate(stage.op.shape):
            lo, hi = lows[dim], highs[dim]
            zero = _op.const(0, extent.dtype)
            bounded = all(b is not None and b is not _UNBOUNDED for b in (lo, hi))
            if bounded:
                self._note_capacity(stage, dim, _op.add(_op.sub(hi, lo), 1))
            lo = zero if lo is None or lo is _UNBOUNDED else self.analyzer.simplify(_op.max_expr(lo, zero))
            last = _op.sub(extent, 1)
            full = self.analyzer.simplify(_op.add(_op.sub(hi, lo), 1)) if bounded else None
            hi = last if hi is None or hi is _UNBOUNDED else self.analyzer.simplify(_op.min_expr(hi, last))
            # empty, never negative, where the consumer's iteration lies wholly outside the stage
            # (the guarded tail of a split wider than its axis): a negative extent times another
            # negative one would make a fused loop over the region run
            size = self.analyzer.simplify(_op.add(_op.sub(hi, lo), 1))
            if not self.analyzer.can_prove(_op.cmp(">=", size, 0)):
                size = self.analyzer.simplify(_op.max_expr(size, _op.const(0, size.dtype)))
            region.append(Range(lo, size))
            full_tiles.append(full)
        return self._overcomputed(stage, region, full_tiles)

    def _overcomputed(self, stage: Stage, region: list[Range], full_tiles: list[Any]) -> list[Range]:
        """``region`` with the last tile's clamped extents replaced by the full tile's constant ones,
        for a stage private to one iteration of its attach loop (``local``, or ``global`` allocated
        inside that loop) whose reads stay in bounds over the full tile.

        A consumer's non-dividing split makes the last tile of a cached accumulator (or of a product
        computed at its epilogue's tile) shorter, and a varying extent keeps its loops from being
        unrolled and vectorized. Computing the whole tile into the scratch buffer costs a few wasted
        lanes; the consumer still reads only what exists. Stages shared by a thread block are left
        alone: their threads would load the wasted part cooperatively.
        """
        if stage.scope not in ("local", "global"):
            return region
        widened = [Range(r.min, full) if isinstance(full, IntImm) and not isinstance(r.extent, IntImm) else r
                   for r, full in zip(region, full_tiles)]
        if widened == region or not self._reads_in_bounds(stage, widened):
            return region
        return widened

    def _reads_in_bounds(self, stage: Stage, region: list[Range]) -> bool:
        """Whether every tensor read of ``stage``'s body stays inside its tensor over ``region``."""
        dom = {iv.var: Interval.from_range(r.min, r.extent) for iv, r in zip(stage.op.axis, region)}
        dom.update({iv.var: Interval.from_range(iv.dom.min, iv.dom.extent) for iv in stage.op.reduce_axis})
        safe = True

        def visit(node: Any) -> None:
            nonlocal safe
            if safe and isinstance(node, ProducerLoad):
                for idx, extent in zip(node.indices, node.producer.shape):
                    bounds = eval_interval(idx, dom, self.analyzer)
                    if not bounds.is_bounded or not (
                            self.analyzer.can_prove(_op.cmp(">=", bounds.min, 0))
                            and self.analyzer.can_prove(_op.cmp("<", bounds.max, extent))):
                        safe = False
                        return

        for b in self.bodies.get(stage, ()):
            post_order_visit(b, visit)
        return safe

    def _note_capacity(self, stage: Stage, dim: int, unclamped_extent: PrimExpr) -> None:
        """Remember a constant bound of the region size before clamping to the shape.

        Clamping makes the last tile's region shorter, so the clamped extent
        varies with the loop; the unclamped one is often a constant and bounds
        it, which gives the allocation a fixed size.
        """
        upper = self.analyzer.const_int_bound(self.analyzer.simplify(unclamped_extent))[1]
        if upper is not None:
            self.capacity[(stage, dim)] = upper

    def _accesses(self, consumer: Stage, producer: Stage) -> list[tuple]:
        if consumer not in self.bodies:
            return []
        found: list[tuple] = []

        def visit(node: Any) -> None:
            if isinstance(node, ProducerLoad) and self.schedule[node.producer] is producer:
                found.append(node.indices)

        for b in self.bodies[consumer]:
            post_order_visit(b, visit)
        return found

    def _relax(self, idx: PrimExpr, chain: list, attach: tuple, scope: str) -> tuple:
        """Interval of ``idx`` over the loops inside the attach point (innermost first)."""
        same_thread = _same_thread_loops(chain, attach, scope)
        lo: Any = substitute(idx, same_thread) if same_thread else idx
        hi: Any = lo
        inside = True
        group: dict = {}
        group_stage = None
        for st, iv in chain:
            if st is attach[0] and iv is attach[1]:
                inside = False
            if iv.var in same_thread or not (inside or _thread_relaxed(st, iv, scope)):
                continue
            if group_stage is not None and st is not group_stage:
                lo, hi = self._relax_group(lo, hi, group)
                group = {}
                if lo is None or hi is None:
                    return lo, hi
            group_stage = st
            ext = self.bounds[st].extents[iv]
            group[iv.var] = Interval(_op.const(0, ext.dtype), _op.sub(ext, 1))
        if group:
            lo, hi = self._relax_group(lo, hi, group)
        return lo, hi

    def _relax_group(self, lo: Any, hi: Any, dom: dict) -> tuple:
        new_lo = eval_interval(lo, dom, self.analyzer).min if lo is not None else None
        new_hi = eval_interval(hi, dom, self.analyzer).max if hi is not None else None
        return new_lo, new_hi


_UNBOUNDED = object()


def _merge(acc: Any, new: Any, combine) -> Any:
    """Union of interval bounds; None (unbounded) absorbs everything."""
    if new is None or acc is _UNBOUNDED:
        return _UNBOUNDED
    return new if acc is None else combine(acc, new)
