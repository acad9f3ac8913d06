"""The GPU check in one table: ``pytest -m gpu``, GEMM beside cuBLAS, whole models beside ONNX Runtime's CUDA provider.

Run by ``benchmarks/gpu_check.sh`` on a host with an NVIDIA GPU (it installs pycuda first):

    python benchmarks/gpu_check.py [--budget 480] [--size 4096] [--trials 16] [--records gpu_check.db]
    python benchmarks/gpu_check.py --dry-run     # any machine: the plan and the table, nothing measured

Steps, in order, each only if the time left (``--budget`` seconds from the start) allows it:
the tests marked ``gpu``; GEMM ``size``^3 float32 with tecomp's hand schedule, then the best
of a tuning search (``--trials`` XGB candidates, records kept in ``--records`` so a second
run reuses them), beside ``torch.matmul`` (cuBLAS, TF32 off) or cupy's matmul; then each model
of ``onnx_models.BENCHMARKS`` beside onnxruntime (CUDA provider, TF32 off). One row a
measurement: what, tecomp's time, the peer's, peer/tecomp (above 1: tecomp is faster).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


@dataclass
class Row:
    what: str
    ours: Optional[float] = None     # seconds
    peer: Optional[float] = None
    peer_name: str = ""
    note: str = ""


def table(rows: list[Row]) -> str:
    """The rows as one fixed-width table (times in ms; ratio = peer / tecomp)."""
    head = f"{'check':44s} {'tecomp ms':>10s} {'peer ms':>10s} {'peer':16s} {'peer/tecomp':>11s}  note"
    lines = [head, "-" * len(head)]
    for r in rows:
        ours = f"{r.ours * 1e3:10.3f}" if r.ours else f"{'-':>10s}"
        peer = f"{r.peer * 1e3:10.3f}" if r.peer else f"{'-':>10s}"
        ratio = f"{r.peer / r.ours:11.2f}" if r.ours and r.peer else f"{'-':>11s}"
        lines.append(f"{r.what:44s} {ours} {peer} {r.peer_name:16s} {ratio}  {r.note}")
    return "\n".join(lines)


def pytest_summary(output: str) -> str:
    """The counts of pytest's last summary line ("3 passed, 2 skipped in 4.1s" -> "3 passed, 2 skipped")."""
    found = re.findall(r"(\d+ (?:passed|failed|skipped|errors?|deselected|xfailed|xpassed))", output)
    return ", ".join(found) if found else "no summary (pytest did not finish)"


class Budget:
    """Seconds left of the check's budget; a step that would not fit is reported, not started."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def run_gpu_tests(budget: Budget) -> Row:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:randomly", os.path.join(ROOT, "tests")]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(30.0, budget.left() - 240), cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Row("pytest -m gpu", note=f"stopped at the time limit: {pytest_summary(out)}")
    failed = done.returncode not in (0, 5)  # 5: nothing collected
    tail = "" if not failed else " | " + " / ".join(done.stdout.strip().splitlines()[-3:])
    return Row("pytest -m gpu", note=("FAILED: " if failed else "") + pytest_summary(done.stdout) + tail)


def gemm_rows(size: int, trials: int, records: Optional[str], budget: Budget) -> list[Row]:
    import gemm_cuda
    import tecomp
    a = np.random.default_rng(0).standard_normal((size, size), "float32")
    out = tecomp.nd.empty((size, size), "float32", tecomp.cuda(0))
    peer, peer_name = _matmul_peer(a)
    s, args = gemm_cuda.gemm(size)
    hand = tecomp.build(s, args, target="cuda")
    rows = [Row(f"GEMM {size}^3 f32, hand schedule", gemm_cuda.tecomp_seconds(hand, [a, a, out]), peer, peer_name,
                gemm_cuda.describe(hand))]
    got = out.numpy()[:4, :4]
    np.testing.assert_allclose(got, a[:4] @ a[:, :4], rtol=1e-3, atol=1e-2)
    if trials <= 0 and not records:
        return rows
    if budget.left() < 180 + 6 * trials:
        rows.append(Row(f"GEMM {size}^3 f32, tuned", note=f"skipped: {budget.left():.0f} s left"))
        return rows
    s, args, how = gemm_cuda.tune_gemm(size, trials, records)
    tuned = tecomp.build(s, args, target="cuda")
    rows.append(Row(f"GEMM {size}^3 f32, tuned ({how})", gemm_cuda.tecomp_seconds(tuned, [a, a, out]), peer,
                    peer_name, gemm_cuda.describe(tuned)))
    return rows


def _matmul_peer(a: np.ndarray) -> tuple[Optional[float], str]:
    """cuBLAS's time for a @ a through torch (TF32 off), else cupy, else nothing."""
    import gemm_cuda
    torch = gemm_cuda._torch()
    if torch is not None:
        ta = torch.from_numpy(a).cuda()
        return gemm_cuda.torch_seconds(lambda: torch.matmul(ta, ta)), "cuBLAS (torch)"
    try:
        import cupy
    except ImportError:
        return None, "no torch/cupy"
    ca = cupy.asarray(a)
    return _event_seconds(cupy, lambda: cupy.matmul(ca, ca)), "cuBLAS (cupy)"


def _event_seconds(cupy, fn: Callable[[], object], number: int = 10, repeat: int = 5) -> float:
    fn()
    samples = []
    for _ in range(repeat):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        samples.append(cupy.cuda.get_elapsed_time(start, end) / 1e3 / number)
    return float(np.median(samples))


def model_rows(names: list[str], budget: Budget) -> list[Row]:
    import models_cuda
    from harness import median_seconds
    from onnx_models import BENCHMARKS, random_inputs

    from tecomp.frontend import from_onnx
    rows = []
    for name in names:
        if budget.left() < 60:
            rows.append(Row(f"model {name}", note=f"skipped: {budget.left():.0f} s left"))
            continue
        build_onnx, shapes = BENCHMARKS[name]
        model = build_onnx()
        graph, params = from_onnx(model, shape=shapes)
        module, seconds = models_cuda.compile_model(graph, params, None)
        inputs = random_inputs(shapes)
        sess, label = models_cuda.peer_session(model.SerializeToString())
        note = f"compile {seconds:.1f} s, {module.kernel_count} kernels"
        for got, ref in zip(module.run(**inputs), sess.run(None, inputs)):
            if not np.allclose(got, ref, rtol=1e-3, atol=1e-3):
                note = f"DISAGREES with {label} (max |diff| {np.max(np.abs(got - ref)):.3g}); " + note
        ours = median_seconds(lambda: module.run(**inputs), min_repeat_ms=300)
        theirs = median_seconds(lambda: sess.run(None, inputs), min_repeat_ms=300)
        rows.append(Row(f"model {name}", ours, theirs, label, note))
    return rows


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for every step together")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=16, help="GEMM tuning candidates (0: hand schedule only)")
    parser.add_argument("--records", default=None, help="tuning records (SQLite) to reuse and extend")
    parser.add_argument("--models", default=None, help="comma-separated subset of onnx_models.BENCHMARKS")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and an empty table; measure nothing")
    opts = parser.parse_args(argv)
    from onnx_models import BENCHMARKS
    names = opts.models.split(",") if opts.models else list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(BENCHMARKS)}")
    budget = Budget(opts.budget)
    if opts.dry_run:
        gemms = ["hand schedule"] + ([f"tuned ({opts.trials} trials)"] if opts.trials else [])
        rows = [Row("pytest -m gpu", note="dry run"),
                *[Row(f"GEMM {opts.size}^3 f32, {g}", note="dry run") for g in gemms],
                *[Row(f"model {n}", note="dry run") for n in names]]
        print(table(rows))
        return 0
    import tecomp
    if not tecomp.cuda(0).exist:
        print("gpu_check: no CUDA GPU here (tecomp.cuda(0).exist is False: it needs an NVIDIA GPU, its driver "
              "and pycuda); --dry-run prints the plan", file=sys.stderr)
        return 2
    print(f"# {tecomp.runtime.cuda_driver.compute_capability(0)}, budget {opts.budget:.0f} s", flush=True)
    rows = [run_gpu_tests(budget)]
    print(table(rows), flush=True)
    rows += gemm_rows(opts.size, opts.trials, opts.records, budget)
    rows += model_rows(names, budget)
    print("\n" + table(rows))
    return 1 if any(r.note.startswith(("FAILED", "DISAGREES")) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
