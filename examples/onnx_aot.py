"""The whole story in one script: tune a small ONNX model, compile it ahead of time, load the
artifact without the compiler, and compare it with onnxruntime.

1. import ``examples/models/small_cnn.onnx`` (conv-bn-relu-pool twice, a classifier);
2. tune every kernel of the model for a short budget, keeping each measurement in the
   records database (by default ``~/.cache/tecomp/tuning/records.db``; ``--records``
   names another; a rerun skips what is already measured);
3. compile the model under the best records into one shared library (code + weights);
4. load that library with ``tecomp.graph.load`` (numpy and ctypes only) and run it;
5. print the outputs' agreement with onnxruntime and both latencies.

    python examples/onnx_aot.py [--trials 16] [--records tune.db] [--output small_cnn.so]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import tecomp.graph
from tecomp import tuner as autotvm
from tecomp.config import default_records_path
from tecomp.frontend import from_onnx, load_onnx
from tecomp.graph.tuning import tune_model

MODEL = Path(__file__).parent / "models" / "small_cnn.onnx"


def median_ms(fn, repeat: int = 200) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="trials per kernel (default 16)")
    parser.add_argument("--records", default=None, help="tuning records database (default: under the cache dir)")
    parser.add_argument("--output", default=None, help="where to write the compiled model (default: a temp dir)")
    args = parser.parse_args()
    records = args.records or str(default_records_path())

    model = load_onnx(MODEL)
    graph, params = from_onnx(model)
    print(f"imported {MODEL.name}: {len(graph.nodes)} nodes, inputs {dict(graph.inputs)}")

    tasks = tune_model(graph, params, records, args.trials)
    print(f"tuned {len(tasks)} kernels, {args.trials} trials at most each; records in {records}")

    with autotvm.apply_history_best(records):
        module = tecomp.graph.build(graph, "llvm", params)
    with tempfile.TemporaryDirectory(prefix="tecomp-example-") as out_dir:  # removed on every exit
        path = args.output or str(Path(out_dir) / "small_cnn.so")
        module.export_library(path)
        print(f"compiled to {path}; {module.memory_plan.summary()}")
        check_against_onnxruntime(model, graph, path)


def check_against_onnxruntime(model, graph, path: str) -> None:
    """Load the library at ``path``, run it, and compare outputs and latency with onnxruntime."""
    loaded = tecomp.graph.load(path)
    (name, spec), = graph.inputs.items()
    x = np.random.default_rng(0).standard_normal(spec.shape).astype(spec.dtype)
    got = loaded.run(**{name: x})

    import onnxruntime as ort
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {name: x})
    for k, (g, w) in enumerate(zip(got, want)):
        err = float(np.max(np.abs(g - w)))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"output {k} differs from onnxruntime")
        print(f"output {k} {g.shape}: max |tecomp - onnxruntime| = {err:.2e} (agrees within rtol 1e-4)")
    tecomp_ms = median_ms(lambda: loaded.run(**{name: x}))
    ort_ms = median_ms(lambda: session.run(None, {name: x}))
    print(f"latency (median): tecomp {tecomp_ms:.3f} ms, onnxruntime {ort_ms:.3f} ms "
          f"(onnxruntime / tecomp = {ort_ms / tecomp_ms:.2f})")


if __name__ == "__main__":
    main()
