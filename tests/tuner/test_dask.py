"""DaskBuilder / DaskRunner on a LocalCluster: LocalBuilder/LocalRunner's contract, plus routing and worker loss.

One cluster for the module (loopback, 2 worker processes of 1 thread each,
both offering ``llvm``), with ``allowed-failures`` 1: a task whose worker
dies is retried once elsewhere. The templates below and test_measure's are
registered at import, so the build processes on the workers find them too.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import dask
import distributed
import pytest

from tecomp import te
from tecomp import tuner as autotvm
import templates  # noqa: F401  (registers the shared templates)
import test_measure
from test_measure import _VADD_META, MODES, _built, _fake_input
from tecomp.error import TuningError
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.dask_measure import (DaskBuilder, DaskRunner, measure_option_for_scheduler, resource_key,
                                       worker_resources)
from tecomp.tuner.grid_tuner import GridSearchTuner
from tecomp.tuner.measure import MeasureErrorNo, MeasureInput, measure_option
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.records import RecordDB

KILLER = 5  # the config of kill_worker_once that kills its Dask worker
handmade = test_measure.handmade  # the fixture: hand-written libraries that work, crash or hang


@autotvm.template("test_dask/kill_worker_once")
def kill_worker_once(n, marker, test_pid):
    """A vector add; building config KILLER kills the Dask worker doing it, once (``marker`` remembers).

    ``test_pid``: the test process, never killed (should the template be built by a LocalBuilder).
    """
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_knob("variant", list(range(8)))
    if cfg["variant"].val == KILLER and not os.path.exists(marker) and os.getppid() not in (test_pid, 1):
        open(marker, "w").close()
        os.kill(os.getppid(), signal.SIGKILL)  # the parent of a DaskBuilder's build process: the Dask worker
    return s, [A, B, C]


@pytest.fixture(scope="module")
def cluster():
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, resources={resource_key("llvm"): 1},
                                      silence_logs=logging.CRITICAL) as local, distributed.Client(local) as client:
            yield client


def _pids(client):
    return client.run(os.getpid)


def _worker_killer(directory, marker, always):
    """A library (tecomp's ABI) whose kernel kills the process that loaded it: the Dask worker of a runner.

    It kills only its first parent, and not this test process: once reparented it just returns. Unless
    ``always``, only if ``marker`` does not exist yet, which it then creates.
    """
    name = "kill_always" if always else "kill_once"
    src = directory / f"{name}.c"
    src.write_text(
        "#include <fcntl.h>\n#include <signal.h>\n#include <stdint.h>\n#include <unistd.h>\n"
        f"const char* __tecomp_metadata(void) {{ return {json.dumps(json.dumps(_VADD_META))}; }}\n"
        "int32_t kernel(void** args, int64_t* sizes) {\n"
        "  static pid_t first_parent = 0;\n"
        "  if (!first_parent) first_parent = getppid();\n"
        f"  if (getppid() == first_parent && first_parent != 1 && first_parent != {os.getpid()}"
        f" && ({int(always)} || access({json.dumps(marker)}, F_OK) != 0)) {{\n"
        f"    close(open({json.dumps(marker)}, O_CREAT | O_WRONLY, 0644));\n"
        "    kill(first_parent, SIGKILL);\n"
        "  }\n"
        "  ((float*)args[2])[0] = 0.0f; return 0;\n}\n")
    path = str(directory / f"{name}.so")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", path, str(src)], check=True)
    return path


def test_resource_names_fit_the_dask_worker_flag():
    assert resource_key("llvm") == "target:llvm"
    assert resource_key("cuda -arch=sm_90") == "target:cuda/arch:sm_90"
    assert resource_key("llvm -mcpu=znver3 -mattr=+avx2,+fma") == "target:llvm/mattr:+avx2;+fma/mcpu:znver3"
    assert resource_key("llvm -mattr=+avx2,+fma -mcpu=znver3") == resource_key("llvm -mcpu=znver3 -mattr=+avx2,+fma")
    flag = worker_resources("llvm -mcpu=znver3 -mattr=+avx2,+fma", "cuda -arch=sm_90")
    # how `dask worker --resources` reads its value (distributed/cli/dask_worker.py)
    parsed = dict(pair.split("=") for pair in flag.replace(",", " ").split())
    assert parsed == {"target:llvm/mattr:+avx2;+fma/mcpu:znver3": "1", "target:cuda/arch:sm_90": "1"}
    out = subprocess.run([sys.executable, "-m", "tecomp.tuner.dask_measure", "llvm -mcpu=znver3"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "target:llvm/mcpu:znver3=1" and out.stderr == ""


def test_importing_the_tuner_does_not_import_distributed():
    code = "import sys, tecomp.tuner as t; t.DaskRunner; assert 'distributed' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_tuning_run_records_every_trial(cluster, tmp_path):
    task = autotvm.task.create("tests/matmul_tile_vec", (16, 16, 16), "llvm")
    option = measure_option_for_scheduler(cluster.scheduler.address, "llvm", build_timeout=20, n_parallel=4,
                                          processes_per_worker=1, number=2, timeout=10, check_correctness=True)
    db = RecordDB(tmp_path / "tune.db")
    try:
        RandomTuner(task, seed=0).tune(8, option, callbacks=[log_to_db(db)])
    finally:
        option["runner"].close()
    records = list(db.records(task.key, "llvm"))
    assert len(records) == 8 and len({r.config_index for r in records}) == 8
    assert all(r.error_no == 0 and len(r.costs) == 1 and r.costs[0] > 0 for r in records), \
        [r.error_msg for r in records]
    assert cluster.status == "running"  # closing the option's own connection leaves ours open


def test_crashing_and_hanging_candidates_cost_only_their_trial(cluster, handmade):
    before = _pids(cluster)
    runner = DaskRunner(cluster, number=2, timeout=1)
    kinds = ["noop", "crash", "noop", "hang", "noop", "crash"]
    results = runner.run([_fake_input(i) for i in range(len(kinds))], [_built(handmade[k]) for k in kinds])
    got = [MeasureErrorNo(r.error_no) for r in results]
    assert got == [MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUNTIME_DEVICE, MeasureErrorNo.NO_ERROR,
                   MeasureErrorNo.RUN_TIMEOUT, MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUNTIME_DEVICE]
    assert "config 1 of handmade: worker process died with signal SIGSEGV" in results[1].error_msg
    assert "longer than 1 s" in results[3].error_msg
    assert all(len(r.costs) == 1 and 0 < r.costs[0] < 0.1 for r in results[::2])
    assert _pids(cluster) == before  # the Dask workers survived


def test_build_failures_on_workers_are_recorded_by_kind(cluster):
    before = _pids(cluster)
    task = autotvm.task.create("test_measure/modes", (64,), "llvm")
    order = ["ok", "raise", "drop_input", "sleep", "crash", "ok"]
    inputs = [MeasureInput(task, task.config_space.get(MODES.index(m))) for m in order]
    builder = DaskBuilder(cluster, timeout=2, processes_per_worker=1)
    built = builder.build(inputs)
    assert [MeasureErrorNo(b.error_no) for b in built] == [
        MeasureErrorNo.NO_ERROR, MeasureErrorNo.INSTANTIATION_ERROR, MeasureErrorNo.COMPILE_HOST,
        MeasureErrorNo.BUILD_TIMEOUT, MeasureErrorNo.COMPILE_HOST, MeasureErrorNo.NO_ERROR]
    assert "ValueError: this config is invalid on purpose" in built[1].error_msg
    assert "longer than 2 s" in built[3].error_msg
    assert "worker process died with signal SIGSEGV" in built[4].error_msg
    assert _pids(cluster) == before
    # the libraries came back as bytes, into local files that live as long as their BuildResults
    files = [built[0].filename, built[-1].filename]
    assert all(os.path.getsize(f) > 0 for f in files)
    results = DaskRunner(cluster, number=1, timeout=5).run(inputs, built)
    assert [r.error_no for r in results] == [b.error_no for b in built]
    assert results[0].costs and results[-1].costs
    del built
    assert not any(os.path.exists(f) for f in files)


def test_cooldown_spaces_the_measurements_of_a_worker(cluster, handmade):
    runner = DaskRunner(cluster, number=1, timeout=5, cooldown_interval=0.5)
    inputs, builds = [_fake_input(i) for i in range(4)], [_built(handmade["noop"])] * 4
    runner.run(inputs[:2], builds[:2])  # runner processes started
    start = time.monotonic()
    results = runner.run(inputs, builds)
    elapsed = time.monotonic() - start
    assert all(r.error_no == 0 for r in results)
    # 4 candidates on 2 workers: at least one worker times two of them, 0.5 s apart
    assert elapsed >= 0.45


def test_target_no_worker_offers_fails_fast(cluster, monkeypatch):
    target = "llvm -mcpu=skylake-avx512"
    inp = MeasureInput(SimpleNamespace(name="t", key="t", target=target), SimpleNamespace(index=0))
    runner, builder = DaskRunner(cluster), DaskBuilder(cluster)
    start = time.monotonic()
    with pytest.raises(TuningError) as err:
        runner.run([inp], [_built("/nonexistent.so")])
    assert f"offers target '{target}'" in str(err.value)
    assert '--resources "target:llvm/mcpu:skylake-avx512=1"' in str(err.value)
    with pytest.raises(TuningError, match="skylake-avx512"):
        builder.build([inp])
    with pytest.raises(TuningError, match="target:cuda/arch:sm_90=1"):
        measure_option_for_scheduler(cluster.scheduler.address, "cuda -arch=sm_90")
    assert time.monotonic() - start < 5
    # a worker offering the target twice over could time two candidates at once
    monkeypatch.setattr(runner._cluster, "offering", lambda key: {"tcp://10.0.0.9:4000": 2.0})
    with pytest.raises(TuningError, match=r"tcp://10.0.0.9:4000 declares resource target:llvm=2"):
        runner.run([_fake_input(0)], [_built("/nonexistent.so")])


def test_trials_left_without_any_worker_for_their_target_are_given_up(cluster):
    # (what becomes of a batch whose every worker is gone for good: a Nanny would restart ours)
    connection = DaskRunner(cluster)._cluster
    future = connection.submit(os.getpid, key="target:gone", what="test")
    start = time.monotonic()
    [(kind, why)] = connection.collect([(future, "target:gone")], worker_wait_timeout=1)
    assert kind == "lost" and why == "no Dask worker offered target:gone for 1 s"
    assert 1 <= time.monotonic() - start < 5 and future.status == "cancelled"


# Last in the module: these kill workers (their Nannies start new ones).

def test_losing_a_worker_mid_batch_loses_no_trial(cluster, tmp_path):
    marker = str(tmp_path / "killed")
    task = autotvm.task.create("test_dask/kill_worker_once", (64, marker, os.getpid()), "llvm")
    before = set(_pids(cluster).values())
    builder = DaskBuilder(cluster, timeout=20, n_parallel=4, processes_per_worker=1)
    db = RecordDB(tmp_path / "tune.db")
    GridSearchTuner(task).tune(8, measure_option(builder, DaskRunner(cluster, number=1)),
                               callbacks=[log_to_db(db)])
    assert os.path.exists(marker)  # config KILLER did kill its worker, in the second batch
    records = sorted(db.records(task.key, "llvm"), key=lambda r: r.config_index)
    assert [r.config_index for r in records] == list(range(8))
    # the first batch was kept; the lost build was retried on another worker and succeeded
    assert all(r.error_no == 0 and r.costs for r in records), [r.error_msg for r in records]
    cluster.wait_for_workers(2, timeout=30)
    assert set(_pids(cluster).values()) != before


def test_losing_a_worker_while_measuring(cluster, tmp_path, handmade):
    cluster.wait_for_workers(2, timeout=30)
    before = set(_pids(cluster).values())
    marker = str(tmp_path / "killed")
    once, always = _worker_killer(tmp_path, marker, False), _worker_killer(tmp_path, marker, True)
    runner = DaskRunner(cluster, number=1, timeout=10)
    libraries = [handmade["noop"], handmade["noop"], once, handmade["noop"], handmade["noop"]]
    results = runner.run([_fake_input(i) for i in range(5)], [_built(p) for p in libraries])
    # the trials on the lost worker (the killer's and any queued behind it) were retried elsewhere
    assert os.path.exists(marker)
    assert all(r.error_no == 0 and r.costs for r in results), [r.error_msg for r in results]
    cluster.wait_for_workers(2, timeout=30)
    assert set(_pids(cluster).values()) != before
    # a trial that kills every worker it runs on is recorded as an error once its retry died too
    [lost] = runner.run([_fake_input(9)], [_built(always)])
    assert lost.error_no == MeasureErrorNo.RUNTIME_DEVICE and lost.costs == ()
    assert "config 9 of handmade: lost with its Dask worker: every Dask worker that ran it died (2 tries" \
        in lost.error_msg
    cluster.wait_for_workers(2, timeout=30)
