"""ONNX converters for neural-network operators: Conv, Gemm, MatMul, pooling, batch and layer
normalisation, Dropout. Products with broadcasting and 1-D convolutions and pools are rewritten
onto the library's 2-D operators with reshapes around them."""

from __future__ import annotations

import numpy as np

from .common import axis as norm_axis
from .common import binary, prod, reshape, spatial_pads
from .importer import NodeContext, Value
from .registry import converter


def _spatial_rank(n: NodeContext, x: Value) -> int:
    """1 or 2 spatial dimensions (1-D runs as 2-D with a height of 1); GraphError otherwise."""
    spatial = x.rank - 2
    if spatial not in (1, 2):
        raise n.error(f"input of shape {x.shape} has {spatial} spatial dimensions; only 1-D and 2-D are "
                      "supported")
    return spatial


def _as_2d(n: NodeContext, x: Value, spatial: int) -> Value:
    return x if spatial == 2 else reshape(n, x, x.shape[:2] + (1,) + x.shape[2:])


def _from_2d(n: NodeContext, out: Value, spatial: int) -> Value:
    return out if spatial == 2 else reshape(n, out, out.shape[:2] + out.shape[3:])


def _window(n: NodeContext, x: Value, kernel: list[int], dilations_attr: bool) -> tuple[list, list, list]:
    """(strides, dilations, pads) for a window of ``kernel`` over ``x``'s spatial dimensions."""
    spatial = x.rank - 2
    strides = list(n.attr("strides", [1] * spatial))
    dilations = list(n.attr("dilations", [1] * spatial)) if dilations_attr else [1] * spatial
    for what, values in (("strides", strides), ("dilations", dilations), ("kernel_shape", kernel)):
        if len(values) != spatial or min(values) < 1:
            raise n.error(f"{what}={values} must be {spatial} positive ints")
    return strides, dilations, spatial_pads(n, x.shape[2:], kernel, strides, dilations)


def _pair(values: list[int], spatial: int, fill: int) -> list[int]:
    """1-D window parameters as the 2-D ones of a height-1 image."""
    return values if spatial == 2 else [fill] + values


def _pads4(pads: list[int], spatial: int) -> list[int]:
    """ONNX pads (begins, ends) as the library's (top, left, bottom, right)."""
    return pads if spatial == 2 else [0, pads[0], 0, pads[1]]


@converter("Conv", versions=(11, 22))
def _conv(n: NodeContext) -> Value:
    x, w, bias = n.input(0), n.input(1), n.optional(2)
    spatial = _spatial_rank(n, x)
    kernel = list(n.attr("kernel_shape", list(w.shape[2:])))
    if tuple(kernel) != w.shape[2:]:
        raise n.error(f"kernel_shape={kernel} does not match the weight's shape {w.shape}")
    strides, dilations, pads = _window(n, x, kernel, True)
    out = n.emit("conv2d_nchw", _as_2d(n, x, spatial), _as_2d(n, w, spatial),
                 kw={"bias": bias} if bias is not None else None,
                 strides=_pair(strides, spatial, 1), padding=_pads4(pads, spatial),
                 dilation=_pair(dilations, spatial, 1), groups=int(n.attr("group", 1)))
    return _from_2d(n, out, spatial)


@converter("MaxPool", versions=(12, 22))
@converter("AveragePool", versions=(11, 19, 22))
def _pool(n: NodeContext) -> Value:
    x = n.input(0)
    if n.wants_output(1):
        raise n.error("the Indices output is not supported")
    n.ignore("storage_order")  # it only orders the Indices output
    spatial = _spatial_rank(n, x)
    kernel = list(n.attr("kernel_shape"))
    has_dilations = n.op_type == "MaxPool" or n.version >= 19
    strides, dilations, pads = _window(n, x, kernel, has_dilations)
    if any(d != 1 for d in dilations):
        raise n.error(f"dilations={dilations} are not supported for pooling (only 1)")
    attrs = {"kernel": _pair(kernel, spatial, 1), "strides": _pair(strides, spatial, 1),
             "padding": _pads4(pads, spatial), "ceil_mode": bool(n.attr("ceil_mode", 0))}
    if n.op_type == "AveragePool":
        attrs["count_include_pad"] = bool(n.attr("count_include_pad", 0))
    op = "max_pool2d" if n.op_type == "MaxPool" else "avg_pool2d"
    return _from_2d(n, n.emit(op, _as_2d(n, x, spatial), **attrs), spatial)


@converter("GlobalAveragePool", "GlobalMaxPool", versions=(1, 22))
def _global_pool(n: NodeContext) -> Value:
    x = n.input(0)
    if x.rank < 3:
        raise n.error(f"input of shape {x.shape} has no spatial dimensions")
    if n.op_type == "GlobalAveragePool" and x.rank == 4:
        return n.emit("global_avg_pool2d", x)
    op = "mean" if n.op_type == "GlobalAveragePool" else "max"
    return n.emit(op, x, axis=list(range(2, x.rank)), keepdims=True)


@converter("BatchNormalization", versions=(9, 14, 15))
def _batch_norm(n: NodeContext) -> Value:
    if n.attr("training_mode", 0):
        raise n.error("training_mode=1 is not supported (inference only)")
    n.ignore("momentum")  # it only updates running statistics in training
    x = n.input(0)
    if x.rank < 2:
        raise n.error(f"input of shape {x.shape} has no channel dimension")
    stats = [n.input(k) for k in range(1, 5)]
    return n.emit("batch_norm_inference", x, *stats, epsilon=float(n.attr("epsilon", 1e-5)), axis=1)


@converter("LayerNormalization", versions=(17,))
def _layer_norm(n: NodeContext) -> list[Value | None]:
    n.ignore("stash_type")  # statistics are computed in the input's float type
    x, scale, bias = n.input(0), n.input(1), n.optional(2)
    lead = norm_axis(n, n.attr("axis", -1), x.rank)
    eps = float(n.attr("epsilon", 1e-5))
    norm_shape = x.shape[lead:]
    scale = _broadcast_to(n, scale, norm_shape, "Scale")
    bias = n.constant(np.zeros(norm_shape, x.dtype)) if bias is None else _broadcast_to(n, bias, norm_shape, "B")
    out: list[Value | None] = [n.emit("layer_norm", x, scale, bias, axis=lead, epsilon=eps), None, None]
    if n.wants_output(1) or n.wants_output(2):
        reduced = list(range(lead, x.rank))
        mean = n.emit("mean", x, axis=reduced, keepdims=True)
        centred = n.emit("subtract", x, mean)
        var = n.emit("mean", n.emit("multiply", centred, centred), axis=reduced, keepdims=True)
        out[1] = mean
        out[2] = n.emit("divide", n.constant(1, x.dtype), n.emit("sqrt", n.emit("add", var, b=eps)))
    return out


def _broadcast_to(n: NodeContext, value: Value, shape: tuple[int, ...], what: str) -> Value:
    """``value`` broadcast to ``shape`` (LayerNormalization's Scale and B may be smaller)."""
    if value.shape == shape:
        return value
    if np.broadcast_shapes(value.shape, shape) != shape:
        raise n.error(f"{what} of shape {value.shape} does not broadcast to the normalised shape {shape}")
    return n.emit("expand", value, shape=list(shape))


@converter("Dropout", versions=(13, 22))
def _dropout(n: NodeContext) -> list[Value]:
    n.ignore("seed")
    if n.has_input(2) and n.const(2, "training_mode").reshape(-1)[0]:
        # training mode drops nothing only with a ratio of 0 (its default is 0.5)
        if not n.has_input(1) or float(n.const(1, "ratio").reshape(-1)[0]) != 0.0:
            raise n.error("training_mode is true with a nonzero ratio; only inference is supported")
    x = n.input(0)
    mask = n.constant(np.ones(x.shape, dtype=bool)) if n.wants_output(1) else None
    return [x, mask]


@converter("Gemm", versions=(11, 13))
def _gemm(n: NodeContext) -> Value:
    a, b, c = n.input(0), n.input(1), n.optional(2)
    alpha, beta = float(n.attr("alpha", 1.0)), float(n.attr("beta", 1.0))
    trans_a, trans_b = bool(n.attr("transA", 0)), bool(n.attr("transB", 0))
    units = b.shape[0] if trans_b else b.shape[-1]
    fused_bias = c is not None and alpha == 1.0 and beta == 1.0 and c.shape == (units,)
    out = n.emit("dense", a, b, kw={"bias": c} if fused_bias else None, transpose_a=trans_a, transpose_b=trans_b)
    if alpha != 1.0:
        out = n.emit("multiply", out, b=alpha)
    if c is not None and not fused_bias and beta != 0.0:
        out = binary(n, "add", out, c if beta == 1.0 else n.emit("multiply", c, b=beta))
    return out


@converter("MatMul", versions=(13,))
def _matmul(n: NodeContext) -> Value:
    a, b = n.input(0), n.input(1)
    if a.rank == 0 or b.rank == 0:
        raise n.error("MatMul of a scalar is not defined")
    a2 = reshape(n, a, (1,) + a.shape) if a.rank == 1 else a
    b2 = reshape(n, b, b.shape + (1,)) if b.rank == 1 else b
    (m, k), (kb, cols) = a2.shape[-2:], b2.shape[-2:]
    if k != kb:
        raise n.error(f"shapes {a.shape} and {b.shape} do not match for a matrix product ({k} vs {kb})")
    try:
        batch = tuple(int(d) for d in np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]))
    except ValueError:
        raise n.error(f"batch dimensions of {a.shape} and {b.shape} do not broadcast") from None
    if b2.rank == 2:  # [..., M, K] x [K, N]: one matrix product over all rows
        product = n.emit("matmul", reshape(n, a2, (prod(batch) * m, k)), b2)
    else:
        product = n.emit("batch_matmul", _batch3(n, a2, batch), _batch3(n, b2, batch))
    shape = batch + ((m,) if a.rank > 1 else ()) + ((cols,) if b.rank > 1 else ())
    return reshape(n, product, shape)


def _batch3(n: NodeContext, x: Value, batch: tuple[int, ...]) -> Value:
    """``x`` ``[..., R, C]`` as ``[B, R, C]`` for ``batch_matmul``: batch 1 (broadcast by the operator)
    when all its batch dimensions are 1, else expanded to the full ``batch``."""
    rows = x.shape[-2:]
    if prod(x.shape[:-2]) == 1:
        return reshape(n, x, (1,) + rows)
    if (1,) * (len(batch) - (x.rank - 2)) + x.shape[:-2] != batch:
        x = n.emit("expand", x, shape=list(batch + rows))
    return reshape(n, x, (prod(batch),) + rows)
