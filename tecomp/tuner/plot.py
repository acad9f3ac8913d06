"""Tuning curves from a records database: trials vs. the best performance so far.

Owns ``plot_curve``. matplotlib is an optional dependency (``pip install
'tecomp[plot]'``), imported only when a curve is drawn, with the Agg backend
so no display is needed. This module reads records; it must not write them.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ..error import TecompError
from .records import Record, RecordDB, open_db


def _matplotlib_pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise TecompError("plotting needs matplotlib: pip install 'tecomp[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _resolve(db: RecordDB, task_or_key: Any, target: Optional[str]) -> tuple[str, str, float]:
    """(task key, target, FLOP count or 0) of the curve to draw."""
    key = task_or_key if isinstance(task_or_key, str) else task_or_key.key
    flop = 0.0 if isinstance(task_or_key, str) else float(getattr(task_or_key, "flop", 0) or 0)
    if target is None and not isinstance(task_or_key, str):
        target = str(task_or_key.target)
    if target is None:
        targets = sorted({t for k, t in db.tasks() if k == key})
        if len(targets) != 1:
            found = ", ".join(targets) or "none"
            raise TecompError(f"{db.path}: task {key} has records for targets {found}; pass target=")
        target = targets[0]
    return key, str(target), flop


def _best_so_far(records: list[Record], flop: float) -> list[float]:
    """Per trial, the best GFLOP/s (or, without a FLOP count, the best ms) so far; NaN before any."""
    best, curve = float("nan"), []
    for rec in records:
        cost = rec.mean_cost
        if cost is not None:
            value = flop / cost / 1e9 if flop else cost * 1e3
            if best != best or (value > best if flop else value < best):  # best != best: still NaN
                best = value
        curve.append(best)
    return curve


def plot_curve(db: Union[RecordDB, str, os.PathLike], task_or_key: Any, path: Union[str, os.PathLike],
               target: Optional[str] = None) -> None:
    """Write a PNG at ``path``: one line per tuner name found in the records of the task."""
    plt = _matplotlib_pyplot()
    with open_db(db) as rdb:
        key, target, flop = _resolve(rdb, task_or_key, target)
        records = list(rdb.records(key, target))
    if not records:
        raise TecompError(f"{rdb.path} holds no records of task {key} on target {target}")
    by_tuner: dict[str, list[Record]] = {}
    for rec in records:
        by_tuner.setdefault(rec.tuner or "unnamed tuner", []).append(rec)
    flop = flop or next((r.flop for r in records if r.flop), 0.0)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        for name, recs in by_tuner.items():
            curve = _best_so_far(recs, flop)
            ax.plot(range(1, len(curve) + 1), curve, label=name, drawstyle="steps-post")
        ax.set_xlabel("trials")
        ax.set_ylabel("best GFLOP/s so far" if flop else "best time so far (ms)")
        ax.set_title(f"{key} on {target}", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(os.fspath(path), format="png", dpi=100)
    except OSError as exc:
        raise TecompError(f"cannot write plot {path}: {exc.strerror}") from None
    finally:
        plt.close(fig)
