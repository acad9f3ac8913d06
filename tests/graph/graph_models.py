"""Small whole models built directly as graphs (MLP, conv-bn-relu-pool CNN, transformer encoder
block), each with a numpy reference forward pass."""

from __future__ import annotations

import math

import numpy as np

from tecomp.graph import Graph, Node, TensorType
from tecomp.graph.ops import output_types


class Net:
    """Builds a Graph node by node; output types come from the operator library."""

    def __init__(self, seed: int = 0) -> None:
        self.inputs: dict[str, TensorType] = {}
        self.params: dict[str, TensorType] = {}
        self.values: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.rng = np.random.default_rng(seed)

    def input(self, name: str, shape: tuple, dtype: str = "float32") -> str:
        self.inputs[name] = self.types[name] = TensorType(tuple(shape), dtype)
        return name

    def param(self, name: str, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value)
        self.params[name] = self.types[name] = TensorType(value.shape, str(value.dtype))
        self.values[name] = value
        return name

    def weight(self, name: str, shape: tuple, scale: float = 0.3) -> str:
        return self.param(name, (self.rng.standard_normal(shape) * scale).astype("float32"))

    def op(self, op: str, *inputs: str, kw: dict | None = None, outputs: int = 1, **attrs) -> str | list[str]:
        kw = kw or {}
        types = output_types(op, [self.types[v] for v in inputs], attrs, {k: self.types[v] for k, v in kw.items()})
        names = [f"{op}_{len(self.nodes)}" + (f"_{k}" if outputs > 1 else "") for k in range(len(types))]
        self.types.update(zip(names, types))
        self.nodes.append(Node(op, list(inputs), names, attrs, f"n{len(self.nodes)}_{op}", dict(kw)))
        return names if outputs > 1 else names[0]

    def graph(self, *outputs: str) -> Graph:
        g = Graph(dict(self.inputs), dict(self.params), list(self.nodes), list(outputs), dict(self.types))
        g.validate()
        return g


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype("float64")).astype(x.dtype)


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


# ---------------------------------------------------------------------------- MLP

def mlp(batch: int = 8):
    """dense+bias+relu, dense+bias+gelu, dense+bias, softmax."""
    n = Net(1)
    x = n.input("x", (batch, 64))
    w1, b1 = n.weight("w1", (128, 64)), n.weight("b1", (128,))
    w2, b2 = n.weight("w2", (128, 32), 0.2), n.weight("b2", (1, 32))
    w3, b3 = n.weight("w3", (10, 32)), n.weight("b3", (10,))
    h = n.op("relu", n.op("add", n.op("dense", x, w1), b1))
    h = n.op("gelu", n.op("add", n.op("matmul", h, w2), b2))
    logits = n.op("add", b3, n.op("dense", h, w3))
    probs = n.op("softmax", logits, axis=-1)
    v = n.values

    def reference(x: np.ndarray) -> list[np.ndarray]:
        h = np.maximum(x @ v["w1"].T + v["b1"], 0)
        h = _gelu(h @ v["w2"] + v["b2"])
        return [_softmax(h @ v["w3"].T + v["b3"])]

    return n.graph(probs), n.values, reference


# ---------------------------------------------------------------------------- CNN

def _conv(x: np.ndarray, w: np.ndarray, pad: int, stride: int = 1) -> np.ndarray:
    n, c, h, wd = x.shape
    oc, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, oc, oh, ow), np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out.astype(x.dtype)


def _bn(x: np.ndarray, g, b, m, var, eps=1e-5) -> np.ndarray:
    s = lambda a: a.reshape(1, -1, 1, 1)  # noqa: E731
    return (x - s(m)) / np.sqrt(s(var) + eps) * s(g) + s(b)


def cnn(batch: int = 1, size: int = 16):
    """conv-bn-relu, max pool, conv+bias-bn-relu, conv-bn + residual add + relu, global pool, dense."""
    n = Net(2)
    x = n.input("x", (batch, 3, size, size))

    def bn_params(prefix: str, c: int) -> list[str]:
        return [n.param(f"{prefix}_gamma", n.rng.uniform(0.5, 1.5, c).astype("float32")),
                n.param(f"{prefix}_beta", n.rng.uniform(-0.5, 0.5, c).astype("float32")),
                n.param(f"{prefix}_mean", n.rng.uniform(-0.5, 0.5, c).astype("float32")),
                n.param(f"{prefix}_var", n.rng.uniform(0.5, 2.0, c).astype("float32"))]

    w1, bn1 = n.weight("w1", (8, 3, 3, 3)), bn_params("bn1", 8)
    y = n.op("relu", n.op("batch_norm_inference", n.op("conv2d_nchw", x, w1, padding=1), *bn1, epsilon=1e-5))
    y = n.op("max_pool2d", y, kernel=2, strides=2)
    w2, b2, bn2 = n.weight("w2", (16, 8, 3, 3), 0.2), n.weight("b2", (1, 16, 1, 1)), bn_params("bn2", 16)
    y = n.op("add", n.op("conv2d_nchw", y, w2, padding=1), b2)
    skip = n.op("relu", n.op("batch_norm_inference", y, *bn2))
    w3, bn3 = n.weight("w3", (16, 16, 3, 3), 0.15), bn_params("bn3", 16)
    y = n.op("batch_norm_inference", n.op("conv2d_nchw", skip, w3, padding=1), *bn3)
    y = n.op("relu", n.op("add", y, skip))
    y = n.op("flatten", n.op("global_avg_pool2d", y))
    w4, b4 = n.weight("w4", (10, 16)), n.weight("b4", (10,))
    out = n.op("add", n.op("dense", y, w4), b4)
    v = n.values

    def reference(x: np.ndarray) -> list[np.ndarray]:
        y = np.maximum(_bn(_conv(x, v["w1"], 1), *(v[p] for p in bn1)), 0)
        b, c, h, w = y.shape
        y = y.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
        skip = np.maximum(_bn(_conv(y, v["w2"], 1) + v["b2"], *(v[p] for p in bn2)), 0)
        y = np.maximum(_bn(_conv(skip, v["w3"], 1), *(v[p] for p in bn3)) + skip, 0)
        y = y.mean(axis=(2, 3))
        return [y @ v["w4"].T + v["b4"]]

    return n.graph(out), n.values, reference


# ---------------------------------------------------------------------------- transformer block

def _layer_norm(x: np.ndarray, g, b, eps=1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def transformer(seq: int = 16, d: int = 32, heads: int = 2, ff: int = 64):
    """Pre-norm encoder block: layer_norm, multi-head self-attention (matmul, batch_matmul,
    softmax), residual add, layer_norm, dense+gelu, dense, residual add."""
    n = Net(3)
    hd = d // heads
    x = n.input("x", (seq, d))
    g1, be1 = n.param("ln1_g", np.ones(d, "float32") * 1.1), n.weight("ln1_b", (d,), 0.1)
    h = n.op("layer_norm", x, g1, be1, axis=-1, epsilon=1e-5)

    def heads_of(t: str, k_transposed: bool = False) -> str:
        t = n.op("reshape", t, newshape=[seq, heads, hd])
        return n.op("transpose", t, axes=[1, 2, 0] if k_transposed else [1, 0, 2])

    proj = {}
    for p in "qkv":
        proj[p] = n.op("add", n.op("matmul", h, n.weight(f"w{p}", (d, d), 0.2)), n.weight(f"b{p}", (d,), 0.1))
    q, k, vv = heads_of(proj["q"]), heads_of(proj["k"], True), heads_of(proj["v"])
    scores = n.op("multiply", n.op("batch_matmul", q, k), b=1.0 / math.sqrt(hd))
    attn = n.op("batch_matmul", n.op("softmax", scores, axis=-1), vv)
    attn = n.op("reshape", n.op("transpose", attn, axes=[1, 0, 2]), newshape=[seq, d])
    attn = n.op("add", n.op("matmul", attn, n.weight("wo", (d, d), 0.2)), n.weight("bo", (d,), 0.1))
    x1 = n.op("add", x, attn)
    g2, be2 = n.param("ln2_g", np.ones(d, "float32")), n.param("ln2_b", np.zeros(d, "float32"))
    h2 = n.op("layer_norm", x1, g2, be2)
    f = n.op("gelu", n.op("add", n.op("dense", h2, n.weight("wf1", (ff, d), 0.2)), n.weight("bf1", (ff,), 0.1)))
    f = n.op("add", n.op("dense", f, n.weight("wf2", (d, ff), 0.2)), n.weight("bf2", (d,), 0.1))
    out = n.op("add", x1, f)
    v = n.values

    def reference(x: np.ndarray) -> list[np.ndarray]:
        h = _layer_norm(x, v["ln1_g"], v["ln1_b"])
        q, k, vv = ((h @ v[f"w{p}"] + v[f"b{p}"]).reshape(seq, heads, hd).transpose(1, 0, 2) for p in "qkv")
        p = _softmax(q @ k.transpose(0, 2, 1) / math.sqrt(hd))
        a = (p @ vv).transpose(1, 0, 2).reshape(seq, d) @ v["wo"] + v["bo"]
        x1 = x + a
        h2 = _layer_norm(x1, v["ln2_g"], v["ln2_b"])
        f = _gelu(h2 @ v["wf1"].T + v["bf1"]) @ v["wf2"].T + v["bf2"]
        return [x1 + f]

    return n.graph(out), n.values, reference


MODELS = {"mlp": mlp, "cnn": cnn, "transformer": transformer}


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(t.shape).astype(t.dtype) for k, t in graph.inputs.items()}
