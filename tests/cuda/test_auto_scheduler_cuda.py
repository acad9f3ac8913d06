"""The auto-scheduler's GPU sketches: each rule on small DAGs of odd shapes, candidates that lower
for cuda and compute what numpy computes (interpreter and the emitted CUDA C, on the CPU), free
of data races in any thread order, replayed from their JSON steps to the same kernel, compiled by
nvcc; a search on a machine without a GPU records why and falls back to a kernel that lowers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

import tecomp
from tecomp import auto_scheduler, te
from tecomp.auto_scheduler.annotation import sample, to_steps
from tecomp.auto_scheduler.steps import replay
from tecomp.tir import interpreter
from tecomp.tuner import RecordDB

from gpu_helpers import emulate, emulate_and_compile


@auto_scheduler.register_workload
def gemm_relu(m, n, k):
    A = te.placeholder((m, k), name="A")
    B = te.placeholder((k, n), name="B")
    r = te.reduce_axis((0, k), name="r")
    C = te.compute((m, n), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    return [A, B, te.compute((m, n), lambda i, j: te.max(C[i, j] + 1.0, 0.0), name="D")]


@auto_scheduler.register_workload
def padded_conv(c, h, w, k):
    X = te.placeholder((1, c, h, w), name="X")
    W = te.placeholder((k, c, 3, 3), name="W")
    P = te.compute((1, c, h + 2, w + 2), lambda b, ci, y, x: te.if_then_else(
        te.all(y >= 1, y <= h, x >= 1, x <= w), X[b, ci, y - 1, x - 1], 0.0), name="P")
    rc, ry, rx = te.reduce_axis((0, c), "rc"), te.reduce_axis((0, 3), "ry"), te.reduce_axis((0, 3), "rx")
    return [X, W, te.compute((1, k, h, w), lambda b, o, y, x: te.sum(
        P[b, rc, y + ry, x + rx] * W[o, rc, ry, rx], axis=[rc, ry, rx]), name="Y")]


@auto_scheduler.register_workload
def softmax_rows(m, n):
    X = te.placeholder((m, n), name="X")
    k1, k2 = te.reduce_axis((0, n), "k1"), te.reduce_axis((0, n), "k2")
    M = te.compute((m,), lambda i: te.max(X[i, k1], axis=k1), name="M")
    E = te.compute((m, n), lambda i, j: te.exp(X[i, j] - M[i]), name="E")
    S = te.compute((m,), lambda i: te.sum(E[i, k2], axis=k2), name="S")
    return [X, te.compute((m, n), lambda i, j: E[i, j] / S[i], name="Y")]


@auto_scheduler.register_workload
def total(n):
    X = te.placeholder((n,), name="X")
    k = te.reduce_axis((0, n), "k")
    return [X, te.compute((), lambda: te.sum(X[k], axis=k), name="T")]


def _conv_reference(x, w):
    _, _, h, wd = x.shape
    p = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return sum(np.einsum("bchw,oc->bohw", p[:, :, ry:ry + h, rx:rx + wd], w[:, :, ry, rx])
               for ry in range(3) for rx in range(3))


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


_RNG = np.random.default_rng(0)
CASES = {
    "gemm_relu": (gemm_relu, (19, 29, 13), "2:gpu_tile, 3:gpu_simple",
                  [_RNG.random((19, 13), dtype="float32"), _RNG.random((13, 29), dtype="float32")],
                  lambda a, b: np.maximum(a @ b + 1, 0)),
    "padded_conv": (padded_conv, (3, 7, 5, 4), "1:inline, 3:gpu_tile",
                    [_RNG.random((1, 3, 7, 5), dtype="float32"), _RNG.random((4, 3, 3, 3), dtype="float32")],
                    _conv_reference),
    "softmax_rows": (softmax_rows, (13, 197), "1:gpu_simple, 2:gpu_simple, 3:gpu_simple, 4:gpu_simple",
                     [_RNG.standard_normal((13, 197), dtype="float32")], _softmax),
    "total": (total, (1500,), "1:gpu_simple", [_RNG.random(1500, dtype="float32")],
              lambda x: np.array(x.sum(dtype="float64"), "float32")),
}


def _candidates(task, count, seed=3):
    rng = random.Random(seed)
    return [sample(rng, task.compute_dag, task.sketches[0]) for _ in range(count)]


@pytest.mark.parametrize("name", CASES)
def test_gpu_sketch_candidates_compute_what_numpy_does_without_races(name):
    func, args, sketch, inputs, reference = CASES[name]
    task = auto_scheduler.SearchTask(func=func, args=args, target="cuda")
    assert task.note == "" and str(task.sketches[0]) == sketch
    want = reference(*inputs)
    for cand in _candidates(task, 3):
        sch, tensors = task.compute_dag.apply_steps(to_steps(task.compute_dag, cand))
        lowered = tecomp.lower(sch, tensors, target="cuda")["main"]
        (got,) = emulate(lowered, inputs, [want.shape])
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(cand.params))
        out = np.zeros(want.shape, "float32")
        interpreter.run(lowered, [*inputs, out], order="shuffle", seed=7, races=True)  # DataRaceError if any


def test_gpu_tile_copies_inputs_to_shared_memory_and_binds_threads():
    task = auto_scheduler.SearchTask(func=gemm_relu, args=(19, 29, 13), target="cuda")
    (cand,) = _candidates(task, 1)
    steps = to_steps(task.compute_dag, cand)
    assert {s[2] for s in steps if s[0] == "CHR"} == {"shared"} and len([s for s in steps if s[0] == "CHR"]) == 2
    assert {s[3] for s in steps if s[0] == "AN"} >= {"blockIdx.x", "threadIdx.x"}
    sch, tensors = task.compute_dag.apply_steps(steps)
    text = str(tecomp.lower(sch, tensors, target="cuda")["main"])
    assert "shared" in text and "local" in text


@pytest.mark.parametrize("name", ["gemm_relu", "padded_conv"])
def test_gpu_steps_replay_from_json_and_compile_with_nvcc(name):
    func, args, _, inputs, reference = CASES[name]
    task = auto_scheduler.SearchTask(func=func, args=args, target="cuda")
    (cand,) = _candidates(task, 1, seed=11)
    steps = to_steps(task.compute_dag, cand)
    first, tensors = task.compute_dag.apply_steps(steps)
    again = replay(task.compute_dag.init_schedule(), json.loads(json.dumps(steps)))
    assert str(tecomp.lower(again, tensors, target="cuda")["main"]) == \
        str(tecomp.lower(first, tensors, target="cuda")["main"])
    emulate_and_compile(first, tensors, inputs, reference(*inputs), rtol=1e-4, atol=1e-4)


def test_search_without_a_gpu_records_why_and_falls_back_to_a_kernel_that_lowers(tmp_path):
    db = str(tmp_path / "gpu.db")
    task = auto_scheduler.SearchTask(func=gemm_relu, args=(16, 24, 8), target="cuda")
    task.tune(auto_scheduler.TuningOptions(num_measure_trials=2, measure_callbacks=[auto_scheduler.RecordToFile(db)]))
    with RecordDB(db) as records:
        errors = [r.error_msg for r in records.records()]
    assert len(errors) == 2 and all("CUDAUnavailableError" in e for e in errors)
    sch, tensors = task.apply_best(db)  # no measured record: the generic CUDA schedule
    a, b = np.ones((16, 8), "float32"), np.ones((8, 24), "float32")
    (got,) = emulate(tecomp.lower(sch, tensors, target="cuda")["main"], [a, b], [(16, 24)])
    np.testing.assert_allclose(got, np.full((16, 24), 9.0))
