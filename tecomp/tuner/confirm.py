"""Re-timing a task's fastest configs beside its default before a build trusts them.

A search keeps the fastest of many noisy measurements, so the winner is also the
config whose single measurement was luckiest (the winner's curse): on a shared
machine a config measured 30% faster than the default ran slower inside the model.
``confirm_best`` builds the few fastest distinct configs and the fallback config
once, times them in several interleaved rounds (every config once per round,
rotating the order) and appends those timings as records from the ``confirm``
tuner. ``RecordDB.best`` then chooses among the confirmed configs by the median of
their confirming timings only, so an unconfirmed lucky record no longer wins.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

from ..error import TuningError
from .measure import MeasureInput
from .records import CONFIRM_TUNER, preferring_threads
from .space import ConfigEntity, FallbackConfigEntity

DEFAULT_CANDIDATES = 2
DEFAULT_ROUNDS = 3


def confirm_best(task: Any, db: Any, measure_option: dict, candidates: int = DEFAULT_CANDIDATES,
                 rounds: int = DEFAULT_ROUNDS, num_threads: Optional[int] = None) -> list[ConfigEntity]:
    """Time ``task``'s ``candidates`` fastest recorded configs and its fallback config in
    ``rounds`` interleaved rounds, appending each timing to ``db`` (a ``RecordDB``) as a record
    of the ``confirm`` tuner; returns the configs timed (none when the task has no record
    faster than its fallback config, so there is nothing to confirm).

    ``num_threads``: prefer records timed with that many threads, as ``RecordDB.best`` does."""
    check_counts(candidates, rounds)
    configs = _contenders(task, db, candidates, num_threads)
    if len(configs) < 2:
        return []
    inputs = [MeasureInput(task, config) for config in configs]
    for timed in time_in_rounds(inputs, measure_option, rounds):
        db.add_many([(inputs[i], res) for i, res in timed], CONFIRM_TUNER)
    return configs


def check_counts(candidates: Any, rounds: Any) -> None:
    """TuningError unless ``candidates`` and ``rounds`` are positive ints."""
    if not isinstance(candidates, int) or candidates < 1 or not isinstance(rounds, int) or rounds < 1:
        raise TuningError(f"confirm_best: candidates and rounds must be positive ints, got {candidates!r}, "
                          f"{rounds!r}")


def time_in_rounds(inputs: Sequence[Any], measure_option: dict, rounds: int) -> Iterator[list[tuple[int, Any]]]:
    """Build ``inputs`` once, then per round time each once, starting one later each round (so no
    input is always first after a build or always last); yields ``(input position, result)`` pairs."""
    built = measure_option["builder"].build(list(inputs))
    for round_no in range(rounds):
        shift = round_no % len(inputs)
        order = list(range(shift, len(inputs))) + list(range(shift))
        results = measure_option["runner"].run([inputs[i] for i in order], [built[i] for i in order])
        yield list(zip(order, results))


def _contenders(task: Any, db: Any, candidates: int, num_threads: Optional[int]) -> list[ConfigEntity]:
    """The fallback config first, then the fastest distinct recorded configs faster than it."""
    target = str(task.target)
    valid = [r for r in db.records(task.key, target) if r.mean_cost is not None and r.tuner != CONFIRM_TUNER]
    pool = preferring_threads(valid, num_threads)
    fallback = FallbackConfigEntity(task.config_space)
    fallback_costs = [r.mean_cost for r in pool if r.config_index == fallback.index]
    chosen: list[ConfigEntity] = [fallback]
    for rec in sorted(pool, key=lambda r: r.mean_cost):
        if len(chosen) > candidates or (fallback_costs and rec.mean_cost >= min(fallback_costs)):
            break
        if all(rec.config_index != c.index for c in chosen):
            try:
                chosen.append(ConfigEntity.from_json_dict(task.config_space, rec.config))
            except TuningError:
                continue  # a record of an older config space: nothing to confirm
    return chosen
