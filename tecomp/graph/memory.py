"""Static memory planning: intermediate values share one arena where their lifetimes allow.

Input is the executor's step sequence (which values each step reads and
writes) and the byte size of every value that needs arena storage. A value
lives from the step that writes it to the last step that reads it; the
planner walks the steps, places each step's outputs at the best-fitting free
gap (or at the end of the arena) and frees a value's bytes after its last
reader ran, so a step never writes over anything it reads. Offsets are
64-byte aligned. Pure arithmetic: no arrays, no compiler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ALIGN = 64


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class MemoryPlan:
    """Where each intermediate value lives: ``offsets[value]`` bytes into an arena of ``arena_bytes``."""

    offsets: dict[str, int]
    sizes: dict[str, int]
    arena_bytes: int

    @property
    def unplanned_bytes(self) -> int:
        """What the intermediates would take with a buffer each (no reuse)."""
        return sum(_aligned(s) for s in self.sizes.values())

    def summary(self) -> str:
        saved = 1 - self.arena_bytes / self.unplanned_bytes if self.unplanned_bytes else 0.0
        return (f"memory plan: {len(self.sizes)} intermediate buffers, peak {self.arena_bytes:,} bytes "
                f"(one buffer each: {self.unplanned_bytes:,} bytes, {saved:.0%} saved)")

    def to_json(self) -> dict:
        return {"arena_bytes": self.arena_bytes, "unplanned_bytes": self.unplanned_bytes,
                "buffers": {v: [self.offsets[v], self.sizes[v]] for v in self.offsets}}


class _FreeList:
    """Free gaps of the arena as (offset, size), kept sorted and coalesced."""

    def __init__(self) -> None:
        self.gaps: list[tuple[int, int]] = []
        self.end = 0

    def take(self, size: int) -> int:
        fits = [(gsize, off) for off, gsize in self.gaps if gsize >= size]
        if fits:
            gsize, off = min(fits)
            self.gaps.remove((off, gsize))
            if gsize > size:
                self._insert(off + size, gsize - size)
            return off
        if self.gaps and self.gaps[-1][0] + self.gaps[-1][1] == self.end:
            off, _ = self.gaps.pop()  # grow the last gap instead of leaving it behind
            self.end = off + size
            return off
        off, self.end = self.end, self.end + size
        return off

    def give(self, off: int, size: int) -> None:
        self._insert(off, size)

    def _insert(self, off: int, size: int) -> None:
        gaps = sorted(self.gaps + [(off, size)])
        merged: list[tuple[int, int]] = []
        for o, s in gaps:
            if merged and merged[-1][0] + merged[-1][1] == o:
                merged[-1] = (merged[-1][0], merged[-1][1] + s)
            else:
                merged.append((o, s))
        self.gaps = merged


def plan_memory(steps: Sequence[tuple[Sequence[str], Sequence[str]]], sizes: dict[str, int]) -> MemoryPlan:
    """Offsets for the values in ``sizes``; ``steps`` lists (reads, writes) in execution order.

    Values not in ``sizes`` (inputs, params, graph outputs) are ignored.
    """
    last_use: dict[str, int] = {}
    for i, (reads, writes) in enumerate(steps):
        for v in list(reads) + list(writes):
            if v in sizes:
                last_use[v] = i
    free = _FreeList()
    offsets: dict[str, int] = {}
    for i, (reads, writes) in enumerate(steps):
        for v in writes:
            if v in sizes and v not in offsets:
                offsets[v] = free.take(_aligned(max(sizes[v], 1)))
        for v in dict.fromkeys(list(reads) + list(writes)):
            if v in offsets and last_use[v] == i:
                free.give(offsets[v], _aligned(max(sizes[v], 1)))
    return MemoryPlan(offsets, {v: sizes[v] for v in offsets}, free.end)
