"""Simulated annealing over a cost model: where the model-based tuner looks for its next plan.

Owns ``SimulatedAnnealingOptimizer.find_maximums``: ``n_chains`` parallel
chains walk the config space one knob change at a time, accepting a worse
point with probability ``exp(Δscore / (T * scale))`` where T falls linearly
from ``temp[0]`` to ``temp[1]`` over ``n_iter`` steps and ``scale`` is the
spread of the chains' starting scores (so the schedule does not depend on
the model's units). Every scored point that is not excluded competes for
the top ``num``; the walk stops early once the top set has not changed for
``early_stop`` steps. Chains persist between calls, so each plan continues
from where the last one ended. When no more unexcluded points exist than a
walk would score (``n_chains * n_iter``), every one of them is scored
instead: exact, and no slower.

The defaults are smaller than AutoTVM's (128 chains, 500 steps): scoring a
new point means lowering it (about 10 ms, in a feature worker process;
each step's new points are scored as one batch, spread over the workers),
and on a 46k-point space 32 chains found as good a top 64 as 64 chains
while scoring half the points (about 2500 on the first call).

Must not: know about features, models or measurement; it sees only
``score_fn(indices) -> scores`` (higher is better; ``-inf`` marks a point
that must never be proposed).
"""

from __future__ import annotations

import heapq
from typing import Callable, Optional, Sequence

import numpy as np

from .tuner import digits_to_index, index_to_digits

ScoreFn = Callable[[np.ndarray], np.ndarray]


class SimulatedAnnealingOptimizer:
    """Parallel simulated annealing over config indices of a space with knob sizes ``sizes``."""

    def __init__(self, sizes: Sequence[int], n_chains: int = 32, n_iter: int = 100,
                 temp: tuple[float, float] = (1.0, 0.0), early_stop: Optional[int] = 20,
                 persistent: bool = True, rng: Optional[np.random.Generator] = None):
        self.sizes = tuple(sizes)
        self.size = int(np.prod(self.sizes, dtype=object))
        self.n_chains = n_chains
        self.n_iter = n_iter
        self.temp = temp
        self.early_stop = early_stop
        self.persistent = persistent
        self.rng = rng if rng is not None else np.random.default_rng()
        self._points: Optional[np.ndarray] = None
        self._mutable = np.array([j for j, s in enumerate(self.sizes) if s > 1], dtype=np.int64)

    def find_maximums(self, score_fn: ScoreFn, num: int, exclude: set) -> list[int]:
        """Up to ``num`` distinct indices outside ``exclude`` with the highest scores, best first."""
        if self.size - len(exclude) <= self.n_chains * self.n_iter:
            return self._exhaustive(score_fn, num, exclude)
        points = self._start()
        scores = score_fn(points)
        finite = scores[np.isfinite(scores)]
        scale = float(finite.std()) if finite.size > 1 and finite.std() > 0 else 1.0
        best = _TopK(num, exclude)
        best.offer(points, scores)
        stale = 0
        for step in range(self.n_iter):
            t = self.temp[0] + (self.temp[1] - self.temp[0]) * step / max(self.n_iter - 1, 1)
            candidates = self._neighbours(points)
            new_scores = score_fn(candidates)
            with np.errstate(invalid="ignore", over="ignore"):
                chance = np.exp(np.minimum(new_scores - scores, 0.0) / max(t * scale, 1e-9))
            accept = (new_scores >= scores) | (self.rng.random(len(points)) < np.nan_to_num(chance))
            points = np.where(accept, candidates, points)
            scores = np.where(accept, new_scores, scores)
            stale = 0 if best.offer(candidates, new_scores) else stale + 1
            if self.early_stop is not None and stale >= self.early_stop:
                break
        if self.persistent:
            self._points = points
        return best.ranked()

    def _start(self) -> np.ndarray:
        if self._points is not None:
            return self._points
        digits = np.stack([self.rng.integers(s, size=self.n_chains) for s in self.sizes], axis=-1)
        return digits_to_index(digits, self.sizes)

    def _neighbours(self, points: np.ndarray) -> np.ndarray:
        """Each point with one knob (that has a choice) moved to another of its values."""
        if self._mutable.size == 0:
            return points.copy()
        digits = index_to_digits(points, self.sizes)
        rows = np.arange(len(points))
        knobs = self._mutable[self.rng.integers(self._mutable.size, size=len(points))]
        sizes = np.asarray(self.sizes, dtype=np.int64)[knobs]
        shift = self.rng.integers(1, sizes)  # in [1, size): never the current value
        digits[rows, knobs] = (digits[rows, knobs] + shift) % sizes
        return digits_to_index(digits, self.sizes)

    def _exhaustive(self, score_fn: ScoreFn, num: int, exclude: set) -> list[int]:
        points = np.array([i for i in range(self.size) if i not in exclude], dtype=np.int64)
        if points.size == 0:
            return []
        best = _TopK(num, exclude)
        best.offer(points, score_fn(points))
        return best.ranked()


class _TopK:
    """The ``num`` best distinct points seen, outside ``exclude`` (ties: the smaller index)."""

    def __init__(self, num: int, exclude: set):
        self.num = num
        self.exclude = exclude
        self.heap: list[tuple[float, int]] = []  # (score, -index): the worst kept at heap[0]
        self.members: set[int] = set()

    def offer(self, points: np.ndarray, scores: np.ndarray) -> bool:
        """Let scored points in; True when the kept set changed."""
        changed = False
        for index, score in zip(points.tolist(), scores.tolist()):
            if score == -np.inf or index in self.members or index in self.exclude:
                continue
            entry = (score, -index)
            if len(self.heap) < self.num:
                heapq.heappush(self.heap, entry)
            elif entry > self.heap[0]:
                self.members.discard(-heapq.heapreplace(self.heap, entry)[1])
            else:
                continue
            self.members.add(index)
            changed = True
        return changed

    def ranked(self) -> list[int]:
        """Kept indices, best first."""
        return [-neg for _, neg in sorted(self.heap, reverse=True)]
