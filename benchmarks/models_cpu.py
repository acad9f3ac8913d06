"""Whole models on the CPU: tecomp default and tuned beside ONNX Runtime, 1 and 2 threads.

Models (``onnx_models.BENCHMARKS``, random weights from a fixed seed): ResNet-18 and
MobileNetV2 (224x224, batch 1), a 2-layer transformer encoder (d_model 256, 4 heads,
seq 128) and an MLP 784-512-512-10 (batch 64). Each is imported with
``tecomp.frontend.from_onnx`` and compiled twice: with no records (fallback configs)
and, per thread count, under ``apply_history_best(--db)`` (records timed at that count
first); with ``--trials N`` or ``--budget TIME`` every task of the model is first tuned at
each thread count (XGB, up to N trials each, or the whole model for TIME with
``tecomp tune --budget``'s task scheduler; resumable). ORT runs the same model with
``intra_op_num_threads = n``, all graph optimisations, into preallocated outputs (IO
binding). Outputs are checked to agree; printed per model: compile seconds, the memory
plan's peak of intermediates, and per thread count the median latency of tecomp default,
tecomp tuned and ORT (measured in turns), and ORT / default and ORT / tuned.

    python benchmarks/models_cpu.py [--models resnet18,mlp] [--threads 1,2] [--trials 0] [--budget 10m]
                                    [--db ops_cpu.db]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time

import numpy as np

import tecomp
import tecomp.graph
from tecomp import tuner as autotvm
from tecomp.frontend import from_onnx
from tecomp.graph.tuning import tune_model

from harness import interleaved_medians, ort_runner, ort_session, threads
from tecomp.cli import parse_duration
from onnx_models import BENCHMARKS, random_inputs


def compile_model(graph, params, db):
    context = autotvm.apply_history_best(db) if db else contextlib.nullcontext()
    start = time.perf_counter()
    with context:
        module = tecomp.graph.build(graph, "llvm", params)
    return module, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BENCHMARKS), help="comma-separated subset of "
                        + ", ".join(BENCHMARKS))
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--trials", type=int, default=0, help="tune every task of each model first")
    parser.add_argument("--budget", type=parse_duration, metavar="TIME",
                        help="tune each model this long first, per thread count (600, 90s, 10m)")
    parser.add_argument("--db", default="ops_cpu.db", help="tuning records (shared with ops_cpu.py)")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]

    import onnxruntime as ort
    tuning = (f"tuning budget {args.budget:g} s per model and thread count" if args.budget
              else f"{args.trials} trials per task" if args.trials else "no tuning in this run")
    print(f"models on {platform.processor() or platform.machine()}, tecomp {tecomp.__version__}, "
          f"onnxruntime {ort.__version__}; records: {args.db}; {tuning}")
    for name in args.models.split(","):
        build_onnx, shapes = BENCHMARKS[name]
        model = build_onnx()
        graph, params = from_onnx(model, shape=shapes)
        default, default_s = compile_model(graph, params, None)
        inputs = random_inputs(shapes)
        print(f"\n{name}: compile {default_s:.1f} s default; {default.memory_plan.summary()}")
        print(f"  {'threads':>7s} {'default ms':>11s} {'tuned ms':>9s} {'ORT ms':>8s} {'ORT/default':>11s} "
              f"{'ORT/tuned':>9s}")
        for n in thread_counts:
            with threads(n):
                if args.trials or args.budget:
                    tune_model(graph, params, args.db, args.trials or 10_000, budget=args.budget, num_threads=n)
                tuned, _ = compile_model(graph, params, args.db if os.path.exists(args.db) else None)
                ort_call, want = ort_runner(ort_session(model.SerializeToString(), n), inputs)
                ort_call()
                for module in (default, tuned):
                    for got, ref in zip(module.run(**inputs), want):
                        np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3,
                                                   err_msg=f"{name}: tecomp and onnxruntime disagree")
                d, t, o = interleaved_medians([lambda: default.run(**inputs), lambda: tuned.run(**inputs),
                                               ort_call], repeat=5, min_ms=100)
            print(f"  {n:7d} {d * 1e3:11.3f} {t * 1e3:9.3f} {o * 1e3:8.3f} {o / d:11.2f} {o / t:9.2f}", flush=True)


if __name__ == "__main__":
    main()
