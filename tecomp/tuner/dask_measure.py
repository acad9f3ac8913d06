"""Measuring candidates on a Dask distributed cluster: ``DaskBuilder`` and ``DaskRunner``.

Owns the resource naming scheme that routes trials to workers
(``resource_key``, ``worker_resources``), the two functions Dask workers run
(``build_on_worker``, ``measure_on_worker``), the driver's side of submitting
and collecting them, and ``measure_option_for_scheduler`` (what ``tecomp tune
--scheduler`` calls). docs/distributed.md is the user's guide.

The contract is ``LocalBuilder``/``LocalRunner``'s (measure.py), and so is
most of the code: the Dask classes subclass them and reuse their jobs, error
kinds and result mapping. What differs:

* **Isolation on the worker.** Inside each Dask worker process, candidates
  are built and timed by measure.py's ``WorkerPool`` (spawned processes, one
  pool per role kept alive across tasks). A candidate that crashes or hangs
  costs its trial (recorded with its error kind); the Dask worker survives.
* **Routing.** A worker declares each target it measures as a Dask resource
  named by ``resource_key`` (``llvm -mcpu=znver3`` -> ``target:llvm/mcpu:znver3``),
  amount 1. Every build and measure task asks for that resource with amount
  1, so it runs only on a matching worker and a worker does one such task at
  a time: it never times two candidates at once, nor builds while it times.
  A target no worker offers fails fast with a ``TuningError`` naming the
  resource string to start workers with.
* **Plain data across the Dask boundary.** A build task gets task specs
  (``measure.task_spec``) and config JSON and returns the library's bytes; a
  measure task gets those bytes, the timing settings and numpy reference
  outputs. Libraries travel as bytes (builder and runner may be different
  hosts), never as paths; no task, schedule or library object is pickled.
* **Worker loss.** Dask reschedules the tasks of a lost worker on another
  one offering the resource (up to the scheduler's
  ``distributed.scheduler.allowed-failures``); a task that exhausts them, or
  whose target no worker offers any more for ``worker_wait_timeout``
  seconds, is recorded as an error of its trials. Results are fetched as
  soon as each task finishes, so a later loss cannot take them away.

Only the driver writes records (the tuner's ``log_to_db`` callback does); this
module must not. ``distributed`` is imported only when a cluster is used.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from typing import Any, Callable, Optional, Sequence

from .. import config as _config
from ..error import TuningError
from ..target import Target
from .measure import (BuildResult, LocalBuilder, LocalRunner, MeasureInput, MeasureResult, Outcome,
                      WorkerPool, measure_option)

RESOURCE_PREFIX = "target:"
_POLL_S = 0.5


# ---------------------------------------------------------------- resource names

def resource_key(target: Any) -> str:
    """The Dask resource name of the workers that measure ``target``.

    ``target:`` then the kind and the options sorted by name, each as
    ``name:value``, joined by ``/``; commas inside a value (``-mattr``
    feature lists) become ``;``. Dask's ``--resources`` flag splits on
    spaces, commas and ``=``, which target strings contain.
    ``llvm`` -> ``target:llvm``; ``cuda -arch=sm_90`` -> ``target:cuda/arch:sm_90``;
    ``llvm -mcpu=znver3 -mattr=+avx2,+fma`` -> ``target:llvm/mattr:+avx2;+fma/mcpu:znver3``.
    """
    parsed = Target(target) if not isinstance(target, Target) else target
    parts = [parsed.kind] + [f"{name}:{value.replace(',', ';')}" for name, value in sorted(parsed.options.items())]
    key = RESOURCE_PREFIX + "/".join(parts)
    if "=" in key:
        raise TuningError(f"target {str(parsed)!r} has an '=' inside an option value; it cannot be named "
                          "as a Dask worker resource")
    return key


def worker_resources(*targets: Any) -> str:
    """The ``dask worker --resources`` value for a worker measuring ``targets`` (amount 1 each)."""
    if not targets:
        raise TuningError("worker_resources: name at least one target, e.g. worker_resources('llvm')")
    return " ".join(f"{resource_key(t)}=1" for t in targets)


# ---------------------------------------------------------------- the Dask worker's side

_pools: dict[tuple[str, int], tuple[WorkerPool, threading.Lock]] = {}
_pools_lock = threading.Lock()
_last_measurement_end: Optional[float] = None  # monotonic time; guarded by the runner pool's lock


def _process_pool(role: str, size: int) -> tuple[WorkerPool, threading.Lock]:
    """This process's pool of ``size`` ``role`` workers, kept across tasks, and the lock serialising its use."""
    with _pools_lock:
        if (role, size) not in _pools:
            current = multiprocessing.current_process()
            if current.daemon:
                # A Nanny starts its worker as a daemonic process (distributed.worker.daemon), and
                # multiprocessing refuses children to daemons. Our children are daemonic and die
                # with this process, which is what that rule protects.
                current._config["daemon"] = False
            _pools[(role, size)] = (WorkerPool(role, size), threading.Lock())
        return _pools[(role, size)]


def _scratch_dir() -> tempfile.TemporaryDirectory:
    """A directory for the libraries of one Dask task, removed when the task ends (a worker process
    may end by ``os._exit`` or a signal, where no exit handler runs)."""
    return tempfile.TemporaryDirectory(prefix="tecomp-dask-")


def _library_path(scratch: str) -> str:
    # unique per library: a runner process must never dlopen two libraries under one name
    return os.path.join(scratch, f"candidate-{uuid.uuid4().hex}.so")


def _read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def build_on_worker(jobs: list[dict], timeout: float, processes: Optional[int]) -> list[tuple]:
    """Dask task: build ``jobs`` (task spec + config JSON, as ``LocalBuilder`` makes them) here.

    Returns one ``(kind, value, seconds)`` per job, plain data; a built
    candidate's value carries its library as ``"library": bytes``.
    """
    pool, lock = _process_pool("builder", processes or _config.available_cores())
    with _scratch_dir() as scratch:
        outs = [_library_path(scratch) for _ in jobs]
        with lock:
            outcomes = pool.run([dict(job, out=out) for job, out in zip(jobs, outs)], timeout)
        replies = []
        for outcome, out in zip(outcomes, outs):
            value = outcome.value
            if outcome.kind == "ok":
                if value["error_no"] == 0:
                    value = {"error_no": 0, "library": _read_bytes(out), "time_cost": value["time_cost"]}
                else:
                    value = {"error_no": int(value["error_no"]), "error_msg": value["error_msg"]}
            replies.append((outcome.kind, value, outcome.seconds))
        return replies


def measure_on_worker(job: dict, timeout: float, cooldown_interval: float) -> tuple:
    """Dask task: time one candidate here (``job``: ``LocalRunner``'s, with ``"library": bytes``).

    Returns ``(kind, value, seconds)``, plain data. Waits first until
    ``cooldown_interval`` seconds have passed since this worker's last measurement.
    """
    global _last_measurement_end
    pool, lock = _process_pool("runner", 1)
    job = dict(job)
    with _scratch_dir() as scratch:
        path = _library_path(scratch)
        with open(path, "wb") as f:
            f.write(job.pop("library"))
        with lock:
            if _last_measurement_end is not None:
                rest = _last_measurement_end + cooldown_interval - time.monotonic()
                if rest > 0:
                    time.sleep(rest)
            try:
                [outcome] = pool.run([dict(job, filename=path)], timeout)
            finally:
                _last_measurement_end = time.monotonic()
    value = outcome.value
    if outcome.kind == "ok":
        value = dict(value, error_no=int(value["error_no"]))
        if "costs" in value:
            value["costs"] = [float(c) for c in value["costs"]]
    return outcome.kind, value, outcome.seconds


# ---------------------------------------------------------------- the driver's side

class _Cluster:
    """The driver's connection: which workers offer a target, submitting tasks, collecting them."""

    def __init__(self, address_or_client: Any, who: str) -> None:
        try:
            import distributed
        except ImportError:
            raise TuningError(f"{who} needs the 'distributed' package: pip install 'tecomp[dask]'") from None
        self.owned = isinstance(address_or_client, str)
        if self.owned:
            try:
                self.client = distributed.Client(address_or_client, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise TuningError(f"{who}: cannot reach the Dask scheduler at {address_or_client}: {exc}") from None
        elif isinstance(address_or_client, distributed.Client):
            self.client = address_or_client
        else:
            raise TuningError(f"{who} takes a scheduler address such as 'tcp://HOST:8786' or a "
                              f"distributed.Client, got {address_or_client!r}")

    @property
    def address(self) -> str:
        return self.client.scheduler.address

    def workers(self) -> dict[str, dict]:
        return self.client.scheduler_info(n_workers=-1)["workers"]

    def offering(self, key: str) -> dict[str, float]:
        """Address -> declared amount of ``key``, for the workers declaring it."""
        return {address: info["resources"][key] for address, info in self.workers().items()
                if key in (info.get("resources") or {})}

    def require(self, target: Any) -> tuple[str, int]:
        """``target``'s resource key and how many workers offer it; a TuningError if none do."""
        key = resource_key(target)
        offering = self.offering(key)
        if not offering:
            raise TuningError(
                f"no Dask worker of the scheduler at {self.address} offers target '{target}': start workers "
                f"for it with `dask worker {self.address} --nthreads 1 --resources \"{key}=1\"` "
                f"(the value is tecomp.tuner.dask_measure.worker_resources('{target}'))")
        wrong = {address: amount for address, amount in offering.items() if amount != 1}
        if wrong:
            address, amount = next(iter(wrong.items()))
            raise TuningError(f"Dask worker {address} declares resource {key}={amount:g}; declare exactly "
                              f"--resources \"{key}=1\" so that it times one candidate of '{target}' at a time")
        return key, len(offering)

    def submit(self, fn: Callable, *args: Any, key: str, what: str) -> Any:
        return self.client.submit(fn, *args, key=f"tecomp-{what}-{uuid.uuid4().hex}", resources={key: 1},
                                  pure=False)

    def collect(self, submitted: Sequence[tuple[Any, str]], worker_wait_timeout: float) -> list[tuple[str, Any]]:
        """``("ok", result)`` or ``("lost", why)`` per ``(future, resource key)``, in order.

        An exception raised by a task's own code (the measurement machinery,
        not a candidate) is raised here as a TuningError, as LocalRunner would.
        """
        from distributed import KilledWorker

        results: list = [None] * len(submitted)
        pending = {i: future for i, (future, _) in enumerate(submitted)}
        orphaned_since: dict[str, float] = {}
        # Woken by the futures' callbacks rather than by distributed.wait, whose timeout is an
        # exception: its traceback would keep the caller's frames, and with them the caller's
        # BuildResults (whose libraries go when they do), alive until a cyclic collection.
        settled = threading.Event()
        for future in pending.values():
            future.add_done_callback(lambda _: settled.set())
        try:
            while pending:
                woken = settled.wait(_POLL_S)
                settled.clear()
                for i, future in list(pending.items()):
                    if future.status in ("pending", "lost"):  # "lost": Dask is computing it again
                        continue
                    del pending[i]
                    if future.status == "finished":
                        results[i] = ("ok", future.result())
                    elif future.status == "cancelled":
                        results[i] = ("lost", "its Dask task was cancelled")
                    else:
                        exc = future.exception()
                        if not isinstance(exc, KilledWorker):
                            raise TuningError(f"a tecomp task failed on a Dask worker of {self.address}: "
                                              f"{type(exc).__name__}: {exc}") from exc
                        last = getattr(exc.last_worker, "address", exc.last_worker)
                        results[i] = ("lost", f"every Dask worker that ran it died ({exc.allowed_failures + 1} "
                                              f"tries, the last on {last})")
                if pending and not woken:  # a quiet spell: are there still workers for what is left?
                    self._give_up_orphans(submitted, pending, results, orphaned_since, worker_wait_timeout)
        finally:
            if pending:
                self.client.cancel(list(pending.values()))
        return results

    def _give_up_orphans(self, submitted: Sequence[tuple[Any, str]], pending: dict, results: list,
                         orphaned_since: dict, worker_wait_timeout: float) -> None:
        """Record as lost the pending tasks whose resource no worker has offered for ``worker_wait_timeout``."""
        now = time.monotonic()
        for key in {submitted[i][1] for i in pending}:
            if self.offering(key):
                orphaned_since.pop(key, None)
                continue
            if now - orphaned_since.setdefault(key, now) < worker_wait_timeout:
                continue
            for i in [i for i in pending if submitted[i][1] == key]:
                self.client.cancel(pending.pop(i))
                results[i] = ("lost", f"no Dask worker offered {key} for {worker_wait_timeout:g} s")

    def close(self) -> None:
        if self.owned:
            self.client.close()


def _lost(message: str) -> Outcome:
    return Outcome("died", f"lost with its Dask worker: {message}", 0.0)


class DaskBuilder(LocalBuilder):
    """Builds candidates on the Dask workers that offer their target (same contract as LocalBuilder).

    A batch is split into build tasks for the workers offering the target:
    tasks of ``processes_per_worker`` candidates, which a worker builds at
    once in as many spawned processes (Dask hands the next task to whichever
    worker is free), or, by default, one task per worker with an equal
    share, built in as many processes as the worker's host has cores. The
    libraries come back as bytes, kept on the driver in temporary files until
    their BuildResults go.
    ``n_parallel``: candidates per batch, the tuner's batch size (default: 8,
    or twice the number of workers when that is more, counted at first use).
    ``timeout``: seconds one candidate may take to build. Templates must be
    importable on the workers (the module by name, or its file at the same path).
    """

    def __init__(self, address_or_client: Any, timeout: float = 10, n_parallel: Optional[int] = None,
                 processes_per_worker: Optional[int] = None, worker_wait_timeout: float = 60.0) -> None:
        super().__init__(timeout=timeout, n_parallel=n_parallel)
        if processes_per_worker is not None and processes_per_worker < 1:
            raise TuningError(f"DaskBuilder: processes_per_worker must be at least 1, got {processes_per_worker!r}")
        self._n_parallel = n_parallel  # LocalBuilder set the host's cores; here None means "count the workers"
        self.processes_per_worker = processes_per_worker
        self.worker_wait_timeout = worker_wait_timeout
        self._cluster = _Cluster(address_or_client, "DaskBuilder")

    @property
    def n_parallel(self) -> int:
        if self._n_parallel is None:
            from .tuner import DEFAULT_BATCH_SIZE
            self._n_parallel = max(DEFAULT_BATCH_SIZE, 2 * len(self._cluster.workers()))
        return self._n_parallel

    @n_parallel.setter
    def n_parallel(self, value: int) -> None:
        self._n_parallel = value

    @property
    def client(self) -> Any:
        return self._cluster.client

    def build(self, inputs: Sequence[MeasureInput]) -> list[BuildResult]:
        """One BuildResult per input, in order (its ``filename`` a local copy of the worker's library)."""
        groups: dict[str, list[int]] = {}
        workers: dict[str, int] = {}
        for i, inp in enumerate(inputs):
            target = str(inp.task.target)
            if target not in workers:
                workers[target] = self._cluster.require(target)[1]
            groups.setdefault(target, []).append(i)
        jobs = [self._job(inp) for inp in inputs]
        submitted, chunks = [], []
        for target, indices in groups.items():
            size = self.processes_per_worker or -(-len(indices) // workers[target])
            for chunk in (indices[c:c + size] for c in range(0, len(indices), size)):
                payload = [{k: v for k, v in jobs[i].items() if k != "out"} for i in chunk]
                future = self._cluster.submit(build_on_worker, payload, self.timeout, self.processes_per_worker,
                                              key=resource_key(target), what="build")
                submitted.append((future, resource_key(target)))
                chunks.append(chunk)
        outcomes: list = [None] * len(inputs)
        for chunk, (kind, value) in zip(chunks, self._cluster.collect(submitted, self.worker_wait_timeout)):
            for j, i in enumerate(chunk):
                outcomes[i] = self._arrived(jobs[i]["out"], *value[j]) if kind == "ok" else _lost(value)
        return [self._result(inp, outcome) for inp, outcome in zip(inputs, outcomes)]

    @staticmethod
    def _arrived(out: str, kind: str, value: Any, seconds: float) -> Outcome:
        """A worker's build outcome, its library written to ``out`` as LocalBuilder's handler would."""
        if kind == "ok" and "library" in value:
            with open(out, "wb") as f:
                f.write(value["library"])
            value = {"error_no": 0, "filename": out, "time_cost": value["time_cost"]}
        return Outcome(kind, value, seconds)

    def close(self) -> None:
        """Close the connection to the scheduler if this builder opened it."""
        super().close()
        self._cluster.close()


class DaskRunner(LocalRunner):
    """Times built candidates on the Dask workers that offer their target (same contract as LocalRunner).

    One Dask task per candidate; a worker times one candidate at a time, in
    its runner process (kept across tasks), waiting ``cooldown_interval``
    seconds after its previous measurement. ``number``, ``repeat``,
    ``min_repeat_ms``, ``timeout``, ``check_correctness``: as LocalRunner's
    (the reference outputs are computed on the driver, for its own CPU). ``num_threads``:
    threads of the candidates' parallel loops on the workers (default: the driver's
    ``tecomp.config.num_threads()``; set it to the cores the model will run on).
    ``worker_wait_timeout``: seconds a trial waits for some worker offering
    its target to reappear after all have gone, before it is recorded as an error.
    Takes a scheduler address (then ``close`` closes the connection) or a
    ``distributed.Client``.
    """

    _reference_target = "llvm"  # the driver need not be able to run the workers' target

    def __init__(self, address_or_client: Any, number: int = 5, repeat: int = 1, min_repeat_ms: float = 0,
                 timeout: float = 10, cooldown_interval: float = 0.0, check_correctness: bool = False,
                 worker_wait_timeout: float = 60.0, num_threads: Optional[int] = None) -> None:
        super().__init__(number=number, repeat=repeat, min_repeat_ms=min_repeat_ms, timeout=timeout,
                         cooldown_interval=cooldown_interval, check_correctness=check_correctness,
                         num_threads=num_threads)
        self.worker_wait_timeout = worker_wait_timeout
        self._cluster = _Cluster(address_or_client, "DaskRunner")

    @property
    def client(self) -> Any:
        return self._cluster.client

    def run(self, inputs: Sequence[MeasureInput], build_results: Sequence[BuildResult]) -> list[MeasureResult]:
        """One MeasureResult per input; build errors pass through with their kind."""
        keys: dict[str, str] = {}
        for inp, built in zip(inputs, build_results):
            target = str(inp.task.target)
            if built.error_no == 0 and target not in keys:
                keys[target] = self._cluster.require(target)[0]
        results: list = [None] * len(inputs)
        submitted, measured = [], []
        for i, (inp, built) in enumerate(zip(inputs, build_results)):
            if built.error_no != 0:
                results[i] = self._unbuilt(built)
                continue
            job = self._job(inp, built)
            job["library"] = _read_bytes(job.pop("filename"))
            key = keys[str(inp.task.target)]
            future = self._cluster.submit(measure_on_worker, job, self.timeout, self.cooldown_interval,
                                          key=key, what="measure")
            submitted.append((future, key))
            measured.append(i)
        for i, (kind, value) in zip(measured, self._cluster.collect(submitted, self.worker_wait_timeout)):
            outcome = Outcome(*value) if kind == "ok" else _lost(value)
            results[i] = self._result(inputs[i], build_results[i], outcome)
        return results

    def close(self) -> None:
        """Close the connection to the scheduler if this runner opened it."""
        super().close()
        self._cluster.close()


def measure_option_for_scheduler(address: str, target: Any, *, build_timeout: float = 10,
                                 n_parallel: Optional[int] = None, processes_per_worker: Optional[int] = None,
                                 **runner_kwargs: Any) -> dict:
    """``measure_option`` building and timing on the Dask cluster of the scheduler at ``address``.

    Fails at once (TuningError) when no worker offers ``target``. The runner
    owns the connection: ``option["runner"].close()`` closes it.
    ``build_timeout``, ``n_parallel``, ``processes_per_worker`` go to
    DaskBuilder (its ``timeout``, ...); ``runner_kwargs`` to DaskRunner
    (number, repeat, min_repeat_ms, timeout, cooldown_interval, check_correctness).
    """
    runner = DaskRunner(address, **runner_kwargs)
    try:
        runner._cluster.require(target)
        builder = DaskBuilder(runner.client, timeout=build_timeout, n_parallel=n_parallel,
                              processes_per_worker=processes_per_worker)
    except BaseException:
        runner.close()
        raise
    return measure_option(builder, runner)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``python -m tecomp.tuner.dask_measure TARGET...``: print the ``--resources`` value for a worker."""
    targets = list(sys.argv[1:] if argv is None else argv)
    if not targets:
        print('usage: python -m tecomp.tuner.dask_measure "llvm -mcpu=znver3" [TARGET...]', file=sys.stderr)
        raise SystemExit(2)
    print(worker_resources(*targets))


if __name__ == "__main__":
    main()
