"""Compiling a large library's kernels to object code in worker processes while the caller lowers.

A model has a hundred kernels or more, and LLVM's optimization and code
generation of them takes as long as lowering them; llvmlite serializes its
calls with one lock, so threads cannot share that work. ``ObjectCompiler``
takes the kernels a few at a time (``add``): each group becomes its own LLVM
module, generated here and compiled by one of a few worker processes
(:mod:`.llvm_worker`, started as plain scripts: nothing of the caller's
program runs in them) while the caller goes on. ``finish`` adds the module
that owns the library's metadata and shared state (see ``ModuleEmitter``)
and returns the object files, which link into one library like the single
object of ``compile_llvm``. Small builds compile in process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Optional, Sequence

from .. import config
from ..error import BuildError
from ..target import Target
from ..tir.stmt import PrimFunc
from . import llvm_worker
from .build import cpu_and_features, imported_llvm, metadata_json, target_machine
from .llvm import ModuleEmitter

MODULES_PER_WORKER = 8  # fewer modules than this per worker: compiling in process is as fast


class _WorkerDied(Exception):
    pass


# Runs llvm_worker.py by path with the caller's sys.path and not the script's own directory,
# where tecomp/codegen's modules would shadow others of the same name.
_START_WORKER = "import runpy, sys; del sys.path[0]; runpy.run_path(sys.argv[1], run_name='__main__')"


class _Worker:
    """One ``llvm_worker`` process and its pipes."""

    def __init__(self, cpu: str, features: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen([sys.executable, "-c", _START_WORKER, llvm_worker.__file__, cpu, features],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def compile(self, texts: Sequence[str]) -> bytes:
        """Object code of ``texts`` (RuntimeError: LLVM's message; _WorkerDied: the process is gone)."""
        try:
            llvm_worker.write_frame(self.proc.stdin, str(len(texts)).encode())
            for text in texts:
                llvm_worker.write_frame(self.proc.stdin, text.encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise _WorkerDied from None
        status, payload = llvm_worker.read_frame(self.proc.stdout), llvm_worker.read_frame(self.proc.stdout)
        if status == b"ok" and payload is not None:
            return payload
        if status == b"error" and payload is not None:
            raise RuntimeError(payload.decode(errors="replace"))
        raise _WorkerDied

    def close(self) -> Optional[int]:
        """End the process; its exit status."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class ObjectCompiler:
    """Object files of a library whose kernels arrive in groups (``modules``: about how many groups
    will come, which sizes the worker pool); use as a context manager."""

    def __init__(self, target: Target, modules: int) -> None:
        self.target = target
        self._tm = target_machine(target)
        self._cpu, self._features = cpu_and_features(target)
        self._funcs: list[PrimFunc] = []
        self._names: set[str] = set()
        self._shared: set[str] = set()
        self._imported: list[str] = []
        self._pending: list[Future] = []
        jobs = min(config.build_jobs(), modules // MODULES_PER_WORKER)
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="tecomp-llvm") if jobs > 1 else None
        self._local = threading.local()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "ObjectCompiler":
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for worker in self._workers:
            worker.close()

    def _worker(self) -> _Worker:
        """This pool thread's worker process, started on first use."""
        worker = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = _Worker(self._cpu, self._features)
            with self._lock:
                self._workers.append(worker)
        return worker

    def _compile(self, texts: list[str], names: str, remote: bool) -> bytes:
        try:
            if not remote:
                return llvm_worker.object_code(self._tm, texts)
            try:
                return self._worker().compile(texts)
            except _WorkerDied:
                status = self._local.worker.close()
                self._local.worker = None  # the next group starts a fresh process
                raise BuildError(f"the LLVM worker process compiling {names} died (exit status {status})") from None
        except RuntimeError as exc:
            raise BuildError(f"LLVM rejected the IR generated for {names}: {exc}") from None

    def _submit(self, emitter: ModuleEmitter, names: str, imported: Sequence[str]) -> None:
        texts = [str(emitter.module), *imported]
        if self._pool is not None:
            self._pending.append(self._pool.submit(self._compile, texts, names, True))
            return
        done: Future = Future()
        try:
            done.set_result(self._compile(texts, names, False))
        except BuildError as exc:
            done.set_exception(exc)
        self._pending.append(done)

    def _emitter(self, state: str) -> ModuleEmitter:
        return ModuleEmitter(self._tm.triple, str(self._tm.target_data), self._features, state=state)

    def add(self, funcs: Sequence[PrimFunc]) -> None:
        """Generate the IR of ``funcs`` now and compile it in the background."""
        emitter = self._emitter("import")
        for func in funcs:
            if func.name in self._names:
                raise BuildError(f"function {func.name!r} is defined twice in one build")
            self._names.add(func.name)
            emitter.add_primfunc(func)
        self._funcs.extend(funcs)
        self._shared |= emitter.shared_used
        imported = [t for t in imported_llvm(funcs) if t not in self._imported]
        self._imported.extend(imported)
        self._submit(emitter, "function " + ", ".join(f.name for f in funcs), imported)

    def finish(self) -> list[bytes]:
        """The object files: every group's, then the owner's of the metadata and shared state."""
        owner = self._emitter("export")
        owner.define_shared(self._shared)
        owner.add_metadata(metadata_json(self._funcs, self.target))
        self._submit(owner, "the library's metadata", [])
        return [f.result() for f in self._pending]

