"""Auto-scheduled kernels from the bare compute, beside their default schedules, a hand-written
schedule (GEMM: examples/matmul.py) and numpy, all timed in this one run.

Workloads: GEMM 1024^3 float32; a 5-point 2-D stencil (2048^2, on a padded input; and on a grid
whose border keeps its value, written with ``te.if_then_else``); a fused softmax(x) @ V
(x 512x512, V 512x256). Each is tuned with ``tecomp.auto_scheduler`` (measurements kept in a
records database; a rerun resumes and adds ``--trials`` more), then its best record is built
and timed. Prints GFLOP/s and the ratios the auto-scheduler issue sets as goals (tuned GEMM
>= 0.9x the hand-written one; stencil and softmax@V tuned >= 3x their default schedules).

    python benchmarks/auto_schedule_cpu.py [--trials 64] [--db auto_schedule.db] [--only stencil stencil_bounded]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

import tecomp
from tecomp import auto_scheduler

from auto_schedule_workloads import (gemm, gemm_numpy, softmax_matmul, softmax_matmul_numpy, stencil5,
                                     stencil5_bounded, stencil5_bounded_numpy, stencil5_numpy)
from harness import gflops, median_seconds, threads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from matmul import matmul_schedule  # noqa: E402


WORKLOADS = {
    "gemm": (gemm, (1024, "float32"), gemm_numpy),
    "stencil": (stencil5, (2048,), stencil5_numpy),
    "stencil_bounded": (stencil5_bounded, (2048,), stencil5_bounded_numpy),
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
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="these workloads only")
    parser.add_argument("--threads", type=int, default=tecomp.config.num_threads())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rng = np.random.default_rng(0)
    for name, (func, wargs, reference) in WORKLOADS.items():
        if args.only and name not in args.only:
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
