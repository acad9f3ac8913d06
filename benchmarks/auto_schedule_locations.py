"""Auto-schedule a float32 softmax twice, with the row reductions' compute locations sampled (root
or the consumer's row loop) and root-only, and time both searches' best kernels in turns in this
process (1 thread).

    python benchmarks/auto_schedule_locations.py [--trials 16] [--shapes 128x197 197x197] [--dir DIR]

Root-only restricts the sampler in this script (every location but root is reported illegal); the
library always samples both.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile

import numpy as np

import tecomp
from tecomp import auto_scheduler, te
from tecomp.auto_scheduler import annotation
from tecomp.schedules.softmax import softmax

from harness import interleaved_medians, threads


@auto_scheduler.register_workload
def softmax_rows(n: int, m: int):
    """The operator library's softmax (row max, exponentials, row sum, division), as a model imports it."""
    x = te.placeholder((n, m), name="x")
    return [x, softmax(x)]


def search(n: int, m: int, trials: int, db: str, root_only: bool) -> auto_scheduler.SearchTask:
    task = auto_scheduler.SearchTask(func=softmax_rows, args=(n, m))
    sampled = annotation.location_error
    if root_only:
        annotation.location_error = lambda dag, sketch, params, index, at: "root only" if at else None
    try:
        task.tune(auto_scheduler.TuningOptions(
            num_measure_trials=trials, builder=tecomp.tuner.LocalBuilder(n_parallel=1),
            runner=tecomp.tuner.LocalRunner(number=3, min_repeat_ms=50, num_threads=1),
            measure_callbacks=[auto_scheduler.RecordToFile(db)]), auto_scheduler.SketchPolicy(task, seed=0))
    finally:
        annotation.location_error = sampled
    return task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--shapes", nargs="+", default=["128x197", "197x197"])
    parser.add_argument("--dir", default=None, help="where the records databases go (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    folder = args.dir or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    for shape in args.shapes:
        n, m = (int(v) for v in shape.split("x"))
        x = np.random.default_rng(0).uniform(-2, 2, (n, m)).astype("float32")
        e = np.exp(x - x.max(axis=1, keepdims=True))
        want = e / e.sum(axis=1, keepdims=True)
        calls, outs, steps = {}, {}, {}
        for label, root_only in (("locations", False), ("root only", True)):
            db = os.path.join(folder, f"{shape}-{label.replace(' ', '_')}.db")
            task = search(n, m, args.trials, db, root_only)
            sch, tensors = task.apply_best(db)
            steps[label] = task.print_best(db).count("'CA'")
            f = tecomp.build(sch, tensors, target="llvm")
            dev = tecomp.cpu(0)
            a, out = tecomp.nd.array(x, dev), tecomp.nd.empty((n, m), "float32", dev)
            calls[label], outs[label] = (lambda f=f, a=a, out=out: f(a, out)), out
        with threads(1):
            seconds = dict(zip(calls, interleaved_medians(list(calls.values()), repeat=5, min_ms=100)))
        for label, out in outs.items():
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-4, atol=1e-6)
        load = os.getloadavg()[0]
        print(f"softmax {n}x{m}, {args.trials} trials each, 1 thread, load average {load:.1f}: "
              + ", ".join(f"{k} {v * 1e6:.1f} us ({steps[k]} CA steps)" for k, v in seconds.items())
              + f"; root only / locations {seconds['root only'] / seconds['locations']:.2f}x")


if __name__ == "__main__":
    main()
