"""The Dask worker's side leaves no scratch directory behind: each task's libraries live in a
directory removed when the task ends (a Dask worker process may end by os._exit, where no exit
handler runs)."""

import glob
import os
import tempfile

import pytest

pytest.importorskip("distributed")

from tecomp import tuner as autotvm  # noqa: E402
import templates  # noqa: F401,E402  (registers the shared templates)
from tecomp.tuner.dask_measure import build_on_worker  # noqa: E402
from tecomp.tuner.measure import task_spec  # noqa: E402


def _scratch_dirs():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "tecomp-dask-*")))


def test_build_on_worker_removes_its_scratch_directory():
    task = autotvm.task.create("tests/matmul_tile_vec", (13, 7, 5), "llvm")
    jobs = [{"task": task_spec(task), "config": task.config_space.get(k).to_json_dict()} for k in range(2)]
    before = _scratch_dirs()
    replies = build_on_worker(jobs, timeout=60, processes=1)
    assert [kind for kind, _, _ in replies] == ["ok", "ok"]
    assert all(value["error_no"] == 0 and value["library"][:4] == b"\x7fELF" for _, value, _ in replies)
    assert _scratch_dirs() <= before
