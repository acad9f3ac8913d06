"""Templates, tasks (keys, FLOPs, errors) and dispatch (history best, fallback notice once)."""

import json
import logging
import threading
from collections import namedtuple

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import TecompError, TuningError
from tecomp.target import Target

Input = namedtuple("Input", "task config")
Result = namedtuple("Result", "costs error_no error_msg all_cost timestamp")

SEEN = []      # configs the "test_dispatch/matmul" template ran with, latest last


@autotvm.template("test_dispatch/matmul")
def matmul(N, L, M, dtype):
    A = te.placeholder((N, L), name="A", dtype=dtype)
    B = te.placeholder((L, M), name="B", dtype=dtype)
    k = te.reduce_axis((0, L), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotvm.get_config()
    SEEN.append(cfg)
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=2)
    cfg.define_knob("unroll", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(yo, xo, k, yi, xi)
    if cfg["unroll"].val:
        s[C].unroll(yi)
    return s, [A, B, C]


@autotvm.template("test_dispatch/register_blocked")
def register_blocked(n):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    acc = s.cache_write(C, "local")
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", C.op.axis[0])
    cfg.define_split("tile_x", C.op.axis[1])
    yo, yi = cfg["tile_y"].apply(s, C, C.op.axis[0])
    xo, xi = cfg["tile_x"].apply(s, C, C.op.axis[1])
    s[C].reorder(yo, xo, yi, xi)
    s[acc].compute_at(s[C], xo)
    return s, [A, B, C]


@autotvm.template("test_dispatch/elementwise")
def elementwise(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.exp(A[i] * 2.0) + A[i * 2 % n], name="B")
    return te.create_schedule(B.op), [A, B]


@autotvm.template("test_dispatch/broken")
def broken(n):
    raise ValueError(f"cannot handle n={n}")


def mm_task(n=16, target="llvm"):
    return autotvm.task.create("test_dispatch/matmul", (n, n, n, "float32"), target)


def pair(task, index, cost, error_no=0):
    return Input(task, task.config_space.get(index)), Result((cost, cost), error_no, "", 1.0, 0.0)


# ---------------------------------------------------------------- tasks

def test_task_key_workload_and_str():
    task = autotvm.task.create("test_dispatch/matmul", [16, np.int64(16), 16, "float32"], "llvm")
    assert task.key == '["test_dispatch/matmul",[16,16,16,"float32"]]'
    assert task.workload == ("test_dispatch/matmul", 16, 16, 16, "float32")
    assert task.args == (16, 16, 16, "float32") and type(task.args[1]) is int
    assert task.target == Target("llvm")
    assert len(task.config_space) == 5 * 5 * 2
    text = str(task)
    assert "test_dispatch/matmul" in text and "50 configs" in text


def test_flop_counts():
    assert mm_task(16).flop == 2 * 16 ** 3
    rect = autotvm.task.create("test_dispatch/matmul", (8, 24, 40, "float32"), "llvm")
    assert rect.flop == 2 * 8 * 24 * 40
    assert autotvm.task.create("test_dispatch/register_blocked", (16,), "llvm").flop == 2 * 16 ** 3
    # mul, exp, add per point; the index arithmetic i * 2 % n is addressing, not work
    assert autotvm.task.create("test_dispatch/elementwise", (10,), "llvm").flop == 3 * 10


def test_create_uses_the_target_in_scope():
    with Target("llvm -mcpu=skylake"):
        assert autotvm.task.create("test_dispatch/elementwise", (4,)).target == Target("llvm -mcpu=skylake")
    assert autotvm.task.create("test_dispatch/elementwise", (4,)).target == Target("llvm")


@pytest.mark.parametrize("args", [(object(),), (float("nan"),), ({"n": 4},)])
def test_non_json_args_are_rejected(args):
    with pytest.raises(TuningError, match="cannot be part of a workload key"):
        autotvm.task.create("test_dispatch/elementwise", args, "llvm")


def test_unknown_template_lists_the_registered_ones():
    with pytest.raises(TuningError, match="no tuning template named 'nope'.*test_dispatch/matmul"):
        autotvm.task.create("nope", (1,), "llvm")


def test_duplicate_template_name():
    with pytest.raises(TuningError, match="'test_dispatch/matmul' is already registered"):
        autotvm.template("test_dispatch/matmul")(lambda: None)


def test_template_that_raises_names_the_template():
    with pytest.raises(TecompError, match="template test_dispatch/broken .*ValueError: cannot handle n=3"):
        autotvm.task.create("test_dispatch/broken", (3,), "llvm")


def test_template_must_return_a_schedule_and_tensors():
    autotvm.template("test_dispatch/bad_return")(lambda n: n)
    with pytest.raises(TuningError, match=r"must return \(schedule, \[tensors\]\)"):
        autotvm.task.create("test_dispatch/bad_return", (3,), "llvm")


def test_get_config_outside_a_template():
    with pytest.raises(TuningError, match="outside a tuning template"):
        autotvm.get_config()


def test_instantiate_needs_a_point():
    task = mm_task()
    with pytest.raises(TuningError, match="needs a ConfigEntity"):
        task.instantiate(task.config_space)


# ---------------------------------------------------------------- dispatch

def test_direct_call_uses_the_fallback_and_notices_once(caplog):
    caplog.set_level(logging.WARNING, logger="tecomp.tuner")
    for _ in range(3):
        s, args = matmul(12, 12, 12, "float32")
    assert isinstance(SEEN[-1], autotvm.FallbackConfigEntity)
    notices = [r.getMessage() for r in caplog.records if "no tuning record" in r.getMessage()]
    assert notices == ['tecomp.tuner: no tuning record for ["test_dispatch/matmul",[12,12,12,"float32"]] '
                       'on llvm; using a fallback config']
    matmul(20, 20, 20, "float32")
    assert sum("no tuning record" in r.getMessage() for r in caplog.records) == 2
    a, b = np.ones((12, 12), "float32"), np.ones((12, 12), "float32")
    c = np.zeros((12, 12), "float32")
    tecomp.build(s, args)(a, b, c)
    np.testing.assert_allclose(c, a @ b)


def test_history_best_picks_the_fastest_valid_fitting_record(caplog):
    task = mm_task(16)
    stale = pair(task, 3, 0.1)
    stale = (Input(task, {"index": 3, "entities": {"tile_y": [16, 1], "old_knob": 1}}), stale[1])
    records = [pair(task, 7, 3.0), pair(task, 11, 2.0), pair(task, 13, 0.5, error_no=4), stale,
               pair(mm_task(16, "llvm -mcpu=skylake"), 17, 0.01)]
    with autotvm.apply_history_best(records):
        matmul(16, 16, 16, "float32")
    assert not isinstance(SEEN[-1], autotvm.FallbackConfigEntity)
    assert SEEN[-1].index == 11
    assert any("does not fit" in r.getMessage() and "old_knob" in r.getMessage() for r in caplog.records)
    with autotvm.apply_history_best(records), Target("llvm -mcpu=skylake"):
        matmul(16, 16, 16, "float32")
    assert SEEN[-1].index == 17


def test_contexts_nest_and_are_per_thread():
    task = mm_task(16)
    outer = autotvm.apply_history_best([pair(task, 5, 1.0)])
    inner = autotvm.apply_history_best([pair(mm_task(8), 2, 1.0)])
    with outer, inner:
        assert autotvm.DispatchContext.current() is inner
        matmul(16, 16, 16, "float32")
        assert SEEN[-1].index == 5               # inner has no record for this workload
        worker = threading.Thread(target=matmul, args=(16, 16, 16, "float32"))
        worker.start()
        worker.join()
        assert isinstance(SEEN[-1], autotvm.FallbackConfigEntity)
    assert autotvm.DispatchContext.current() is None


def test_apply_history_best_rejects_bad_sources(tmp_path):
    with pytest.raises(TuningError, match="no records database at"):
        autotvm.apply_history_best(tmp_path / "missing.db")
    with pytest.raises(TuningError, match="expects a records database path"):
        autotvm.apply_history_best(42)
    with pytest.raises(TuningError, match="neither a Record nor"):
        autotvm.apply_history_best([("not", "a record", "pair")])


def test_history_best_from_a_records_database(tmp_path):
    from tecomp.tuner import records
    task = mm_task(16)
    path = tmp_path / "tune.db"
    db = records.RecordDB(path)
    db.add_many([pair(task, 4, 2.0), pair(task, 9, 1.0), pair(task, 1, 0.1, error_no=6)])
    for source in (path, str(path), db):
        with autotvm.apply_history_best(source):
            matmul(16, 16, 16, "float32")
        assert SEEN[-1].index == 9
    with autotvm.apply_history_best(list(db.records())):
        matmul(16, 16, 16, "float32")
    assert SEEN[-1].index == 9
    assert json.loads(task.key)[0] == "test_dispatch/matmul"
