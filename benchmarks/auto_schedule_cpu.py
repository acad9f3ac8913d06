"""Auto-scheduled kernels from the bare compute, beside their default schedules, a hand-written
schedule (GEMM: examples/matmul.py) and numpy, all timed in this one run.

Workloads: GEMM 1024^3 float32; a 5-point 2-D stencil (2048^2); a fused softmax(x) @ V
(x 512x512, V 512x256). Each is tuned with ``tecomp.auto_scheduler`` (measurements kept in a
records database; a rerun resumes and adds ``--trials`` more), then its best record is built
and timed. Prints GFLOP/s and the ratios the auto-scheduler issue sets as goals (tuned GEMM
>= 0.9x the hand-written one; stencil and softmax@V tuned >= 3x their default schedules).

    python benchmarks/auto_schedule_cpu.py [--trials 64] [--db auto_schedule.db] [--only gemm]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

import tecomp
from tecomp import auto_scheduler, te

from harness import gflops, median_seconds, threads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from matmul import matmul_schedule  # noqa: E402


@auto_scheduler.register_workload
def gemm(n: int, dtype: str):
    A = te.placeholder((n, n), dtype, name="A")
    B = te.placeholder((n, n), dtype, name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return [A, B, C]


@auto_scheduler.register_workload
def stencil5(n: int):
    a = te.placeholder((n + 2, n + 2), name="a")
    out = te.compute((n, n), lambda i, j: 0.2 * (a[i, j + 1] + a[i + 1, j] + a[i + 1, j + 1]
                                                 + a[i + 1, j + 2] + a[i + 2, j + 1]), name="out")
    return [a, out]


@auto_scheduler.register_workload
def softmax_matmul(n: int, m: int):
    x = te.placeholder((n, n), name="x")
    v = te.placeholder((n, m), name="v")
    k1, k2, k3 = (te.reduce_axis((0, n), name=f"k{i}") for i in range(3))
    mx = te.compute((n,), lambda i: te.max(x[i, k1], axis=k1), name="mx")
    e = te.compute((n, n), lambda i, j: te.exp(x[i, j] - mx[i]), name="e")
    s = te.compute((n,), lambda i: te.sum(e[i, k2], axis=k2), name="s")
    p = te.compute((n, n), lambda i, j: e[i, j] / s[i], name="p")
    out = te.compute((n, m), lambda i, j: te.sum(p[i, k3] * v[k3, j], axis=k3), name="out")
    return [x, v, out]


def softmax_matmul_numpy(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)) @ v


WORKLOADS = {
    "gemm": (gemm, (1024, "float32"), lambda a, b: a @ b),
    "stencil": (stencil5, (2048,), lambda a: 0.2 * (a[:-2, 1:-1] + a[1:-1, :-2] + a[1:-1, 1:-1]
                                                   + a[1:-1, 2:] + a[2:, 1:-1])),
    "softmax": (softmax_matmul, (512, 256), softmax_matmul_numpy),
}


def timed(sch, tensors, inputs: list[np.ndarray], out_shape: tuple) -> tuple[float, np.ndarray]:
    f = tecomp.build(sch, tensors, target="llvm")
    dev = tecomp.cpu(0)
    args = [tecomp.nd.array(a, dev) for a in inputs] + [tecomp.nd.empty(out_shape, "float32", dev)]
    return median_seconds(lambda: f(*args)), args[-1].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64)
    parser.add_argument("--db", default="auto_schedule.db")
    parser.add_argument("--only", choices=sorted(WORKLOADS))
    parser.add_argument("--threads", type=int, default=tecomp.config.num_threads())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(0)
    for name, (func, wargs, reference) in WORKLOADS.items():
        if args.only and name != args.only:
            continue
        task = auto_scheduler.SearchTask(func=func, args=wargs, target="llvm")
        # no check_correctness: the reference (the default schedule) of the GEMM takes longer than a
        # timeout; the best schedule is checked against numpy below
        runner = tecomp.tuner.LocalRunner(number=3, min_repeat_ms=50, num_threads=args.threads)
        task.tune(auto_scheduler.TuningOptions(num_measure_trials=args.trials, runner=runner,
                                               measure_callbacks=[auto_scheduler.RecordToFile(args.db)]))
        inputs = [rng.uniform(-1, 1, [int(d) for d in t.shape]).astype("float32") for t in task.tensors[:-1]]
        out_shape = tuple(int(d) for d in task.tensors[-1].shape)
        want = reference(*inputs)
        with threads(args.threads):
            rows = {"default": timed(*task.default_schedule(), inputs, out_shape),
                    "auto-scheduled": timed(*task.apply_best(args.db), inputs, out_shape)}
            if name == "gemm":
                rows["hand-written"] = timed(*matmul_schedule(wargs[0]), inputs, out_shape)
            numpy_s = median_seconds(lambda: reference(*inputs))
        print(f"\n{name} {wargs}, {task.flop / 1e9:.3f} GFLOP, {args.threads} threads, {args.trials} more trials")
        for label, (seconds, got) in rows.items():
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
            print(f"  tecomp {label:15s} {gflops(task.flop, seconds):8.2f} GFLOP/s  {seconds * 1e3:9.3f} ms")
        print(f"  numpy                  {gflops(task.flop, numpy_s):8.2f} GFLOP/s  {numpy_s * 1e3:9.3f} ms")
        tuned = rows["auto-scheduled"][0]
        print(f"  auto-scheduled vs default: {rows['default'][0] / tuned:.2f}x faster")
        if name == "gemm":
            print(f"  auto-scheduled vs hand-written: {rows['hand-written'][0] / tuned:.2f}x speed")
        print(f"  auto-scheduled vs numpy: {numpy_s / tuned:.2f}x speed")


if __name__ == "__main__":
    main()
