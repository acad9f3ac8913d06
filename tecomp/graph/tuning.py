"""Tuning a whole model: extract its tasks, tune each with a trial budget, log every measurement.

The loop an AutoTVM tutorial writes by hand, for ``tecomp tune`` and Python
users alike. Records go to one SQLite database (resuming skips configs it
already holds); ``tecomp.graph.build`` under ``apply_history_best(db)`` then
uses the best of them. A tuned config can change the workloads of the kernels
after it (a conv's channel block sets the layout of the pooling that follows),
so after each round the tasks are extracted again under the records and the
new ones tuned, until a build under the records asks for nothing untuned.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from ..error import TuningError
from ..target import Target
from .ir import Graph
from .tasks import extract_tasks

TUNERS = {"xgb": "XGBTuner", "ga": "GATuner", "random": "RandomTuner", "grid": "GridSearchTuner"}
MAX_ROUNDS = 4  # re-extractions after tuning; each tuned config can reveal new workloads only once


def tune_model(graph: Graph, params: Optional[dict], records: Union[str, os.PathLike], trials: int,
               tuner: str = "xgb", target: Union[str, Target, None] = "llvm", measure_option: Optional[dict] = None,
               early_stopping: Optional[int] = None, progress: bool = True) -> list:
    """Tune every task of the model for up to ``trials`` trials each, including the tasks that the
    tuned configs give rise to; returns the tasks tuned."""
    from .. import tuner as autotvm

    if tuner not in TUNERS:
        raise TuningError(f"unknown tuner {tuner!r}; choose one of {', '.join(TUNERS)}")
    if not isinstance(trials, int) or trials < 1:
        raise TuningError(f"trials must be a positive int, got {trials!r}")
    if measure_option is None:
        measure_option = autotvm.measure_option(autotvm.LocalBuilder(), autotvm.LocalRunner(number=5, repeat=1))
    strategy = getattr(autotvm.tuner, TUNERS[tuner])
    db = autotvm.RecordDB(records)
    tuned: dict[str, Any] = {}
    try:
        for _ in range(MAX_ROUNDS):
            new = [t for t in extract_tasks(graph, params, target, records=db if tuned else None)
                   if t.key not in tuned]
            if not new:
                break
            for task in new:
                tuned[task.key] = task
                budget = min(trials, len(task.config_space))
                callbacks: list[Any] = [autotvm.callback.log_to_db(db)]
                if progress:
                    callbacks.append(autotvm.callback.progress_bar(budget, prefix=f"[{len(tuned)}] {task.name}"))
                strategy(task).tune(budget, measure_option, early_stopping=early_stopping, callbacks=callbacks)
    finally:
        db.close()
    return list(tuned.values())
