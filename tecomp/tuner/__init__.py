"""The autotuner, AutoTVM-shaped: ``from tecomp import tuner as autotvm``.

docs/tuner.md is the contract between this package's modules. Importing the
package must stay light: no xgboost (only ``cost_model`` imports it, when a
model is trained) and no matplotlib (only ``plot``, when a curve is drawn).
"""

from . import callback, measure, records, task, tuner
from .dispatch import ApplyHistoryBest, DispatchContext, apply_history_best
from .measure import (LocalBuilder, LocalRunner, MeasureErrorNo, MeasureInput, MeasureResult,
                      measure_batch, measure_option)
from .plot import plot_curve
from .records import RecordDB
from .space import ConfigEntity, ConfigSpace, FallbackConfigEntity
from .task import Task, get_config, template

__all__ = [
    "ApplyHistoryBest", "ConfigEntity", "ConfigSpace", "DispatchContext", "FallbackConfigEntity",
    "LocalBuilder", "LocalRunner", "MeasureErrorNo", "MeasureInput", "MeasureResult", "RecordDB", "Task",
    "apply_history_best", "callback", "get_config", "measure", "measure_batch", "measure_option",
    "plot_curve", "records", "task", "template", "tuner",
]
