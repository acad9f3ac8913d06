"""``SearchTask``, ``TuningOptions`` and the measure loop of one task (``TaskTuner``).

Owns the user-facing flow of TVM's auto-scheduler tutorial: a registered
workload on arguments and a target becomes a ``SearchTask`` (its compute
DAG, FLOP count and sketches); ``task.tune(TuningOptions(...))`` runs
``TaskTuner``: batches from the ``SketchPolicy`` are built and timed by the
tuner's ``LocalBuilder``/``LocalRunner`` and handed to the measure callbacks
(``RecordToFile``), after one measurement of the default schedule (the
baseline); ``task.apply_best(path)`` replays the fastest record whose steps
still apply, or keeps the default schedule where it measured faster. A compute the rules cannot handle (symbolic
shapes, scans, no sketch) gets its default schedule, and a one-line note
says why. It must not generate sketches or sample parameters itself.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Optional, Sequence, Union

from .. import config as _config
from ..error import TecompError, TuningError
from ..target import Target
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tuner.measure import LocalBuilder, LocalRunner, measure_batch
from ..tuner.tuner import ErrorSummary, throughput
from .compute_dag import ComputeDAG
from .measure import CandidateBatch
from .records import best_steps, default_wins, ranked
from .search import SketchPolicy
from .sketch import generate_sketches
from .steps import StepError
from .workload import (KEY_PREFIX, call_workload, default_schedule, make_workload_key, parse_workload_key,
                       register_workload, workload_func, workload_name)

logger = logging.getLogger("tecomp.auto_scheduler")
RUNNER_TIMING = {"number": 3, "min_repeat_ms": 50}  # the default runner's: short kernels timed over 50 ms


class TuningOptions:
    """How long and how to measure: ``num_measure_trials`` candidates in rounds of
    ``num_measures_per_round``; ``early_stopping``: stop after that many trials without a new best;
    ``builder``/``runner``: a ``tuner.LocalBuilder``/``LocalRunner`` (defaults: all cores;
    ``number=3`` calls timed over at least 50 ms); ``measure_callbacks``: e.g.
    ``[RecordToFile(path)]``; ``verbose``: 0 silent, 1 one line per round."""

    def __init__(self, num_measure_trials: int = 0, early_stopping: Optional[int] = None,
                 num_measures_per_round: int = 8, builder: Any = None, runner: Any = None,
                 measure_callbacks: Sequence[Callable] = (), verbose: int = 1):
        if not isinstance(num_measure_trials, int) or num_measure_trials < 0:
            raise TuningError(f"TuningOptions: num_measure_trials must be a non-negative int, "
                              f"got {num_measure_trials!r}")
        if not isinstance(num_measures_per_round, int) or num_measures_per_round < 1:
            raise TuningError(f"TuningOptions: num_measures_per_round must be a positive int, "
                              f"got {num_measures_per_round!r}")
        self.num_measure_trials = num_measure_trials
        self.early_stopping = early_stopping
        self.num_measures_per_round = num_measures_per_round
        self.builder, self.runner = builder, runner
        self.measure_callbacks = list(measure_callbacks)
        self.verbose = verbose


class SearchTask:
    """A registered workload (``func``, a function or its registered name) on ``args`` for ``target``."""

    def __init__(self, func: Union[Callable, str, None] = None, args: Sequence[Any] = (),
                 target: Union[str, Target] = "llvm"):
        if func is None:
            raise TuningError("SearchTask needs func= (a function returning te tensors)")
        if callable(func) and getattr(func, "workload_name", None) is None:
            register_workload(func)
        self.workload_name = workload_name(func)
        self.func = workload_func(self.workload_name)
        self.template_name = KEY_PREFIX + self.workload_name
        self.workload_key = make_workload_key(self.workload_name, tuple(args))
        self.key = self.workload_key  # what the records database files a task under
        self.args = parse_workload_key(self.workload_key)[1]
        self.target = target if isinstance(target, Target) else Target(target)
        self.tensors = call_workload(self.func, self.workload_name, self.args)
        self.note = ""
        self.compute_dag: Optional[ComputeDAG] = None
        self.sketches: list = []
        self.flop = 0.0
        try:
            self.compute_dag = ComputeDAG(self.tensors)
            self.flop = self.compute_dag.flop
            self.sketches = generate_sketches(self.compute_dag, gpu=self.target.kind == "cuda")
            if not self.sketches:
                self.note = "no sketch rule applies to its stages"
        except TecompError as err:
            self.note = str(err)
        self.feature_options: dict = {"n_parallel": _config.available_cores(), "timeout": 10}

    def __repr__(self) -> str:
        return f"SearchTask({self.workload_key}, target='{self.target}', {self.flop:.4g} FLOP)"

    def tune(self, tuning_options: TuningOptions, search_policy: Optional[SketchPolicy] = None) -> None:
        """Search and measure up to ``num_measure_trials`` candidates (see ``TuningOptions``)."""
        tuner = TaskTuner(self, tuning_options, search_policy)
        try:
            tuner.tune(tuning_options.num_measure_trials)
        finally:
            tuner.close()

    def default_schedule(self) -> tuple[Schedule, list[Tensor]]:
        """What a build uses without records: the compute's own loops, every stage at root (for cuda,
        one thread per output element), or a graph kernel's template schedule
        (``workload.default_schedule``)."""
        return default_schedule(self.func, self.workload_name, self.args, self.target.kind == "cuda")

    def apply_best(self, log_file: Union[str, os.PathLike, Any]) -> tuple[Schedule, list[Tensor]]:
        """``(schedule, tensors)`` of the fastest record in ``log_file`` (a records database path or
        ``RecordDB``) whose steps still apply; records that do not are skipped with a warning.
        Without any, the default schedule, with a one-line note; the default schedule also when
        it measured at least as fast as every record (a search measures it first)."""
        found, baseline = ranked(log_file, self.workload_key, str(self.target))
        if default_wins(found, baseline):
            return self.default_schedule()
        if self.compute_dag is not None:
            for steps, _ in found:
                try:
                    return self.compute_dag.apply_steps(steps)
                except StepError as err:
                    logger.warning("auto_scheduler %s: skipping a record whose steps no longer apply: %s",
                                   self.workload_name, err)
        logger.warning("auto_scheduler %s: no applicable record in %s; using the default schedule%s",
                       self.workload_name, log_file, f" ({self.note})" if self.note else "")
        return self.default_schedule()

    def print_best(self, log_file: Union[str, os.PathLike, Any]) -> str:
        """The steps of the fastest record, one per line ("" if there is none)."""
        found = best_steps(log_file, self.workload_key, str(self.target))
        return "\n".join(str(s) for s in found[0][0]) if found else ""


class TaskTuner:
    """The measure loop of one task; ``tune`` may be called again to continue (a task scheduler's
    slices). ``best_flops``: the best throughput measured so far."""

    def __init__(self, task: SearchTask, options: TuningOptions, policy: Optional[SketchPolicy] = None):
        self.task, self.options = task, options
        self.policy = policy or SketchPolicy(task)
        self._own = options.builder is None, options.runner is None
        self.builder = options.builder or LocalBuilder()
        self.runner = options.runner or LocalRunner(**RUNNER_TIMING)
        task.feature_options = {"n_parallel": self.builder.n_parallel, "timeout": self.builder.timeout,
                                "memory_limit": self.builder.memory_limit}
        self.best_flops, self.best_steps = 0.0, None
        self.trials = 0
        self.exhausted = False
        self._seeded = False

    def tune(self, n_trials: int) -> int:
        """Measure up to ``n_trials`` more candidates; returns how many were measured."""
        task = self.task
        if task.note or task.compute_dag is None:
            logger.warning("auto_scheduler %s: not tuned, its default schedule is used: %s",
                           task.workload_name, task.note)
            self.exhausted = True
            return 0
        errors, done, since_best = ErrorSummary(), 0, 0
        if not self._seeded:
            self._seeded = True
            baseline = None
            for db in (cb.db for cb in self.options.measure_callbacks if hasattr(cb, "db")):
                self.policy.seed_from_records(db)
                found, measured_default = ranked(db, task.workload_key, str(task.target))
                for steps, cost in found[:1]:
                    if task.flop / cost > self.best_flops:
                        self.best_flops, self.best_steps = task.flop / cost, steps
                baseline = baseline or measured_default
            if baseline is None and n_trials > 0:
                done += self._measure_default(errors)
        
        start = time.monotonic()
        try:
            while done < n_trials:
                batch = self.policy.next_batch(min(self.options.num_measures_per_round, n_trials - done))
                if not batch:
                    self.exhausted = True
                    logger.info("auto_scheduler %s: no new candidate to measure", task.workload_name)
                    break
                steps = [s for _, s in batch]
                candidates = CandidateBatch(task, steps)
                results = measure_batch(candidates.inputs(), {"builder": self.builder, "runner": self.runner})
                flops = [throughput(task, r) for r in results]
                errors.add(results)
                self.policy.update(batch, flops)
                for callback in self.options.measure_callbacks:
                    callback(task, steps, results)
                done += len(batch)
                self.trials += len(batch)
                round_best = max(flops)
                since_best = 0 if round_best > self.best_flops else since_best + len(batch)
                if round_best > self.best_flops:
                    self.best_flops, self.best_steps = round_best, steps[flops.index(round_best)]
                if self.options.verbose:
                    logger.info("auto_scheduler %s: %d trials, best %.2f GFLOP/s (%.0f s)", task.workload_name,
                                self.trials, self.best_flops / 1e9, time.monotonic() - start)
                if self.options.early_stopping is not None and since_best >= self.options.early_stopping:
                    break
        finally:
            errors.report(task.workload_name, done)
        return done

    def _measure_default(self, errors: ErrorSummary) -> int:
        """Measure the default schedule, the baseline a candidate must beat to be applied."""
        results = measure_batch(CandidateBatch(self.task, [None]).inputs(),
                                {"builder": self.builder, "runner": self.runner})
        errors.add(results)
        for callback in self.options.measure_callbacks:
            callback(self.task, [None], results)
        self.trials += 1
        return 1

    def close(self) -> None:
        self.policy.close()
        if self._own[0]:
            self.builder.close()
        if self._own[1]:
            self.runner.close()
