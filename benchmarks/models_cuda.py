"""Whole models on a CUDA GPU: tecomp beside ONNX Runtime's CUDA provider.

The models of ``models_cpu.py`` (``onnx_models.BENCHMARKS``: ResNet-18, MobileNetV2, a
transformer encoder, an MLP) are compiled with ``tecomp.graph.build(graph, "cuda", params)``
(under ``apply_history_best(--db)`` when the file exists) and run on ``tecomp.cuda(0)``.
The peer is onnxruntime with ``CUDAExecutionProvider`` (the ``onnxruntime-gpu`` package,
TF32 off; without it the CPU provider, labelled so). Both take host arrays and return host arrays, so
the copies are in both latencies. Outputs are checked to agree; printed per model: compile
seconds, kernels, the median latency of tecomp and of the peer, and peer / tecomp.

    python benchmarks/models_cuda.py [--models resnet18,mlp] [--trials 0] [--db models_cuda.db]
    python benchmarks/models_cuda.py --compile-only     # any machine with nvcc: build every model

With ``--trials N`` every cuda task of each model is first tuned (XGB, up to N trials each,
resumable, records in ``--db``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np

import tecomp
import tecomp.graph
from tecomp import tuner as autotvm
from tecomp.frontend import from_onnx
from tecomp.graph.tuning import tune_model

from harness import median_seconds
from onnx_models import BENCHMARKS, random_inputs


def compile_model(graph, params, db):
    context = autotvm.apply_history_best(db) if db and os.path.exists(db) else contextlib.nullcontext()
    start = time.perf_counter()
    with context:
        module = tecomp.graph.build(graph, "cuda", params)
    return module, time.perf_counter() - start


def peer_session(model_bytes: bytes):
    """onnxruntime on the GPU when its CUDA provider is installed, else on the CPU; (session, label)."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if "CUDAExecutionProvider" in ort.get_available_providers():
        # TF32 off: tecomp computes in float32
        return ort.InferenceSession(model_bytes, opts, providers=[("CUDAExecutionProvider", {"use_tf32": 0})]), \
            "ORT CUDA"
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"]), "ORT CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BENCHMARKS), help="comma-separated subset of "
                        + ", ".join(BENCHMARKS))
    parser.add_argument("--db", default="models_cuda.db", help="tuning records of the cuda templates")
    parser.add_argument("--trials", type=int, default=0, help="tune every cuda task of each model first")
    parser.add_argument("--compile-only", action="store_true", help="build every model (nvcc), run nothing")
    args = parser.parse_args()
    if not args.compile_only and not tecomp.cuda(0).exist:
        raise SystemExit("no CUDA GPU with pycuda and a driver here; --compile-only builds the models")
    for name in args.models.split(","):
        build_onnx, shapes = BENCHMARKS[name]
        model = build_onnx()
        graph, params = from_onnx(model, shape=shapes)
        if args.trials and not args.compile_only:
            tune_model(graph, params, args.db, args.trials, target="cuda")
        module, seconds = compile_model(graph, params, args.db)
        print(f"{name}: compile {seconds:.1f} s, {module.kernel_count} kernel calls "
              f"({len(module.info['kernels'])} distinct); {module.memory_plan.summary()}", flush=True)
        if args.compile_only:
            continue
        inputs = random_inputs(shapes)
        sess, label = peer_session(model.SerializeToString())
        for got, ref in zip(module.run(**inputs), sess.run(None, inputs)):
            np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-3, err_msg=f"{name}: tecomp and {label} disagree")
        t = median_seconds(lambda: module.run(**inputs), min_repeat_ms=300)
        o = median_seconds(lambda: sess.run(None, inputs), min_repeat_ms=300)
        print(f"  tecomp {t * 1e3:.3f} ms   {label} {o * 1e3:.3f} ms   {label}/tecomp {o / t:.2f}", flush=True)


if __name__ == "__main__":
    main()
