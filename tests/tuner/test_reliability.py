"""The tuner survives any candidate: fault injection into templates, workers that die with
the tuner, memory limits, and re-measuring configs whose records are errors.

The fault template is defined in this test module (not an importable package module), so
the workers get it by value, as they get one from a script without a ``__main__`` guard.
"""

import ctypes
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tecomp import config as tecomp_config
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import TecompError, TuningError
from tecomp.tuner.callback import log_to_db
from tecomp.tuner.measure import FeaturePool, LocalBuilder, MeasureErrorNo, MeasureResult, task_spec
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.records import RecordDB
from tecomp.tuner.tuner import retrying_errors
from tecomp.tuner.xgb_tuner import XGBTuner

FAULTS = ["none", "segv", "abort", "hang", "hog", "exit"]
TIMEOUT = 2.0
MEMORY = 1 << 30


def _fault(kind):
    if kind == "segv":
        ctypes.string_at(0)
    elif kind == "abort":
        os.abort()
    elif kind == "hang":
        time.sleep(600)
    elif kind == "hog":
        # twice the worker's limit: a MemoryError at once where the limit holds, else at the
        # machine's (filling the limit in small pieces outlasted TIMEOUT on a loaded machine)
        hoard = []
        while True:
            hoard.append(bytearray(2 * MEMORY))
    elif kind == "exit":
        os._exit(3)


@autotvm.template("tests/faulty_matmul")
def faulty_matmul(n):
    """A 13 x n x 7 matmul whose config (fault, tile) runs ``fault`` while instantiating when
    the tile's inner factor is 1 (so 5 of the space's configs are faulty)."""
    A = te.placeholder((13, 7), name="A")
    B = te.placeholder((7, n), name="B")
    r = te.reduce_axis((0, 7), name="r")
    C = te.compute((13, n), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_knob("fault", FAULTS)
    cfg.define_split("tile", C.op.axis[1], num_outputs=2)
    xo, xi = cfg["tile"].apply(s, C, C.op.axis[1])
    if cfg["tile"].size[-1] == 1:
        _fault(cfg["fault"].val)
    return s, [A, B, C]


def _faulty_task():
    return autotvm.task.create("tests/faulty_matmul", (8,), "llvm")


def _fault_of(config):
    return config["fault"].val if config["tile"].size[-1] == 1 else "none"


def test_feature_pool_isolates_each_fault():
    task = _faulty_task()
    configs = sorted((task.config_space.get(i) for i in range(len(task.config_space))),
                     key=lambda c: (_fault_of(c) == "none", c.index))  # faults first, among the good
    pool = FeaturePool(n_parallel=1, timeout=TIMEOUT, memory_limit=MEMORY, chunk=64)
    try:
        answers = pool.features(task_spec(task), [c.to_json_dict() for c in configs])
    finally:
        pool.close()
    for config, (row, why) in zip(configs, answers):
        fault = _fault_of(config)
        if fault == "none":
            assert row is not None and row.ndim == 1 and why == "", (config, why)
        else:
            assert row is None, config
            want = {"segv": "SIGSEGV", "abort": "SIGABRT", "hang": f"longer than {TIMEOUT} s",
                    "hog": "MemoryError", "exit": "exit code 3"}[fault]
            assert want in why, (fault, why)


@pytest.mark.slow  # about 20 s: two worker timeouts and a dozen worker restarts
def test_xgb_tuner_survives_faulty_templates(tmp_path):
    task = _faulty_task()
    db = tmp_path / "tune.db"
    builder = LocalBuilder(timeout=TIMEOUT, n_parallel=2, memory_limit=MEMORY)
    runner = autotvm.LocalRunner(number=1, timeout=10)
    tuner = XGBTuner(task, plan_size=8, seed=3)  # its random first plan meets 4 fault kinds
    try:
        tuner.tune(16, autotvm.measure_option(builder, runner), callbacks=[log_to_db(db)])
    finally:
        builder.close()
        runner.close()
    records = list(RecordDB(db).records())
    assert len(records) == 16  # one per trial
    measured_faults = set()
    for rec in records:
        fault = _fault_of(autotvm.ConfigEntity.from_json_dict(task.config_space, rec.config))
        assert (rec.error_no == 0) == (fault == "none"), (rec.config, rec.error_msg)
        measured_faults.add(fault)
    assert len(measured_faults - {"none"}) >= 3  # crashes, hangs, hogs while building are recorded
    faulty = {i for i in range(len(task.config_space)) if _fault_of(task.config_space.get(i)) != "none"}
    scored = {i for i in tuner._features} & faulty
    assert scored and scored <= tuner._invalid  # the annealer met faulty configs and shelved them
    assert tuner._feature_pool is None  # feature workers stopped when tune returned


def test_builder_memory_limit_is_a_recorded_error():
    task = _faulty_task()
    hog = next(c for c in (task.config_space.get(i) for i in range(len(task.config_space)))
               if _fault_of(c) == "hog")
    builder = LocalBuilder(timeout=30, n_parallel=1, memory_limit=MEMORY)
    try:
        [result] = builder.build([autotvm.MeasureInput(task, hog)])
    finally:
        builder.close()
    assert result.error_no == MeasureErrorNo.INSTANTIATION_ERROR and "MemoryError" in result.error_msg


def test_memory_limit_settings(monkeypatch):
    monkeypatch.setenv("TECOMP_WORKER_MEMORY", "3G")
    assert tecomp_config.worker_memory() == 3 << 30
    assert autotvm.measure.default_worker_memory(4) == 3 << 30
    monkeypatch.setenv("TECOMP_WORKER_MEMORY", "12 pages")
    with pytest.raises(TecompError, match="TECOMP_WORKER_MEMORY"):
        tecomp_config.worker_memory()
    monkeypatch.delenv("TECOMP_WORKER_MEMORY")
    assert autotvm.measure.default_worker_memory(1) >= 2 << 30
    with pytest.raises(TuningError, match="memory_limit"):
        LocalBuilder(memory_limit=1000)


INSTANTIATED_HERE = []  # configs of tests/guarded_matmul instantiated in this (the tuner's) process


@autotvm.template("tests/guarded_matmul")
def guarded_matmul(n):
    """A small matmul that notes each config it is instantiated at in INSTANTIATED_HERE (a
    worker notes them in its own copy)."""
    A = te.placeholder((n, 9), name="A")
    B = te.placeholder((9, 12), name="B")
    r = te.reduce_axis((0, 9), name="r")
    C = te.compute((n, 12), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_split("tile", C.op.axis[1], num_outputs=2)
    cfg.define_knob("vec", [0, 1])
    xo, xi = cfg["tile"].apply(s, C, C.op.axis[1])
    if cfg["vec"].val:
        s[C].vectorize(xi)
    if isinstance(cfg, autotvm.ConfigEntity):
        INSTANTIATED_HERE.append(cfg.index)
    return s, [A, B, C]


def test_the_tuner_never_instantiates_a_template_itself(tmp_path):
    """Features (of measured and of annealed configs), transfer from other tasks' records and
    check_correctness's reference all instantiate the template in worker processes."""
    db = tmp_path / "tune.db"
    builder = LocalBuilder(timeout=20, n_parallel=2)
    runner = autotvm.LocalRunner(number=1, timeout=20, check_correctness=True)
    option = autotvm.measure_option(builder, runner)
    try:
        first = XGBTuner(autotvm.task.create("tests/guarded_matmul", (13,), "llvm"), plan_size=4, seed=0)
        first.tune(8, option, callbacks=[log_to_db(db)])
        second = XGBTuner(autotvm.task.create("tests/guarded_matmul", (7,), "llvm"), plan_size=4, seed=0)
        second.tune(2, option, callbacks=[log_to_db(db)])
    finally:
        builder.close()
        runner.close()
    assert first.model.trained and len(first._features) > 8
    assert second.transferred > 0
    assert all(rec.error_no == 0 for rec in RecordDB(db).records())
    assert INSTANTIATED_HERE == []


# ------------------------------------------------------------------ workers die with the tuner

_HANGING_SCRIPT = """
from tecomp import te
from tecomp import tuner as autotvm

@autotvm.template("script/hang")
def hang(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1, name="B")
    s = te.create_schedule(B.op)
    cfg = autotvm.get_config()
    cfg.define_knob("k", [0, 1, 2, 3])
    if cfg["k"].val:  # not in the space definition (k = 0)
        print("hanging", flush=True)
        while True:
            pass
    return s, [A, B]

task = autotvm.task.create("script/hang", (17,), "llvm")
option = autotvm.measure_option(autotvm.LocalBuilder(timeout=600, n_parallel=2), autotvm.LocalRunner())
autotvm.tuner.GridSearchTuner(task).tune(4, option)
"""


def _children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                kids.append(int(entry))
    return kids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_a_killed_tuner(tmp_path, sig):
    script = tmp_path / "tune_hang.py"
    script.write_text(textwrap.dedent(_HANGING_SCRIPT))  # no __main__ guard
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "hanging"  # a builder worker is stuck in a candidate
        workers = _children(proc.pid)
        assert workers
        proc.send_signal(sig)
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# ------------------------------------------------------------------ retrying error records

class _FakeBuilder:
    n_parallel = 4

    def build(self, inputs):
        return [None] * len(inputs)


class _FakeRunner:
    def __init__(self):
        self.measured = []

    def run(self, inputs, build_results):
        self.measured.extend(inp.config.index for inp in inputs)
        return [MeasureResult((1e-3,), 0, "", 1e-3, time.time()) for _ in inputs]


def test_retry_errors_measures_error_records_again(tmp_path):
    task = autotvm.task.create("tests/faulty_matmul", (8,), "llvm")
    db = RecordDB(tmp_path / "tune.db")
    space = task.config_space
    timeout = MeasureResult((), MeasureErrorNo.RUN_TIMEOUT, "loaded machine", 10.0, time.time())
    valid = MeasureResult((2e-3,), 0, "", 1.0, time.time())
    db.add_many([(autotvm.MeasureInput(task, space.get(0)), timeout),
                 (autotvm.MeasureInput(task, space.get(1)), valid)], tuner="test")

    def measured(**kwargs):
        runner = _FakeRunner()
        RandomTuner(task, seed=0).tune(len(space), {"builder": _FakeBuilder(), "runner": runner},
                                       callbacks=[log_to_db(db)], **kwargs)
        return set(runner.measured)

    everything = set(range(len(space)))
    assert measured() == everything - {0, 1}
    db.close()
    db = RecordDB(tmp_path / "tune2.db")
    db.add_many([(autotvm.MeasureInput(task, space.get(0)), timeout)], tuner="test")
    assert measured(retry_errors=True) == everything
    db.close()
    db = RecordDB(tmp_path / "tune3.db")
    db.add_many([(autotvm.MeasureInput(task, space.get(0)), timeout)], tuner="test")
    with retrying_errors():
        assert measured() == everything
    db.close()


def test_cli_tune_retry_errors_reaches_the_tuners(tmp_path, monkeypatch):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from tecomp.cli import main
    from tecomp.tuner import tuner as tuner_module

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 7])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "relu.onnx")
    seen = []

    def fake_tune_model(*args, **kwargs):
        seen.append(tuner_module._retry_errors.get())  # what every Tuner.tune in the run defaults to
        return []

    monkeypatch.setattr("tecomp.graph.tuning.tune_model", fake_tune_model)
    common = ["tune", str(tmp_path / "relu.onnx"), "--records", str(tmp_path / "tune.db")]
    assert main(common + ["--retry-errors"]) == 0
    assert main(common) == 0
    assert seen == [True, False]


_IMPORT_COUNTING_MODULE = """
import os
from tecomp import te
from tecomp import tuner as autotvm

with open(os.path.join(os.path.dirname(__file__), "imports.txt"), "a") as f:
    f.write(f"{os.getpid()}\\n")  # tuning code here would run again in every worker that imported us


def _bump(i):
    return i + 1


@autotvm.template("script/bump")
def bump(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[_bump(i) % n], name="B")
    s = te.create_schedule(B.op)
    autotvm.get_config().define_knob("unused", [0, 1])
    return s, [A, B]
"""

_IMPORTING_SCRIPT = """
import os
import sys
sys.path.insert(0, sys.argv[1])
import tunemod
from tecomp import tuner as autotvm

task = autotvm.task.create("script/bump", (19,), "llvm")
option = autotvm.measure_option(autotvm.LocalBuilder(n_parallel=1), autotvm.LocalRunner(number=1))
tuner = autotvm.tuner.XGBTuner(task, plan_size=1, seed=0)
tuner.tune(2, option)
print("best", tuner.best_flops > 0, len(tuner._features), os.getpid())
"""


def test_workers_never_import_the_templates_module(tmp_path):
    (tmp_path / "tunemod.py").write_text(_IMPORT_COUNTING_MODULE)
    (tmp_path / "tune.py").write_text(_IMPORTING_SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "tune.py"), str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    best, built, featurized, pid = proc.stdout.split()
    assert (best, built, featurized) == ("best", "True", "2")  # built, timed and featurized in workers
    assert (tmp_path / "imports.txt").read_text().split() == [pid]


def test_a_template_that_cannot_be_serialized_is_a_clear_error():
    import threading

    lock = threading.Lock()

    def locked(n):
        with lock:  # a lock cannot be pickled
            return faulty_matmul.__wrapped__(n)

    with pytest.raises(TuningError, match="cannot be sent to the worker processes"):
        autotvm.measure.template_spec("tests/locked", (8,), "llvm", locked)
