"""Fixed-length feature vectors of lowered loop IR, for the tuner's cost model.

Owns ``extract_features(func)``, ``FEATURE_LENGTH`` and ``FEATURE_VERSION``.
The features describe the *loop IR* a config lowers to, never the config's
knob indices, so a model trained on one operator's records can score another
operator's configs (AutoTVM's "itervar" features, compacted).

Layout (``FEATURE_NAMES`` names every slot):

* For the main store (the one doing the most work), per enclosing loop level,
  innermost first, ``N_LEVELS`` levels (padded with zeros): log2 extent, kind
  one-hot (serial / parallel / vectorized / unrolled; a GPU thread binding
  counts as parallel), log2 of the product of the extents from the outermost
  loop down to this one, and per buffer access (``N_BUFFERS`` slots: the
  stored buffer, then loads by decreasing touch count, then by name) the
  stride w.r.t. this loop's variable and the footprint (elements touched by
  one full run of this loop).
* Per buffer access: touch count, reuse ratio, vector lanes, bytes per
  element, and whether the buffer is local/shared scope.
* The main store itself: executions, lanes, float ops, depth, number of loads.
* Over all stores: count, total work, the main store's siblings (stores under
  the very same loops, e.g. an unrolled register tile), their share of the
  work and their distinct accesses.
* Globals: float ops, allocated bytes (all / local), parallel loops and their
  largest extent, widest vector, number of loops, number of guards.

Counts, extents and strides enter as log2(1 + x). Strides come from the flat
index: affine indices give exact coefficients; anything else is differenced
with the simplifier, ``coef = simplify(idx[v+1] - idx[v])``, and a stride
that is not constant is recorded as the buffer's size ("scattered").

Must not: lower, build or run anything (it reads a PrimFunc), read knob
values, or depend on object identities or hash order (results are
deterministic). Bump ``FEATURE_VERSION`` whenever the layout or meaning of
any slot changes: saved cost models check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..tir import dtype as dt
from ..tir import expr as E
from ..tir import stmt as S
from ..tir.functor import Visitor, structural_equal, structural_hash, substitute
from ..tir.op import add, const, sub
from ..tir.simplify import simplify

FEATURE_VERSION = 1

N_LEVELS = 8
N_BUFFERS = 4

_KINDS = (S.ForKind.SERIAL, S.ForKind.PARALLEL, S.ForKind.VECTORIZED, S.ForKind.UNROLLED)
_KIND_SLOT = {kind: i for i, kind in enumerate(_KINDS)}
_KIND_SLOT[S.ForKind.THREAD_BINDING] = _KIND_SLOT[S.ForKind.PARALLEL]
_FLOAT_OPS = (E.Add, E.Sub, E.Mul, E.Div, E.Min, E.Max)
_GLOBAL_NAMES = ("global.float_ops", "global.alloc_bytes", "global.local_bytes", "global.parallel_loops",
                 "global.parallel_extent", "global.vector_lanes", "global.loops", "global.guards")


def _names() -> list[str]:
    names = []
    for lv in range(N_LEVELS):
        names += [f"L{lv}.extent", *(f"L{lv}.{k.value}" for k in _KINDS), f"L{lv}.topdown"]
        for b in range(N_BUFFERS):
            names += [f"L{lv}.B{b}.stride", f"L{lv}.B{b}.footprint"]
    for b in range(N_BUFFERS):
        names += [f"B{b}.touch", f"B{b}.reuse", f"B{b}.lanes", f"B{b}.bytes", f"B{b}.local"]
    names += ["store.executions", "store.lanes", "store.float_ops", "store.depth", "store.loads"]
    names += ["stores.count", "stores.work", "siblings.count", "siblings.work_share",
              "siblings.accesses"]
    return names + list(_GLOBAL_NAMES)


FEATURE_NAMES: tuple[str, ...] = tuple(_names())
FEATURE_LENGTH = len(FEATURE_NAMES)
_STORE_PART_LENGTH = FEATURE_LENGTH - len(_GLOBAL_NAMES)


def _log(x: float) -> float:
    return math.log2(1.0 + x)


# ------------------------------------------------------------------ IR walk

@dataclass
class _Loop:
    var: E.Var
    extent: int
    kind: S.ForKind


@dataclass
class _Access:
    buffer: object  # tecomp.tir.buffer.Buffer
    index: E.PrimExpr
    is_store: bool


@dataclass
class _Store:
    loops: tuple  # tuple[_Loop], outermost first
    lets: dict
    accesses: list  # list[_Access]; the store first
    lanes: int
    float_ops: int  # scalar float operations per execution (a vector op counts its lanes)

    @property
    def executions(self) -> int:
        return math.prod(lp.extent for lp in self.loops)

    @property
    def work(self) -> int:
        """Scalar operations, counting a store that computes nothing as one per lane."""
        return self.executions * max(self.lanes, self.float_ops)


class _Walk(Visitor):
    """Collects stores with their loop context, plus the global counters."""

    def __init__(self) -> None:
        self.stores: list[_Store] = []
        self.loops: list[_Loop] = []
        self.lets: dict = {}
        self.alloc_bytes = 0
        self.local_bytes = 0
        self.parallel_extents: list[int] = []
        self.n_loops = 0
        self.n_guards = 0

    def visit_For(self, node: S.For) -> None:
        extent = _const_extent(node.extent)
        self.n_loops += 1
        if _KIND_SLOT[node.kind] == _KIND_SLOT[S.ForKind.PARALLEL]:
            self.parallel_extents.append(extent)
        self.loops.append(_Loop(node.loop_var, extent, node.kind))
        self.visit(node.body)
        self.loops.pop()

    def visit_LetStmt(self, node: S.LetStmt) -> None:
        self.lets[node.var] = node.value
        self.visit(node.body)

    def visit_IfThenElse(self, node: S.IfThenElse) -> None:
        self.n_guards += 1
        self.generic(node)

    def visit_Allocate(self, node: S.Allocate) -> None:
        size = _buffer_elements(node.buffer)
        nbytes = 0 if size is None else size * _element_bytes(node.buffer.dtype)
        self.alloc_bytes += nbytes
        if node.buffer.scope != "global":
            self.local_bytes += nbytes
        self.visit(node.body)

    def visit_BufferStore(self, node: S.BufferStore) -> None:
        loads = _Loads()
        loads.visit(node.value)
        index = node.indices[0] if node.indices else const(0)
        accesses = [_Access(node.buffer, index, True)]
        accesses += [_Access(ld.buffer, ld.indices[0] if ld.indices else const(0), False)
                     for ld in loads.found]
        lanes = max(dt.lanes(node.value.dtype), 1)
        self.stores.append(_Store(tuple(self.loops), dict(self.lets), accesses, lanes, loads.float_ops))


class _Loads(Visitor):
    """Loads and float arithmetic operations of a stored value."""

    def __init__(self) -> None:
        self.found: list = []
        self.float_ops = 0

    def visit_BufferLoad(self, node: E.BufferLoad) -> None:
        self.found.append(node)
        self.generic(node)

    def visit_Call(self, node: E.Call) -> None:
        if node.op != "if_then_else" and dt.is_float(node.dtype):
            self.float_ops += dt.lanes(node.dtype)
        self.generic(node)

    def generic(self, node: object) -> None:
        if isinstance(node, _FLOAT_OPS) and dt.is_float(node.dtype):
            self.float_ops += dt.lanes(node.dtype)
        super().generic(node)


def _const_extent(extent: E.PrimExpr) -> int:
    """A loop's extent; a symbolic one the simplifier cannot fold counts as 1."""
    if not isinstance(extent, E.IntImm):
        extent = simplify(extent)
    return max(extent.value, 1) if isinstance(extent, E.IntImm) else 1


def _buffer_elements(buffer) -> Optional[int]:
    size = 1
    for extent in buffer.shape:
        if not isinstance(extent, E.IntImm):
            return None
        size *= extent.value
    return size


def _element_bytes(dtype: str) -> int:
    t = dt.parse(dtype)
    return max(t.bits // 8, 1)


# ------------------------------------------------------------------ strides

def _affine(e: E.PrimExpr, lets: dict) -> Optional[dict]:
    """``e`` as {Var: coefficient, None: constant}, or None when it is not affine."""
    if isinstance(e, E.IntImm):
        return {None: e.value}
    if isinstance(e, E.Var):
        if e in lets:
            return _affine(lets[e], lets)
        return {e: 1}
    if isinstance(e, E.Cast) and dt.is_integral(e.dtype):
        return _affine(e.value, lets)
    if isinstance(e, (E.Add, E.Sub)):
        a, b = _affine(e.a, lets), _affine(e.b, lets)
        if a is None or b is None:
            return None
        sign = 1 if isinstance(e, E.Add) else -1
        for var, coef in b.items():
            a[var] = a.get(var, 0) + sign * coef
        return a
    if isinstance(e, E.Mul):
        a, b = _affine(e.a, lets), _affine(e.b, lets)
        if a is None or b is None:
            return None
        if set(b) == {None}:
            return {var: coef * b[None] for var, coef in a.items()}
        if set(a) == {None}:
            return {var: coef * a[None] for var, coef in b.items()}
    return None


def _strides(index: E.PrimExpr, loops: tuple, lets: dict) -> tuple[list, int, int]:
    """(stride per loop or None when not constant, vector lanes, stride of the lanes)."""
    lanes, lane_stride = 1, 0
    if isinstance(index, E.Ramp):
        lanes = index.lanes
        lane_stride = _const_stride(index.stride, lets)
        index = index.base
    elif isinstance(index, E.Broadcast):
        lanes, index = index.lanes, index.value
    form = _affine(index, lets)
    if form is not None:
        return [form.get(lp.var, 0) for lp in loops], lanes, lane_stride
    return [_differenced(index, lp.var, lets) for lp in loops], lanes, lane_stride


def _const_stride(e: E.PrimExpr, lets: dict) -> int:
    form = _affine(e, lets)
    return form[None] if form is not None and set(form) <= {None} else 1


def _differenced(index: E.PrimExpr, var: E.Var, lets: dict) -> Optional[int]:
    if lets:
        index = substitute(index, lets)
    step = simplify(sub(substitute(index, {var: add(var, const(1, var.dtype))}), index))
    return step.value if isinstance(step, E.IntImm) else None


# ------------------------------------------------------------------ assembly

@dataclass
class _AccessInfo:
    name: str
    strides: list     # per loop, outermost first; None = scattered
    lanes: int
    lane_stride: int
    size: float       # buffer elements (inf when symbolic)
    nbytes: int
    local: bool
    is_store: bool

    def footprints(self, loops: tuple) -> list[float]:
        """Elements touched by one full run of each loop (outermost first)."""
        out = []
        touched = float(self.lanes if self.lane_stride != 0 else 1)
        for lp, stride in zip(reversed(loops), reversed(self.strides)):
            if stride != 0:
                touched *= lp.extent
            out.append(min(touched, self.size))
        return out[::-1]

    def touch(self, loops: tuple) -> float:
        fp = self.footprints(loops)
        return fp[0] if fp else float(self.lanes)


def _access_info(acc: _Access, store: _Store) -> _AccessInfo:
    strides, lanes, lane_stride = _strides(acc.index, store.loops, store.lets)
    size = _buffer_elements(acc.buffer)
    return _AccessInfo(acc.buffer.name, strides, lanes, lane_stride,
                       float(size) if size is not None else math.inf,
                       _element_bytes(acc.buffer.dtype), acc.buffer.scope != "global", acc.is_store)


def _ordered_accesses(store: _Store) -> list[_AccessInfo]:
    """The stored buffer, then distinct loads by decreasing touch count, then name."""
    head = store.accesses[0]
    loads = [a for a in store.accesses[1:]
             if not (a.buffer is head.buffer and structural_equal(a.index, head.index))]
    infos = [_access_info(a, store) for a in loads]
    infos.sort(key=lambda a: (-a.touch(store.loops), a.name))
    return [_access_info(head, store)] + infos


def _level_features(store: _Store, accesses: list[_AccessInfo]) -> np.ndarray:
    per_level = 6 + 2 * N_BUFFERS
    out = np.zeros((N_LEVELS, per_level))
    loops = store.loops
    topdown = np.cumprod([lp.extent for lp in loops]) if loops else []
    footprints = [a.footprints(loops) for a in accesses[:N_BUFFERS]]
    for depth in range(min(len(loops), N_LEVELS)):
        pos = len(loops) - 1 - depth  # innermost first
        lp = loops[pos]
        row = out[depth]
        row[0] = _log(lp.extent)
        row[1 + _KIND_SLOT[lp.kind]] = 1.0
        row[5] = _log(float(topdown[pos]))
        for b, acc in enumerate(accesses[:N_BUFFERS]):
            stride = acc.strides[pos]
            row[6 + 2 * b] = _log(acc.size if stride is None else abs(stride))
            row[7 + 2 * b] = _log(footprints[b][pos])
    return out.ravel()


def _buffer_features(store: _Store, accesses: list[_AccessInfo]) -> np.ndarray:
    out = np.zeros((N_BUFFERS, 5))
    total = store.executions * store.lanes
    for b, acc in enumerate(accesses[:N_BUFFERS]):
        touch = acc.touch(store.loops)
        out[b] = (_log(touch), _log(total / max(touch, 1.0)), _log(acc.lanes), _log(acc.nbytes),
                  float(acc.local))
    return out.ravel()


def _store_features(store: _Store, accesses: list[_AccessInfo]) -> list[float]:
    return [_log(store.executions), _log(store.lanes), _log(store.float_ops), float(len(store.loops)),
            _log(len(accesses) - 1)]


def _aggregate_features(stores: list[_Store], main: _Store) -> list[float]:
    total = sum(s.work for s in stores)
    siblings = [s for s in stores if _same_loops(s.loops, main.loops)]
    sibling_work = sum(s.work for s in siblings)
    distinct = {(a.buffer.name, structural_hash(a.index)) for s in siblings for a in s.accesses}
    return [_log(len(stores)), _log(total), _log(len(siblings)), sibling_work / max(total, 1),
            _log(len(distinct))]


def _same_loops(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x.var is y.var for x, y in zip(a, b))


def _global_features(walk: _Walk) -> list[float]:
    flops = sum(s.executions * s.float_ops for s in walk.stores)
    lanes = max((s.lanes for s in walk.stores), default=1)
    return [_log(flops), _log(walk.alloc_bytes), _log(walk.local_bytes), float(len(walk.parallel_extents)),
            _log(max(walk.parallel_extents, default=0)), _log(lanes), _log(walk.n_loops),
            _log(walk.n_guards)]


def extract_features(func: S.PrimFunc) -> np.ndarray:
    """The feature vector (float32, length ``FEATURE_LENGTH``) of a lowered function."""
    walk = _Walk()
    walk.visit(func.body)
    if walk.stores:
        main = max(walk.stores, key=lambda s: s.work)  # max keeps the first of equals
        accesses = _ordered_accesses(main)
        store_part = np.concatenate([_level_features(main, accesses), _buffer_features(main, accesses),
                                     _store_features(main, accesses),
                                     _aggregate_features(walk.stores, main)])
    else:
        store_part = np.zeros(_STORE_PART_LENGTH)
    return np.concatenate([store_part, _global_features(walk)]).astype(np.float32)
