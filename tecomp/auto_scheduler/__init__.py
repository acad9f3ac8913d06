"""Template-free auto-scheduling (TVM's auto-scheduler, "Ansor"): tune any te compute without a template.

    @auto_scheduler.register_workload
    def matmul(n, m, k, dtype): ... return [A, B, C]

    task = auto_scheduler.SearchTask(func=matmul, args=(1024, 1024, 1024, "float32"), target="llvm")
    task.tune(auto_scheduler.TuningOptions(num_measure_trials=64,
                                           measure_callbacks=[auto_scheduler.RecordToFile("tune.db")]))
    sch, args = task.apply_best("tune.db")

Modules: ``workload`` (registry, keys), ``compute_dag`` (analysis), ``steps`` (transform steps and
replay), ``sketch`` (rules), ``annotation`` (sampled parameters -> steps), ``search`` (evolution +
cost model), ``measure`` (the tuner's isolated builders, runners and feature workers), ``records``
(the SQLite database), ``task`` (SearchTask, TuningOptions), ``task_scheduler``, ``graph_tasks``
(a model's fused kernels as tasks) and ``dispatch`` (a model built from the records).
docs/auto_scheduler.md is the guide.
"""

from .compute_dag import ComputeDAG
from .dispatch import ApplyHistoryBest
from .graph_tasks import extract_tasks
from .records import RecordToFile
from .search import SketchPolicy
from .steps import StepError
from .task import SearchTask, TaskTuner, TuningOptions
from .task_scheduler import TaskScheduler
from .workload import register_workload

__all__ = ["ApplyHistoryBest", "ComputeDAG", "RecordToFile", "SearchTask", "SketchPolicy", "StepError", "TaskScheduler", "TaskTuner",
           "TuningOptions", "extract_tasks", "register_workload"]
