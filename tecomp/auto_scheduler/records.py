"""Auto-scheduler records in the tuner's SQLite database.

Owns ``RecordToFile`` (the measure callback writing each measurement), the
JSON form of a record's config (``{"index": <hash of the steps>,
"entities": {}, "steps": [...]}``: the index is a stable 63-bit hash of the
steps, so the database's per-config queries still work; the default
schedule, measured as a search's baseline, is ``{"index": 0, "entities":
{}, "default": true}``) and reading the valid records of a workload back,
best first, with the baseline (``ranked``, ``best_steps``,
``default_wins``). A record
stores its workload key (``["auto_scheduler:<name>", [args]]``) and the
transform steps (see ``steps``), never pickled objects. It must not replay
steps (``ApplyHistoryBest`` and ``SearchTask.apply_best`` do, skipping
records whose steps no longer apply).
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
from typing import Any, Iterator, NamedTuple, Optional, Sequence, Union

from ..tuner.records import CONFIRM_TUNER, RecordDB, open_db, record_from_measure
from .steps import StepError, check_steps

TUNER_NAME = "auto_scheduler"


def steps_key(steps: Sequence[Sequence]) -> str:
    """The canonical JSON text of a step list (identifies a candidate)."""
    return json.dumps([list(s) for s in steps], separators=(",", ":"))


def steps_index(steps: Sequence[Sequence]) -> int:
    return int.from_bytes(hashlib.sha1(steps_key(steps).encode()).digest()[:8], "big") >> 1


class _StepsConfig(NamedTuple):
    steps: Optional[list]  # None: the default schedule (the baseline)

    @property
    def index(self) -> int:
        return 0 if self.steps is None else steps_index(self.steps)

    def to_json_dict(self) -> dict:
        if self.steps is None:
            return {"index": 0, "entities": {}, "default": True}
        return {"index": self.index, "entities": {}, "steps": self.steps}


class _Input(NamedTuple):
    task: Any
    config: _StepsConfig


class RecordToFile:
    """Measure callback: append every measurement to the records database at ``path``."""

    def __init__(self, path: Union[str, os.PathLike]):
        self.path = str(path)
        self.db = RecordDB(self.path)

    def __call__(self, task: Any, steps: Sequence[Optional[list]], results: Sequence[Any],
                 tuner: str = TUNER_NAME) -> None:
        """Record ``results`` of the step lists (None: the default schedule); ``tuner``: who measured
        them (the search, or ``confirm`` re-timing its best)."""
        self.db.add_records(record_from_measure(_Input(task, _StepsConfig(None if s is None else list(s))), res,
                                                tuner) for s, res in zip(steps, results))

    def close(self) -> None:
        self.db.close()


def record_steps(rec: Any) -> Optional[list]:
    """The checked steps of an auto-scheduler record, None if it holds none or malformed ones."""
    steps = rec.config.get("steps") if isinstance(rec.config, dict) else None
    if steps is None:
        return None
    try:
        return check_steps(steps)
    except StepError:
        return None


def measured(db: Union[RecordDB, str, os.PathLike], workload_key: str, target: str) -> Iterator[tuple]:
    """``(steps, record)`` of every record of the workload with readable steps, in order."""
    with open_db(db) as opened:
        for rec in opened.records(workload_key, target):
            steps = record_steps(rec)
            if steps is not None:
                yield steps, rec


def ranked(db: Union[RecordDB, str, os.PathLike], workload_key: str, target: str,
           confirmed: bool = True) -> tuple[list[tuple], Optional[float]]:
    """The workload's records, read once: ``(steps, mean seconds)`` of the valid candidates, fastest
    first, and the mean seconds of the default schedule as measured at the start of a search (the
    fastest such record; None if it was not measured or failed).

    Where candidates were timed again beside the default (``auto_scheduler.confirm``), only those
    count, each at the median of its re-timings, and the default at the median of its own; with
    ``confirmed=False`` the re-timings are ignored (what the search measured)."""
    searched: tuple[list, list] = ([], [])
    again: dict[str, list] = {}
    with open_db(db) as opened:
        for rec in opened.records(workload_key, target):
            if rec.mean_cost is None:
                continue
            default = isinstance(rec.config, dict) and rec.config.get("default") is True
            steps = None if default else record_steps(rec)
            if not default and steps is None:
                continue
            if rec.tuner == CONFIRM_TUNER:
                again.setdefault("" if default else steps_key(steps), []).append((steps, rec.mean_cost))
            elif default:
                searched[1].append(rec.mean_cost)
            else:
                searched[0].append((steps, rec.mean_cost))
    if confirmed and again:
        medians = {key: (timings[0][0], statistics.median(cost for _, cost in timings))
                   for key, timings in again.items()}
        baseline = medians.pop("", (None, None))[1]
        return sorted(medians.values(), key=lambda pair: pair[1]), baseline
    return sorted(searched[0], key=lambda pair: pair[1]), min(searched[1], default=None)


def best_steps(db: Union[RecordDB, str, os.PathLike], workload_key: str, target: str) -> list[tuple]:
    """``(steps, mean seconds)`` of the valid records of the workload, fastest first."""
    return ranked(db, workload_key, target)[0]


def default_wins(found: list[tuple], baseline: Optional[float]) -> bool:
    """Whether the default schedule (``baseline`` seconds) measured at least as fast as every
    candidate in ``found`` (``ranked``'s pair)."""
    return baseline is not None and (not found or baseline <= found[0][1])
