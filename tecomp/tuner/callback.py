"""Callbacks a tuner calls after each measured batch: ``callback(tuner, inputs, results)``.

Owns ``progress_bar`` (a tqdm bar with the best GFLOP/s so far) and
``log_to_db`` (appends every measurement to a :class:`RecordDB`). Callbacks
only observe: they must not change the tuner, the inputs or the results.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional, Sequence, Union

from .records import RecordDB


def result_gflops(inp: Any, res: Any) -> Optional[float]:
    """GFLOP/s of a valid measurement whose task knows its FLOP count; None otherwise."""
    flop = getattr(inp.task, "flop", 0) or 0
    if res.error_no != 0 or not res.costs or flop <= 0:
        return None
    return flop / (sum(res.costs) / len(res.costs)) / 1e9


class ProgressBar:
    """A tqdm bar advanced by the number of results; its postfix shows the best GFLOP/s so far."""

    def __init__(self, total: int, prefix: str = "") -> None:
        from tqdm import tqdm

        # tqdm writes carriage-return updates to a terminal; to a file or pipe it
        # would write one line per update, so it then refreshes at most every 10 s.
        stream_is_tty = sys.stderr.isatty()
        self._bar = tqdm(total=total, desc=prefix or None, unit="trial", dynamic_ncols=True,
                         mininterval=0.1 if stream_is_tty else 10.0)
        self.best_gflops = 0.0
        self.errors = 0

    def __call__(self, tuner: Any, inputs: Sequence[Any], results: Sequence[Any]) -> None:
        for inp, res in zip(inputs, results):
            if res.error_no != 0:
                self.errors += 1
            gflops = result_gflops(inp, res)
            if gflops is not None and gflops > self.best_gflops:
                self.best_gflops = gflops
        self._bar.set_postfix_str(f"best {self.best_gflops:.2f} GFLOP/s, {self.errors} errors", refresh=False)
        self._bar.update(len(results))
        if self._bar.n >= self._bar.total:
            self._bar.close()

    def close(self) -> None:
        self._bar.close()


class LogToDB:
    """Appends each batch to ``self.db``; a tuner may read ``self.db`` to skip configs measured before."""

    def __init__(self, db: Union[RecordDB, str, os.PathLike]) -> None:
        self.db = db if isinstance(db, RecordDB) else RecordDB(db)

    def __call__(self, tuner: Any, inputs: Sequence[Any], results: Sequence[Any]) -> None:
        self.db.add_many(zip(inputs, results), tuner=type(tuner).__name__)


def progress_bar(total: int, prefix: str = "") -> ProgressBar:
    """A callback showing trials done out of ``total`` and the best GFLOP/s so far."""
    return ProgressBar(total, prefix)


def log_to_db(path: Union[RecordDB, str, os.PathLike]) -> LogToDB:
    """A callback appending every (input, result) to the records database at ``path``."""
    return LogToDB(path)


# TVM's name. The file at ``path`` is tecomp's records database (SQLite), not TVM's JSON-lines
# log: ``apply_history_best(path)`` reads it back; ``tecomp records --export`` writes JSON lines.
log_to_file = log_to_db
