"""Which config a template uses when called: the dispatch-context stack.

Owns ``DispatchContext`` (a per-thread stack of contexts entered with
``with``; a context with no answer for a workload defers to the one beneath
it), ``apply_history_best`` (the fastest valid record per workload and
target) and the fallback: a ``FallbackConfigEntity`` plus a one-line notice,
logged once per workload and target per process (``recorded`` asks the contexts
without falling back, for callers that only probe). It must not create or run
templates (``task.py`` hands it a ``Task``), measure, or write records.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from typing import Any, Iterable, Iterator, Optional, Union

from ..context_stack import ThreadLocalStack
from ..error import TuningError
from .space import ConfigEntity, FallbackConfigEntity

logger = logging.getLogger("tecomp.tuner")

_contexts = ThreadLocalStack()
_noticed: set = set()
_noticed_lock = threading.Lock()


class DispatchContext:
    """Base of the dispatch contexts; subclasses implement ``lookup``."""

    def lookup(self, task: Any) -> Optional[ConfigEntity]:
        """This context's config for ``task`` (a ``Task``), or None to defer to the outer context."""
        raise NotImplementedError

    def __enter__(self) -> "DispatchContext":
        _contexts.items.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _contexts.items.pop()

    @staticmethod
    def current() -> Optional["DispatchContext"]:
        """The innermost context entered in this thread, or None."""
        stack = _contexts.items
        return stack[-1] if stack else None


def query(task: Any) -> ConfigEntity:
    """The config for ``task``: from the innermost context that has one, else the fallback."""
    config = recorded(task)
    return config if config is not None else fallback(task)


def recorded(task: Any, beneath: Optional[DispatchContext] = None) -> Optional[ConfigEntity]:
    """The config of the innermost context (of those beneath ``beneath``, if given) that has one
    for ``task``; None where only the fallback would answer (no notice is logged)."""
    contexts = list(_contexts.items)
    if beneath is not None:
        contexts = contexts[:contexts.index(beneath)]
    for context in reversed(contexts):
        config = context.lookup(task)
        if config is not None:
            return config
    return None


def fallback(task: Any) -> FallbackConfigEntity:
    """The heuristic config for ``task``; logs a notice the first time per workload and target."""
    notice = (task.key, str(task.target))
    with _noticed_lock:
        first = notice not in _noticed
        _noticed.add(notice)
    if first:
        logger.warning("tecomp.tuner: no tuning record for %s on %s; using a fallback config", *notice)
    return FallbackConfigEntity(task.config_space)


# ---------------------------------------------------------------- history

class ApplyHistoryBest(DispatchContext):
    """Apply the fastest valid measured config of each workload (see ``apply_history_best``)."""

    def __init__(self, records: Any):
        self._source = _source_of(records)
        self._chosen: dict = {}

    def lookup(self, task: Any) -> Optional[ConfigEntity]:
        where = (task.key, str(task.target))
        if where not in self._chosen:
            self._chosen[where] = _first_fitting(task, self._source.configs(*where))
        return self._chosen[where]


def apply_history_best(records: Union[str, os.PathLike, Any, Iterable]) -> ApplyHistoryBest:
    """A dispatch context applying the best records of a database path, a ``RecordDB``,
    or a list of ``(MeasureInput, MeasureResult)`` pairs (or ``Record``s)."""
    return ApplyHistoryBest(records)


def _first_fitting(task: Any, configs: Iterator[dict]) -> Optional[ConfigEntity]:
    for config in configs:
        try:
            return ConfigEntity.from_json_dict(task.config_space, config)
        except TuningError as err:
            logger.warning("tecomp.tuner: skipping a record for %s on %s that does not fit the "
                           "current config space: %s", task.key, task.target, err)
    return None


def _source_of(records: Any) -> Any:
    if isinstance(records, (str, os.PathLike)):
        return _DBSource(_open_db(records))
    if hasattr(records, "best") and hasattr(records, "records"):
        return _DBSource(records)
    if isinstance(records, (list, tuple)):
        return _ListSource(records)
    raise TuningError("apply_history_best expects a records database path, a RecordDB or a list of "
                      f"(MeasureInput, MeasureResult) pairs, got {type(records).__name__}")


def _open_db(path: Union[str, os.PathLike]) -> Any:
    if not os.path.exists(path):
        raise TuningError(f"apply_history_best: no records database at {os.fspath(path)!r}")
    try:
        from .records import RecordDB
    except ImportError as err:
        raise TuningError(f"apply_history_best({os.fspath(path)!r}) needs tecomp.tuner.records: {err}") from err
    return RecordDB(path)


def _mean_cost(costs: Any) -> float:
    return sum(costs) / len(costs) if costs else math.inf


class _DBSource:
    """Configs of a ``RecordDB``: its best record (preferring CPU records timed with the thread
    count the code will run with), then (if that no longer fits) the others, fastest first."""

    def __init__(self, db: Any):
        self.db = db

    def configs(self, key: str, target: str) -> Iterator[dict]:
        from ..runtime.threads import wanted_num_threads

        threads = wanted_num_threads() if target.split()[0] == "llvm" else None
        best = self.db.best(key, target, threads)
        if best is None:
            return
        yield best.config
        valid = [r for r in self.db.records(key, target) if r.error_no == 0 and r.config != best.config]
        yield from (r.config for r in sorted(valid, key=lambda r: _mean_cost(r.costs)))


class _ListSource:
    """Configs of in-memory records, grouped by workload and target, fastest valid first."""

    def __init__(self, records: Iterable):
        grouped: dict = {}
        for item in records:
            where, config, cost, ok = _unpack(item)
            if ok:
                grouped.setdefault(where, []).append((cost, config))
        self._configs = {w: [c for _, c in sorted(v, key=lambda p: p[0])] for w, v in grouped.items()}

    def configs(self, key: str, target: str) -> Iterator[dict]:
        return iter(self._configs.get((key, target), []))


def _unpack(item: Any) -> tuple:
    """((task key, target), config dict, mean cost, valid?) of a record or an (input, result) pair."""
    if hasattr(item, "task_key"):
        where, config, result = (item.task_key, str(item.target)), item.config, item
    elif isinstance(item, (tuple, list)) and len(item) == 2 and hasattr(item[0], "task"):
        inp, result = item
        where, config = (inp.task.key, str(inp.task.target)), inp.config
    else:
        raise TuningError(f"apply_history_best: {item!r} is neither a Record nor a (MeasureInput, "
                          "MeasureResult) pair")
    if isinstance(config, ConfigEntity):
        config = config.to_json_dict()
    return where, config, _mean_cost(result.costs), result.error_no == 0
