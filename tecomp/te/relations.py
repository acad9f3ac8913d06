"""Relations between a stage's iteration variables (split, fuse, singleton) and their arithmetic.

A schedule records how leaf loops derive from the root axes; ``pass_down`` gives each derived
variable its extent from its parents', ``pass_up`` gives each parent its value (from 0) as an
expression of the leaf loop variables. Bound inference and rfactor both use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from ..tir import op as _op
from ..tir.expr import PrimExpr
from .tensor import IterVar


@dataclass(eq=False)
class Split:
    parent: IterVar
    outer: IterVar
    inner: IterVar
    factor: Optional[PrimExpr]
    nparts: Optional[PrimExpr]


@dataclass(eq=False)
class Fuse:
    outer: IterVar
    inner: IterVar
    fused: IterVar


@dataclass(eq=False)
class Singleton:
    """A loop of extent one made from nothing (``fuse()`` of no axes)."""

    iv: IterVar


def linked(rel: Any) -> tuple:
    """The variables one relation ties together."""
    if isinstance(rel, Split):
        return rel.parent, rel.outer, rel.inner
    if isinstance(rel, Fuse):
        return rel.outer, rel.inner, rel.fused
    return (rel.iv,)


def derived(rel: Any) -> tuple:
    """The variables one relation creates."""
    if isinstance(rel, Split):
        return rel.outer, rel.inner
    return (rel.fused,) if isinstance(rel, Fuse) else (rel.iv,)


def mixed_axes(relations: Iterable[Any]) -> set:
    """The loops over both kinds of axis: made by fusing a data-parallel and a reduction variable
    (TVM allows it; the fused loop is a reduction loop), and everything split or fused from them."""
    found: set = set()
    for rel in relations:
        if isinstance(rel, Fuse) and (rel.outer.is_reduce != rel.inner.is_reduce
                                      or rel.outer in found or rel.inner in found):
            found.add(rel.fused)
        elif isinstance(rel, Split) and rel.parent in found:
            found.update((rel.outer, rel.inner))
    return found


def ceil_div(a: PrimExpr, b: PrimExpr) -> PrimExpr:
    return _op.floordiv(_op.sub(_op.add(a, b), 1), b)


def pass_down(relations: Iterable[Any], extents: dict, analyzer: Any) -> None:
    """Fill ``extents`` for the variables each relation derives (in relation order)."""
    for rel in relations:
        if isinstance(rel, Split):
            total = extents[rel.parent]
            if rel.factor is not None:
                extents[rel.inner] = rel.factor
                extents[rel.outer] = analyzer.simplify(ceil_div(total, rel.factor))
            else:
                extents[rel.outer] = rel.nparts
                extents[rel.inner] = analyzer.simplify(ceil_div(total, rel.nparts))
        elif isinstance(rel, Fuse):
            extents[rel.fused] = analyzer.simplify(_op.mul(extents[rel.outer], extents[rel.inner]))
        else:
            extents[rel.iv] = _op.const(1, rel.iv.var.dtype)


def pass_up(relations: list, extents: dict, values: dict) -> None:
    """Fill ``values`` for each relation's parents from its derived variables (last relation first)."""
    for rel in reversed(relations):
        if isinstance(rel, Split):
            values[rel.parent] = _op.add(_op.mul(values[rel.outer], extents[rel.inner]), values[rel.inner])
        elif isinstance(rel, Fuse):
            fused, inner_ext = values[rel.fused], extents[rel.inner]
            values[rel.outer] = _op.floordiv(fused, inner_ext)
            values[rel.inner] = _op.floormod(fused, inner_ext)


def pass_down_index(relations: Iterable[Any], extents: dict, values: dict) -> None:
    """Fill ``values`` of each derived variable from its parents' (the inverse of ``pass_up``)."""
    for rel in relations:
        if isinstance(rel, Split):
            parent, inner_ext = values[rel.parent], extents[rel.inner]
            values[rel.outer] = _op.floordiv(parent, inner_ext)
            values[rel.inner] = _op.floormod(parent, inner_ext)
        elif isinstance(rel, Fuse):
            values[rel.fused] = _op.add(_op.mul(values[rel.outer], extents[rel.inner]), values[rel.inner])
        else:
            values[rel.iv] = _op.const(0, rel.iv.var.dtype)


def split_guard(relations: Iterable[Any], extents: dict, values: dict, analyzer: Any) -> PrimExpr:
    """The condition keeping every split's parent inside its extent where the split may not divide."""
    guard: PrimExpr = _op.const(True)
    for rel in relations:
        if isinstance(rel, Split) and not analyzer.can_prove(
                _op.cmp("<=", _op.mul(extents[rel.outer], extents[rel.inner]), extents[rel.parent])):
            guard = _op.logical_and(guard, _op.cmp("<", values[rel.parent], extents[rel.parent]))
    return guard
