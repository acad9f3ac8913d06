"""Measuring candidate configs: build them in parallel processes, time them in an isolated one.

Owns ``MeasureInput``/``MeasureResult``/``MeasureErrorNo`` (AutoTVM's
numbering), ``measure_option``, ``LocalBuilder``, ``LocalRunner`` and
``measure_batch``, and the pool of spawned worker processes both use
(``WorkerPool``, whose job outcomes are ``Outcome``s; ``dask_measure`` runs
the same pool inside each Dask worker).

Isolation: candidates are instantiated, lowered and compiled in worker
processes of the builder (nvcc for a cuda task), and timed in a worker
process of the runner (on GPU 0 for a CUDA library); the XGB tuner's
loop-IR features are computed in worker processes too (``FeaturePool``). A
worker is reused across candidates; one that crashes (a signal) or exceeds
the per-candidate timeout costs only that candidate: it is killed, its
candidate is recorded with an error kind and a message, and a fresh worker
takes the next one. Workers are fresh interpreters (``python -c``, not
``fork``: libgomp, used by compiled code, does not survive ``fork``) that
never import the tuner's main script.

Workers never outlive the process that started them: each asks the kernel
for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``, Linux; the parent
is the *thread* that started it, so pools belong to long-lived threads),
and a pool stops its workers when it is closed, collected or at exit. Each
worker runs under an address-space limit (``RLIMIT_AS``): ``memory_limit``
bytes of the builder/runner, else ``TECOMP_WORKER_MEMORY``, else half the
physical memory shared among the pool's workers (at least 2 GiB). A
candidate that exceeds it fails with a MemoryError or kills its worker;
either way it is a recorded error. A runner timing CUDA code lifts it (the
CUDA driver reserves address space far beyond what it uses).

**Templates travel by value.** A job carries the task's name, arguments and
target and its template function serialized by value with cloudpickle
(with the functions and globals of its module that it uses); the worker
recreates the task from them and never imports the user's module or script
(tecomp's own templates excepted). So a template defined in a script
without an ``if __name__ == "__main__":`` guard, in a notebook or in a REPL
tunes as well as one in a module. cloudpickle is the one place pickled code crosses
a process boundary, and only from the tuner to the workers it started.

Jobs and replies are plain data (task name/args/target, template bytes,
config JSON, file names, numpy arrays, floats); this module never pickles a
task, schedule or library. It must not search configs or write records.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

import cloudpickle
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
    spent building and measuring the candidate; ``timestamp``: when the measurement ended;
    ``num_threads``: the threads parallel loops ran with (None: not a CPU timing)."""

    costs: tuple
    error_no: int
    error_msg: str
    all_cost: float
    timestamp: float
    num_threads: Optional[int] = None


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


def _check_memory_limit(owner: Any, memory_limit: Optional[int]) -> Optional[int]:
    if memory_limit is not None and (not isinstance(memory_limit, int) or memory_limit < (64 << 20)):
        raise TuningError(f"{type(owner).__name__}: memory_limit must be a number of bytes of at least "
                          f"64 MiB (or None for the default), got {memory_limit!r}")
    return memory_limit


def measure_option(builder: Union["LocalBuilder", str], runner: Union["LocalRunner", str]) -> dict:
    """The measurement setup a tuner's ``tune`` takes; ``"local"`` (TVM's shorthand) means a
    ``LocalBuilder()`` / ``LocalRunner()`` with default settings."""
    for role, value in (("builder", builder), ("runner", runner)):
        if isinstance(value, str) and value != "local":
            raise TuningError(f"measure_option: {role}={value!r}; the only named {role} is 'local'")
    return {"builder": LocalBuilder() if builder == "local" else builder,
            "runner": LocalRunner() if runner == "local" else runner}


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
    """How a job ended: kind is "ok" (value: the handler's reply), "error", "died" or "timeout";
    ``seconds``: how long the job ran once a ready worker had it; ``parts``: what a streaming
    handler (one that yields a reply per item) sent before the job ended."""

    kind: str
    value: Any
    seconds: float
    parts: tuple = ()


_PR_SET_PDEATHSIG = 1
_MIN_DEFAULT_MEMORY = 2 << 30


def default_worker_memory(n_workers: int) -> Optional[int]:
    """Bytes of address space each of ``n_workers`` workers may use: ``TECOMP_WORKER_MEMORY``,
    else half the physical memory shared among them (at least 2 GiB, at most all of it);
    None where the machine does not say how much memory it has."""
    configured = _config.worker_memory()
    if configured is not None:
        return configured
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return min(physical, max(physical // (2 * max(n_workers, 1)), _MIN_DEFAULT_MEMORY))


def _die_with_parent(parent_pid: int) -> None:
    """Ask the kernel for SIGKILL when the parent dies (Linux); exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def _worker_main(role: str, fd: str, parent_pid: str, memory: str) -> None:
    """Entry point of a worker process (see ``_Worker``): set it up, then serve jobs."""
    _die_with_parent(int(parent_pid))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the tuner's to handle; it stops us
    if int(memory) > 0:
        import resource

        # the soft limit only, so that a runner timing CUDA code can lift it (see _RunHandler)
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        soft = int(memory) if hard == resource.RLIM_INFINITY else min(int(memory), hard)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    _serve(Connection(int(fd)), role)


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
            reply = handler(job)
            if inspect.isgenerator(reply):  # a streaming handler: one message per item
                for part in reply:
                    conn.send(("part", part))
                reply = None
            reply = ("ok", reply)
        except Exception as exc:  # the candidate's failure (MemoryError included), reported as data
            reply = ("error", _describe(exc))
        conn.send(reply)


_WORKER_CODE = ("import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
                "from tecomp.tuner.measure import _worker_main; _worker_main(*sys.argv[2:])")


class _Worker:
    """One worker process (a fresh interpreter joined by a socket pair) and its current job."""

    def __init__(self, role: str, memory: Optional[int]) -> None:
        self.name = f"tecomp-{role}"
        parent_end, child_end = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _WORKER_CODE, json.dumps(sys.path), role, str(child_end.fileno()),
                 str(os.getpid()), str(memory or 0)],
                pass_fds=(child_end.fileno(),), stdin=subprocess.DEVNULL)
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        self.conn = Connection(parent_end.detach())
        self.ready = False
        self.job_index: Optional[int] = None
        self.job: Any = None
        self.parts: list = []
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
        """Read what the worker sent: None if the job goes on (the worker said it is ready, or
        sent one item of a streaming job), else the job's outcome."""
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            code = self._reap()
            if not self.ready:
                raise TuningError(f"a {self.name} worker process died while starting "
                                  f"({_signal_name(code)})") from None
            return self._finish("died", f"worker process died with {_signal_name(code)}")
        if kind == "ready":
            self.ready = True
            if self.job is not None:
                self._send(timeout)
            return None
        if kind == "part":
            self.parts.append(value)
            self.deadline = time.monotonic() + timeout  # the timeout is per item
            return None
        return self._finish(kind, value)

    def _reap(self) -> Optional[int]:
        try:
            return self.process.wait(1.0)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.returncode

    def expire(self) -> Outcome:
        if not self.ready:
            raise TuningError(f"a {self.name} worker process did not start within "
                              f"{_STARTUP_TIMEOUT_S:.0f} s")
        self.kill()
        return self._finish("timeout", None)

    def _finish(self, kind: str, value: Any) -> Outcome:
        outcome = Outcome(kind, value, time.monotonic() - self.started, tuple(self.parts))
        self.job_index, self.job, self.parts = None, None, []
        return outcome

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.conn.close()


def _stop_workers(workers: list) -> None:
    for worker in workers:
        if worker is not None:
            worker.kill()


class WorkerPool:
    """``size`` reusable worker processes of one role; a crashed or hung one is replaced.

    ``memory``: each worker's address-space limit in bytes (None: ``default_worker_memory``).
    """

    def __init__(self, role: str, size: int, memory: Optional[int] = None) -> None:
        self.role = role
        self.memory = memory if memory is not None else default_worker_memory(size)
        self.workers: list[Optional[_Worker]] = [None] * size
        self._finalizer = weakref.finalize(self, _stop_workers, self.workers)

    def _idle_worker(self) -> Optional[_Worker]:
        for i, worker in enumerate(self.workers):
            # a dead worker that still holds a job is left to _collect, which reports the job
            if worker is None or (worker.job is None and not worker.alive):
                if worker is not None:
                    worker.kill()
                worker = self.workers[i] = _Worker(self.role, self.memory)
            if worker.job is None:
                return worker
        return None

    def run(self, jobs: Sequence[Any], timeout: float) -> list[Outcome]:
        """Every job's outcome, in order; each job (each item of a streaming job) gets
        ``timeout`` seconds once a worker has it."""
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


# ---------------------------------------------------------------- tasks in workers

_template_bytes: "weakref.WeakKeyDictionary[Callable, bytes]" = weakref.WeakKeyDictionary()


def task_spec(task: Any) -> dict:
    """The plain data a worker recreates ``task`` from (see ``template_spec``)."""
    return template_spec(task.name, task.args, task.target, task.func)


def template_spec(name: str, args: Sequence[Any], target: Any, func: Callable) -> dict:
    """The plain data a worker recreates the task of template ``name`` (function ``func``) on
    ``args`` for ``target`` from: those, the module defining the template, and the function
    itself serialized by value (cloudpickle bytes)."""
    if func not in _template_bytes:
        try:
            _template_bytes[func] = _dumps_by_value(func)
        except Exception as exc:  # noqa: BLE001 - whatever the template's globals hold
            raise TuningError(f"template {name} cannot be sent to the worker processes: cloudpickle could "
                              f"not serialize {getattr(func, '__qualname__', func)!r} and what it refers "
                              f"to ({_describe(exc)})") from None
    return {"name": name, "args": tuple(args), "target": str(target),
            "module": getattr(func, "__module__", None) or "", "template": _template_bytes[func]}


def _dumps_by_value(func: Callable) -> bytes:
    """cloudpickle bytes of ``func`` with everything of its module by value (a helper it calls
    too), so that unpickling never imports a user's module; tecomp's modules go by reference."""
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    name = getattr(module, "__name__", "")
    if module is None or name == "__main__" or name.split(".")[0] == "tecomp" \
            or name in cloudpickle.list_registry_pickle_by_value():
        return cloudpickle.dumps(func)  # __main__ goes by value anyway
    cloudpickle.register_pickle_by_value(module)
    try:
        return cloudpickle.dumps(func)
    finally:
        cloudpickle.unregister_pickle_by_value(module)


class _Tasks:
    """Tasks recreated inside a worker from ``task_spec``s, cached."""

    def __init__(self) -> None:
        from . import task as task_module

        self._module = task_module
        self._tasks: dict = {}

    def get(self, spec: dict) -> Any:
        key = (spec["name"], repr(spec["args"]), spec["target"], spec["template"])
        if key not in self._tasks:
            try:
                self._tasks[key] = self._create(spec)
            except Exception as exc:
                raise TuningError(f"the worker process could not recreate task {spec['name']} "
                                  f"(template from module {spec['module'] or '?'}): {_describe(exc)}") from None
        return self._tasks[key]

    def _create(self, spec: dict) -> Any:
        name, registry = spec["name"], self._module._TEMPLATES
        if spec["module"].startswith("tecomp."):
            importlib.import_module(spec["module"])  # tecomp's own templates register on import
        if name in registry:
            return self._module.create(name, tuple(spec["args"]), spec["target"])
        # The shipped copy; a user's module or script is never imported by name here (a script
        # without a __main__ guard would tune again). It is registered only while the task is
        # made, so a later import of its module (by another template's helper) cannot clash.
        func = cloudpickle.loads(spec["template"])
        if name in registry:  # loading it imported its module (for a helper), which registered it
            return self._module.create(name, tuple(spec["args"]), spec["target"])
        registry[name] = func
        try:
            return self._module.create(name, tuple(spec["args"]), spec["target"])
        finally:
            registry.pop(name, None)


class _BuildHandler:
    """Builds candidates inside a builder worker."""

    def __init__(self) -> None:
        from ..codegen import compile_library
        from ..lower.driver import lower
        from .space import ConfigEntity

        self._compile, self._lower = compile_library, lower
        self._config_from_json = ConfigEntity.from_json_dict
        self._tasks = _Tasks()

    def __call__(self, job: dict) -> dict:
        start = time.perf_counter()
        try:
            task = self._tasks.get(job["task"])
            sch, args = task.instantiate(self._config_from_json(task.config_space, job["config"]))
        except Exception as exc:
            return {"error_no": MeasureErrorNo.INSTANTIATION_ERROR, "error_msg": _describe(exc)}
        try:
            func = self._lower(sch, args, name="candidate", target=task.target)["candidate"]
            # a runner worker loads thousands of candidates and never unloads one: none keeps blocks
            library = self._compile([func], task.target, bound_check=job.get("bound_check", False),
                                    keep_blocks=False)
            shutil.copyfile(library.so_path, job["out"])
        except Exception as exc:
            return {"error_no": MeasureErrorNo.COMPILE_HOST, "error_msg": _describe(exc)}
        return {"error_no": MeasureErrorNo.NO_ERROR, "filename": job["out"],
                "time_cost": time.perf_counter() - start}


class _FeatureHandler:
    """Loop-IR features of configs inside a feature worker: a streaming handler, one
    ``(features or None, error message)`` per config of the job."""

    def __init__(self) -> None:
        from ..lower.driver import lower
        from .features import extract_features
        from .space import ConfigEntity

        self._lower, self._extract = lower, extract_features
        self._config_from_json = ConfigEntity.from_json_dict
        self._tasks = _Tasks()

    def __call__(self, job: dict) -> Any:
        task = self._tasks.get(job["task"])
        for config in job["configs"]:
            try:
                sch, args = task.instantiate(self._config_from_json(task.config_space, config))
                yield self._extract(next(iter(self._lower(sch, args)))), ""
            except Exception as exc:  # this config's failure; the next one goes on
                yield None, _describe(exc)


class FeaturePool:
    """Loop-IR features (``features.extract_features``) of a task's configs, computed in
    ``n_parallel`` worker processes, so a config that crashes, hangs or exhausts memory
    while it is instantiated or lowered costs only itself.

    Configs go to the workers in chunks (at most ``chunk`` each); ``timeout`` is per config.
    A config whose worker dies or times out is answered with an error, and the rest of its
    chunk is computed again in a fresh worker.
    """

    def __init__(self, n_parallel: int = 1, timeout: float = 10, memory_limit: Optional[int] = None,
                 chunk: int = 64) -> None:
        self.n_parallel, self.timeout, self.chunk = n_parallel, timeout, chunk
        self._pool = WorkerPool("features", n_parallel, memory_limit)

    def features(self, spec: dict, configs: Sequence[dict]) -> list[tuple[Optional[np.ndarray], str]]:
        """``(features, "")`` or ``(None, why not)`` per config (JSON dicts) of the task ``spec``."""
        answers: list = [None] * len(configs)
        todo = list(range(len(configs)))
        while todo:
            size = min(self.chunk, -(-len(todo) // self.n_parallel))
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
            jobs = [{"task": spec, "configs": [configs[i] for i in chunk]} for chunk in chunks]
            todo = []
            for chunk, outcome in zip(chunks, self._pool.run(jobs, self.timeout)):
                for i, part in zip(chunk, outcome.parts):
                    answers[i] = part
                rest = chunk[len(outcome.parts):]
                if outcome.kind == "ok" or not rest:
                    continue
                if outcome.kind == "error":  # the task itself could not be recreated
                    answers_left = (None, str(outcome.value))
                    for i in rest:
                        answers[i] = answers_left
                    continue
                why = (f"took longer than {self.timeout} s" if outcome.kind == "timeout"
                       else f"its {outcome.value}")
                answers[rest[0]] = (None, f"computing its features {why}")
                todo.extend(rest[1:])
        return answers

    def close(self) -> None:
        """Stop the worker processes."""
        self._pool.close()


class LocalBuilder:
    """Instantiates, lowers and compiles candidates in ``n_parallel`` spawned worker processes.

    ``timeout``: seconds one candidate may take (a worker still starting does
    not count). ``n_parallel``: worker processes, by default one per core
    available. ``memory_limit``: bytes of address space per worker (default:
    see the module docstring); a candidate exceeding it is a recorded error.
    ``bound_check``: candidates check every buffer access (``tecomp.build(...,
    bound_check=True)``), so with ``LocalRunner(check_correctness=True)`` one that
    reads or writes out of bounds is a recorded runtime error, not a silent wrong
    read; its timings then include the checks.
    """

    def __init__(self, timeout: float = 10, n_parallel: Optional[int] = None,
                 memory_limit: Optional[int] = None, bound_check: bool = False) -> None:
        if timeout <= 0 or (n_parallel is not None and n_parallel < 1):
            raise TuningError(f"{type(self).__name__}: timeout must be positive and n_parallel at least 1, "
                              f"got timeout={timeout!r}, n_parallel={n_parallel!r}")
        self.timeout = timeout
        self.n_parallel = n_parallel or _config.available_cores()
        self.memory_limit = _check_memory_limit(self, memory_limit)
        self.bound_check = bool(bound_check)
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
        return {"task": task_spec(inp.task), "config": inp.config.to_json_dict(), "out": out,
                "bound_check": self.bound_check}

    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        """One BuildResult per input, in order."""
        if self._pool is None:
            self._pool = WorkerPool("builder", self.n_parallel, self.memory_limit)
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


def _lift_memory_limit() -> None:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


class _RunHandler:
    """Times candidates inside the runner worker: a CPU library on the CPU, a CUDA library on
    GPU 0 (arguments copied to the device; CUDA-event timing). A job naming a ``task`` asks
    for the reference outputs of ``check_correctness`` instead."""

    def __init__(self) -> None:
        from ..runtime import cpu, cuda, load_module, nd, set_num_threads
        from .space import ConfigEntity

        self._load, self._devices, self._nd = load_module, {"cpu": cpu(0), "cuda": cuda(0)}, nd
        self._set_num_threads = set_num_threads
        self._config_from_json = ConfigEntity.from_json_dict
        self._tasks = _Tasks()

    def _placed(self, arrays: list[np.ndarray], dev: Any) -> list[Any]:
        return [self._nd.array(a, dev) for a in arrays] if dev.kind == "cuda" else arrays

    def __call__(self, job: dict) -> dict:
        if "task" in job:
            task = self._tasks.get(job["task"])
            config = self._config_from_json(task.config_space, job["config"])
            return reference_outputs(task, config, job["seed"], job["target"])
        if job.get("device") == "cuda":
            _lift_memory_limit()  # the CUDA driver reserves address space far beyond what it uses
        if job.get("reference_error"):
            return {"error_no": MeasureErrorNo.INSTANTIATION_ERROR,
                    "error_msg": f"no reference outputs to check it against: {job['reference_error']}"}
        module = self._load(job["filename"])
        func = module.get_function(module.entry_name)
        dev = self._devices[module.device_kind]
        if dev.kind == "cpu":
            self._set_num_threads(job["num_threads"])
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


_HANDLERS: dict[str, Callable[[], Callable[[Any], Any]]] = {"builder": _BuildHandler, "runner": _RunHandler,
                                                           "features": _FeatureHandler}


def reference_outputs(task: Any, config: Any, seed: int = _INPUT_SEED,
                      target: Any = None) -> dict[int, np.ndarray]:
    """Outputs of ``task``'s default schedule (no config applied) on the seeded random inputs.

    Built and run in the calling process (``LocalRunner`` calls it in its worker, as the
    template is instantiated at ``config`` to get the tensors): the default schedule is the plain loop nest
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
    calls). ``num_threads``: threads the CPU candidates' parallel loops run with, as the
    model will (default: ``tecomp.config.num_threads()``, all cores unless
    ``TECOMP_NUM_THREADS``); records keep it. ``timeout``: seconds one candidate may take. ``cooldown_interval``:
    seconds to wait between candidates. ``check_correctness``: compare each
    candidate's outputs with the task's default schedule first.
    ``memory_limit``: bytes of address space of the worker (default: see the
    module docstring). Inputs are seeded random arrays of the parameters'
    shapes and dtypes.
    """

    _reference_target: Optional[str] = None  # what check_correctness builds the reference for; None: the task's

    def __init__(self, number: int = 5, repeat: int = 1, min_repeat_ms: float = 0, timeout: float = 10,
                 cooldown_interval: float = 0.0, check_correctness: bool = False,
                 memory_limit: Optional[int] = None, num_threads: Optional[int] = None) -> None:
        if number < 1 or repeat < 1 or min_repeat_ms < 0 or timeout <= 0 or cooldown_interval < 0:
            raise TuningError(f"{type(self).__name__}: number and repeat must be >= 1, min_repeat_ms and "
                              "cooldown_interval >= 0, timeout > 0")
        if num_threads is not None and (not isinstance(num_threads, int) or isinstance(num_threads, bool)
                                        or num_threads < 1):
            raise TuningError(f"{type(self).__name__}: num_threads must be a positive integer, got {num_threads!r}")
        self.num_threads = num_threads or _config.num_threads()
        self.number, self.repeat, self.min_repeat_ms = number, repeat, min_repeat_ms
        self.timeout, self.cooldown_interval = timeout, cooldown_interval
        self.check_correctness = check_correctness
        self.memory_limit = _check_memory_limit(self, memory_limit)
        self._pool: Optional[WorkerPool] = None
        self._references: dict = {}

    def _reference(self, inp: MeasureInput) -> tuple[Optional[dict], str]:
        """The task's reference outputs (None without check_correctness), or why there are none.

        Computed in the runner's worker process from the template at this candidate's config;
        a failure there (a crash, a hang) is this candidate's error, and the next candidate
        tries again."""
        if not self.check_correctness:
            return None, ""
        key = (inp.task.key, str(inp.task.target))
        if key not in self._references:
            # a cuda task's default (unbound) schedule cannot be lowered for a GPU: the host computes it
            target = self._reference_target or ("llvm" if inp.task.target.kind == "cuda" else str(inp.task.target))
            job = {"task": task_spec(inp.task), "config": inp.config.to_json_dict(), "seed": _INPUT_SEED,
                   "target": target}
            outcome = self._worker_pool().run([job], self.timeout)[0]
            if outcome.kind != "ok":
                why = f"took longer than {self.timeout} s" if outcome.kind == "timeout" else outcome.value
                return None, f"computing them failed: {why}"
            self._references[key] = outcome.value
        return self._references[key], ""

    def _job(self, inp: MeasureInput, built: BuildResult) -> dict:
        reference, reference_error = self._reference(inp)
        return {"filename": built.filename, "seed": _INPUT_SEED, "number": self.number,
                "repeat": self.repeat, "min_repeat_ms": self.min_repeat_ms,
                "reference": reference, "reference_error": reference_error, "num_threads": self.num_threads,
                "device": str(inp.task.target).split()[0]}  # the target kind

    def _worker_pool(self) -> WorkerPool:
        if self._pool is None:
            self._pool = WorkerPool("runner", 1, self.memory_limit)
        return self._pool

    def run(self, inputs: Sequence[MeasureInput], build_results: Sequence[BuildResult]) -> list[MeasureResult]:
        """One MeasureResult per input; build errors pass through with their kind."""
        results = []
        for i, (inp, built) in enumerate(zip(inputs, build_results)):
            if built.error_no != MeasureErrorNo.NO_ERROR:
                results.append(self._unbuilt(built))
                continue
            if i and self.cooldown_interval:
                time.sleep(self.cooldown_interval)
            outcome = self._worker_pool().run([self._job(inp, built)], self.timeout)[0]
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
                threads = self.num_threads if str(inp.task.target).split()[0] == "llvm" else None
                return MeasureResult(tuple(reply["costs"]), 0, "", all_cost, time.time(), threads)
            error_no, msg = reply["error_no"], f"{where}: {reply['error_msg']}"
        return MeasureResult((), int(error_no), msg, all_cost, time.time())

    def close(self) -> None:
        """Stop the worker process (a later ``run`` starts a new one)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
