"""``XGBTuner``: model-based search, AutoTVM's ModelBasedTuner with an XGBoost cost model.

Owns the plan loop. The first ``plan_size`` trials are random, unless
``load_history`` gave the model other tasks' data, in which case the first
plan comes from the model. After every ``plan_size`` measured trials
(preloaded ones included) the model is retrained on everything measured and
the optimizer (simulated annealing by default) proposes the next plan: the
configs the model scores highest, not yet measured. Batches are drawn from
the plan in order, except that each slot is, with probability ``eps_greedy``
(5%), a random unmeasured config instead, so a wrong model cannot starve
exploration.

``diversity_filter_ratio`` (e.g. 2): the optimizer proposes
``ratio * plan_size`` candidates and a greedy pick keeps ``plan_size`` of
them, trading model rank against knob values not yet covered by the picks
(so a plan is not ``plan_size`` near-copies of one config).

Features (``feature_type``): "itervar" (default) instantiates and lowers each
config and takes ``features.extract_features`` of the PrimFunc, cached per
config; "knob" uses the knob positions themselves (cheap, but tied to this
space). ``feature_fn(config) -> 1-D array`` overrides both: a hook for
synthetic spaces in tests, or for a template whose configs are cheaper to
describe another way (it runs in this process).

Itervar features never run a template in this process: configs are sent in
chunks to worker processes (``measure.FeaturePool``, as many as the
builder's ``n_parallel``, with its ``timeout`` per config and its
``memory_limit``), started when features are first needed and stopped when
``tune`` returns. A config whose features fail, crash its worker, exhaust
its memory or time out is invalid: the model never scores it and it is
never proposed again, not even by random exploration.

Transfer from the records database: when ``tune`` runs with a
``log_to_db`` callback and the model has not yet been trained on this task's
own records, the valid records (error_no 0) of *other* tasks with the same
target whose template is registered in this process (at most the
``MAX_TRANSFER_RECORDS`` most recent) are re-lowered, featurized and given
to ``load_history`` before the first batch, so the first plan comes from
the model (``transfer.py`` makes the pairs, as for the auto-scheduler).
Throughputs are normalized per source task by its best (the rank loss only
needs the order within a task); the foreign tasks are recreated and
featurized in the feature workers. Only for ``feature_type="itervar"``
without a ``feature_fn`` (knob features do not transfer across spaces).
Unknown templates, configs that no longer fit their space and records that
fail to lower are skipped and counted (``transfer_skipped``), never raised;
``transferred`` / ``transferred_tasks`` say what was used.

Must not: import xgboost (``cost_model.py`` does), measure anything itself, or
instantiate a template in its own process.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from .. import config as _config
from ..error import TuningError
from .cost_model import XGBoostCostModel
from .features import FEATURE_VERSION
from .measure import FeaturePool, task_spec
from .sa_optimizer import SimulatedAnnealingOptimizer
from .transfer import newest_template_records, template_pairs
from .tuner import (Tuner, check_space_size, index_to_digits, knob_sizes, sample_unvisited,
                    throughput)

logger = logging.getLogger(__name__)

FeatureFn = Callable[[Any], np.ndarray]
FEATURE_TYPES = ("itervar", "knob")
MAX_TRANSFER_RECORDS = 500


class XGBTuner(Tuner):
    """Tune with an XGBoost cost model and simulated annealing over it."""

    def __init__(self, task: Any, plan_size: int = 64, feature_type: str = "itervar",
                 loss_type: str = "rank", num_threads: Optional[int] = None, optimizer: Any = "sa",
                 diversity_filter_ratio: Optional[float] = None, seed: Optional[int] = None,
                 feature_fn: Optional[FeatureFn] = None, eps_greedy: float = 0.05):
        super().__init__(task, seed)
        check_space_size(self.space, "XGBTuner")
        if feature_fn is None and feature_type not in FEATURE_TYPES:
            raise TuningError(f"XGBTuner: unknown feature_type {feature_type!r}; expected one of "
                                 f"{', '.join(FEATURE_TYPES)} or a feature_fn")
        self.sizes = knob_sizes(self.space)
        self.plan_size = plan_size
        self.eps_greedy = eps_greedy
        self.diversity_filter_ratio = diversity_filter_ratio
        self._transfer_ok = feature_fn is None and feature_type == "itervar"
        self.transferred = 0        # foreign records the model was trained on before the first batch
        self.transferred_tasks = 0  # how many other tasks they came from
        self.transfer_skipped = 0   # foreign records skipped (unknown template, stale config, failure)
        # None: itervar features, computed in worker processes (see the module docstring)
        self.feature_fn = feature_fn or (None if feature_type == "itervar" else self._knob_features)
        self.model = XGBoostCostModel(task, loss_type, num_threads, FEATURE_VERSION, seed=seed)
        self.optimizer = (SimulatedAnnealingOptimizer(self.sizes, rng=self.rng) if optimizer == "sa"
                          else optimizer)
        self._xs: list[int] = []
        self._ys: list[float] = []
        self._plan: list[int] = []
        self._trained_at = 0  # trials the model last saw
        self._features: dict[int, Optional[np.ndarray]] = {}
        self._invalid: set[int] = set()  # configs without features: never proposed
        self._feature_failures = 0
        self._feature_pool: Optional[FeaturePool] = None
        self._feature_options: dict = {}  # FeaturePool's settings, from the builder of ``tune``

    # ------------------------------------------------------------ Tuner interface
    def tune(self, n_trial: int, measure_option: Any, early_stopping: Optional[int] = None,
             callbacks: Iterable = (), retry_errors: Optional[bool] = None) -> None:
        """``Tuner.tune``; feature workers take the builder's parallelism, timeout and memory limit."""
        builder = measure_option.get("builder") if isinstance(measure_option, dict) else None
        self._feature_options = {"n_parallel": getattr(builder, "n_parallel", None) or _config.available_cores(),
                                 "timeout": getattr(builder, "timeout", None) or 10,
                                 "memory_limit": getattr(builder, "memory_limit", None)}
        try:
            super().tune(n_trial, measure_option, early_stopping, callbacks, retry_errors)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the feature worker processes (they start again when features are needed)."""
        if self._feature_pool is not None:
            self._feature_pool.close()
            self._feature_pool = None

    def has_next(self) -> bool:
        return len(self.visited | self._invalid) < len(self.space)

    def next_batch(self, batch_size: int) -> list:
        picks: list[int] = []
        while len(picks) < batch_size:
            index = self._from_plan(picks) if self.rng.random() >= self.eps_greedy else None
            if index is None:
                random_pick = sample_unvisited(self.rng, len(self.space),
                                               self.visited | self._invalid | set(picks), 1)
                if not random_pick:
                    break
                index = random_pick[0]
            picks.append(index)
        return [self.space.get(i) for i in picks]

    def update(self, inputs: Sequence[Any], results: Sequence[Any]) -> None:
        for inp, res in zip(inputs, results):
            self._xs.append(inp.config.index)
            self._ys.append(throughput(self.task, res))
        if len(self._xs) >= self._trained_at + self.plan_size:
            self._retrain()

    def load_history(self, pairs: Iterable[tuple]) -> int:
        """Transfer learning: train on (features, throughput) pairs of other tasks, then plan.

        The features must come from the same ``feature_fn`` / feature type as
        this tuner's. Returns the number of pairs used.
        """
        used = self.model.fit_log(pairs)
        if used:
            self._plan = self._propose()
        return used

    # ------------------------------------------------------------ transfer from the records db
    def _before_first_batch(self, callbacks: list) -> None:
        if not self._transfer_ok or self.model.trained:
            return  # knob features do not transfer; a model trained on this task's records wins
        dbs = [cb.db for cb in callbacks if hasattr(cb, "db")]
        if not dbs:
            return
        try:
            pairs, n_tasks, skipped = self._foreign_pairs(dbs)
            used = self.load_history(pairs) if pairs else 0
        except Exception as err:  # noqa: BLE001 - transfer is an optimization, never a failure
            logger.warning("XGBTuner %s: transfer learning from the records database failed (%s: %s); "
                           "starting without it", self.task.name, type(err).__name__, err)
            return
        self.transferred, self.transferred_tasks, self.transfer_skipped = used, n_tasks, skipped
        if used or skipped:
            logger.info("XGBTuner %s: transfer learning used %d records from %d other task(s) "
                        "(%d skipped)", self.task.name, used, n_tasks if used else 0, skipped)

    def _foreign_pairs(self, dbs: list) -> tuple[list, int, int]:
        """(features, normalized throughput) of other tasks' valid records; (pairs, tasks, skipped)."""
        target = str(self.task.target)
        records, skipped = newest_template_records((rec for db in dbs for rec in db.records(target=target)),
                                                   MAX_TRANSFER_RECORDS, exclude_key=self.task.key)
        pairs, n_tasks, failed = template_pairs(self._pool(), records, self.task.target)
        return pairs, n_tasks, skipped + failed

    # ------------------------------------------------------------ planning
    def _from_plan(self, taken: list[int]) -> Optional[int]:
        while self._plan:
            index = self._plan.pop(0)
            if index not in self.visited and index not in self._invalid and index not in taken:
                return index
        return None

    def _retrain(self) -> None:
        self._trained_at = len(self._xs)
        if max(self._ys) <= 0:
            return  # nothing valid to learn from yet: stay random
        rows = self._feature_rows(np.array(self._xs, dtype=np.int64))
        valid = [i for i, row in enumerate(rows) if row is not None]
        if not valid:
            return
        self.model.fit(np.stack([rows[i] for i in valid]), np.array([self._ys[i] for i in valid]))
        self._plan = self._propose()

    def _propose(self) -> list[int]:
        ratio = self.diversity_filter_ratio
        n_candidates = int(self.plan_size * ratio) if ratio else self.plan_size
        candidates = self.optimizer.find_maximums(self._score, n_candidates, self.visited | self._invalid)
        if ratio:
            return diverse_pick(candidates, self.sizes, self.plan_size)
        return candidates

    def _score(self, indices: np.ndarray) -> np.ndarray:
        rows = self._feature_rows(indices)
        scores = np.full(len(rows), -np.inf)
        valid = [i for i, row in enumerate(rows) if row is not None]
        if valid:
            scores[valid] = self.model.predict(np.stack([rows[i] for i in valid]))
        return scores

    # ------------------------------------------------------------ features
    def _feature_rows(self, indices: np.ndarray) -> list:
        """Each index's features, None for an invalid config; computes the missing ones."""
        indices = indices.tolist()
        missing = [i for i in dict.fromkeys(indices) if i not in self._features]
        if missing:
            for index, (row, why) in zip(missing, self._compute_features(missing)):
                self._features[index] = row
                if row is None:
                    self._invalid.add(index)
                    self._feature_failures += 1
                    if self._feature_failures == 1:
                        logger.warning("XGBTuner %s: no features for config %d (%s); configs without "
                                       "features are never proposed", self.task.name, index, why)
        return [self._features[i] for i in indices]

    def _compute_features(self, indices: list[int]) -> list[tuple[Optional[np.ndarray], str]]:
        """``(features, "")`` or ``(None, why not)`` per config index."""
        if self.feature_fn is None:
            configs = [self.space.get(i).to_json_dict() for i in indices]
            return self._pool().features(task_spec(self.task), configs)
        answers = []
        for index in indices:
            try:
                answers.append((np.asarray(self.feature_fn(self.space.get(index)), dtype=np.float32), ""))
            except Exception as err:  # noqa: BLE001 - a feature hook may fail on some configs in any way
                answers.append((None, f"{type(err).__name__}: {err}"))
        return answers

    def _pool(self) -> FeaturePool:
        if self._feature_pool is None:
            self._feature_pool = FeaturePool(**self._feature_options)
        return self._feature_pool

    def _knob_features(self, config: Any) -> np.ndarray:
        return index_to_digits(np.array(config.index), self.sizes).astype(np.float32)


def diverse_pick(candidates: Sequence[int], sizes: Sequence[int], n_pick: int,
                 knob_weight: float = 1.0) -> list[int]:
    """Greedily pick ``n_pick`` of ``candidates`` (best first), trading rank for new knob values.

    Each step takes the candidate maximizing ``rank score + knob_weight *
    (share of its knobs whose value no earlier pick has)``, where the rank
    score falls linearly from 1 (best candidate) to 0.
    """
    candidates = list(candidates)
    if len(candidates) <= n_pick:
        return candidates
    digits = index_to_digits(np.array(candidates, dtype=np.int64), sizes)
    rank_score = 1.0 - np.arange(len(candidates)) / len(candidates)
    covered = [set() for _ in sizes]
    left = list(range(len(candidates)))
    picks = []
    for _ in range(n_pick):
        gains = [rank_score[c] + knob_weight * np.mean([d not in covered[j] for j, d in enumerate(digits[c])])
                 for c in left]
        best = left.pop(int(np.argmax(gains)))
        picks.append(candidates[best])
        for j, d in enumerate(digits[best]):
            covered[j].add(d)
    return picks
