"""GEMM and ResNet-18 convolutions on a CUDA GPU: tecomp's schedules beside cuBLAS and cuDNN.

C = A @ B with 4096x4096 float32 matrices: tecomp's hand schedule (``schedules.cuda.schedule_dense``,
default tiles), the best of a tuning search over the ``schedules/cuda/dense`` template, and
``torch.matmul`` (cuBLAS with TF32 off, so all three compute in float32), timed in the same run
with CUDA events. Then every distinct convolution of ResNet-18 (batch 1, NCHW) with tecomp's
direct schedule beside ``torch.nn.functional.conv2d`` (cuDNN, TF32 off).

The tuning search is the tuner's own: ``XGBTuner`` over ``--trials`` candidates, each built with
nvcc in a ``LocalBuilder`` process and timed on the GPU by the ``LocalRunner`` (CUDA events);
records go to ``--records`` (SQLite), and a later run with the same file reuses them instead of
searching.

Run on a GPU host: ``python benchmarks/gemm_cuda.py [--size 4096] [--trials 32] [--records gemm_cuda.db]``.
Without a GPU it stops with a message; ``--compile-only`` still builds every kernel with nvcc.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import tempfile
import time

import numpy as np

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.lower.launch import kernel_launch, kernels
from tecomp.schedules.conv2d import conv2d_nchw
from tecomp.schedules.cuda import schedule_conv2d_nchw, schedule_dense
from tecomp.schedules.cuda.dense import TEMPLATE as DENSE_TEMPLATE
from tecomp.schedules.cuda.dense import gpu_dense
from tecomp.target import Target

# (name, C_in, C_out, H=W, kernel, stride, padding) of ResNet-18's distinct convolutions
RESNET18_CONVS = [
    ("conv1", 3, 64, 224, 7, 2, 3), ("layer1", 64, 64, 56, 3, 1, 1),
    ("layer2.0", 64, 128, 56, 3, 2, 1), ("layer2", 128, 128, 28, 3, 1, 1), ("layer2.ds", 64, 128, 56, 1, 2, 0),
    ("layer3.0", 128, 256, 28, 3, 2, 1), ("layer3", 256, 256, 14, 3, 1, 1), ("layer3.ds", 128, 256, 28, 1, 2, 0),
    ("layer4.0", 256, 512, 14, 3, 2, 1), ("layer4", 512, 512, 7, 3, 1, 1), ("layer4.ds", 256, 512, 14, 1, 2, 0),
]


def gemm(n: int, tiles=None):
    A, B = te.placeholder((n, n), name="A"), te.placeholder((n, n), name="B")
    C = gpu_dense(A, B, transpose_b=False)  # A @ B, the weight as one panel
    with Target("cuda"):
        s = schedule_dense(C, tiles)
    return s, [A, B, C]


def conv(c_in: int, c_out: int, size: int, k: int, stride: int, pad: int):
    X, W = te.placeholder((1, c_in, size, size), name="X"), te.placeholder((c_out, c_in, k, k), name="W")
    Y = conv2d_nchw(X, W, stride, pad)
    with Target("cuda"):
        s = schedule_conv2d_nchw(Y)
    return s, [X, W, Y], 2.0 * math.prod(d.value for d in Y.shape) * c_in * k * k


def describe(module) -> str:
    plan = module.metadata["cuda"]["functions"][module.entry_name]["kernels"][0]
    return f"block {'x'.join(map(str, plan['block']))}, {plan['shared_bytes']} B shared"


def tecomp_seconds(module, arrays, number: int = 10, repeat: int = 5) -> float:
    dev = tecomp.cuda(0)
    args = [tecomp.nd.array(a, dev) if isinstance(a, np.ndarray) else a for a in arrays]
    return module.time_evaluator(module.entry_name, dev, number=number, repeat=repeat, min_repeat_ms=50)(*args).median


def torch_seconds(fn, number: int = 10, repeat: int = 5) -> float:
    import torch
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(number):
            fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / number)
    return float(np.median(samples))


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def tune_gemm(n: int, trials: int, records: str | None):
    """The best tiles for an n^3 matmul: from ``records`` if it has any, else an XGB search of
    ``trials`` candidates (built with nvcc in builder processes, timed on the GPU by the runner)."""
    task = autotvm.task.create(DENSE_TEMPLATE, (n, n, n, "float32", False, False), target="cuda")
    path = records or os.path.join(tempfile.mkdtemp(prefix="gemm-cuda-"), "records.db")
    db = autotvm.records.RecordDB(path)
    how = "records"
    if db.best(task.key, str(task.target)) is None:
        option = autotvm.measure_option(autotvm.LocalBuilder(timeout=60),
                                        autotvm.LocalRunner(number=3, repeat=3, timeout=60))
        autotvm.tuner.XGBTuner(task).tune(trials, option, callbacks=[autotvm.callback.log_to_db(db),
                                                                     autotvm.callback.progress_bar(trials)])
        how = f"best of {trials} XGB trials"
    if db.best(task.key, str(task.target)) is None:
        raise SystemExit("gemm_cuda: every tuning trial failed to build or run (see the error summary above)")
    with autotvm.apply_history_best(db):
        s, args = gemm(n)
    return s, args, how


def compile_only(n: int) -> None:
    """Build every kernel with nvcc (no GPU needed) and print its launch shape."""
    s, args = gemm(n)
    func = tecomp.lower(s, args, target="cuda")["main"]
    module = tecomp.build(func, target="cuda")
    launch = kernel_launch(kernels(func)[0])
    print(f"gemm {n}^3 hand schedule: grid {[int(g) for g in launch.grid]}, {describe(module)}")
    for name, c_in, c_out, size, k, stride, pad in RESNET18_CONVS:
        s, args, _ = conv(c_in, c_out, size, k, stride, pad)
        print(f"{name:10s} {c_in:3d}->{c_out:3d} {size:3d}x{size:<3d} k{k} s{stride}: "
              f"{describe(tecomp.build(s, args, target='cuda'))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--trials", type=int, default=32, help="candidates the XGB search measures")
    parser.add_argument("--records", default=None, help="SQLite records database to read and write")
    parser.add_argument("--compile-only", action="store_true", help="build every kernel with nvcc, run nothing")
    opts = parser.parse_args()
    if opts.compile_only:
        compile_only(opts.size)
        return
    if not tecomp.cuda(0).exist:
        raise SystemExit("gemm_cuda: no CUDA GPU here (tecomp.cuda(0).exist is False: it needs an NVIDIA GPU, its "
                         "driver and pycuda); nothing to measure. --compile-only builds the kernels without one.")
    torch = _torch()
    n = opts.size
    flop = 2.0 * n ** 3
    print(f"# {platform.node()}, {tecomp.runtime.cuda_driver.compute_capability(0)}, float32, TF32 off")
    a = np.random.default_rng(0).standard_normal((n, n), "float32")
    out = tecomp.nd.empty((n, n), "float32", tecomp.cuda(0))
    rows = []
    start = time.time()
    s, args = gemm(n)
    hand = tecomp.build(s, args, target="cuda")
    rows.append(("tecomp hand schedule", tecomp_seconds(hand, [a, a, out]), describe(hand), time.time() - start))
    check = out.numpy()[:4, :4]
    np.testing.assert_allclose(check, (a[:4] @ a[:, :4]), rtol=1e-3, atol=1e-2)
    print(f"tuning {DENSE_TEMPLATE} ({opts.trials} trials)...", flush=True)
    s, args, how = tune_gemm(n, opts.trials, opts.records)
    tuned = tecomp.build(s, args, target="cuda")
    rows.append((f"tecomp tuned ({how})", tecomp_seconds(tuned, [a, a, out]), describe(tuned), 0.0))
    if torch is not None:
        ta = torch.from_numpy(a).cuda()
        rows.append(("torch.matmul (cuBLAS)", torch_seconds(lambda: torch.matmul(ta, ta)), "", 0.0))
    print(f"\nGEMM {n}x{n}x{n} float32")
    for name, seconds, detail, _ in rows:
        print(f"  {name:34s} {seconds * 1e3:9.3f} ms  {flop / seconds / 1e9:8.0f} GFLOP/s  {detail}")
    print("\nResNet-18 convolutions, batch 1 (tecomp direct schedule vs torch/cuDNN)")
    for name, c_in, c_out, size, k, stride, pad in RESNET18_CONVS:
        s, args, conv_flop = conv(c_in, c_out, size, k, stride, pad)
        module = tecomp.build(s, args, target="cuda")
        rng = np.random.default_rng(1)
        x = rng.standard_normal((1, c_in, size, size), "float32")
        w = rng.standard_normal((c_out, c_in, k, k), "float32")
        y = tecomp.nd.empty(tuple(d.value for d in args[2].shape), "float32", tecomp.cuda(0))
        ours = tecomp_seconds(module, [x, w, y])
        line = f"  {name:10s} {c_in:3d}->{c_out:3d} {size:3d} k{k} s{stride}: tecomp {ours * 1e3:7.3f} ms " \
               f"{conv_flop / ours / 1e9:7.0f} GFLOP/s"
        if torch is not None:
            tx, tw = torch.from_numpy(x).cuda(), torch.from_numpy(w).cuda()
            peer = torch_seconds(lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad))
            ref = torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad).cpu().numpy()
            np.testing.assert_allclose(y.numpy(), ref, rtol=1e-3, atol=1e-2)
            line += f" | cuDNN {peer * 1e3:7.3f} ms {conv_flop / peer / 1e9:7.0f} GFLOP/s | ratio {peer / ours:5.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
