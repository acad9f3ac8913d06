"""Single operators on the CPU: tecomp's default and tuned schedules beside ONNX Runtime.

Each case is one operator, built once as a tiny ONNX model in memory (opset 17,
weights as initializers) and run with onnxruntime, and as tecomp kernels the
way a compiled model runs them: constant weights packed once beforehand (a
model does that at build time), convolutions and pooling in the blocked
NCHW[x]c layout that a model keeps along its conv chain. The table shows the
operator kernel alone and, for blocked cases, plus the two layout transforms
(NCHW in, NCHW out) that a lone operator needs: a fair single-operator figure
against ORT, which converts to its own blocked layout inside.

Modes: "default" builds with no tuning records (the fallback configs); with
``--trials N`` every case with a template is first tuned (XGB, up to N trials,
resumable, records in ``--db``) and "tuned" builds under ``apply_history_best``.
Both run with the same thread count as ORT (``intra_op_num_threads = n``),
outputs are checked to agree (rtol 1e-3). Printed per case and thread count:
milliseconds, ORT time / tecomp time ("x ORT", above 1: tecomp faster), GFLOP/s
of the tuned kernel; then geometric means of x ORT over ResNet-18's conv layers.

Cases: every distinct conv2d shape of ResNet-18 (batch 1, 224x224), MobileNetV2's
distinct depthwise 3x3 layers, max pool 3x3/2, global average pool, dense
1x512x1000, softmax and layer norm 128x256.

    python benchmarks/ops_cpu.py [--quick] [--threads 1,2] [--trials 200] [--db ops_cpu.db]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.schedules import conv2d_nchwc as nchwc
from tecomp.schedules import dense as dense_ops
from tecomp.schedules import norm, pooling, softmax
from tecomp.schedules.common import schedule_injective
from tecomp.tuner.xgb_tuner import XGBTuner

from harness import gflops, median_seconds, ort_session, threads

OPSET = 17


@dataclass
class Kernel:
    """One compiled tecomp kernel reading and writing named arrays."""
    module: object
    inputs: list
    output: str
    shape: tuple

    def __call__(self, arrays: dict) -> None:
        self.module(*[arrays[n] for n in self.inputs], arrays[self.output])


@dataclass
class Program:
    """How tecomp runs a case: ``setup`` once (weight packing), then ``before`` + ``main`` + ``after``.
    ``main`` alone is the operator; ``before``/``after`` are layout transforms. ``to_nchw``
    converts the final output for the comparison with ORT."""
    main: Kernel
    setup: list = field(default_factory=list)
    before: list = field(default_factory=list)
    after: list = field(default_factory=list)


@dataclass
class Case:
    name: str
    group: str                       # "resnet18", "mbv2_dw", "pool", "other"
    inputs: dict                     # ONNX graph inputs: name -> numpy array
    weights: dict                    # ONNX initializers: name -> numpy array
    node: Callable[[], object]       # -> onnx NodeProto
    out_shape: tuple
    program: Callable[[], Program]   # built under the dispatch context in force
    flops: float
    task: Optional[tuple] = None     # (template name, args) to tune


def kernel(s, tensors: list, names: list) -> Kernel:
    """Build ``s`` over ``tensors``; the last tensor is the output, all named by ``names``."""
    return Kernel(tecomp.build(s, tensors), names[:-1], names[-1], tuple(d.value for d in tensors[-1].shape))


def layout_kernel(shape: tuple, src_layout: str, dst_layout: str, src: str, dst: str) -> Kernel:
    x = te.placeholder(shape, name=src)
    y = nchwc.layout_transform(x, src_layout, dst_layout)
    return kernel(nchwc.schedule_layout_transform(y), [x, y], [src, dst])


# ----------------------------------------------------------------------------- ONNX side

def onnx_session(case: Case, nthreads: int):
    import onnx
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
    return ort_session(model.SerializeToString(), nthreads)


# ----------------------------------------------------------------------------- cases

def _rng():
    return np.random.default_rng(0)


def _blocked_io(x_shape: tuple, block_in: int, out_blocked: tuple) -> tuple[list, list]:
    """Layout kernels NCHW "X" -> blocked "Xb", and blocked "Yb" -> NCHW "Y"."""
    before = [layout_kernel(x_shape, "NCHW", f"NCHW{block_in}c", "X", "Xb")]
    after = [layout_kernel(out_blocked, f"NCHW{out_blocked[-1]}c", "NCHW", "Yb", "Y")]
    return before, after


def conv_case(name: str, group: str, c: int, hw: int, oc: int, k: int, stride: int, pad: int,
              depthwise: bool = False) -> Case:
    from onnx import helper

    rng = _rng()
    cpg = 1 if depthwise else c
    x = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    w = rng.standard_normal((oc, cpg, k, k), dtype=np.float32) / np.float32(math.sqrt(cpg * k * k))
    o = (hw + 2 * pad - k) // stride + 1
    args = (x.shape, w.shape, (stride, stride), (pad,) * 4, (1, 1), "float32")
    template = nchwc.depthwise_conv2d_nchwc_template if depthwise else nchwc.conv2d_nchwc_template

    def node():
        return helper.make_node("Conv", ["X", "W"], ["Y"], kernel_shape=[k, k], strides=[stride, stride],
                                pads=[pad] * 4, group=c if depthwise else 1)

    def program():
        ib, ob = nchwc.conv2d_nchwc_blocks(*args)
        s, tensors = template(*args)
        W = te.placeholder(w.shape, name="W")
        packed = nchwc.pack_depthwise_kernel(W, ib) if depthwise else nchwc.pack_conv2d_kernel(W, ib, ob)
        setup = [kernel(schedule_injective(packed), [W, packed], ["W", "Wp"])]
        main = kernel(s, tensors, ["Xb", "Wp", "Yb"])
        before, after = _blocked_io(x.shape, ib, main.shape)
        return Program(main, setup, before, after)

    flops = 2.0 * oc * o * o * cpg * k * k
    return Case(name, group, {"X": x}, {"W": w}, node, (1, oc, o, o), program, flops,
                (nchwc.DW_TEMPLATE if depthwise else nchwc.TEMPLATE, args))


def maxpool_case() -> Case:
    from onnx import helper

    x = _rng().standard_normal((1, 64, 112, 112), dtype=np.float32)

    def node():
        return helper.make_node("MaxPool", ["X"], ["Y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)

    args = ("max", (1, 4, 112, 112, 16), 3, 2, 1, "NCHW16c")

    def program():
        main = kernel(*pooling.pool2d_template(*args), ["Xb", "Yb"])
        return Program(main, [], *_blocked_io(x.shape, 16, main.shape))

    return Case("max_pool 3x3/2 64@112", "pool", {"X": x}, {}, node, (1, 64, 56, 56), program,
                64 * 56 * 56 * 9.0, ("schedules/pool2d", args))


def gap_case() -> Case:
    from onnx import helper

    x = _rng().standard_normal((1, 512, 7, 7), dtype=np.float32)

    def node():
        return helper.make_node("GlobalAveragePool", ["X"], ["Y"])

    def program():
        X = te.placeholder((1, 32, 7, 7, 16), name="Xb")
        Y = pooling.global_avg_pool2d(X, layout="NCHW16c")
        main = kernel(pooling.schedule_pool(Y), [X, Y], ["Xb", "Yb"])
        return Program(main, [], *_blocked_io(x.shape, 16, main.shape))

    return Case("global_avg_pool 512@7", "pool", {"X": x}, {}, node, (1, 512, 1, 1), program, 512 * 49.0)


def dense_case() -> Case:
    from onnx import helper

    rng = _rng()
    x = rng.standard_normal((1, 512), dtype=np.float32)
    w = rng.standard_normal((1000, 512), dtype=np.float32) / np.float32(math.sqrt(512))
    args = (1, 1000, 512, "float32", False)

    def node():  # dense(x, w) = x @ w.T, like TVM's nn.dense
        return helper.make_node("Gemm", ["X", "W"], ["Y"], transB=1)

    def program():
        W = te.placeholder(w.shape, name="W")
        packed = dense_ops.pack_dense_weight(W, dense_ops.dense_panel_width(*args))
        setup = [kernel(schedule_injective(packed), [W, packed], ["W", "Wp"])]
        s, tensors = dense_ops.dense_template(*args)
        return Program(kernel(s, tensors, ["X", "Wp", "Y"]), setup)

    return Case("dense 1x512 @ 512x1000", "other", {"X": x}, {"W": w}, node, (1, 1000), program,
                2.0 * 512 * 1000, (dense_ops.DENSE_TEMPLATE, args))


def softmax_case() -> Case:
    from onnx import helper

    x = _rng().standard_normal((128, 256), dtype=np.float32)
    args = ((128, 256), -1, "float32", False)

    def node():
        return helper.make_node("Softmax", ["X"], ["Y"], axis=-1)

    def program():
        s, tensors = softmax.softmax_template(*args)
        return Program(kernel(s, tensors, ["X", "Y"]))

    return Case("softmax 128x256", "other", {"X": x}, {}, node, (128, 256), program, 5.0 * 128 * 256,
                ("schedules/softmax", args))


def layer_norm_case() -> Case:
    from onnx import helper

    rng = _rng()
    x = rng.standard_normal((128, 256), dtype=np.float32)
    g = rng.standard_normal((256,), dtype=np.float32)
    b = rng.standard_normal((256,), dtype=np.float32)
    args = ((128, 256), -1, "float32", 1e-5)

    def node():
        return helper.make_node("LayerNormalization", ["X", "G", "B"], ["Y"], axis=-1, epsilon=1e-5)

    def program():
        s, tensors = norm.layer_norm_template(*args)
        return Program(kernel(s, tensors, ["X", "G", "B", "Y"]))

    return Case("layer_norm 128x256", "other", {"X": x}, {"G": g, "B": b}, node, (128, 256), program,
                8.0 * 128 * 256, ("schedules/layer_norm", args))


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
    return [conv_case(f"dw 3x3/{s} {c} @{hw}", "mbv2_dw", c, hw, c, 3, s, 1, depthwise=True)
            for c, hw, s in MBV2_DW]


def all_cases(quick: bool) -> list:
    if quick:
        res, mb = resnet18_cases(), mbv2_cases()
        return [res[1], res[3], res[10], mb[2], maxpool_case(), gap_case()] + other_cases()
    return resnet18_cases() + mbv2_cases() + [maxpool_case(), gap_case()] + other_cases()


# ----------------------------------------------------------------------------- tuning and running

def tune(cases: list, trials: int, db: str) -> None:
    measure = autotvm.measure_option(builder=autotvm.LocalBuilder(n_parallel=2),
                                     runner=autotvm.LocalRunner(number=5, repeat=3, min_repeat_ms=50, timeout=20))
    for case in cases:
        if case.task is None:
            continue
        task = autotvm.task.create(*case.task, target="llvm")
        n = min(trials, len(task.config_space))
        print(f"tuning {case.name}: {n} of {len(task.config_space)} configs", flush=True)
        XGBTuner(task, plan_size=16, seed=0).tune(
            n_trial=n, measure_option=measure,
            callbacks=[autotvm.callback.progress_bar(n, prefix=case.name), autotvm.callback.log_to_db(db)])


def build_program(case: Case, db: Optional[str]) -> Program:
    context = autotvm.apply_history_best(db) if db else contextlib.nullcontext()
    with context, tecomp.target.Target("llvm"):
        return case.program()


def prepare(program: Program, case: Case) -> dict:
    arrays = {**case.inputs, **case.weights}
    for k in program.setup + program.before + [program.main] + program.after:
        arrays.setdefault(k.output, np.zeros(k.shape, "float32"))
    for k in program.setup:
        k(arrays)
    return arrays


def time_program(program: Program, arrays: dict) -> tuple[float, float]:
    """Median seconds of the main kernel alone, and with the layout transforms around it."""
    chain = program.before + [program.main] + program.after
    main_s = median_seconds(lambda: program.main(arrays), min_repeat_ms=100)
    if len(chain) == 1:
        return main_s, main_s
    return main_s, median_seconds(lambda: [k(arrays) for k in chain], min_repeat_ms=100)


def run_case(case: Case, thread_counts: list, db: Optional[str]) -> list:
    programs = {"default": build_program(case, None)}
    if db:
        programs["tuned"] = build_program(case, db)
    feed = dict(case.inputs)
    rows = []
    for n in thread_counts:
        sess = onnx_session(case, n)
        row = {}
        with threads(n):
            want = sess.run(None, feed)[0]
            for mode, program in programs.items():
                arrays = prepare(program, case)
                for k in program.before + [program.main] + program.after:
                    k(arrays)
                np.testing.assert_allclose(arrays["Y"], want, rtol=1e-3, atol=1e-4,
                                           err_msg=f"{case.name} ({mode}): tecomp and ORT disagree")
                row[mode] = time_program(program, arrays)
            row["ort"] = median_seconds(lambda: sess.run(None, feed), min_repeat_ms=100)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few representative cases only")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--trials", type=int, default=0, help="tune each case up to this many trials first")
    parser.add_argument("--db", default="ops_cpu.db", help="tuning records (read for the tuned mode)")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    cases = all_cases(args.quick)
    if args.trials:
        tune(cases, args.trials, args.db)
    db = args.db if os.path.exists(args.db) else None

    import onnxruntime as ort
    print(f"ops on {platform.processor() or platform.machine()}, tecomp {tecomp.__version__}, "
          f"onnxruntime {ort.__version__}; records: {db or 'none (default schedules only)'}")
    print("ms per call (median); x ORT = ORT time / tecomp time; '+lay': with the NCHW<->blocked "
          "transforms; GF/s of the best tecomp kernel")
    head = f"{'case':24s}"
    best = "tuned" if db else "default"
    for n in thread_counts:
        head += f" | {n} thr: {'default':>8s} {best + '':>8s} {'+lay':>8s} {'ORT':>8s} {'x ORT':>6s} {'+lay':>5s} {'GF/s':>6s}"
    print(head)
    log_ratios = {(n, k): [] for n in thread_counts for k in ("main", "lay")}
    for case in cases:
        line = f"{case.name:24s}"
        for n, row in zip(thread_counts, run_case(case, thread_counts, db)):
            main_s, with_layout_s = row[best]
            ort_s = row["ort"]
            if case.group == "resnet18":
                log_ratios[(n, "main")].append(math.log(ort_s / main_s))
                log_ratios[(n, "lay")].append(math.log(ort_s / with_layout_s))
            line += (f" |        {row['default'][0] * 1e3:8.3f} {main_s * 1e3:8.3f} {with_layout_s * 1e3:8.3f} "
                     f"{ort_s * 1e3:8.3f} {ort_s / main_s:6.2f} {ort_s / with_layout_s:5.2f} "
                     f"{gflops(case.flops, main_s):6.1f}")
        print(line, flush=True)
    for n in thread_counts:
        values = log_ratios[(n, "main")]
        if values:
            gm = math.exp(sum(values) / len(values))
            gm_lay = math.exp(sum(log_ratios[(n, "lay")]) / len(values))
            print(f"geomean x ORT over {len(values)} ResNet-18 conv layers, {n} thread(s), {best}: "
                  f"{gm:.2f} (kernel), {gm_lay:.2f} (with layout transforms)")


if __name__ == "__main__":
    main()
