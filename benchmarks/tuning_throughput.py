"""Measurement throughput: LocalBuilder + LocalRunner vs Dask (a LocalCluster of 2 single-threaded workers).

The same tuning run (RandomTuner, ``--trials`` trials in batches of
``--batch``, a tiled 64^3 float32 matmul template of 98 configs, every
candidate built and timed with ``number=3``) is done three ways, one after
the other in this process, on this machine:

    local         LocalBuilder(n_parallel=2) + LocalRunner         (all on the driver)
    dask-runner   LocalBuilder(n_parallel=2) + DaskRunner          (timed on the workers)
    dask          DaskBuilder(processes_per_worker=1) + DaskRunner (built and timed on the workers)

The Dask setups use a LocalCluster on loopback: 2 worker processes, 1
thread each, both offering ``llvm``; so every setup builds in 2 processes.
The local runner times one candidate at a time, the Dask workers one each
(two at once). Each setup first measures one untimed batch (process
start-up); then ``--rounds`` rounds run every setup once, in a rotating
order, so that a shared machine's drifting load falls on all of them.
Reported: trials per minute over all rounds, milliseconds per trial,
throughput relative to ``local``, and the extra milliseconds per trial
against ``local`` (negative: faster).

    python benchmarks/tuning_throughput.py [--trials 64] [--rounds 3] [--batch 8] [--size 64]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any, Callable

from tecomp import te
from tecomp import tuner as autotvm
from tecomp.tuner.random_tuner import RandomTuner


@autotvm.template("bench/matmul_tiles")
def matmul_tiles(n: int):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", C.op.axis[0], num_outputs=2)
    cfg.define_split("tile_x", C.op.axis[1], num_outputs=2)
    cfg.define_knob("vec", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, C.op.axis[0])
    xo, xi = cfg["tile_x"].apply(s, C, C.op.axis[1])
    s[C].reorder(yo, xo, k, yi, xi)
    if cfg["vec"].val:
        s[C].vectorize(xi)
    return s, [A, B, C]


class Batches:
    """A builder whose batch size (what the tuner reads as ``n_parallel``) is not its process count."""

    def __init__(self, builder: Any, batch: int) -> None:
        self.builder, self.n_parallel = builder, batch

    def build(self, inputs: Any) -> list:
        return self.builder.build(inputs)


def timed_run(task: Any, option: dict, trials: int, seed: int) -> tuple[float, int]:
    """Seconds a tuning run of ``trials`` takes, and how many of its trials failed."""
    failed: list[int] = []
    start = time.perf_counter()
    RandomTuner(task, seed=seed).tune(trials, option, callbacks=[
        lambda tuner, inputs, results: failed.extend(r.error_no for r in results if r.error_no)])
    return time.perf_counter() - start, len(failed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="per setup and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    os.environ.setdefault("TECOMP_NUM_THREADS", "1")  # before the workers start: they inherit it

    import distributed
    from tecomp.tuner.dask_measure import DaskBuilder, DaskRunner, resource_key

    task = autotvm.task.create("bench/matmul_tiles", (args.size,), "llvm")
    print(f"{task.name} {args.size}^3: {len(task.config_space)} configs; {args.rounds} rounds of {args.trials} "
          f"trials per setup in batches of {args.batch}; number=3; {os.cpu_count()} cores", flush=True)
    runner_options = dict(number=3, repeat=1, timeout=20)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, resources={resource_key("llvm"): 1},
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        setups: dict[str, Callable[[], tuple[Any, Any]]] = {
            "local": lambda: (autotvm.LocalBuilder(n_parallel=2, timeout=20),
                              autotvm.LocalRunner(**runner_options)),
            "dask-runner": lambda: (autotvm.LocalBuilder(n_parallel=2, timeout=20),
                                    DaskRunner(client, **runner_options)),
            "dask": lambda: (DaskBuilder(client, timeout=20, processes_per_worker=1),
                             DaskRunner(client, **runner_options)),
        }
        made = {name: make() for name, make in setups.items()}
        options = {name: autotvm.measure_option(Batches(b, args.batch), r) for name, (b, r) in made.items()}
        seconds = dict.fromkeys(setups, 0.0)
        failed = dict.fromkeys(setups, 0)
        try:
            for name, option in options.items():
                timed_run(task, option, args.batch, seed=1000)  # start-up, untimed
            names = list(setups)
            for round_ in range(args.rounds):
                for name in names[round_ % len(names):] + names[:round_ % len(names)]:
                    spent, errors = timed_run(task, options[name], args.trials, seed=round_)
                    seconds[name] += spent
                    failed[name] += errors
                    print(f"  round {round_}: {name} {args.trials / spent * 60:.0f} trials/min", flush=True)
        finally:
            for builder, runner in made.values():
                builder.close()
                runner.close()

    rates = {name: (args.rounds * args.trials / seconds[name] * 60, failed[name]) for name in setups}
    local_ms = 60e3 / rates["local"][0]
    print(f"\n{'setup':12s} {'trials/min':>10s} {'ms/trial':>9s} {'x local':>8s} {'+ms/trial':>10s} {'failed':>7s}")
    for name, (rate, failed) in rates.items():
        ms = 60e3 / rate
        print(f"{name:12s} {rate:10.0f} {ms:9.1f} {rate / rates['local'][0]:8.2f} {ms - local_ms:10.1f} {failed:7d}")


if __name__ == "__main__":
    main()
