"""Tuned 1024^3 float32 GEMM on one thread: XGB-tuned template vs the hand-written schedule vs numpy.

Tunes ``bench/matmul_register_blocked`` (the template of
``tuning_efficiency.py``) with the XGB tuner, keeping every measurement in a
records database (a rerun resumes), then times, in this one process and on
one thread, the best record built under ``apply_history_best``, the
hand-written register-blocked schedule of ``gemm_cpu.py``, and numpy.

    python benchmarks/tuned_gemm.py [--trials 150] [--db tuned_gemm.db]
"""

from __future__ import annotations

import argparse

import numpy as np

import tecomp
from tecomp import tuner as autotvm
from tecomp.tuner.xgb_tuner import XGBTuner

from gemm_cpu import register_blocked
from harness import gflops, median_seconds, threads
from tuning_efficiency import matmul_register_blocked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=150)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--db", default="tuned_gemm.db")
    args = parser.parse_args()
    n = args.size
    task = autotvm.task.create("bench/matmul_register_blocked", args=(n,), target="llvm")
    measure = autotvm.measure_option(builder=autotvm.LocalBuilder(n_parallel=2),
                                     runner=autotvm.LocalRunner(number=3, repeat=3, min_repeat_ms=100,
                                                                timeout=20))
    tuner = XGBTuner(task, plan_size=32, seed=0)
    with threads(1):
        tuner.tune(n_trial=args.trials, measure_option=measure,
                   callbacks=[autotvm.callback.progress_bar(args.trials), autotvm.callback.log_to_db(args.db)])

    with autotvm.apply_history_best(args.db), tecomp.target.Target("llvm"):
        s, tensors = matmul_register_blocked(n)
        tuned = tecomp.build(s, tensors)
    hand = tecomp.build(*register_blocked(n))
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    want = a @ b
    flops = 2.0 * n ** 3
    print(f"GEMM {n}^3 float32, 1 thread; tuned with {args.trials} XGB trials (records: {args.db})")
    with threads(1):
        rows = []
        for name, f in (("tuned (XGB)", tuned), ("hand-written register blocking", hand)):
            c = np.zeros((n, n), "float32")
            f(a, b, c)
            np.testing.assert_allclose(c, want, rtol=1e-3, atol=1e-2)
            secs = median_seconds(lambda: f(a, b, c))
            numpy_s = median_seconds(lambda: a @ b)
            rows.append((name, secs, numpy_s))
    for name, secs, numpy_s in rows:
        print(f"{name:32s} {gflops(flops, secs):7.1f} GFLOP/s  {numpy_s / secs:5.2f}x numpy "
              f"(numpy {gflops(flops, numpy_s):.1f} GFLOP/s beside it)")


if __name__ == "__main__":
    main()
