"""The autotuner, AutoTVM-shaped: ``from tecomp import tuner as autotvm``.

docs/tuner.md is the contract between this package's modules. Importing the
package must stay light: no xgboost (only ``cost_model`` imports it, when a
model is trained), no matplotlib (only ``plot``, when a curve is drawn) and
no ``distributed`` (``DaskBuilder``/``DaskRunner`` come from ``dask_measure``
on first use, and it imports ``distributed`` only when connecting).
"""

from typing import Any

from . import callback, measure, records, task, tuner
from .confirm import confirm_best
from .dispatch import ApplyHistoryBest, DispatchContext, apply_history_best
from .measure import (LocalBuilder, LocalRunner, MeasureErrorNo, MeasureInput, MeasureResult,
                      measure_batch, measure_option)
from .plot import plot_curve
from .records import RecordDB
from .space import ConfigEntity, ConfigSpace, FallbackConfigEntity
from .task import Task, get_config, template

__all__ = [
    "ApplyHistoryBest", "ConfigEntity", "ConfigSpace", "DaskBuilder", "DaskRunner", "DispatchContext",
    "FallbackConfigEntity", "LocalBuilder", "LocalRunner", "MeasureErrorNo", "MeasureInput", "MeasureResult",
    "RecordDB", "Task", "apply_history_best", "callback", "confirm_best", "get_config", "measure", "measure_batch",
    "measure_option", "plot_curve", "records", "task", "template", "tuner",
]


def __getattr__(name: str) -> Any:
    # Loaded on first use, so that ``python -m tecomp.tuner.dask_measure`` runs a module not yet imported.
    if name in ("DaskBuilder", "DaskRunner"):
        from . import dask_measure
        return getattr(dask_measure, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
