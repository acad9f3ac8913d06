"""Single operators on the CPU: tecomp's default schedules beside ONNX Runtime.

Each case is one operator, built once as a tiny ONNX model in memory (opset 17,
weights as initializers) and run with onnxruntime, and once as a tecomp
compute with its default (untuned) schedule. Both run with the same thread
count (ORT: ``intra_op_num_threads = n``, ``inter_op_num_threads = 1``, graph
optimisations on), outputs are checked to agree (rtol 1e-3), and per case the
script prints tecomp ms, ORT ms, the ratio ORT time / tecomp time (> 1: tecomp
faster) and tecomp's GFLOP/s; then the geometric mean of the ratios over
ResNet-18's conv layers per thread count.

Cases: every distinct conv2d shape of ResNet-18 (batch 1, 224x224), MobileNetV2's
distinct depthwise 3x3 layers, max pool 3x3/2 and global average pool; dense,
softmax and layer norm when their schedule modules exist.
Run: ``python benchmarks/ops_cpu.py [--quick] [--threads 1,2]``.
"""

from __future__ import annotations

import argparse
import math
import platform
from dataclasses import dataclass
from typing import Callable

import numpy as np

import tecomp
from tecomp import te

from harness import gflops, median_seconds, threads

OPSET = 17


@dataclass
class Case:
    name: str
    group: str                       # "resnet18", "mbv2_dw", "pool", "other"
    inputs: dict                     # ONNX graph inputs: name -> numpy array (runtime)
    weights: dict                    # ONNX initializers: name -> numpy array (tecomp args too)
    node: Callable[[], object]       # -> onnx NodeProto
    out_shape: tuple
    tecomp: Callable[[], tuple]      # -> (schedule, [tensors..., out]) in the order inputs, weights, out
    flops: float


# ----------------------------------------------------------------------------- ONNX side

def onnx_session(case: Case, nthreads: int):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph_inputs = [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v.shape))
                    for k, v in case.inputs.items()]
    out = helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(case.out_shape))
    inits = [numpy_helper.from_array(v, name=k) for k, v in case.weights.items()]
    graph = helper.make_graph([case.node()], case.name.replace(" ", "_"), graph_inputs, [out],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # opset 17's IR version; newer onnx writes one older runtimes refuse
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = nthreads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- cases

def _rng():
    return np.random.default_rng(0)


def conv_case(name: str, group: str, c: int, hw: int, oc: int, k: int, stride: int, pad: int,
              groups: int = 1) -> Case:
    from onnx import helper
    from tecomp.schedules.conv2d import conv2d_nchw, schedule_conv2d_nchw

    rng = _rng()
    x = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    w = (rng.standard_normal((oc, c // groups, k, k), dtype=np.float32)
         / np.float32(math.sqrt(c // groups * k * k)))
    o = (hw + 2 * pad - k) // stride + 1

    def node():
        return helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[k, k], strides=[stride, stride],
                                pads=[pad] * 4, group=groups)

    def build():
        X = te.placeholder(x.shape, name="X")
        W = te.placeholder(w.shape, name="W")
        Y = conv2d_nchw(X, W, strides=stride, padding=pad, groups=groups)
        return schedule_conv2d_nchw(Y), [X, W, Y]

    flops = 2.0 * oc * o * o * (c // groups) * k * k
    return Case(name, group, {"X": x}, {"W": w}, node, (1, oc, o, o), build, flops)


def maxpool_case() -> Case:
    from onnx import helper
    from tecomp.schedules.pooling import max_pool2d, schedule_pool

    x = _rng().standard_normal((1, 64, 112, 112), dtype=np.float32)

    def node():
        return helper.make_node("MaxPool", ["X"], ["Y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)

    def build():
        X = te.placeholder(x.shape, name="X")
        Y = max_pool2d(X, 3, 2, 1)
        return schedule_pool(Y), [X, Y]

    return Case("max_pool 3x3/2 64@112", "pool", {"X": x}, {}, node, (1, 64, 56, 56), build,
                64 * 56 * 56 * 9.0)


def gap_case() -> Case:
    from onnx import helper
    from tecomp.schedules.pooling import global_avg_pool2d, schedule_pool

    x = _rng().standard_normal((1, 512, 7, 7), dtype=np.float32)

    def node():
        return helper.make_node("GlobalAveragePool", ["X"], ["Y"])

    def build():
        X = te.placeholder(x.shape, name="X")
        Y = global_avg_pool2d(X)
        return schedule_pool(Y), [X, Y]

    return Case("global_avg_pool 512@7", "pool", {"X": x}, {}, node, (1, 512, 1, 1), build, 512 * 49.0)


def dense_case() -> Case:
    from onnx import helper
    from tecomp.schedules.dense import dense, schedule_dense

    rng = _rng()
    x = rng.standard_normal((1, 512), dtype=np.float32)
    w = rng.standard_normal((1000, 512), dtype=np.float32) / np.float32(math.sqrt(512))

    def node():  # dense(x, w) = x @ w.T, like TVM's nn.dense
        return helper.make_node("Gemm", ["X", "W"], ["Y"], transB=1)

    def build():
        X = te.placeholder(x.shape, name="X")
        W = te.placeholder(w.shape, name="W")
        Y = dense(X, W)
        return schedule_dense(Y), [X, W, Y]

    return Case("dense 1x512 @ 512x1000", "other", {"X": x}, {"W": w}, node, (1, 1000), build,
                2.0 * 512 * 1000)


def softmax_case() -> Case:
    from onnx import helper
    from tecomp.schedules.softmax import schedule_softmax, softmax

    x = _rng().standard_normal((128, 256), dtype=np.float32)

    def node():
        return helper.make_node("Softmax", ["X"], ["Y"], axis=-1)

    def build():
        X = te.placeholder(x.shape, name="X")
        Y = softmax(X, axis=-1)
        return schedule_softmax(Y), [X, Y]

    return Case("softmax 128x256", "other", {"X": x}, {}, node, (128, 256), build, 5.0 * 128 * 256)


def layer_norm_case() -> Case:
    from onnx import helper
    from tecomp.schedules.norm import layer_norm, schedule_layer_norm

    rng = _rng()
    x = rng.standard_normal((128, 256), dtype=np.float32)
    g = rng.standard_normal((256,), dtype=np.float32)
    b = rng.standard_normal((256,), dtype=np.float32)

    def node():
        return helper.make_node("LayerNormalization", ["X", "G", "B"], ["Y"], axis=-1, epsilon=1e-5)

    def build():
        X = te.placeholder(x.shape, name="X")
        G = te.placeholder(g.shape, name="G")
        B = te.placeholder(b.shape, name="B")
        Y = layer_norm(X, G, B, axis=-1, epsilon=1e-5)
        return schedule_layer_norm(Y), [X, G, B, Y]

    return Case("layer_norm 128x256", "other", {"X": x}, {"G": g, "B": b}, node, (128, 256), build,
                8.0 * 128 * 256)


def other_cases() -> list:
    return [dense_case(), softmax_case(), layer_norm_case()]


def resnet18_cases() -> list:
    r = "resnet18"
    return [
        conv_case("conv 7x7/2 3->64 @224", r, 3, 224, 64, 7, 2, 3),
        conv_case("conv 3x3 64->64 @56", r, 64, 56, 64, 3, 1, 1),
        conv_case("conv 3x3/2 64->128 @56", r, 64, 56, 128, 3, 2, 1),
        conv_case("conv 1x1/2 64->128 @56", r, 64, 56, 128, 1, 2, 0),
        conv_case("conv 3x3 128->128 @28", r, 128, 28, 128, 3, 1, 1),
        conv_case("conv 3x3/2 128->256 @28", r, 128, 28, 256, 3, 2, 1),
        conv_case("conv 1x1/2 128->256 @28", r, 128, 28, 256, 1, 2, 0),
        conv_case("conv 3x3 256->256 @14", r, 256, 14, 256, 3, 1, 1),
        conv_case("conv 3x3/2 256->512 @14", r, 256, 14, 512, 3, 2, 1),
        conv_case("conv 1x1/2 256->512 @14", r, 256, 14, 512, 1, 2, 0),
        conv_case("conv 3x3 512->512 @7", r, 512, 7, 512, 3, 1, 1),
    ]


MBV2_DW = [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2),
           (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1)]


def mbv2_cases() -> list:
    return [conv_case(f"dw 3x3/{s} {c} @{hw}", "mbv2_dw", c, hw, c, 3, s, 1, groups=c)
            for c, hw, s in MBV2_DW]


def all_cases(quick: bool) -> list:
    if quick:
        res = resnet18_cases()
        mb = mbv2_cases()
        return [res[1], res[3], res[10], mb[2], maxpool_case(), gap_case()] + other_cases()
    return resnet18_cases() + mbv2_cases() + [maxpool_case(), gap_case()] + other_cases()


# ----------------------------------------------------------------------------- driver

def run_case(case: Case, thread_counts: list) -> list:
    s, tensors = case.tecomp()
    f = tecomp.build(s, tensors, name="op")
    args = [tecomp.nd.array(v) for v in case.inputs.values()]
    args += [tecomp.nd.array(v) for v in case.weights.values()]
    out = tecomp.nd.empty(case.out_shape)
    feed = dict(case.inputs)
    results = []
    for n in thread_counts:
        sess = onnx_session(case, n)
        with threads(n):
            f(*args, out)
            want = sess.run(None, feed)[0]
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-3, atol=1e-4,
                                       err_msg=f"{case.name}: tecomp and ORT disagree")
            tec_s = median_seconds(lambda: f(*args, out), min_repeat_ms=100)
            ort_s = median_seconds(lambda: sess.run(None, feed), min_repeat_ms=100)
        results.append((tec_s, ort_s))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few representative cases only")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]

    import onnxruntime as ort
    print(f"ops on {platform.processor() or platform.machine()}, tecomp {tecomp.__version__}, "
          f"onnxruntime {ort.__version__}; default schedules, no tuning; x ORT = ORT time / tecomp time")
    cases = all_cases(args.quick)
    head = f"{'case':26s}"
    for n in thread_counts:
        head += f" | {n} thr: {'tec ms':>8s} {'ORT ms':>8s} {'x ORT':>6s} {'GF/s':>6s}"
    print(head)
    log_ratios = {n: [] for n in thread_counts}
    for case in cases:
        row = f"{case.name:26s}"
        for n, (tec_s, ort_s) in zip(thread_counts, run_case(case, thread_counts)):
            ratio = ort_s / tec_s
            if case.group == "resnet18":
                log_ratios[n].append(math.log(ratio))
            row += f" |        {tec_s * 1e3:8.3f} {ort_s * 1e3:8.3f} {ratio:6.2f} {gflops(case.flops, tec_s):6.1f}"
        print(row, flush=True)
    for n in thread_counts:
        if log_ratios[n]:
            gm = math.exp(sum(log_ratios[n]) / len(log_ratios[n]))
            print(f"geomean x ORT over {len(log_ratios[n])} ResNet-18 conv layers, {n} thread(s): {gm:.2f}")


if __name__ == "__main__":
    main()
