"""``SketchPolicy``: evolutionary search over sketches, ranked by the XGBoost cost model.

Owns the search loop of one task. Each round (one measured batch):

1. a population of candidates: fresh samples over every sketch plus
   mutations of the best measured ones;
2. if the cost model is trained, ``generations`` rounds of evolution: the
   population is scored on its loop-IR features (``tuner.features``,
   computed in the tuner's feature worker processes), the better half are
   parents, children are mutations (a tile size, an annotation, a compute
   location resampled) or crossovers (per-stage parameters of two parents);
   a candidate whose steps cannot be made (a location illegal under its
   host's loops) is skipped with a warning;
3. the batch is the best-scored candidates not measured yet, each slot
   replaced with probability ``eps_greedy`` by a random sample (so a wrong
   model cannot starve exploration); before the model is trained, the
   batch is random.

After each measured batch the model is retrained on everything measured
(throughputs normalized by the task's best) plus the records of other tasks
of the same target in the same database (``seed_from_records``, before the
first batch, so that batch already comes from the model): other
auto-scheduler tasks' steps are re-featurized on their own workloads, and
template (AutoTVM-style) records are turned into rows by
``tuner.transfer``, whose configs lower to loop IR featurized the same way.
Throughputs are normalized per source task; the ``MAX_FOREIGN_RECORDS``
newest records of either kind are used, and records of an unregistered
workload or template, or that no longer replay or lower, are skipped and
counted (``seed_skipped``), never raised. It must not write records nor
build anything itself.
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any, Optional, Sequence

import numpy as np

from ..error import TecompError
from ..tuner.cost_model import XGBoostCostModel
from ..tuner.measure import FeaturePool
from ..tuner.transfer import newest_template_records, template_pairs
from . import annotation
from .annotation import Candidate
from .measure import batch_features
from .records import measured, record_steps, steps_key
from .workload import is_registered, parse_workload_key

logger = logging.getLogger("tecomp.auto_scheduler")
MAX_FOREIGN_RECORDS = 300


class SketchPolicy:
    """The search policy of ``task`` (a ``SearchTask``)."""

    def __init__(self, task: Any, seed: Optional[int] = None, population: int = 48, generations: int = 3,
                 eps_greedy: float = 0.05):
        self.task = task
        self.rng = random.Random(seed)
        self.population, self.generations, self.eps_greedy = population, generations, eps_greedy
        self.model = XGBoostCostModel(None, "rank", seed=seed)
        self.throughputs: dict[str, float] = {}           # steps key -> FLOP/s (0: failed)
        self.candidates: dict[str, Candidate] = {}        # measured candidates this search made
        self._features: dict[str, Optional[np.ndarray]] = {}
        self._foreign: list[tuple[np.ndarray, float]] = []  # other tasks' rows (seed_from_records)
        self.seeded_template_records = self.seeded_template_tasks = 0
        self.seed_skipped = 0                              # other tasks' valid records not used
        self.pool: Optional[FeaturePool] = None
        self._skipped: set[str] = set()                    # reasons already warned about

    # ------------------------------------------------------------ candidates
    def _steps(self, cand: Candidate) -> Optional[list]:
        """The candidate's steps, or None (with a warning, once per reason) where they cannot be made,
        e.g. a crossover that left a producer's location illegal under its host's loops."""
        try:
            return annotation.to_steps(self.task.compute_dag, cand)
        except TecompError as err:
            if str(err) not in self._skipped:
                self._skipped.add(str(err))
                logger.warning("auto_scheduler %s: skipping a candidate: %s", self.task.workload_name, err)
            return None

    def _sample(self, n: int) -> dict[str, tuple[Candidate, list]]:
        out: dict[str, tuple[Candidate, list]] = {}
        sketches = self.task.sketches
        for k in range(n * 2):
            if len(out) >= n:
                break
            self._add(out, annotation.sample(self.rng, self.task.compute_dag, sketches[k % len(sketches)]))
        return out

    def _score(self, found: dict[str, tuple[Candidate, list]]) -> dict[str, float]:
        keys = [k for k in found if k not in self._features]
        feats = batch_features(self._pool(), self.task, [found[k][1] for k in keys])
        self._features.update(zip(keys, feats))
        rows = [(k, self._features[k]) for k in found if self._features[k] is not None]
        if not rows:
            return {}
        scores = self.model.predict(np.stack([f for _, f in rows]))
        return {k: float(s) for (k, _), s in zip(rows, scores)}

    def _evolve(self) -> list[tuple[Candidate, list]]:
        """Candidates ranked best first by the model (random order if it is untrained)."""
        found = self._sample(self.population)
        best = sorted(self.candidates, key=lambda k: -self.throughputs.get(k, 0.0))[:8]
        for key in best:
            self._add(found, annotation.mutate(self.rng, self.task.compute_dag, self.candidates[key]))
        if not self.model.trained:
            ranked = list(found.values())
            self.rng.shuffle(ranked)
            return ranked
        scores = self._score(found)
        for _ in range(self.generations):
            parents = sorted(scores, key=lambda k: -scores[k])[:max(2, self.population // 2)]
            children: dict[str, tuple[Candidate, list]] = {}
            for _ in range(self.population):
                a = found[self.rng.choice(parents)][0]
                if self.rng.random() < 0.2:
                    child = annotation.crossover(self.rng, a, found[self.rng.choice(parents)][0])
                else:
                    child = annotation.mutate(self.rng, self.task.compute_dag, a)
                self._add(children, child)
            found.update(children)
            scores.update(self._score({k: v for k, v in children.items() if k not in scores}))
        # candidates without features (they failed to lower) come last, never dropped
        return [found[k] for k in sorted(found, key=lambda k: -scores.get(k, -np.inf))]

    def _add(self, found: dict, cand: Candidate) -> None:
        steps = self._steps(cand)
        if steps is not None:
            found.setdefault(steps_key(steps), (cand, steps))

    def next_batch(self, n: int) -> list[tuple[Candidate, list]]:
        """Up to ``n`` unmeasured candidates to measure next."""
        ranked = [c for c in self._evolve() if steps_key(c[1]) not in self.throughputs]
        randoms = [c for c in self._sample(n).values() if steps_key(c[1]) not in self.throughputs]
        batch: list = []
        taken: set = set()
        for cand in ranked:
            if len(batch) >= n:
                break
            if randoms and self.rng.random() < self.eps_greedy:
                cand = randoms.pop()
            key = steps_key(cand[1])
            if key not in taken:
                taken.add(key)
                batch.append(cand)
        return batch

    # ------------------------------------------------------------ learning
    def update(self, batch: Sequence[tuple[Optional[Candidate], list]], flops: Sequence[float]) -> None:
        """Take in measured throughputs (FLOP/s, 0 for a failure) and retrain the model."""
        for (cand, steps), y in zip(batch, flops):
            key = steps_key(steps)
            self.throughputs[key] = max(y, self.throughputs.get(key, 0.0))
            if cand is not None:
                self.candidates[key] = cand
        self._retrain()

    def _retrain(self) -> None:
        """Fit the model on this task's measurements (once one is valid) and the foreign records."""
        top = max(self.throughputs.values(), default=0.0)
        keys = list(self.throughputs) if top > 0 else []
        missing = [k for k in keys if k not in self._features]
        feats = batch_features(self._pool(), self.task, [json.loads(k) for k in missing])
        self._features.update(zip(missing, feats))
        rows = [(self._features[k], self.throughputs[k] / top) for k in keys if self._features[k] is not None]
        rows += self._foreign
        if rows:
            self.model.fit(np.stack([f for f, _ in rows]), np.array([y for _, y in rows]))

    def seed_from_records(self, db: Any) -> int:
        """Resume from this task's records in ``db`` and learn from other tasks' ones (auto-scheduler
        and template tasks of the same target); returns how many of this task's measurements were
        taken in."""
        target = str(self.task.target)
        own = 0
        for steps, rec in measured(db, self.task.workload_key, target):
            key = steps_key(steps)
            y = self.task.flop / rec.mean_cost if rec.mean_cost else 0.0
            self.throughputs[key] = max(y, self.throughputs.get(key, 0.0))
            own += 1
        searched, others, skipped = [], [], 0
        for rec in db.records(target=target):
            if rec.task_key == self.task.workload_key or not rec.mean_cost:
                continue
            parsed = parse_workload_key(rec.task_key)
            if parsed is None:
                others.append(rec)
            elif is_registered(parsed[0]) and record_steps(rec) is not None:
                searched.append(rec)
            else:
                skipped += 1
        templates, not_templates = newest_template_records(others, MAX_FOREIGN_RECORDS)
        tagged = [(rec, False) for rec in searched] + [(rec, True) for rec in templates]  # (record, template?)
        newest = sorted(tagged, key=lambda pair: pair[0].timestamp)[-MAX_FOREIGN_RECORDS:]
        skipped += not_templates + len(tagged) - len(newest)
        rows, failed = self._searched_rows([rec for rec, template in newest if not template])
        pairs, n_tasks, failed_templates = template_pairs(
            self._pool(), [rec for rec, template in newest if template], target)
        self._foreign += rows + pairs
        self.seeded_template_records += len(pairs)
        self.seeded_template_tasks += n_tasks
        self.seed_skipped += skipped + failed + failed_templates
        if own or rows or pairs:
            logger.info("auto_scheduler %s: %d own records resumed; %d records of other auto-scheduler tasks and "
                        "%d template records of %d task(s) seed the model (%d skipped)", self.task.workload_name,
                        own, len(rows), len(pairs), n_tasks, skipped + failed + failed_templates)
            self._retrain()
        return own

    def _searched_rows(self, records: list) -> tuple[list[tuple[np.ndarray, float]], int]:
        """``(rows, skipped)``: other auto-scheduler tasks' records as training rows (their steps
        re-featurized on their own workload, throughputs normalized by each task's best)."""
        from .task import SearchTask

        grouped: dict[str, list] = {}
        for rec in records:
            grouped.setdefault(rec.task_key, []).append(rec)
        rows: list[tuple[np.ndarray, float]] = []
        skipped = 0
        for key, group in grouped.items():
            name, args = parse_workload_key(key)
            try:
                other = SearchTask(func=name, args=args, target=str(self.task.target))
            except TecompError:
                skipped += len(group)
                continue
            feats = batch_features(self._pool(), other, [record_steps(rec) for rec in group])
            best = max(1.0 / rec.mean_cost for rec in group)
            found = [(f, 1.0 / rec.mean_cost / best) for f, rec in zip(feats, group) if f is not None]
            skipped += len(group) - len(found)
            rows += found
        return rows, skipped

    # ------------------------------------------------------------ workers
    def _pool(self) -> FeaturePool:
        if self.pool is None:
            self.pool = FeaturePool(**self.task.feature_options)
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

