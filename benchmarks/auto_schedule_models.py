"""Whole models, equal trial budget: template-tuned build vs auto-scheduled build vs default build.

For each model chosen (one of ``onnx_models.BENCHMARKS``, or a network of the zoo, ``zoo.py``,
once exported into its cache): the template tasks are tuned with the XGB
tuner, ``--trials`` each (``tecomp tune``), into ``<db>.templates``; every fused kernel is
auto-scheduled (``tecomp tune --auto-schedule``) into ``<db>.auto`` with as many trials in all as
the templates had (measured records, so a template space smaller than ``--trials`` counts what
it had; both sides then re-time their best configs beside the default, which is not counted). Then the model is built three ways (no records; the template records; the
auto-scheduler records, which a kernel uses where they beat the template records of the same
database: here there are none) and the three builds are timed in turns, outputs checked to agree.

    python benchmarks/auto_schedule_models.py [--models mlp,shufflenet_v2_x0_5] [--trials 16] [--db auto_models.db] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np

import tecomp
import tecomp.graph
from tecomp import auto_scheduler
from tecomp import tuner as autotvm
from tecomp.auto_scheduler.graph_tasks import tune_graph
from tecomp.frontend import from_onnx
from tecomp.graph.tuning import tune_model

import zoo
from harness import interleaved_medians, threads
from onnx_models import BENCHMARKS, random_inputs


def load_model(name: str) -> tuple:
    """Graph, params and named inputs of a benchmark model or of a cached zoo network."""
    if name in BENCHMARKS:
        make, shapes = BENCHMARKS[name]
        return (*from_onnx(make(), shape=shapes), random_inputs(shapes))
    if name not in zoo.NETWORKS:
        raise SystemExit(f"unknown model {name!r}: one of {', '.join([*BENCHMARKS, *zoo.NETWORKS])}")
    onnx_path, inputs_path = zoo.export(zoo.NETWORKS[name])
    inputs = zoo.load_inputs(inputs_path)
    return (*zoo.import_network(onnx_path, inputs), inputs)


def build(graph, params, context):
    with context:
        return tecomp.graph.build(graph, "llvm", params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp", help="comma-separated benchmark models (" + ", ".join(BENCHMARKS) + ") or zoo networks (zoo.py --list)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--db", default="auto_models.db")
    parser.add_argument("--threads", type=int, default=tecomp.config.num_threads())
    args = parser.parse_args()
    for name in args.models.split(","):
        graph, params, inputs = load_model(name)
        templates, auto = f"{args.db}.templates", f"{args.db}.auto"
        template_tasks = tune_model(graph, params, templates, args.trials, "xgb", "llvm", progress=False,
                                    num_threads=args.threads)
        with autotvm.RecordDB(templates) as db:
            budget = sum(1 for task in template_tasks for rec in db.records(task.key) if rec.tuner != "confirm")
        tasks = tune_graph(graph, params, auto, args.trials, "llvm", args.threads, total_trials=budget)
        modules = {"default": build(graph, params, contextlib.nullcontext()),
                   "template-tuned": build(graph, params, autotvm.apply_history_best(templates)),
                   "auto-scheduled": build(graph, params, auto_scheduler.ApplyHistoryBest(auto))}
        outputs = {label: m.run(**inputs)[0] for label, m in modules.items()}
        for label, out in outputs.items():
            np.testing.assert_allclose(out, outputs["default"], rtol=1e-3, atol=1e-3, err_msg=label)
        with threads(args.threads):
            seconds = interleaved_medians([lambda m=m: m.run(**inputs) for m in modules.values()], 5, 200)
        print(f"\n{name}: {len(template_tasks)} template tasks ({args.trials} trials each at most) and "
              f"{len(tasks)} kernels auto-scheduled, {budget} trials each way, {args.threads} threads")
        for label, s in zip(modules, seconds):
            print(f"  {label:15s} {s * 1e3:9.3f} ms")
        print(f"  auto-scheduled vs template-tuned: {seconds[1] / seconds[2]:.2f}x speed")


if __name__ == "__main__":
    main()
