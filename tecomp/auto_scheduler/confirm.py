"""Re-timing an auto-scheduler task's fastest candidates beside its default schedule.

The auto-scheduler's counterpart of ``tuner.confirm`` (see there for why): the
default schedule and the fastest candidates the search recorded faster than it
are timed again in interleaved rounds, each timing recorded by the ``confirm``
tuner; ``records.ranked`` then ranks only those, by their median re-timing.
"""

from __future__ import annotations

from typing import Any, Optional

from ..tuner.confirm import DEFAULT_CANDIDATES, DEFAULT_ROUNDS, check_counts, time_in_rounds
from ..tuner.records import CONFIRM_TUNER
from .measure import CandidateBatch
from .records import RecordToFile, ranked


def confirm_best(task: Any, log: RecordToFile, measure_option: dict, candidates: int = DEFAULT_CANDIDATES,
                 rounds: int = DEFAULT_ROUNDS) -> list[Optional[list]]:
    """Time ``task``'s default schedule and its ``candidates`` fastest recorded step lists faster
    than it in ``rounds`` interleaved rounds, recording each timing through ``log``; returns what
    was timed (None: the default), or [] when no candidate beat the default."""
    check_counts(candidates, rounds)
    found, baseline = ranked(log.db, task.workload_key, str(task.target), confirmed=False)
    faster = [steps for steps, cost in found if baseline is None or cost < baseline][:candidates]
    if not faster or task.compute_dag is None:
        return []
    contenders: list[Optional[list]] = [None] + faster
    inputs = CandidateBatch(task, contenders).inputs()
    for timed in time_in_rounds(inputs, measure_option, rounds):
        log(task, [contenders[i] for i, _ in timed], [res for _, res in timed], CONFIRM_TUNER)
    return contenders
