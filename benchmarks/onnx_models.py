"""The ONNX models of the whole-model benchmarks, built with onnx.helper from random weights.

No tecomp here: these builders only need onnx and numpy, so the same models can be run by
onnxruntime, tecomp, or anything else. Every builder takes a seed (weights are reproducible)
and returns an ``onnx.ModelProto`` at opset 17 (IR version 8, which onnxruntime reads).

- ``resnet18``: ResNet-18 (BasicBlocks 2-2-2-2), Conv + BatchNormalization + Relu, 224x224.
- ``mobilenet_v2``: MobileNetV2 (inverted residuals, depthwise convs, Relu6 as Clip), 224x224.
- ``transformer_encoder``: post-norm encoder layers (MatMul/Add, multi-head attention with
  Reshape/Transpose built from Shape ops as exporters write them, Softmax, LayerNormalization,
  Erf-based GELU); input ``[batch, seq, d_model]`` with symbolic batch and seq dimensions.
- ``mlp``: Gemm + Relu layers (784-512-512-10).
- ``small_cnn``: conv-bn-relu-pool twice, global pool and a classifier (tests and examples).

``BENCHMARKS`` names the four issue-5 configurations with their input shapes:

    python benchmarks/onnx_models.py [--save DIR]   # build each, run it in onnxruntime
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


class Builder:
    """Nodes and initializers of one model, with generated names and seeded weights."""

    def __init__(self, name: str, seed: int) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, hint: str, array: np.ndarray) -> str:
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def weight(self, hint: str, shape: Sequence[int], std: float) -> str:
        return self.const(hint, (self.rng.standard_normal(shape) * std).astype("float32"))

    def uniform(self, hint: str, shape: Sequence[int], low: float, high: float) -> str:
        return self.const(hint, self.rng.uniform(low, high, size=shape).astype("float32"))

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, name=self.fresh(op_type), **attrs))
        return names[0] if outputs == 1 else names

    def model(self, inputs: dict[str, Sequence[int | str]], outputs: dict[str, Sequence[int | str]],
              opset: int = OPSET) -> onnx.ModelProto:
        """The checked model; ``inputs`` and ``outputs`` map value names to shapes (float32)."""
        def infos(values: dict[str, Sequence[int | str]]) -> list[onnx.ValueInfoProto]:
            return [helper.make_tensor_value_info(k, TensorProto.FLOAT, list(v)) for k, v in values.items()]

        graph = helper.make_graph(self.nodes, self.name, infos(inputs), infos(outputs), self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION,
                                  producer_name="tecomp benchmarks/onnx_models.py")
        onnx.checker.check_model(model, full_check=True)
        return model

    # ------------------------------------------------------------------ blocks

    def conv_bn(self, x: str, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                act: str | None = "relu", gamma: tuple[float, float] = (0.5, 1.5)) -> str:
        """Conv (no bias, He-initialised) + BatchNormalization with random statistics + activation."""
        fan_in = cin // groups * kernel * kernel
        w = self.weight("conv_w", (cout, cin // groups, kernel, kernel), math.sqrt(2.0 / fan_in))
        pad = kernel // 2
        y = self.op("Conv", x, w, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4,
                    group=groups)
        bn = [self.uniform("bn_gamma", (cout,), *gamma), self.weight("bn_beta", (cout,), 0.1),
              self.weight("bn_mean", (cout,), 0.1), self.uniform("bn_var", (cout,), 0.5, 1.5)]
        y = self.op("BatchNormalization", y, *bn, epsilon=1e-5)
        if act == "relu":
            return self.op("Relu", y)
        if act == "relu6":
            return self.op("Clip", y, self.const("zero", np.array(0, "float32")),
                           self.const("six", np.array(6, "float32")))
        return y

    def linear(self, x: str, fan_in: int, fan_out: int) -> str:
        """Gemm with a [out, in] weight (transB=1), as PyTorch exports nn.Linear."""
        w = self.weight("fc_w", (fan_out, fan_in), math.sqrt(1.0 / fan_in))
        return self.op("Gemm", x, w, self.weight("fc_b", (fan_out,), 0.1), transB=1)

    def head(self, x: str, channels: int, classes: int) -> str:
        return self.linear(self.op("Flatten", self.op("GlobalAveragePool", x), axis=1), channels, classes)


def resnet18(batch: int = 1, image: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = Builder("resnet18", seed)
    x = b.conv_bn("input", 3, 64, 7, stride=2)
    x = b.op("MaxPool", x, kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            y = b.conv_bn(x, cin, cout, 3, stride)
            # a small last gamma keeps the residual sum's scale steady through 8 blocks
            y = b.conv_bn(y, cout, cout, 3, act=None, gamma=(0.2, 0.5))
            shortcut = x if stride == 1 and cin == cout else b.conv_bn(x, cin, cout, 1, stride, act=None)
            x = b.op("Relu", b.op("Add", y, shortcut))
            cin = cout
    return b.model({"input": (batch, 3, image, image)}, {b.head(x, 512, classes): (batch, classes)})


MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))  # (expansion t, channels c, repeats n, first stride s)


def mobilenet_v2(batch: int = 1, image: int = 224, classes: int = 1000, seed: int = 0) -> onnx.ModelProto:
    b = Builder("mobilenet_v2", seed)
    x = b.conv_bn("input", 3, 32, 3, stride=2, act="relu6")
    cin = 32
    for t, c, n, s in MOBILENET_V2:
        for k in range(n):
            stride = s if k == 0 else 1
            hidden = cin * t
            y = b.conv_bn(x, cin, hidden, 1, act="relu6") if t != 1 else x
            y = b.conv_bn(y, hidden, hidden, 3, stride, groups=hidden, act="relu6")
            y = b.conv_bn(y, hidden, c, 1, act=None, gamma=(0.2, 0.5))
            x = b.op("Add", x, y) if stride == 1 and cin == c else y
            cin = c
    x = b.conv_bn(x, cin, 1280, 1, act="relu6")
    return b.model({"input": (batch, 3, image, image)}, {b.head(x, 1280, classes): (batch, classes)})


def mlp(batch: int = 64, sizes: Sequence[int] = (784, 512, 512, 10), seed: int = 0) -> onnx.ModelProto:
    b = Builder("mlp", seed)
    x = "input"
    for k, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:])):
        x = b.linear(x, fan_in, fan_out)
        if k < len(sizes) - 2:
            x = b.op("Relu", x)
    return b.model({"input": (batch, sizes[0])}, {x: (batch, sizes[-1])})


def small_cnn(batch: int = 1, image: int = 32, classes: int = 10, channels: tuple[int, int] = (8, 16),
              seed: int = 0) -> onnx.ModelProto:
    """conv-bn-relu-maxpool twice (``channels``), global average pool, Flatten, Gemm."""
    b = Builder("small_cnn", seed)
    c1, c2 = channels
    x = b.op("MaxPool", b.conv_bn("input", 3, c1, 3), kernel_shape=[2, 2], strides=[2, 2])
    x = b.op("MaxPool", b.conv_bn(x, c1, c2, 3), kernel_shape=[2, 2], strides=[2, 2])
    return b.model({"input": (batch, 3, image, image)}, {b.head(x, c2, classes): (batch, classes)})


def _gelu_erf(b: Builder, x: str) -> str:
    """0.5 * x * (1 + erf(x / sqrt(2))), as exporters write GELU before opset 20."""
    inner = b.op("Erf", b.op("Div", x, b.const("sqrt2", np.array(math.sqrt(2.0), "float32"))))
    one_plus = b.op("Add", inner, b.const("one", np.array(1.0, "float32")))
    return b.op("Mul", b.op("Mul", x, one_plus), b.const("half", np.array(0.5, "float32")))


def _dims(b: Builder, x: str, axes: Sequence[int]) -> list[str]:
    """``x``'s dimensions ``axes`` as 1-element int64 tensors, read with Shape/Gather/Unsqueeze."""
    shape = b.op("Shape", x)
    zero = b.const("axis0", np.array([0], "int64"))
    return [b.op("Unsqueeze", b.op("Gather", shape, b.const("dim", np.array(a, "int64")), axis=0), zero)
            for a in axes]


def _encoder_layer(b: Builder, x: str, d_model: int, heads: int, ffn: int, gelu: str) -> str:
    head_dim = d_model // heads
    batch, seq = _dims(b, x, (0, 1))
    split_heads = b.op("Concat", batch, seq, b.const("heads", np.array([heads, head_dim], "int64")), axis=0)
    merge_heads = b.op("Concat", batch, seq, b.const("model", np.array([d_model], "int64")), axis=0)

    def project(inp: str, fan_in: int, fan_out: int) -> str:
        w = b.weight("w", (fan_in, fan_out), math.sqrt(1.0 / fan_in))
        return b.op("Add", b.op("MatMul", inp, w), b.weight("b", (fan_out,), 0.02))

    def heads_of(t: str, perm: list[int]) -> str:
        return b.op("Transpose", b.op("Reshape", t, split_heads), perm=perm)

    q = heads_of(project(x, d_model, d_model), [0, 2, 1, 3])            # [B, H, S, Dh]
    k = heads_of(project(x, d_model, d_model), [0, 2, 3, 1])            # [B, H, Dh, S]
    v = heads_of(project(x, d_model, d_model), [0, 2, 1, 3])
    scores = b.op("Div", b.op("MatMul", q, k), b.const("scale", np.array(math.sqrt(head_dim), "float32")))
    context = b.op("MatMul", b.op("Softmax", scores, axis=-1), v)      # [B, H, S, Dh]
    context = b.op("Reshape", b.op("Transpose", context, perm=[0, 2, 1, 3]), merge_heads)

    def norm(t: str) -> str:
        return b.op("LayerNormalization", t, b.uniform("ln_g", (d_model,), 0.8, 1.2),
                    b.weight("ln_b", (d_model,), 0.1), axis=-1, epsilon=1e-5)

    x = norm(b.op("Add", x, project(context, d_model, d_model)))
    hidden = project(x, d_model, ffn)
    hidden = b.op("Gelu", hidden) if gelu == "op" else _gelu_erf(b, hidden)
    return norm(b.op("Add", x, project(hidden, ffn, d_model)))


def transformer_encoder(layers: int = 2, d_model: int = 256, heads: int = 4, ffn: int | None = None,
                        gelu: str = "erf", seed: int = 0) -> onnx.ModelProto:
    """Post-norm encoder layers on ``input[batch, seq, d_model]`` (batch and seq symbolic).
    ``gelu="op"`` uses the opset-20 Gelu operator instead of the Erf formula."""
    if d_model % heads:
        raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
    b = Builder("transformer_encoder", seed)
    x = "input"
    for _ in range(layers):
        x = _encoder_layer(b, x, d_model, heads, ffn or 4 * d_model, gelu)
    return b.model({"input": ("batch", "seq", d_model)}, {x: ("batch", "seq", d_model)},
                   opset=20 if gelu == "op" else OPSET)


# name -> (builder, input shapes): the issue-5 benchmark configurations.
BENCHMARKS: dict[str, tuple[Callable[[], onnx.ModelProto], dict[str, tuple[int, ...]]]] = {
    "resnet18": (resnet18, {"input": (1, 3, 224, 224)}),
    "mobilenet_v2": (mobilenet_v2, {"input": (1, 3, 224, 224)}),
    "transformer": (transformer_encoder, {"input": (1, 128, 256)}),
    "mlp": (mlp, {"input": (64, 784)}),
}


def random_inputs(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype("float32") for name, shape in shapes.items()}


def run_onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray], threads: int = 0) -> list[np.ndarray]:
    """The model's outputs from onnxruntime's CPU provider (``threads`` 0: its default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description="Build the benchmark models and run each in onnxruntime.")
    parser.add_argument("--save", type=Path, help="also write each model to DIR/<name>.onnx")
    args = parser.parse_args()
    for name, (build, shapes) in BENCHMARKS.items():
        model = build()
        start = time.perf_counter()
        outputs = run_onnxruntime(model, random_inputs(shapes))
        params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
        print(f"{name:<14} {len(model.graph.node):>4} nodes {params / 1e6:7.2f} M params  output "
              f"{outputs[0].shape}  onnxruntime {1e3 * (time.perf_counter() - start):7.1f} ms (first run)")
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            onnx.save(model, args.save / f"{name}.onnx")


if __name__ == "__main__":
    main()
