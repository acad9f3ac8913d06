"""Timing helpers shared by the benchmarks: one method for tecomp and its peers.

Both sides are timed the same way: a warm-up call, then ``repeat``
measurements of back-to-back calls, each lasting at least ``min_repeat_ms``;
the figure quoted is the median seconds per call. Thread counts are set
for tecomp (libgomp) and for numpy's BLAS (threadpoolctl) together.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import tempfile
import time
from typing import Any, Callable, Iterator

import numpy as np

from tecomp.runtime import set_num_threads


def median_seconds(fn: Callable[[], object], repeat: int = 5, min_repeat_ms: float = 200.0) -> float:
    """Median seconds per call of ``fn`` over ``repeat`` measurements."""
    fn()
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed * 1000 >= min_repeat_ms or number >= 1 << 20:
            break
        number = max(number * 2, int(number * min_repeat_ms / max(elapsed * 1000, 1e-3)))
    samples = [elapsed / number]
    for _ in range(repeat - 1):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


# Idle worker threads spin before they sleep (libgomp's for an estimated 20 ms on recent x86
# cores, ORT's pool likewise): a measurement that starts while the other side's threads still
# spin shares the cores with them. Each turn starts after this pause.
SETTLE_SECONDS = 0.25


def interleaved_medians(calls: list[Callable[[], object]], repeat: int, min_ms: float) -> list[float]:
    """Median seconds per call of each of ``calls``, their measurements taken in turns so that all
    see the same machine load (each one the harness's warm-up and ``min_ms`` calibration, after
    the previous turn's idle threads have gone to sleep)."""
    rounds = []
    for _ in range(repeat):
        row = []
        for call in calls:
            time.sleep(SETTLE_SECONDS)
            row.append(median_seconds(call, 1, min_ms))
        rounds.append(row)
    return [statistics.median(column) for column in zip(*rounds)]


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run tecomp kernels and numpy's BLAS with ``n`` threads inside the block."""
    from threadpoolctl import threadpool_limits
    set_num_threads(n)
    with threadpool_limits(limits=n):
        yield


def gflops(flops: float, seconds: float) -> float:
    return flops / seconds / 1e9


def ort_session(model_bytes: bytes, nthreads: int, profile_prefix: str | None = None):
    """An onnxruntime CPU session with ``nthreads`` intra-op threads, sequential, all graph
    optimisations: how every benchmark runs its peer (profiling into ``profile_prefix``*.json
    when given)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = nthreads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def ort_op_seconds(model_bytes: bytes, inputs: dict[str, np.ndarray], nthreads: int,
                   runs: int = 20) -> dict[str, float]:
    """Seconds per run by ONNX operator type (as onnxruntime fused them), from onnxruntime's own
    profiler: each node's median over ``runs``, summed per type. The profiler's overhead is in
    the figures, so compare shares, not totals, with tecomp's profile."""
    with tempfile.TemporaryDirectory() as tmp:
        session = ort_session(model_bytes, nthreads, profile_prefix=os.path.join(tmp, "ort"))
        for _ in range(runs):
            session.run(None, inputs)
        with open(session.end_profiling()) as f:
            events = json.load(f)
    per_node: dict[tuple[str, str], list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_node.setdefault((e["name"], e["args"].get("op_name", "?")), []).append(e["dur"] * 1e-6)
    per_type: dict[str, float] = {}
    for (_, op), durations in per_node.items():
        per_type[op] = per_type.get(op, 0.0) + statistics.median(durations)
    return per_type


def ort_runner(session: Any, inputs: dict[str, np.ndarray]) -> tuple[Callable[[], object], list[np.ndarray]]:
    """A call running ``session`` into preallocated outputs (IO binding), and those outputs.
    The binding holds raw pointers: the call keeps the inputs and outputs alive."""
    outs = [np.empty_like(o) for o in session.run(None, inputs)]
    binding = session.io_binding()
    for name, value in inputs.items():
        binding.bind_cpu_input(name, value)
    for spec, out in zip(session.get_outputs(), outs):
        binding.bind_output(spec.name, "cpu", 0, out.dtype, list(out.shape), out.ctypes.data)

    bound = (outs, inputs)  # what the binding points into lives as long as the call

    def call() -> list[np.ndarray]:
        session.run_with_iobinding(binding)
        return bound[0]

    return call, outs
