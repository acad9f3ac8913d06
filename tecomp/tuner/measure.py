"""Measuring candidate configs: build them in parallel processes, time them in an isolated one.

Owns ``MeasureInput``/``MeasureResult``/``MeasureErrorNo`` (AutoTVM's
numbering), ``measure_option``, ``LocalBuilder``, ``LocalRunner`` and
``measure_batch``, and the pool of spawned worker processes both use
(``WorkerPool``, whose job outcomes are ``Outcome``s; ``dask_measure`` runs
the same pool inside each Dask worker).

Isolation: candidates are instantiated, lowered and compiled in worker
processes of the builder (nvcc for a cuda task), and timed in a worker
process of the runner (on GPU 0 for a CUDA library). A
worker is reused across candidates; one that crashes (a signal) or exceeds
the per-candidate timeout costs only that candidate: it is killed, its
candidate is recorded with an error kind and a message, and a fresh worker
takes the next one. Workers are started with the "spawn" method (libgomp,
used by compiled code, does not survive ``fork``).

**Templates must be importable.** A spawned builder worker recreates each
task from plain data: it imports the module that defines the task's template
(by module name, else from its file) and calls ``task.create`` there. So a
template defined in ``__main__`` must live at the top level of a script
(guard the tuning code with ``if __name__ == "__main__":``), and one
defined in a REPL or notebook cannot be built; define it in a module.

Only plain data crosses between processes (task name/args/target, config
JSON, file names, numpy arrays, floats); this module never pickles a task,
schedule or library. It must not search configs or write records.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
import weakref
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.connection import wait
from typing import Any, Callable, NamedTuple, Optional, Sequence

import numpy as np

from .. import config as _config
from ..error import TuningError

_STARTUP_TIMEOUT_S = 120.0
_INPUT_SEED = 0
_RTOL = 1e-3


class MeasureErrorNo(IntEnum):
    """What went wrong with a candidate (AutoTVM's numbers)."""

    NO_ERROR = 0
    INSTANTIATION_ERROR = 1
    COMPILE_HOST = 2
    RUNTIME_DEVICE = 4
    WRONG_ANSWER = 5
    BUILD_TIMEOUT = 6
    RUN_TIMEOUT = 7
    UNKNOWN_ERROR = 8


class MeasureInput(NamedTuple):
    """A candidate: a task and one point of its config space."""

    task: Any
    config: Any


class MeasureResult(NamedTuple):
    """``costs``: seconds per call, one per repeat (empty for an error); ``all_cost``: seconds
    spent building and measuring the candidate; ``timestamp``: when the measurement ended."""

    costs: tuple
    error_no: int
    error_msg: str
    all_cost: float
    timestamp: float


@dataclass
class BuildResult:
    """A built candidate (``filename`` of its shared library), or why it did not build.

    A library made by ``LocalBuilder`` is deleted when its BuildResult is garbage collected.
    """

    filename: Optional[str]
    error_no: int
    error_msg: str
    time_cost: float


def _remove_file(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def measure_option(builder: "LocalBuilder", runner: "LocalRunner") -> dict:
    """The measurement setup a tuner's ``tune`` takes."""
    return {"builder": builder, "runner": runner}


def measure_batch(inputs: Sequence[MeasureInput], option: dict) -> list[MeasureResult]:
    """Build ``inputs`` with ``option["builder"]``, then time them with ``option["runner"]``."""
    build_results = option["builder"].build(inputs)
    return option["runner"].run(inputs, build_results)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _signal_name(exitcode: Optional[int]) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


# ---------------------------------------------------------------- worker processes

class Outcome(NamedTuple):
    """How a job ended: kind is "ok" (value: the handler's dict), "error", "died" or "timeout";
    ``seconds``: how long the job ran once a ready worker had it."""

    kind: str
    value: Any
    seconds: float


def _serve(conn: Any, role: str) -> None:
    """Main loop of a worker process: answer jobs until the pipe closes."""
    handler = _HANDLERS[role]()  # imports the heavy modules before saying "ready"
    conn.send(("ready", None))
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        try:
            reply = ("ok", handler(job))
        except Exception as exc:  # the candidate's failure, reported to the parent as data
            reply = ("error", _describe(exc))
        conn.send(reply)


class _Worker:
    """One spawned worker process and the job it is working on."""

    def __init__(self, role: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child_conn, role), daemon=True,
                                   name=f"tecomp-{role}")
        self.process.start()
        child_conn.close()
        self.ready = False
        self.job_index: Optional[int] = None
        self.job: Any = None
        self.deadline = time.monotonic() + _STARTUP_TIMEOUT_S
        self.started = 0.0

    def assign(self, index: int, job: Any, timeout: float) -> None:
        self.job_index, self.job = index, job
        if self.ready:
            self._send(timeout)

    def _send(self, timeout: float) -> None:
        self.conn.send(self.job)
        self.started = time.monotonic()
        self.deadline = self.started + timeout

    def handle_message(self, timeout: float) -> Optional[Outcome]:
        """Read what the worker sent: None if it only said it is ready, else the job's outcome."""
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            self.process.join(1.0)
            if not self.ready:
                raise TuningError(f"a {self.process.name} worker process died while starting "
                                  f"({_signal_name(self.process.exitcode)})") from None
            return self._finish("died", f"worker process died with {_signal_name(self.process.exitcode)}")
        if kind == "ready":
            self.ready = True
            if self.job is not None:
                self._send(timeout)
            return None
        return self._finish(kind, value)

    def expire(self) -> Outcome:
        if not self.ready:
            raise TuningError(f"a {self.process.name} worker process did not start within "
                              f"{_STARTUP_TIMEOUT_S:.0f} s")
        self.kill()
        return self._finish("timeout", None)

    def _finish(self, kind: str, value: Any) -> Outcome:
        outcome = Outcome(kind, value, time.monotonic() - self.started)
        self.job_index, self.job = None, None
        return outcome

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _stop_workers(workers: list) -> None:
    for worker in workers:
        if worker is not None:
            worker.kill()


class WorkerPool:
    """``size`` reusable worker processes of one role; a crashed or hung one is replaced."""

    def __init__(self, role: str, size: int) -> None:
        self.role = role
        self.workers: list[Optional[_Worker]] = [None] * size
        self._finalizer = weakref.finalize(self, _stop_workers, self.workers)

    def _idle_worker(self) -> Optional[_Worker]:
        for i, worker in enumerate(self.workers):
            if worker is None or not worker.alive:
                if worker is not None:
                    worker.kill()
                worker = self.workers[i] = _Worker(self.role)
            if worker.job is None:
                return worker
        return None

    def run(self, jobs: Sequence[Any], timeout: float) -> list[Outcome]:
        """Every job's outcome, in order; each job gets ``timeout`` seconds once a worker has it."""
        outcomes: list[Optional[Outcome]] = [None] * len(jobs)
        queue = deque(enumerate(jobs))
        try:
            while queue or any(w is not None and w.job is not None for w in self.workers):
                while queue and (worker := self._idle_worker()) is not None:
                    index, job = queue.popleft()
                    worker.assign(index, job, timeout)
                self._collect(outcomes, timeout)
        except BaseException:
            # a worker that failed to start, or an interrupt: no worker may keep a job of this run
            _stop_workers(self.workers)
            self.workers[:] = [None] * len(self.workers)
            raise
        return outcomes  # type: ignore[return-value]

    def _collect(self, outcomes: list, timeout: float) -> None:
        busy = [w for w in self.workers if w is not None and w.job is not None]
        wait_s = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = set(wait([w.conn for w in busy], timeout=wait_s))
        for worker in busy:
            index = worker.job_index
            if worker.conn in ready:
                outcome = worker.handle_message(timeout)
            elif time.monotonic() >= worker.deadline:
                outcome = worker.expire()
            else:
                continue
            if outcome is not None:
                outcomes[index] = outcome

    def close(self) -> None:
        self._finalizer()


# ---------------------------------------------------------------- building

def _template_origin(task: Any) -> tuple[str, Optional[str]]:
    """The module name and file of the function that defines ``task``'s template."""
    func = task.func
    module = getattr(func, "__module__", None) or ""
    try:
        path = inspect.getsourcefile(func)
    except TypeError:
        path = None
    if module == "__main__":
        # A spawned worker runs the parent's main script as "__mp_main__", not "__main__".
        module = "__mp_main__"
    return module, path


def task_spec(task: Any) -> dict:
    """The plain data a builder worker recreates ``task`` from."""
    module, path = _template_origin(task)
    return {"name": task.name, "args": task.args, "target": str(task.target),
            "module": module, "file": path}


def _import_template_module(module: str, path: Optional[str]) -> None:
    try:
        importlib.import_module(module)
        return
    except ImportError:
        if path is None or not os.path.exists(path):
            raise
    spec = importlib.util.spec_from_file_location(module, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    spec.loader.exec_module(mod)


class _BuildHandler:
    """Builds candidates inside a builder worker; caches recreated tasks."""

    def __init__(self) -> None:
        from ..codegen import compile_library
        from ..lower.driver import lower
        from . import task as task_module
        from .space import ConfigEntity

        self._compile, self._lower = compile_library, lower
        self._create, self._config_from_json = task_module.create, ConfigEntity.from_json_dict
        self._tasks: dict = {}

    def _task(self, spec: dict) -> Any:
        key = repr(sorted(spec.items()))
        if key not in self._tasks:
            try:
                _import_template_module(spec["module"], spec["file"])
                self._tasks[key] = self._create(spec["name"], spec["args"], spec["target"])
            except Exception as exc:
                raise TuningError(f"the builder process could not recreate task {spec['name']} from module "
                                  f"{spec['module']} ({spec['file'] or 'no file'}): {_describe(exc)}. "
                                  "Templates must be defined at the top level of an importable module "
                                  "or script (not in a REPL)") from None
        return self._tasks[key]

    def __call__(self, job: dict) -> dict:
        start = time.perf_counter()
        try:
            task = self._task(job["task"])
            sch, args = task.instantiate(self._config_from_json(task.config_space, job["config"]))
        except Exception as exc:
            return {"error_no": MeasureErrorNo.INSTANTIATION_ERROR, "error_msg": _describe(exc)}
        try:
            func = self._lower(sch, args, name="candidate", target=task.target)["candidate"]
            library = self._compile([func], task.target)
            shutil.copyfile(library.so_path, job["out"])
        except Exception as exc:
            return {"error_no": MeasureErrorNo.COMPILE_HOST, "error_msg": _describe(exc)}
        return {"error_no": MeasureErrorNo.NO_ERROR, "filename": job["out"],
                "time_cost": time.perf_counter() - start}


class LocalBuilder:
    """Instantiates, lowers and compiles candidates in ``n_parallel`` spawned worker processes.

    ``timeout``: seconds one candidate may take (a worker still starting does
    not count). ``n_parallel``: worker processes, by default one per core
    available. See the module docstring: templates must be importable.
    """

    def __init__(self, timeout: float = 10, n_parallel: Optional[int] = None) -> None:
        if timeout <= 0 or (n_parallel is not None and n_parallel < 1):
            raise TuningError(f"{type(self).__name__}: timeout must be positive and n_parallel at least 1, "
                              f"got timeout={timeout!r}, n_parallel={n_parallel!r}")
        self.timeout = timeout
        self.n_parallel = n_parallel or _config.available_cores()
        self._pool: Optional[WorkerPool] = None
        self._dir: Optional[str] = None
        self._count = 0

    def _output_dir(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="tecomp-build-")
            weakref.finalize(self, shutil.rmtree, self._dir, True)
        return self._dir

    def _job(self, inp: MeasureInput) -> dict:
        self._count += 1
        out = os.path.join(self._output_dir(), f"candidate-{self._count}.so")
        return {"task": task_spec(inp.task), "config": inp.config.to_json_dict(), "out": out}

    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        """One BuildResult per input, in order."""
        if self._pool is None:
            self._pool = WorkerPool("builder", self.n_parallel)
        outcomes = self._pool.run([self._job(inp) for inp in inputs], self.timeout)
        return [self._result(inp, outcome) for inp, outcome in zip(inputs, outcomes)]

    def _result(self, inp: MeasureInput, outcome: Outcome) -> BuildResult:
        where = f"config {inp.config.index} of {inp.task.name}"
        if outcome.kind == "timeout":
            return BuildResult(None, MeasureErrorNo.BUILD_TIMEOUT,
                               f"{where}: building took longer than {self.timeout} s", outcome.seconds)
        if outcome.kind != "ok":  # "died" or an unexpected exception in the worker
            return BuildResult(None, MeasureErrorNo.COMPILE_HOST, f"{where}: {outcome.value}", outcome.seconds)
        reply = outcome.value
        if reply["error_no"] != MeasureErrorNo.NO_ERROR:
            return BuildResult(None, reply["error_no"], f"{where}: {reply['error_msg']}", outcome.seconds)
        result = BuildResult(reply["filename"], MeasureErrorNo.NO_ERROR, "", reply["time_cost"])
        weakref.finalize(result, _remove_file, reply["filename"])
        return result

    def close(self) -> None:
        """Stop the worker processes (a later ``build`` starts new ones)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None


# ---------------------------------------------------------------- running

def random_arguments(params: Sequence[Any], seed: int) -> list[np.ndarray]:
    """Seeded random arrays for a compiled function's parameters (``ParamInfo`` of its metadata)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for param in params:
        if not all(isinstance(d, int) for d in param.shape):
            raise TuningError(f"parameter {param.name} has a symbolic shape {param.shape}; "
                              "tuning needs constant shapes")
        dtype = np.dtype(param.dtype)
        if dtype.kind == "f":
            arrays.append(rng.uniform(-1.0, 1.0, size=param.shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=param.shape).astype(dtype))
        else:
            low = 0 if dtype.kind == "u" else -8
            arrays.append(rng.integers(low, 8, size=param.shape).astype(dtype))
    return arrays


def _max_error(got: np.ndarray, want: np.ndarray) -> tuple[float, bool]:
    """Largest absolute difference, and whether it is within tolerance (exact for integers)."""
    if got.shape != want.shape:
        return float("inf"), False
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    same = (got64 == want64) | (np.isnan(got64) & np.isnan(want64))  # also equal infinities
    with np.errstate(invalid="ignore"):  # inf - inf, masked by `same`
        diff = np.where(same, 0.0, np.abs(got64 - want64))
    err = float(diff.max()) if diff.size else 0.0  # NaN where only one side is NaN
    if want.dtype.kind != "f":
        return err, err == 0
    finite = np.abs(want64[np.isfinite(want64)])
    scale = float(finite.max()) if finite.size else 0.0
    return err, err <= _RTOL * max(1.0, scale)


def _check_outputs(params: Sequence[Any], args: list[np.ndarray], reference: dict) -> Optional[str]:
    for index, want in reference.items():
        err, ok = _max_error(args[index], want)
        if not ok:
            return f"output {params[index].name} differs from the reference: max abs error {err:.3g}"
    return None


class _RunHandler:
    """Times candidates inside the runner worker: a CPU library on the CPU, a CUDA library on
    GPU 0 (arguments copied to the device; CUDA-event timing)."""

    def __init__(self) -> None:
        from ..runtime import cpu, cuda, load_module, nd

        self._load, self._devices, self._nd = load_module, {"cpu": cpu(0), "cuda": cuda(0)}, nd

    def _placed(self, arrays: list[np.ndarray], dev: Any) -> list[Any]:
        return [self._nd.array(a, dev) for a in arrays] if dev.kind == "cuda" else arrays

    def __call__(self, job: dict) -> dict:
        module = self._load(job["filename"])
        func = module.get_function(module.entry_name)
        dev = self._devices[module.device_kind]
        args = random_arguments(func.info.params, job["seed"])
        if job["reference"] is not None:
            checked = self._placed([a.copy() for a in args], dev)
            func(*checked)
            wrong = _check_outputs(func.info.params, [np.asarray(a) for a in checked], job["reference"])
            if wrong:
                return {"error_no": MeasureErrorNo.WRONG_ANSWER, "error_msg": wrong}
        timer = module.time_evaluator(module.entry_name, dev, number=job["number"],
                                      repeat=job["repeat"], min_repeat_ms=job["min_repeat_ms"])
        return {"error_no": MeasureErrorNo.NO_ERROR, "costs": timer(*self._placed(args, dev)).results}


_HANDLERS: dict[str, Callable[[], Callable[[Any], dict]]] = {"builder": _BuildHandler, "runner": _RunHandler}


def reference_outputs(task: Any, config: Any, seed: int = _INPUT_SEED,
                      target: Any = None) -> dict[int, np.ndarray]:
    """Outputs of ``task``'s default schedule (no config applied) on the seeded random inputs.

    Built and run in this process: the default schedule is the plain loop nest
    of the compute definition, the trusted reference for ``check_correctness``.
    ``target``: what to build it for, by default the task's own.
    """
    from .. import te
    from ..build_module import build

    _, tensors = task.instantiate(config)
    computed = [t.op for t in tensors if not isinstance(t.op, te.PlaceholderOp)]
    module = build(te.create_schedule(computed), tensors, target=target or task.target, name="reference")
    params = module.get_function(module.entry_name).info.params
    args = random_arguments(params, seed)
    module(*args)
    return {i: args[i] for i, p in enumerate(params) if p.written}


class LocalRunner:
    """Times built candidates, one at a time, in a spawned worker process.

    Each candidate is called ``number`` times per measurement, ``repeat``
    measurements; with ``min_repeat_ms`` the count per measurement grows until
    one lasts that long (so sub-millisecond kernels are timed over enough
    calls). ``timeout``: seconds one candidate may take. ``cooldown_interval``:
    seconds to wait between candidates. ``check_correctness``: compare each
    candidate's outputs with the task's default schedule first.
    Inputs are seeded random arrays of the parameters' shapes and dtypes.
    """

    _reference_target: Optional[str] = None  # what check_correctness builds the reference for; None: the task's

    def __init__(self, number: int = 5, repeat: int = 1, min_repeat_ms: float = 0, timeout: float = 10,
                 cooldown_interval: float = 0.0, check_correctness: bool = False) -> None:
        if number < 1 or repeat < 1 or min_repeat_ms < 0 or timeout <= 0 or cooldown_interval < 0:
            raise TuningError(f"{type(self).__name__}: number and repeat must be >= 1, min_repeat_ms and "
                              "cooldown_interval >= 0, timeout > 0")
        self.number, self.repeat, self.min_repeat_ms = number, repeat, min_repeat_ms
        self.timeout, self.cooldown_interval = timeout, cooldown_interval
        self.check_correctness = check_correctness
        self._pool: Optional[WorkerPool] = None
        self._references: dict = {}

    def _reference(self, inp: MeasureInput) -> Optional[dict]:
        if not self.check_correctness:
            return None
        key = (inp.task.key, str(inp.task.target))
        if key not in self._references:
            # a cuda task's default (unbound) schedule cannot be lowered for a GPU: the host computes it
            target = self._reference_target or ("llvm" if inp.task.target.kind == "cuda" else None)
            self._references[key] = reference_outputs(inp.task, inp.config, target=target)
        return self._references[key]

    def _job(self, inp: MeasureInput, built: BuildResult) -> dict:
        return {"filename": built.filename, "seed": _INPUT_SEED, "number": self.number,
                "repeat": self.repeat, "min_repeat_ms": self.min_repeat_ms,
                "reference": self._reference(inp)}

    def run(self, inputs: Sequence[MeasureInput], build_results: Sequence[BuildResult]) -> list[MeasureResult]:
        """One MeasureResult per input; build errors pass through with their kind."""
        if self._pool is None:
            self._pool = WorkerPool("runner", 1)
        results = []
        for i, (inp, built) in enumerate(zip(inputs, build_results)):
            if built.error_no != MeasureErrorNo.NO_ERROR:
                results.append(self._unbuilt(built))
                continue
            if i and self.cooldown_interval:
                time.sleep(self.cooldown_interval)
            outcome = self._pool.run([self._job(inp, built)], self.timeout)[0]
            results.append(self._result(inp, built, outcome))
        return results

    @staticmethod
    def _unbuilt(built: BuildResult) -> MeasureResult:
        """The result of a candidate that did not build: its build error, passed through."""
        return MeasureResult((), int(built.error_no), built.error_msg, built.time_cost, time.time())

    def _result(self, inp: MeasureInput, built: BuildResult, outcome: Outcome) -> MeasureResult:
        where = f"config {inp.config.index} of {inp.task.name}"
        all_cost = built.time_cost + outcome.seconds
        if outcome.kind == "timeout":
            error_no, msg = MeasureErrorNo.RUN_TIMEOUT, f"{where}: running took longer than {self.timeout} s"
        elif outcome.kind != "ok":
            error_no, msg = MeasureErrorNo.RUNTIME_DEVICE, f"{where}: {outcome.value}"
        else:
            reply = outcome.value
            if reply["error_no"] == MeasureErrorNo.NO_ERROR:
                return MeasureResult(tuple(reply["costs"]), 0, "", all_cost, time.time())
            error_no, msg = reply["error_no"], f"{where}: {reply['error_msg']}"
        return MeasureResult((), int(error_no), msg, all_cost, time.time())

    def close(self) -> None:
        """Stop the worker process (a later ``run`` starts a new one)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
