"""Tuning cuda templates: candidates built with nvcc in builder processes, timed on GPU 0.

The builder lowers a cuda task's candidates with the GPU checks and compiles them with nvcc
(a binding over the device limits is a recorded error); the runner copies the random inputs
to the GPU, checks the outputs against the host-computed reference and times with CUDA events.
Without a GPU the run handler is exercised on ``fake_pycuda`` in this process, and a real
tuning run records every candidate as a device error naming the missing driver.
"""

from __future__ import annotations


import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.runtime import load_module
from tecomp.schedules.cuda.common import BLOCK_X, THREAD_X, axis
from tecomp.tuner.measure import MeasureErrorNo, _BuildHandler, _RunHandler, reference_outputs, task_spec

from gpu_helpers import needs_gpu, needs_nvcc

pytestmark = needs_nvcc
DENSE = ("schedules/cuda/dense", (64, 64, 32, "float32", False, True))


@autotvm.template("test/cuda_threads")
def threads_template(n: int):
    """A vector doubling whose block size is a knob; 2048 threads per block is over the limit."""
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0, name="B")
    cfg = autotvm.get_config()
    cfg.define_knob("threads", [64, 2048])
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=cfg["threads"].val)
    s[B].bind(bx, axis(BLOCK_X))
    s[B].bind(tx, axis(THREAD_X))
    return s, [A, B]


def _build(task, index, tmp_path):
    config = task.config_space.get(index)
    job = {"task": task_spec(task), "config": config.to_json_dict(), "out": str(tmp_path / f"c{index}.so")}
    return config, _BuildHandler()(job)


def test_builder_compiles_a_cuda_candidate_with_nvcc(tmp_path):
    task = autotvm.task.create(*DENSE, target="cuda")
    _, reply = _build(task, 0, tmp_path)
    assert reply["error_no"] == MeasureErrorNo.NO_ERROR, reply
    module = load_module(reply["filename"])
    assert module.device_kind == "cuda" and "__global__" in module.get_source()


def test_builder_records_a_binding_over_the_device_limit(tmp_path):
    task = autotvm.task.create("test/cuda_threads", (4096,), target="cuda")
    over = next(k for k in range(len(task.config_space)) if task.config_space.get(k)["threads"].val == 2048)
    _, reply = _build(task, over, tmp_path)
    assert reply["error_no"] == MeasureErrorNo.COMPILE_HOST
    assert "2048 threads per block" in reply["error_msg"] and "1024" in reply["error_msg"]


def test_runner_checks_and_times_a_candidate_on_the_gpu(tmp_path, gpu):
    task = autotvm.task.create(*DENSE, target="cuda")
    config, reply = _build(task, 3, tmp_path)
    sch, args = task.instantiate(config)
    gpu.register(tecomp.lower(sch, args, name="candidate", target="cuda")["candidate"])
    reference = reference_outputs(task, config, target="llvm")
    job = {"filename": reply["filename"], "seed": 0, "number": 2, "repeat": 3, "min_repeat_ms": 0,
           "reference": reference}
    result = _RunHandler()(job)
    assert result["error_no"] == MeasureErrorNo.NO_ERROR and len(result["costs"]) == 3
    assert all(c > 0 for c in result["costs"])  # CUDA events (the fake's clock)
    wrong = {i: v + 1.0 for i, v in reference.items()}
    result = _RunHandler()(dict(job, reference=wrong))
    assert result["error_no"] == MeasureErrorNo.WRONG_ANSWER and "differs from the reference" in result["error_msg"]


def _tune(task, trials, db):
    option = autotvm.measure_option(autotvm.LocalBuilder(n_parallel=1), autotvm.LocalRunner(number=2,
                                                                                            check_correctness=True))
    seen = []
    autotvm.tuner.RandomTuner(task, seed=0).tune(
        trials, option, callbacks=[autotvm.callback.log_to_db(db), lambda t, i, r: seen.extend(r)])
    return seen


@pytest.mark.skipif(tecomp.cuda(0).exist, reason="this host has a usable GPU")
def test_tuning_without_a_gpu_records_why_and_survives(tmp_path):
    task = autotvm.task.create(*DENSE, target="cuda")
    results = _tune(task, 2, tmp_path / "t.db")
    assert len(results) == 2
    for r in results:
        assert r.error_no == MeasureErrorNo.RUNTIME_DEVICE and "no CUDA driver/pycuda" in r.error_msg


@pytest.mark.gpu
@needs_gpu
def test_tuning_a_cuda_template_on_a_gpu(tmp_path):
    task = autotvm.task.create("schedules/cuda/dense", (256, 256, 256, "float32", False, True), target="cuda")
    results = _tune(task, 4, tmp_path / "t.db")
    assert any(r.error_no == MeasureErrorNo.NO_ERROR and min(r.costs) > 0 for r in results)
    with autotvm.apply_history_best(str(tmp_path / "t.db")), tecomp.target.Target("cuda"):
        best = autotvm.task.dispatched_config(task.name, task.args)
    assert not isinstance(best, autotvm.space.FallbackConfigEntity)
