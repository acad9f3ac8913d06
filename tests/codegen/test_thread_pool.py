"""The thread pool parallel loops run on (runtime/thread_pool.c): several callers at once, a
forked child, and an object file linked without it (libgomp's team instead)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.codegen.llvm_parallel import GRAIN
from tecomp.runtime import get_num_threads, set_num_threads

from concurrent_calls import failures_of_concurrent_calls

ROWS, COLS = 61, 1201  # odd extents: chunks do not divide the rows


@pytest.fixture(autouse=True)
def two_threads():
    before = get_num_threads()
    set_num_threads(2)
    yield
    set_num_threads(before)


def _threaded_kernel():
    assert ROWS * COLS >= 2 * GRAIN  # enough work for two threads
    A = te.placeholder((ROWS, COLS), name="A")
    B = te.compute((ROWS, COLS), lambda i, j: A[i, j] * 2.0 + 1.0, name="B")
    s = te.create_schedule(B.op)
    s[B].parallel(B.op.axis[0])
    return s, [A, B]


def _check(f):
    a = np.random.default_rng(0).uniform(-1, 1, (ROWS, COLS)).astype("float32")
    b = np.full((ROWS, COLS), np.nan, "float32")
    f(a, b)
    np.testing.assert_allclose(b, a * 2 + 1, rtol=1e-6)


def test_a_library_runs_its_parallel_loops_on_the_pool():
    f = tecomp.build(*_threaded_kernel())
    assert "tecomp_parallel_launch" in f.get_source("ll")
    _check(f)


def test_callers_on_several_threads_at_once_each_get_every_row():
    f = tecomp.build(*_threaded_kernel())
    assert not failures_of_concurrent_calls(lambda: _check(f), rounds=25)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_runs_parallel_loops_without_the_parents_workers():
    f = tecomp.build(*_threaded_kernel())
    _check(f)  # the parent's pool has started its worker
    pid = os.fork()
    if pid == 0:
        try:
            _check(f)
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the child reports through its exit code only
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and nm")
def test_an_object_linked_without_the_pool_runs_on_libgomp(tmp_path):
    f = tecomp.build(*_threaded_kernel())
    f.save(str(tmp_path / "k.o"))
    subprocess.run(["gcc", "-shared", "-o", str(tmp_path / "k.so"), str(tmp_path / "k.o"), "-lgomp", "-lm"],
                   check=True)
    symbols = subprocess.run(["nm", str(tmp_path / "k.so")], capture_output=True, text=True, check=True).stdout
    assert any(line.split()[-2:] == ["w", "tecomp_parallel_launch"] for line in symbols.splitlines())
    _check(tecomp.runtime.load_module(str(tmp_path / "k.so")))
