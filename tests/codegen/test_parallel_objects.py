"""A library split over LLVM modules compiled in worker processes (codegen.parallel_objects) runs
like one compiled in process: the error state and the callback slot the modules share live in one
of them, a failing module names its functions, and a dead worker is a BuildError."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest

import tecomp
from tecomp import config, te, tir
from tecomp.codegen import llvm_worker, parallel_objects
from tecomp.codegen.build import _link, cpu_and_features
from tecomp.error import BuildError
from tecomp.runtime import AllocationError
from tecomp.runtime.module import load_module
from tecomp.target import Target

_TINY_IR = "define i32 @seven() {\n  ret i32 7\n}\n"


def _scale(name: str):
    A = te.placeholder((13,), name="A")
    B = te.compute((13,), lambda i: A[i] * 3.0 + 1.0, name="B")
    return tecomp.lower(te.create_schedule(B.op), [A, B], name=name)[name]


def _huge_intermediate(name: str):
    """A function whose 16 TiB intermediate fails to allocate at run time."""
    A = te.placeholder((7,), name="A")
    B = te.compute((1 << 22, 1 << 20), lambda i, j: A[j % 7] + 1.0, name="B_huge")
    r = te.reduce_axis((0, 1 << 20), name="r")
    C = te.compute((1,), lambda i: te.sum(B[i, r], axis=r), name="C")
    return tecomp.lower(te.create_schedule(C.op), [A, C], name=name)[name]


def _packed(name: str):
    @tecomp.register_func("tests.codegen.fails", override=True)
    def fails(out):
        raise ValueError("packed function failed on purpose")

    C = te.extern((4,), [], lambda ins, outs: tir.call_packed("tests.codegen.fails", outs[0]),
                  name="C", dtype="float32")
    return tecomp.lower(te.create_schedule(C.op), [C], name=name)[name]


@pytest.fixture
def workers(monkeypatch):
    """Every module goes to one of two worker processes."""
    monkeypatch.setattr(parallel_objects, "MODULES_PER_WORKER", 1)
    monkeypatch.setenv("TECOMP_BUILD_JOBS", "2")


def _library(funcs, directory: Path):
    with parallel_objects.ObjectCompiler(Target("llvm"), len(funcs)) as compiler:
        for func in funcs:
            compiler.add([func])
        objects = compiler.finish()
        started = list(compiler._workers)  # after finish: the pool's threads start them as they run
    assert len(objects) == len(funcs) + 1  # one per group, and the owner of metadata and shared state
    return load_module(_link(objects, directory, "lib", ["gomp", "m"])), started


@pytest.mark.parametrize("remote", [True, False], ids=["workers", "in-process"])
def test_split_library_shares_error_state_and_callback_slot(request, remote):
    if remote:
        request.getfixturevalue("workers")
    with tempfile.TemporaryDirectory() as tmp:
        lib, started = _library([_scale("scale"), _huge_intermediate("huge"), _packed("packed")], Path(tmp))
        assert bool(started) == remote
        a, b = np.arange(13, dtype="float32"), np.zeros(13, "float32")
        lib["scale"](a, b)
        np.testing.assert_allclose(b, a * 3 + 1)
        for _ in range(2):  # the shared error code is cleared after each failure
            with pytest.raises(AllocationError, match="cannot allocate 17592186044416 bytes for buffer B_huge"):
                lib["huge"](np.arange(7, dtype="float32"), np.zeros(1, "float32"))
        with pytest.raises(ValueError, match="packed function failed on purpose"):
            lib["packed"](np.zeros(4, "float32"))
        lib["scale"](a, b)  # a failure in one module leaves the others working
        np.testing.assert_allclose(b, a * 3 + 1)


def test_worker_protocol_answers_object_code_or_llvm_error():
    requests = io.BytesIO()
    for text in (_TINY_IR, "define i32 @broken( {"):
        llvm_worker.write_frame(requests, b"1")
        llvm_worker.write_frame(requests, text.encode())
    requests.seek(0)
    replies = io.BytesIO()
    llvm_worker.serve(*cpu_and_features(Target("llvm")), requests, replies)
    replies.seek(0)
    assert llvm_worker.read_frame(replies) == b"ok"
    assert llvm_worker.read_frame(replies).startswith(b"\x7fELF")
    assert llvm_worker.read_frame(replies) == b"error"
    assert b"expected" in llvm_worker.read_frame(replies)
    assert llvm_worker.read_frame(replies) is None


def test_a_dead_worker_is_a_build_error_naming_the_functions(workers, monkeypatch):
    monkeypatch.setattr(parallel_objects, "_START_WORKER", "import os; os._exit(3)")
    with pytest.raises(BuildError, match=r"LLVM worker process compiling function scale_0 died \(exit status 3\)"):
        with parallel_objects.ObjectCompiler(Target("llvm"), 2) as compiler:
            compiler.add([_scale("scale_0")])
            compiler.add([_scale("scale_1")])
            compiler.finish()


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_build_jobs_setting_is_rejected(monkeypatch, value):
    monkeypatch.setenv("TECOMP_BUILD_JOBS", value)
    with pytest.raises(BuildError, match=rf"TECOMP_BUILD_JOBS='{value}': expected a whole number"):
        config.build_jobs()


def test_duplicate_function_names_are_rejected():
    with parallel_objects.ObjectCompiler(Target("llvm"), 2) as compiler:
        compiler.add([_scale("twice")])
        with pytest.raises(BuildError, match="function 'twice' is defined twice"):
            compiler.add([_scale("twice")])
