"""``GridSearchTuner``: every config in index order.

Owns only the order of proposals (index 0, 1, 2, ..., skipping configs
already measured, e.g. on resume); the measure loop is the base ``Tuner``'s.
"""

from __future__ import annotations

from typing import Any, Optional

from .tuner import Tuner


class GridSearchTuner(Tuner):
    """Configs in index order (the first knob varies fastest)."""

    def __init__(self, task: Any, seed: Optional[int] = None):
        super().__init__(task, seed)  # the order is fixed; seed is accepted like every tuner's
        self._cursor = 0

    def has_next(self) -> bool:
        return self._cursor < len(self.space) and super().has_next()

    def next_batch(self, batch_size: int) -> list:
        picks: list = []
        while len(picks) < batch_size and self._cursor < len(self.space):
            if self._cursor not in self.visited:
                picks.append(self.space.get(self._cursor))
            self._cursor += 1
        return picks
