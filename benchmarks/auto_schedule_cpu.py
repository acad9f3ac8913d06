"""Auto-scheduled kernels from the bare compute, beside their default schedules, a hand-written
schedule (GEMM: examples/matmul.py) and numpy, all timed in this one run.

Workloads: GEMM 1024^3 float32; a 5-point 2-D stencil (2048^2, on a padded input; and on a grid
whose border keeps its value, written with ``te.if_then_else``); a fused softmax(x) @ V
(x 512x512, V 512x256). Each is tuned with ``tecomp.auto_scheduler`` (measurements kept in a
records database; a rerun resumes and adds ``--trials`` more), then its best record is built
and timed in turns with the default schedule, the hand-written one and numpy, so that all see
the same machine load (printed: the load average before timing). Prints GFLOP/s and the ratios
the auto-scheduler issue sets as goals (tuned GEMM >= 0.9x the hand-written one; stencils and
softmax@V tuned >= 3x their default schedules).

    python benchmarks/auto_schedule_cpu.py [--trials 64] [--db auto_schedule.db] [--threads 2]
        [--only stencil stencil_bounded]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

import tecomp
from tecomp import auto_scheduler

from auto_schedule_workloads import (gemm, gemm_numpy, softmax_matmul, softmax_matmul_numpy, stencil5,
                                     stencil5_bounded, stencil5_bounded_numpy, stencil5_numpy)
from harness import gflops, interleaved_medians, threads

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from matmul import matmul_schedule  # noqa: E402


WORKLOADS = {
    "gemm": (gemm, (1024, "float32"), gemm_numpy),
    "stencil": (stencil5, (2048,), stencil5_numpy),
    "stencil_bounded": (stencil5_bounded, (2048,), stencil5_bounded_numpy),
    "softmax": (softmax_matmul, (512, 256), softmax_matmul_numpy),
}


def prepared(sch, tensors, inputs: list[np.ndarray], out_shape: tuple) -> tuple[Callable[[], object], Any]:
    """A call of the built schedule on ``inputs``, and its output array."""
    f = tecomp.build(sch, tensors, target="llvm")
    dev = tecomp.cpu(0)
    args = [tecomp.nd.array(a, dev) for a in inputs] + [tecomp.nd.empty(out_shape, "float32", dev)]
    return (lambda: f(*args)), args[-1]


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
        runs = {"default": prepared(*task.default_schedule(), inputs, out_shape),
                "auto-scheduled": prepared(*task.apply_best(args.db), inputs, out_shape)}
        if name == "gemm":
            runs["hand-written"] = prepared(*matmul_schedule(wargs[0]), inputs, out_shape)
        load = os.getloadavg()[0]
        with threads(args.threads):  # in turns, so that a varying machine load hits every row alike
            *seconds, numpy_s = interleaved_medians([call for call, _ in runs.values()]
                                                    + [lambda: reference(*inputs)], repeat=5, min_ms=200)
        rows = dict(zip(runs, seconds))
        print(f"\n{name} {wargs}, {task.flop / 1e9:.3f} GFLOP, {args.threads} threads, {args.trials} more trials, "
              f"load average {load:.1f} before timing")
        for label, (_, out) in runs.items():
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-3, atol=1e-3)
            print(f"  tecomp {label:15s} {gflops(task.flop, rows[label]):8.2f} GFLOP/s  {rows[label] * 1e3:9.3f} ms")
        print(f"  numpy                  {gflops(task.flop, numpy_s):8.2f} GFLOP/s  {numpy_s * 1e3:9.3f} ms")
        tuned = rows["auto-scheduled"]
        print(f"  auto-scheduled vs default: {rows['default'] / tuned:.2f}x faster")
        if name == "gemm":
            print(f"  auto-scheduled vs hand-written: {rows['hand-written'] / tuned:.2f}x speed")
        print(f"  auto-scheduled vs numpy: {numpy_s / tuned:.2f}x speed")


if __name__ == "__main__":
    main()
