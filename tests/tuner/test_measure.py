"""LocalBuilder / LocalRunner: every failure is a recorded error kind, never a dead tuner.

The templates below are registered at import, so the spawned builder workers
(which import this module by name) find them too.
"""

import json
import os
import signal
import subprocess
import time
from types import SimpleNamespace

import numpy as np
import pytest

from tecomp import te
from tecomp.error import TuningError
from tecomp import tuner as autotvm
from tecomp.tuner.measure import (BuildResult, LocalBuilder, LocalRunner, MeasureErrorNo, MeasureInput,
                                  measure_batch, measure_option)

MODES = ["ok", "raise", "drop_input", "sleep", "crash"]


@autotvm.template("test_measure/modes")
def modes_template(n):
    """A vector add whose "mode" knob makes the build succeed or fail in each way there is."""
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_knob("mode", MODES)
    mode = cfg["mode"].val
    if mode == "raise":
        raise ValueError("this config is invalid on purpose")
    if mode == "sleep":
        time.sleep(60)
    if mode == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    return s, ([A, C] if mode == "drop_input" else [A, B, C])


@autotvm.template("test_measure/matmul")
def matmul_template(n):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotvm.get_config()
    cfg.define_split("tile_x", x, num_outputs=2)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(y, xo, k, xi)
    return s, [A, B, C]


@autotvm.template("test_measure/overread")
def overread_template(n):
    """C[i] = A[i + shift]: a shift of 1 reads one element past A's end."""
    cfg = autotvm.get_config()
    cfg.define_knob("shift", [0, 1])
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i + cfg["shift"].val] * 2.0, name="C")
    return te.create_schedule(C.op), [A, C]


# ---------------------------------------------------------------- hand-written libraries

_VADD_META = {"format": 1, "tecomp_version": "0.1.0", "target": "llvm", "functions": [{
    "name": "kernel", "size_vars": [],
    "params": [{"name": "A", "dtype": "float32", "shape": [64], "written": False},
               {"name": "B", "dtype": "float32", "shape": [64], "written": False},
               {"name": "C", "dtype": "float32", "shape": [64], "written": True}]}]}

BODIES = {
    "crash": "raise(SIGSEGV); return 0;",
    "hang": "volatile int spin = 1; while (spin) {} return 0;",
    "noop": "((float*)args[2])[0] = 0.0f; return 0;",
    "vsub": "for (int i = 0; i < 64; i++) ((float*)args[2])[i] = ((float*)args[0])[i] - ((float*)args[1])[i];"
            " return 0;",
}


@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """kind -> a shared library following tecomp's ABI (tecomp/runtime/packed_func.py), written in C."""
    directory = tmp_path_factory.mktemp("handmade")
    meta = json.dumps(json.dumps(_VADD_META))  # a C string literal of the JSON
    paths = {}
    for kind, body in BODIES.items():
        src = directory / f"{kind}.c"
        src.write_text("#include <signal.h>\n#include <stdint.h>\n"
                       f"const char* __tecomp_metadata(void) {{ return {meta}; }}\n"
                       f"int32_t kernel(void** args, int64_t* sizes) {{ {body} }}\n")
        paths[kind] = str(directory / f"{kind}.so")
        subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", paths[kind], str(src)], check=True)
    return paths


def _fake_input(index):
    return MeasureInput(SimpleNamespace(name="handmade", key="handmade", target="llvm"),
                        SimpleNamespace(index=index))


def _built(path):
    return BuildResult(path, MeasureErrorNo.NO_ERROR, "", 0.0)


@pytest.fixture(scope="module")
def builder():
    b = LocalBuilder(timeout=2, n_parallel=2)
    yield b
    b.close()


# ---------------------------------------------------------------- runner

def test_crash_and_hang_cost_only_their_candidate(handmade):
    runner = LocalRunner(number=2, timeout=1)
    kinds = ["noop", "crash", "noop", "hang", "noop", "crash", "noop"]
    results = runner.run([_fake_input(i) for i in range(len(kinds))], [_built(handmade[k]) for k in kinds])
    runner.close()
    got = [MeasureErrorNo(r.error_no) for r in results]
    assert got == [MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUNTIME_DEVICE, MeasureErrorNo.NO_ERROR,
                   MeasureErrorNo.RUN_TIMEOUT, MeasureErrorNo.NO_ERROR, MeasureErrorNo.RUNTIME_DEVICE,
                   MeasureErrorNo.NO_ERROR]
    assert "config 1 of handmade: worker process died with signal SIGSEGV" in results[1].error_msg
    assert "longer than 1 s" in results[3].error_msg
    for r in results[::2]:
        assert len(r.costs) == 1 and 0 < r.costs[0] < 1e-3 and r.error_msg == ""
    for r in results[1::2]:
        assert r.costs == ()


def test_min_repeat_ms_is_honoured(handmade):
    runner = LocalRunner(number=1, repeat=2, min_repeat_ms=50, timeout=5)
    [res] = runner.run([_fake_input(0)], [_built(handmade["noop"])])
    runner.close()
    assert res.error_no == 0 and len(res.costs) == 2
    # the calls per measurement grew until each lasted 50 ms; costs stay per call
    assert res.all_cost >= 2 * 0.050
    assert max(res.costs) < 1e-4


def test_wrong_answer_against_default_schedule(handmade, builder):
    task = autotvm.task.create("test_measure/modes", (64,), "llvm")
    good = MeasureInput(task, task.config_space.get(MODES.index("ok")))
    runner = LocalRunner(check_correctness=True, timeout=5)
    built = builder.build([good])
    results = runner.run([good, good], [built[0], _built(handmade["vsub"])])
    runner.close()
    assert results[0].error_no == 0, results[0].error_msg
    assert results[1].error_no == MeasureErrorNo.WRONG_ANSWER
    assert "output C differs from the reference: max abs error" in results[1].error_msg


# ---------------------------------------------------------------- builder

def test_bound_checked_candidates_that_read_out_of_bounds_are_recorded_errors():
    task = autotvm.task.create("test_measure/overread", (13,), "llvm")
    inputs = [MeasureInput(task, task.config_space.get(i)) for i in range(2)]
    checked = LocalBuilder(timeout=5, n_parallel=1, bound_check=True)
    results = measure_batch(inputs, measure_option(checked, LocalRunner(timeout=5)))
    checked.close()
    assert results[0].error_no == 0 and results[0].costs
    assert results[1].error_no == MeasureErrorNo.RUNTIME_DEVICE and "out of bounds" in results[1].error_msg



def test_build_failures_are_recorded_by_kind(builder):
    task = autotvm.task.create("test_measure/modes", (64,), "llvm")
    order = ["ok", "raise", "drop_input", "sleep", "crash", "ok"]
    inputs = [MeasureInput(task, task.config_space.get(MODES.index(m))) for m in order]
    built = builder.build(inputs)
    kinds = [MeasureErrorNo(b.error_no) for b in built]
    assert kinds == [MeasureErrorNo.NO_ERROR, MeasureErrorNo.INSTANTIATION_ERROR, MeasureErrorNo.COMPILE_HOST,
                     MeasureErrorNo.BUILD_TIMEOUT, MeasureErrorNo.COMPILE_HOST, MeasureErrorNo.NO_ERROR]
    assert "ValueError: this config is invalid on purpose" in built[1].error_msg
    assert "reads input B, which is not in the argument list" in built[2].error_msg
    assert "longer than 2 s" in built[3].error_msg
    assert "worker process died with signal SIGSEGV" in built[4].error_msg
    assert all(b.error_msg.startswith(f"config {MODES.index(m)} of test_measure/modes")
               for b, m in zip(built[1:5], order[1:5]))
    # errors pass through the runner with their kind; the good ones are timed
    results = LocalRunner(timeout=5).run(inputs, built)
    assert [r.error_no for r in results] == [int(k) for k in kinds]
    assert results[0].costs and results[-1].costs


def test_measure_batch_matmul_checks_and_cleans_up(builder):
    task = autotvm.task.create("test_measure/matmul", (32,), "llvm")
    inputs = [MeasureInput(task, task.config_space.get(i)) for i in range(len(task.config_space))]
    option = measure_option(builder, LocalRunner(number=3, repeat=2, check_correctness=True, timeout=5,
                                                 num_threads=1))
    built = builder.build(inputs)
    files = [b.filename for b in built]
    results = option["runner"].run(inputs, built)
    assert all(r.error_no == 0 for r in results), [r.error_msg for r in results]
    assert all(len(r.costs) == 2 and r.all_cost > 0 and r.num_threads == 1 for r in results)
    del built
    assert not any(os.path.exists(f) for f in files)  # a library lives as long as its BuildResult
    assert [r.error_no for r in measure_batch(inputs[:2], option)] == [0, 0]
    option["runner"].close()


def test_random_inputs_are_seeded():
    from tecomp.runtime.metadata import ParamInfo
    from tecomp.tuner.measure import random_arguments

    params = [ParamInfo("A", np.dtype("float32"), (3, 4)), ParamInfo("I", np.dtype("int8"), (5,))]
    first, second = random_arguments(params, 0), random_arguments(params, 0)
    assert [a.dtype for a in first] == [np.float32, np.int8] and first[0].shape == (3, 4)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_output_comparison_tolerance():
    from tecomp.tuner.measure import _max_error

    want = np.array([1.0, np.nan, np.inf, 100.0], "float32")
    assert _max_error(want.copy(), want) == (0.0, True)
    near = want + np.array([0, 0, 0, 0.05], "float32")  # within 1e-3 of the largest magnitude
    assert _max_error(near, want)[1]
    assert not _max_error(want + np.array([0, 0, 0, 0.5], "float32"), want)[1]
    one_nan = want.copy()
    one_nan[0] = np.nan
    assert not _max_error(one_nan, want)[1]
    assert _max_error(np.array([1, 2]), np.array([1, 3])) == (1.0, False)  # integers: exact


@pytest.mark.parametrize("threads", [0, -2, 1.5, True])
def test_runner_thread_count_must_be_a_positive_int(threads):
    with pytest.raises(TuningError, match="num_threads must be a positive integer"):
        LocalRunner(num_threads=threads)
