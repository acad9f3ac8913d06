"""Tuner efficiency: XGB vs GA vs Random vs Grid on a register-blocked 512^3 float32 GEMM.

The template (``matmul_register_blocked``) is the schedule of
``examples/matmul.py`` with its choices opened up: the accumulator tile's
rows mr (a split of i, up to 32) and columns nr (8..64, also the width of
the B panels), packing B or not, a split of k (inner part up to 16),
unrolling the tile's rows and/or the inner k loop, vectorizing the tile's
columns: 1920 configs. No parallel loop: runs are single-threaded, which a
shared machine times more steadily.

Every tuner (seeds 0..N-1; Grid once, it has no randomness) gets the same
trial budget. Each config is built and timed once, the first time any tuner
asks for it; later requests are answered from that measurement (kept in a
records database, so a rerun measures nothing twice). Every tuner thus sees
the same number for the same config, and the comparison is of search, not
of timing noise. Reported: the best GFLOP/s after 25/50/100/200 trials (mean
over seeds), the trials each run needed to reach 95% of the best config any
run found, and a PNG of the best-so-far curves.

    python benchmarks/tuning_efficiency.py [--trials 200] [--seeds 3] [--size 512]
        [--db tuning_efficiency.db] [--png tuning_efficiency.png]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Callable, Sequence

import numpy as np

from tecomp import te
from tecomp import tuner as autotvm
from tecomp.tuner.ga_tuner import GATuner
from tecomp.tuner.grid_tuner import GridSearchTuner
from tecomp.tuner.measure import LocalBuilder, LocalRunner, MeasureResult
from tecomp.tuner.random_tuner import RandomTuner
from tecomp.tuner.records import RecordDB
from tecomp.tuner.xgb_tuner import XGBTuner

CHECKPOINTS = (25, 50, 100, 200)


@autotvm.template("bench/matmul_register_blocked")
def matmul_register_blocked(n: int):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    cfg = autotvm.get_config()
    cfg.define_knob("nr", [8, 16, 32, 64])
    cfg.define_knob("pack", [0, 1])
    cfg.define_split("tile_y", n, num_outputs=2, max_factor=32)
    cfg.define_split("tile_k", n, num_outputs=2, max_factor=16)
    cfg.define_knob("unroll_rows", [0, 1])
    cfg.define_knob("unroll_k", [0, 1])
    cfg.define_knob("vec", [0, 1])
    nr, mr = cfg["nr"].val, cfg["tile_y"].size[-1]
    if cfg["pack"].val:
        packed = te.compute((n // nr, n, nr), lambda x, y, z: B[y, x * nr + z], name="packedB")
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * packed[j // nr, k, j % nr], axis=k), name="C")
    else:
        C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    acc = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[acc].compute_at(s[C], jo)
    ai, aj = s[acc].op.axis
    ko, ki = cfg["tile_k"].apply(s, acc, s[acc].op.reduce_axis[0])
    s[acc].reorder(ko, ki, ai, aj)
    if cfg["unroll_rows"].val:
        s[acc].unroll(ai)
    if cfg["unroll_k"].val:
        s[acc].unroll(ki)
    if cfg["vec"].val:
        s[acc].vectorize(aj)
        s[C].vectorize(ji)
    if cfg["pack"].val:
        s[packed].vectorize(packed.op.axis[2])
    return s, [A, B, C]


class MeasureOnce:
    """Builder and runner in one: measures each config once, then answers from the records."""

    def __init__(self, task: Any, db: RecordDB, builder: LocalBuilder, runner: LocalRunner):
        self.task, self.db, self.builder, self.runner = task, db, builder, runner
        self.n_parallel = builder.n_parallel
        self.cache: dict[int, MeasureResult] = {}
        for rec in db.records(task.key, str(task.target)):
            self.cache[rec.config_index] = MeasureResult(tuple(rec.costs), rec.error_no, rec.error_msg,
                                                         rec.all_cost, rec.timestamp)
        self.new_measurements = 0
        self.seconds = 0.0

    def build(self, inputs: Sequence[Any]) -> list:
        return list(inputs)  # the real build happens in run, for the configs not yet measured

    def run(self, inputs: Sequence[Any], _builds: Sequence[Any]) -> list:
        fresh = list({inp.config.index: inp for inp in inputs if inp.config.index not in self.cache}.values())
        if fresh:
            start = time.perf_counter()
            results = self.runner.run(fresh, self.builder.build(fresh))
            self.seconds += time.perf_counter() - start
            self.db.add_many(zip(fresh, results), tuner="tuning_efficiency")
            for inp, res in zip(fresh, results):
                self.cache[inp.config.index] = res
            self.new_measurements += len(fresh)
        return [self.cache[inp.config.index] for inp in inputs]

    def option(self) -> dict:
        return {"builder": self, "runner": self}


def best_curve(make: Callable[[], Any], n_trial: int, measure: MeasureOnce) -> tuple[list[float], float]:
    """GFLOP/s of the best config after each trial, and the seconds the tuner spent outside measuring."""
    tuner = make()
    curve: list[float] = []
    start, measuring = time.perf_counter(), measure.seconds
    tuner.tune(n_trial, measure.option(), callbacks=[lambda t, inputs, results: curve.extend(
        [t.best_flops / 1e9] * len(results))])
    return curve, time.perf_counter() - start - (measure.seconds - measuring)


def trials_to(curve: Sequence[float], threshold: float) -> int | None:
    return next((n for n, v in enumerate(curve, 1) if v >= threshold), None)


def report(curves: dict[str, list[list[float]]], n_trial: int) -> float:
    overall = max(max(c) for runs in curves.values() for c in runs)
    points = [p for p in CHECKPOINTS if p <= n_trial]
    print(f"\nbest config found by any run: {overall:.1f} GFLOP/s")
    print(f"{'tuner':8s} " + " ".join(f"{'@' + str(p):>8s}" for p in points) + "   trials to 95% (per seed)")
    for name, runs in curves.items():
        cells = [np.mean([c[min(p, len(c)) - 1] for c in runs]) for p in points]
        reach = [trials_to(c, 0.95 * overall) for c in runs]
        reach_text = ", ".join("-" if r is None else str(r) for r in reach)
        print(f"{name:8s} " + " ".join(f"{v:8.1f}" for v in cells) + f"   {reach_text}")
    return overall


def plot(curves: dict[str, list[list[float]]], overall: float, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        length = min(len(c) for c in runs)
        stack = np.array([c[:length] for c in runs])
        x = np.arange(1, length + 1)
        line, = ax.plot(x, stack.mean(axis=0), label=f"{name} (mean of {len(runs)})")
        if len(runs) > 1:
            ax.fill_between(x, stack.min(axis=0), stack.max(axis=0), color=line.get_color(), alpha=0.15)
    ax.axhline(0.95 * overall, color="grey", linestyle="--", linewidth=0.8, label="95% of best found")
    ax.set_xlabel("trials")
    ax.set_ylabel("best GFLOP/s so far")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"curves written to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--db", default="tuning_efficiency.db", help="measurements, reused by reruns")
    parser.add_argument("--png", default="tuning_efficiency.png")
    args = parser.parse_args()
    os.environ.setdefault("TECOMP_NUM_THREADS", "1")

    task = autotvm.task.create("bench/matmul_register_blocked", (args.size,), "llvm")
    print(task)
    print(task.config_space)
    builder, runner = LocalBuilder(timeout=20), LocalRunner(number=1, repeat=3, timeout=20)
    measure = MeasureOnce(task, RecordDB(args.db), builder, runner)
    tuners = {
        "xgb": lambda seed: XGBTuner(task, seed=seed),
        "ga": lambda seed: GATuner(task, seed=seed),
        "random": lambda seed: RandomTuner(task, seed=seed),
        "grid": lambda seed: GridSearchTuner(task),
    }
    curves: dict[str, list[list[float]]] = {}
    try:
        for name, make in tuners.items():
            seeds = range(1) if name == "grid" else range(args.seeds)
            for seed in seeds:
                before = measure.new_measurements
                curve, overhead = best_curve(lambda: make(seed), args.trials, measure)
                curves.setdefault(name, []).append(curve)
                print(f"{name:6s} seed {seed}: best {curve[-1]:7.1f} GFLOP/s after {len(curve)} trials; "
                      f"{overhead:5.1f} s in the tuner; {measure.new_measurements - before} new measurements",
                      flush=True)
    finally:
        builder.close()
        runner.close()
    overall = report(curves, args.trials)
    plot(curves, overall, args.png, f"Tuning a {args.size}^3 float32 GEMM ({len(task.config_space)} configs)")


if __name__ == "__main__":
    main()
