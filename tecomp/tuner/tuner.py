"""The ``Tuner`` base class: the measure loop every search strategy shares.

Owns ``Tuner.tune``: batches of configs from the strategy's ``next_batch``
are measured (``measure_batch``), fed back through ``update`` and handed to
the callbacks, with resume, early stopping, the end-of-run error summary and
the best result so far (``best_config``, ``best_flops``,
``best_measure_pair``). Also the helpers strategies share: knob coordinates
of a config index and sampling of unmeasured indices.

Behaviour of ``tune`` worth knowing:

* ``n_trial`` counts measurements made by this call. When the strategy has
  nothing left to propose (the space is exhausted) the run stops early and
  says so in the log.
* Resume: a callback with a ``.db`` attribute (``callback.log_to_db``) is a
  records database. Configs it already holds for this task and target are
  never measured again; their results are given to ``update`` before the
  first batch (so a model-based tuner trains on them) and count for the best
  result, but not towards ``n_trial``, and callbacks do not see them again.
  With ``retry_errors`` (``tune(..., retry_errors=True)``, or inside
  ``with retrying_errors():``, which ``tecomp tune --retry-errors`` uses)
  a config whose stored records are all errors is not skipped but may be
  measured again (a timeout on a loaded machine need not be final).
  Then ``_before_first_batch(callbacks)`` runs (``XGBTuner`` uses it to learn
  from other tasks' records in the same database).
* The first config measured is the fallback config, the one a build without
  records uses (unless the database already holds it): the best record is
  then never slower than the untuned build, as far as measurements tell.
* Early stopping: after ``early_stopping`` trials of this call without a new
  best, the run stops.
* Errors: each failed measurement is counted by kind; at the end of the run a
  summary with one example message per kind is logged at WARNING level. A
  failed measurement scores 0; an exception raised by the measurement
  machinery itself propagates (after the summary of what ran before it).

The strategies (``random_tuner``, ``grid_tuner``, ``ga_tuner``,
``xgb_tuner``) implement ``next_batch``, ``update`` and ``has_next``; the
base owns the set of visited (measured or preloaded) indices, so a strategy
never needs to guard against proposing a config twice, only against wasting
proposals. This module must not build, run or time anything itself, nor
import xgboost.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections import Counter
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..error import TecompError, TuningError
from .measure import MeasureErrorNo, MeasureInput, MeasureResult, measure_batch
from .space import ConfigEntity, FallbackConfigEntity

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8
_retry_errors: contextvars.ContextVar[bool] = contextvars.ContextVar("tecomp_retry_errors", default=False)
_STRATEGIES = {"RandomTuner": "random_tuner", "GridSearchTuner": "grid_tuner", "GATuner": "ga_tuner",
               "XGBTuner": "xgb_tuner"}


class Tuner:
    """Base of the search strategies; see the module docstring for what ``tune`` does."""

    def __init__(self, task: Any, seed: Optional[int] = None):
        self.task = task
        self.space = task.config_space
        self.rng = np.random.default_rng(seed)
        self.visited: set[int] = set()
        self.best_config: Optional[ConfigEntity] = None
        self.best_flops = 0.0
        self.best_measure_pair: Optional[tuple] = None

    # ------------------------------------------------------------ the strategy's part
    def next_batch(self, batch_size: int) -> list:
        """Up to ``batch_size`` configs to measure next (an empty list: nothing left to try)."""
        raise NotImplementedError

    def update(self, inputs: Sequence[Any], results: Sequence[Any]) -> None:
        """Learn from measured (or preloaded) results; called in the order they were measured."""

    def has_next(self) -> bool:
        return len(self.visited) < len(self.space)

    # ------------------------------------------------------------ the loop
    def tune(self, n_trial: int, measure_option: Any, early_stopping: Optional[int] = None,
             callbacks: Iterable = (), retry_errors: Optional[bool] = None) -> None:
        """Measure up to ``n_trial`` new configs, in batches of the builder's ``n_parallel`` (else 8).

        ``retry_errors``: measure again configs whose stored records are all errors (None: as
        set by ``retrying_errors``, else no)."""
        callbacks = list(callbacks)
        runner = measure_option.get("runner") if isinstance(measure_option, dict) else None
        self._resume(callbacks, _retry_errors.get() if retry_errors is None else retry_errors,
                     getattr(runner, "num_threads", None))
        self._before_first_batch(callbacks)
        batch_size = measure_batch_size(measure_option)
        errors = ErrorSummary()
        trials, best_trial = 0, 0
        try:
            while trials < n_trial:
                configs = self._next_configs(min(batch_size, n_trial - trials))
                if not configs:
                    logger.info("tuning %s: the config space is exhausted after %d of %d trials (%d configs "
                                "visited in all)", self.task.name, trials, n_trial, len(self.visited))
                    break
                inputs = [MeasureInput(self.task, config) for config in configs]
                results = measure_batch(inputs, measure_option)
                for inp, res in zip(inputs, results):
                    trials += 1
                    if self._record_best(inp, res):
                        best_trial = trials
                errors.add(results)
                self.update(inputs, results)
                for callback in callbacks:
                    callback(self, inputs, results)
                if early_stopping is not None and trials - best_trial >= early_stopping:
                    logger.info("tuning %s: early stop after %d trials without improvement (%d trials)",
                                self.task.name, early_stopping, trials)
                    break
        finally:
            errors.report(self.task.name, trials)

    def _before_first_batch(self, callbacks: list) -> None:
        """Hook run once per ``tune`` after resume, before the first batch (XGBTuner: transfer)."""

    def _next_configs(self, n: int) -> list:
        """The strategy's next configs minus visited ones and repeats; marks them visited. The
        fallback config (what a build without records uses) comes first until it was measured."""
        out: list = []
        if not self.has_next():
            return out
        fallback = FallbackConfigEntity(self.space).index
        if fallback not in self.visited:
            self.visited.add(fallback)
            out.append(self.space.get(fallback))
            n -= 1
        for config in self.next_batch(n) if n > 0 else []:
            if config.index not in self.visited:
                self.visited.add(config.index)
                out.append(config)
        return out

    def _record_best(self, inp: Any, res: Any) -> bool:
        flops = throughput(self.task, res)
        if flops <= self.best_flops:
            return False
        self.best_flops, self.best_config, self.best_measure_pair = flops, inp.config, (inp, res)
        return True

    def _resume(self, callbacks: list, retry_errors: bool, num_threads: Optional[int]) -> None:
        """Take in the stored records of this task timed with the runner's thread count (or not saying)."""
        for db in (cb.db for cb in callbacks if hasattr(cb, "db")):
            pairs = self._stored_pairs(db, num_threads)
            if retry_errors:
                pairs = [(inp, res) for inp, res in pairs if res.error_no == 0]
            if not pairs:
                continue
            logger.info("tuning %s: resuming with %d configs already measured in %s",
                        self.task.name, len(pairs), db)
            inputs, results = [p[0] for p in pairs], [p[1] for p in pairs]
            for inp, res in pairs:
                self.visited.add(inp.config.index)
                self._record_best(inp, res)
            self.update(inputs, results)

    def _stored_pairs(self, db: Any, num_threads: Optional[int] = None) -> list:
        """One (input, result) per config of this task in ``db`` not yet visited; valid results win."""
        chosen: dict[int, tuple] = {}
        for rec in db.records(self.task.key, str(self.task.target), num_threads):
            try:
                config = ConfigEntity.from_json_dict(self.space, rec.config)
            except TecompError as err:
                logger.warning("tuning %s: skipping a stored record that does not fit the space: %s",
                               self.task.name, err)
                continue
            if config.index in self.visited:
                continue
            res = MeasureResult(tuple(rec.costs), rec.error_no, rec.error_msg, rec.all_cost, rec.timestamp,
                                rec.num_threads)
            old = chosen.get(config.index)
            if old is None or throughput(self.task, res) > throughput(self.task, old[1]):
                chosen[config.index] = (MeasureInput(self.task, config), res)
        return list(chosen.values())


@contextlib.contextmanager
def retrying_errors(enabled: bool = True) -> Iterator[None]:
    """Within the block, ``tune`` calls that do not say otherwise measure again the configs whose
    stored records are all errors (``tecomp tune --retry-errors``)."""
    token = _retry_errors.set(enabled)
    try:
        yield
    finally:
        _retry_errors.reset(token)


def throughput(task: Any, result: Any) -> float:
    """FLOP/s of a valid measurement (calls/s when the task has no FLOP count); 0 for a failure."""
    if result.error_no != 0 or not result.costs:
        return 0.0
    mean = sum(result.costs) / len(result.costs)
    return (task.flop or 1.0) / mean if mean > 0 else 0.0


def measure_batch_size(measure_option: Any) -> int:
    """Configs measured per batch: the builder's ``n_parallel``, else ``DEFAULT_BATCH_SIZE``."""
    builder = measure_option.get("builder") if isinstance(measure_option, dict) else None
    return getattr(builder, "n_parallel", None) or DEFAULT_BATCH_SIZE


class ErrorSummary:
    """Failed measurements of one run: a count and a first example message per error kind."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.examples: dict[int, str] = {}

    def add(self, results: Iterable[Any]) -> None:
        for res in results:
            if res.error_no != 0:
                self.counts[res.error_no] += 1
                self.examples.setdefault(res.error_no, str(res.error_msg))

    def report(self, task_name: str, trials: int) -> None:
        if not self.counts:
            return
        lines = [f"  {_error_name(e)}: {n} (e.g. {_first_line(self.examples[e])})"
                 for e, n in sorted(self.counts.items())]
        logger.warning("tuning %s: %d of %d trials failed\n%s", task_name, sum(self.counts.values()),
                       trials, "\n".join(lines))


def _error_name(error_no: int) -> str:
    try:
        return MeasureErrorNo(error_no).name
    except ValueError:
        return f"error {error_no}"


def _first_line(message: str, limit: int = 300) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "no message"
    return line if len(line) <= limit else line[:limit] + "..."


# ------------------------------------------------------------------ knob coordinates

def knob_sizes(space: Any) -> tuple[int, ...]:
    """The number of values of each knob, in definition order (the digits of an index)."""
    return tuple(len(knob) for knob in space.knobs.values())


def index_to_digits(indices: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """Per-knob value positions of config indices; the first knob is the least significant digit."""
    indices = np.asarray(indices, dtype=np.int64)
    digits = np.empty(indices.shape + (len(sizes),), dtype=np.int64)
    for j, size in enumerate(sizes):
        indices, digits[..., j] = np.divmod(indices, size)
    return digits


def digits_to_index(digits: np.ndarray, sizes: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`index_to_digits`."""
    strides = np.cumprod((1,) + tuple(sizes[:-1]), dtype=np.int64)
    return np.asarray(digits, dtype=np.int64) @ strides


def sample_unvisited(rng: np.random.Generator, size: int, exclude: set, k: int) -> list[int]:
    """Up to ``k`` distinct indices in ``[0, size)`` outside ``exclude``, uniformly at random."""
    remaining = size - len(exclude)
    k = min(k, remaining)
    if k <= 0:
        return []
    if remaining < 4 * k:  # nearly exhausted (so small): draw from the explicit rest
        rest = np.setdiff1d(np.arange(size, dtype=np.int64), np.fromiter(exclude, np.int64, len(exclude)))
        return [int(i) for i in rng.choice(rest, size=k, replace=False)]
    picked: dict[int, None] = {}
    while len(picked) < k:
        i = int(rng.integers(size))
        if i not in exclude:
            picked[i] = None
    return list(picked)


def check_space_size(space: Any, who: str) -> None:
    """Strategies keep indices in int64 arrays; refuse spaces they cannot index."""
    if len(space) >= 2 ** 62:
        raise TuningError(f"{who}: the config space has {len(space)} points, too many to index "
                          f"(at most 2**62); narrow its knobs")


def __getattr__(name: str) -> Any:
    # ``autotvm.tuner.XGBTuner`` (api.md): this module also names the strategies, imported
    # on first use because they import it.
    module = _STRATEGIES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__package__}.{module}"), name)
