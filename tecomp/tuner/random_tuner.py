"""``RandomTuner``: configs drawn uniformly at random, without replacement.

Owns only the order of proposals; the measure loop, resume and bookkeeping
are the base ``Tuner``'s. Seeded: the same seed proposes the same configs.
"""

from __future__ import annotations

from .tuner import Tuner, sample_unvisited


class RandomTuner(Tuner):
    """Uniformly random unmeasured configs; never the same config twice."""

    def next_batch(self, batch_size: int) -> list:
        picks = sample_unvisited(self.rng, len(self.space), self.visited, batch_size)
        return [self.space.get(i) for i in picks]
