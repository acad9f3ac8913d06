"""3x3 convolutions by Winograd's algorithm beside tecomp's direct conv and onnxruntime.

Each case is a one-node ONNX model (Conv, 3x3, stride 1, padding 1, with a bias), imported and
built as a model twice: with Winograd (the default) and with
``PassContext(config={"tecomp.winograd": False})``, and run in onnxruntime; the three are
timed in turns at the same thread count. Both tecomp builds convert NCHW to the blocked layout
and back around the conv, as a lone conv in a model does. GFLOP/s counts the direct algorithm's
multiply-adds (2 * N * OC * C * 9 * OH * OW) for all three.

    python winograd_cpu.py [--threads 1,2] [--repeat 7]
"""

from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import tecomp.graph
from harness import gflops, interleaved_medians, ort_runner, ort_session, threads
from tecomp.frontend import from_onnx
from tecomp.schedules.conv2d_winograd import winograd_tile
from tecomp.transform import PassContext

# (name, channels in, channels out, height = width)
CASES = [
    ("resnet18 layer1", 64, 64, 56),
    ("resnet18 layer2", 128, 128, 28),
    ("resnet18 layer3", 256, 256, 14),
    ("resnet18 layer4", 512, 512, 7),
    ("googlenet 3x3", 96, 128, 28),
    ("squeezenet expand", 64, 256, 13),
    ("odd: 48 -> 80 at 37", 48, 80, 37),
]


def conv_model(c: int, oc: int, hw: int, rng: np.random.Generator) -> bytes:
    weight = numpy_helper.from_array(rng.uniform(-0.1, 0.1, (oc, c, 3, 3)).astype("float32"), "W")
    bias = numpy_helper.from_array(rng.uniform(-0.1, 0.1, oc).astype("float32"), "B")
    node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=[3, 3], pads=[1] * 4)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, c, hw, hw])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, oc, hw, hw])],
                              [weight, bias])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def run_case(name: str, c: int, oc: int, hw: int, nthreads: int, repeat: int) -> str:
    rng = np.random.default_rng(0)
    model = conv_model(c, oc, hw, rng)
    x = rng.uniform(-1, 1, (1, c, hw, hw)).astype("float32")
    graph, params = from_onnx(onnx.load_from_string(model))
    winograd = tecomp.graph.build(graph, "llvm", params)
    with PassContext(config={"tecomp.winograd": False}):
        direct = tecomp.graph.build(graph, "llvm", params)
    ort_call, ort_out = ort_runner(ort_session(model, nthreads), {"X": x})
    ort_call()
    for module in (winograd, direct):
        np.testing.assert_allclose(module.run(x)[0], ort_out[0], rtol=1e-3, atol=1e-3)
    with threads(nthreads):
        t_wino, t_direct, t_ort = interleaved_medians([lambda: winograd.run(x), lambda: direct.run(x), ort_call],
                                                      repeat, 50.0)
    flop = 2 * oc * c * 9 * hw * hw
    tile = winograd_tile((1, c, hw, hw), (oc, c, 3, 3), padding=1)
    return (f"| {name} | {c}->{oc} @ {hw}x{hw} | {nthreads} | F({tile},3) | {t_direct * 1e3:.3f} | "
            f"{t_wino * 1e3:.3f} | {t_ort * 1e3:.3f} | {t_direct / t_wino:.2f} | {t_ort / t_wino:.2f} | "
            f"{gflops(flop, t_wino):.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeat", type=int, default=7, help="timed rounds per case, in turns (default 7)")
    args = parser.parse_args()
    print("| case | shape | threads | tile | direct ms | winograd ms | ORT ms | direct/winograd | "
          "ORT/winograd | winograd GF/s |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for nthreads in (int(t) for t in args.threads.split(",")):
        for name, c, oc, hw in CASES:
            print(run_case(name, c, oc, hw, nthreads, args.repeat), flush=True)


if __name__ == "__main__":
    main()
