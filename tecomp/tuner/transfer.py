"""Template records as cost-model training data for other tasks (transfer learning).

Owns turning records of template tasks (task key ``[template name, args]``,
a config of that template's space) into ``(features, throughput normalized
by its task's best)`` pairs. ``XGBTuner`` trains on them before its first
batch, and the auto-scheduler's ``SketchPolicy.seed_from_records`` adds them
to its own training rows: both score ``features.extract_features`` of the
lowered loop IR (computed by the same ``FeaturePool`` workers), so a
template config and an auto-scheduler candidate are rows of one layout.

A record is usable when it is valid (error_no 0, a mean cost) and its
template is registered in this process; the newest usable ones are kept.
Each source task is recreated from its key in the feature workers, never in
this process. Unusable records (an unreadable key, an unknown template, one
beyond the limit, a config that no longer fits its space or fails to lower)
are skipped and counted, never raised. A task's FLOP count cancels out in
the normalization by its best, so a throughput is 1 / mean cost.

Must not: open a records database (callers pass records), train a model, or
instantiate a template in this process.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from ..error import TecompError
from . import task as task_module
from .measure import FeaturePool, template_spec
from .records import Record


def template_of(task_key: str) -> Optional[tuple[str, Any]]:
    """``(template name, args)`` of a template task key whose template is registered in this
    process; None for any other key (malformed, an unknown template, an auto-scheduler workload)."""
    try:
        name, args = json.loads(task_key)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or name not in task_module._TEMPLATES:
        return None
    return name, args


def newest_template_records(records: Iterable[Record], limit: int,
                            exclude_key: Optional[str] = None) -> tuple[list[Record], int]:
    """The ``limit`` newest valid records of registered templates (oldest first, keys other than
    ``exclude_key``), and how many other valid records were skipped."""
    usable, skipped = [], 0
    for rec in records:
        if rec.task_key == exclude_key or not rec.mean_cost:
            continue
        if template_of(rec.task_key) is None:
            skipped += 1
        else:
            usable.append(rec)
    usable.sort(key=lambda rec: rec.timestamp)
    return usable[max(0, len(usable) - limit):], skipped + max(0, len(usable) - limit)


def template_pairs(pool: FeaturePool, records: Sequence[Record],
                   target: Any) -> tuple[list[tuple[np.ndarray, float]], int, int]:
    """``(pairs, tasks, skipped)``: a ``(features, throughput / its task's best)`` pair per record of
    ``records`` (valid records of registered templates) whose config still lowers, how many tasks
    the pairs come from, and how many records failed."""
    grouped: dict[str, list[Record]] = {}
    for rec in records:
        grouped.setdefault(rec.task_key, []).append(rec)
    pairs: list[tuple[np.ndarray, float]] = []
    n_tasks = skipped = 0
    for key, group in grouped.items():
        name, args = template_of(key)
        try:
            spec = template_spec(name, args, target, task_module._TEMPLATES[name])
        except TecompError:  # the template cannot be sent to the workers
            skipped += len(group)
            continue
        answers = pool.features(spec, [rec.config for rec in group])
        rows = [(feats, 1.0 / rec.mean_cost) for (feats, _), rec in zip(answers, group) if feats is not None]
        skipped += len(group) - len(rows)
        if rows:
            n_tasks += 1
            best = max(y for _, y in rows)
            pairs.extend((f, y / best) for f, y in rows)
    return pairs, n_tasks, skipped
