"""How the interpreter runs a GPU kernel's threads: their order, and the data-race detector.

A :class:`ThreadSchedule` travels with one interpreter run. It orders the blocks of a
launch and the threads of a block (``ascending``, ``descending``, or a ``shuffle`` drawn
from a seed, again at every barrier), and, when asked to, keeps a shadow record of every
shared and global memory access between barriers: an address written by one thread and read
or written by another with no barrier between them (or by threads of two blocks, which no
barrier orders) raises :class:`DataRaceError` naming the buffer, the index, both threads and
both statements. Barriers are counted as epochs: two accesses of one block with the same
epoch had no barrier between them. This module must not compile or run IR (the interpreter
does); it only answers "in what order?" and "is this access a race?".
"""

from __future__ import annotations

import random
from typing import Any, Iterable

from ..error import TecompError

ORDERS = ("ascending", "descending", "shuffle")


class DataRaceError(TecompError):
    """Two threads of a kernel touch one address, at least one writing, with no barrier between."""


def _who(block: tuple, thread: tuple) -> str:
    parts = [f"{tag}={v}" for tag, v in block + thread]
    return "thread " + (", ".join(parts) if parts else "(outside thread loops)")


def _conflict(first: tuple, block: tuple, thread: tuple, epoch: int) -> bool:
    """Whether an access ``first`` = (block, thread, epoch, statement) races with one by ``block``/``thread``
    at ``epoch``: other blocks always do (no barrier orders them), threads of one block between the same barriers."""
    if block != first[0]:
        return True
    return thread != first[1] and epoch == first[2]


class ThreadSchedule:
    """The order of one run's blocks and threads, and (``races=True``) its shadow memory."""

    def __init__(self, order: str = "ascending", seed: int = 0, races: bool = False):
        if order not in ORDERS:
            raise TecompError(f"unknown thread order {order!r}; choose one of {', '.join(ORDERS)}")
        self.order = order
        self.rng = random.Random(seed)
        self.races = races
        self.epoch = 0
        self.shadow: dict[Any, list] = {}   # address -> [last write or None, {thread key: read}]

    def arrange(self, items: Iterable[Any]) -> list:
        """``items`` in this schedule's order (a fresh shuffle each call)."""
        items = list(items)
        if self.order == "descending":
            items.reverse()
        elif self.order == "shuffle":
            self.rng.shuffle(items)
        return items

    def barrier(self) -> None:
        self.epoch += 1

    def new_kernel(self) -> None:
        """A kernel starts: accesses of the previous one are ordered before all of its own."""
        self.shadow.clear()
        self.epoch += 1

    def access(self, name: str, address: Any, index: int, write: bool, block: tuple, thread: tuple,
               what: str) -> None:
        """Record one access of element ``index`` of buffer ``name``; DataRaceError on a race."""
        entry = self.shadow.get(address)
        if entry is None:
            entry = self.shadow[address] = [None, {}]
        last_write, reads = entry
        epoch = self.epoch
        if last_write is not None and _conflict(last_write, block, thread, epoch):
            self._race(name, index, last_write, "written", write, block, thread, what)
        here = (block, thread, epoch, what)
        if write:
            for r in reads.values():
                if _conflict(r, block, thread, epoch):
                    self._race(name, index, r, "read", write, block, thread, what)
            entry[0] = here
            reads.clear()
        else:
            reads[block, thread] = here

    def _race(self, name: str, index: int, first: tuple, first_kind: str, write: bool, block: tuple,
              thread: tuple, what: str) -> None:
        between = "in different blocks" if first[0] != block else "with no barrier between them"
        raise DataRaceError(
            f"data race on {name}[{index}]: {first_kind} by {_who(first[0], first[1])} in `{first[3]}` "
            f"and {'written' if write else 'read'} by {_who(block, thread)} in `{what}`, {between}")
