"""``GATuner``: a genetic algorithm over knob positions.

Owns the population: a generation of ``pop_size`` configs is measured, then
the next one is bred from it plus the ``elite_num`` best configs seen so far:
parents are drawn with probability proportional to throughput, a child takes
the first knobs of one parent and the rest of the other (one-point
crossover), and each knob mutates to a random value with probability
``mutation_prob``. A child already measured is mutated again (a few times),
then replaced by a random unmeasured config. The first generation is random.
Seeded. The measure loop is the base ``Tuner``'s.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .tuner import (Tuner, check_space_size, digits_to_index, index_to_digits, knob_sizes,
                    sample_unvisited, throughput)

_RETRIES = 8


class GATuner(Tuner):
    """Genetic search: selection by throughput, one-point crossover, per-knob mutation."""

    def __init__(self, task: Any, pop_size: int = 100, elite_num: int = 3, mutation_prob: float = 0.1,
                 seed: Optional[int] = None):
        super().__init__(task, seed)
        check_space_size(self.space, "GATuner")
        self.sizes = knob_sizes(self.space)
        self.pop_size = max(1, min(pop_size, len(self.space)))
        self.elite_num = max(0, min(elite_num, self.pop_size))
        self.mutation_prob = mutation_prob
        self._queue: list[int] = []                  # this generation, not yet handed out
        self._generation: dict[int, float] = {}      # this generation's measured configs
        self._scores: dict[int, float] = {}          # every measured config

    def next_batch(self, batch_size: int) -> list:
        picks: list[int] = []
        while len(picks) < batch_size:
            if not self._queue:
                self._queue = self._next_generation(set(picks))
                if not self._queue:
                    break
            index = self._queue.pop(0)
            if index not in self.visited and index not in picks:
                picks.append(index)
        return [self.space.get(i) for i in picks]

    def update(self, inputs: Sequence[Any], results: Sequence[Any]) -> None:
        for inp, res in zip(inputs, results):
            score = throughput(self.task, res)
            self._generation[inp.config.index] = score
            self._scores[inp.config.index] = score

    def _next_generation(self, taken: set) -> list[int]:
        exclude = self.visited | taken
        if not self._generation:
            return sample_unvisited(self.rng, len(self.space), exclude, self.pop_size)
        parents, weights = self._parents()
        self._generation = {}
        children: list[int] = []
        for _ in range(self.pop_size):
            child = self._child(parents, weights, exclude)
            if child is None:
                break
            children.append(child)
            exclude.add(child)
        return children

    def _parents(self) -> tuple[np.ndarray, np.ndarray]:
        elites = sorted(self._scores, key=lambda i: (-self._scores[i], i))[:self.elite_num]
        pool = list(dict.fromkeys(list(self._generation) + elites))
        scores = np.array([self._scores[i] for i in pool], dtype=np.float64)
        total = scores.sum()
        weights = scores / total if total > 0 else np.full(len(pool), 1.0 / len(pool))
        return index_to_digits(np.array(pool), self.sizes), weights

    def _child(self, parents: np.ndarray, weights: np.ndarray, exclude: set) -> Optional[int]:
        first, second = self.rng.choice(len(parents), size=2, p=weights)
        point = int(self.rng.integers(1, len(self.sizes))) if len(self.sizes) > 1 else 1
        genes = np.concatenate([parents[first][:point], parents[second][point:]])
        for _ in range(_RETRIES):
            genes = self._mutate(genes)
            index = int(digits_to_index(genes, self.sizes))
            if index not in exclude:
                return index
        fallback = sample_unvisited(self.rng, len(self.space), exclude, 1)
        return fallback[0] if fallback else None

    def _mutate(self, genes: np.ndarray) -> np.ndarray:
        genes = genes.copy()
        for j, size in enumerate(self.sizes):
            if size > 1 and self.rng.random() < self.mutation_prob:
                genes[j] = self.rng.integers(size)
        return genes
