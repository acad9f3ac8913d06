"""ONNX converters for neural-network operators: Conv, ConvTranspose, Gemm, MatMul, pooling (max with
indices, average, Lp, global), batch (inference and training), layer, instance and group
normalisation, Dropout. Products with broadcasting and 1-D convolutions and pools are rewritten
onto the library's 2-D operators with reshapes around them; 3-D ones have their own operators."""

from __future__ import annotations

import numpy as np

from .common import axis as norm_axis
from .common import binary, prod, reshape, spatial_pads
from .importer import NodeContext, Value, dtype_of
from .registry import converter


def _spatial_rank(n: NodeContext, x: Value, most: int = 3) -> int:
    """The number of spatial dimensions, 1 to ``most``; GraphError otherwise."""
    spatial = x.rank - 2
    if not 1 <= spatial <= most:
        raise n.error(f"input of shape {x.shape} has {spatial} spatial dimensions; only 1 to {most} are supported")
    return spatial


def _as_2d(n: NodeContext, x: Value, spatial: int) -> Value:
    return x if spatial == 2 else reshape(n, x, x.shape[:2] + (1,) + x.shape[2:])


def _from_2d(n: NodeContext, out: Value, spatial: int) -> Value:
    return out if spatial == 2 else reshape(n, out, out.shape[:2] + out.shape[3:])


def _ints(n: NodeContext, name: str, spatial: int, default: int, minimum: int = 1) -> list[int]:
    """Attribute ``name``: ``spatial`` ints, each at least ``minimum`` (``default`` each when absent)."""
    values = list(n.attr(name, [default] * spatial))
    if len(values) != spatial or min(values) < minimum:
        raise n.error(f"{name}={values} must be {spatial} ints >= {minimum}")
    return values


def _window(n: NodeContext, x: Value, kernel: list[int], dilations_attr: bool) -> tuple[list, list, list]:
    """(strides, dilations, pads) for a window of ``kernel`` over ``x``'s spatial dimensions."""
    spatial = x.rank - 2
    if len(kernel) != spatial or min(kernel) < 1:
        raise n.error(f"kernel_shape={kernel} must be {spatial} positive ints")
    strides = _ints(n, "strides", spatial, 1)
    dilations = _ints(n, "dilations", spatial, 1) if dilations_attr else [1] * spatial
    return strides, dilations, spatial_pads(n, x.shape[2:], kernel, strides, dilations)


def _pair(values: list[int], spatial: int, fill: int) -> list[int]:
    """1-D window parameters as the 2-D ones of a height-1 image."""
    return values if spatial == 2 else [fill] + values


def _pads4(pads: list[int], spatial: int) -> list[int]:
    """ONNX pads (begins, ends) as the library's (top, left, bottom, right)."""
    return pads if spatial == 2 else [0, pads[0], 0, pads[1]]


def _kernel_shape(n: NodeContext, w: Value) -> list[int]:
    kernel = list(n.attr("kernel_shape", list(w.shape[2:])))
    if tuple(kernel) != w.shape[2:]:
        raise n.error(f"kernel_shape={kernel} does not match the weight's shape {w.shape}")
    return kernel


def _convolve(n: NodeContext, x: Value, w: Value, bias: Value | None, strides: list[int], pads: list[int],
              dilations: list[int], groups: int) -> Value:
    """The library convolution of ``x`` (1-D and 2-D: ``conv2d_nchw``, 1-D as a height-1 image; 3-D:
    ``conv3d_ncdhw``); ``pads`` all begins, then all ends."""
    spatial = x.rank - 2
    kw = {"bias": bias} if bias is not None else None
    if spatial == 3:
        return n.emit("conv3d_ncdhw", x, w, kw=kw, strides=strides, padding=pads, dilation=dilations, groups=groups)
    out = n.emit("conv2d_nchw", _as_2d(n, x, spatial), _as_2d(n, w, spatial), kw=kw,
                 strides=_pair(strides, spatial, 1), padding=_pads4(pads, spatial),
                 dilation=_pair(dilations, spatial, 1), groups=groups)
    return _from_2d(n, out, spatial)


@converter("Conv", versions=(11, 22))
def _conv(n: NodeContext) -> Value:
    x, w, bias = n.input(0), n.input(1), n.optional(2)
    _spatial_rank(n, x)
    strides, dilations, pads = _window(n, x, _kernel_shape(n, w), True)
    return _convolve(n, x, w, bias, strides, pads, dilations, int(n.attr("group", 1)))


@converter("ConvTranspose", versions=(11, 22))
def _conv_transpose(n: NodeContext) -> Value:
    """A stride-1 convolution of the input with zeros inserted between its elements and the weight
    transposed and flipped (see ``tecomp.schedules.conv_transpose``)."""
    x, w, bias = n.input(0), n.input(1), n.optional(2)
    spatial = _spatial_rank(n, x)
    groups = int(n.attr("group", 1))
    if groups < 1 or x.shape[1] % groups or w.rank != x.rank or w.shape[0] != x.shape[1]:
        raise n.error(f"weight of shape {w.shape} and group={groups} do not fit input channels {x.shape[1]} "
                      "(expected (C_in, C_out/group, kernel...))")
    kernel = _kernel_shape(n, w)
    strides, dilations = _ints(n, "strides", spatial, 1), _ints(n, "dilations", spatial, 1)
    extra = _ints(n, "output_padding", spatial, 0, minimum=0)
    full = [s * (i - 1) + e + (k - 1) * d + 1 for s, i, e, k, d in zip(strides, x.shape[2:], extra, kernel, dilations)]
    begins, ends = _transpose_pads(n, x, strides, full)
    before = [(k - 1) * d - b for k, d, b in zip(kernel, dilations, begins)]
    after = [(k - 1) * d - e + p for k, d, e, p in zip(kernel, dilations, ends, extra)]
    if min(f - b - e for f, b, e in zip(full, begins, ends)) < 1:
        raise n.error(f"pads {begins + ends} leave an empty output (full output {full})")
    kernel_conv = n.emit("conv_transpose_kernel", w, groups=groups)
    if max(strides) == 1 and min(before + after) >= 0:  # plain padding: the convolution's own
        return _convolve(n, x, kernel_conv, bias, [1] * spatial, before + after, dilations, groups)
    dilated = n.emit("dilate_pad", x, strides=strides, pad_before=before, pad_after=after)
    return _convolve(n, dilated, kernel_conv, bias, [1] * spatial, [0] * (2 * spatial), dilations, groups)


def _transpose_pads(n: NodeContext, x: Value, strides: list[int], full: list[int]) -> tuple[list, list]:
    """ConvTranspose's (begins, ends) cropped from the ``full`` output: from ``output_shape`` or
    ``auto_pad`` SAME_* (output ``input * stride``) the total is split, the odd one at the end for
    SAME_UPPER, at the beginning otherwise; else ``pads`` (VALID: none)."""
    spatial = len(full)
    mode = n.choice("auto_pad", "NOTSET", ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"))
    pads = n.attr("pads", None)
    shape = n.attr("output_shape", None)
    if shape is None and mode in ("NOTSET", "VALID"):
        pads = list(pads) if pads is not None and mode == "NOTSET" else [0] * (2 * spatial)
        if len(pads) != 2 * spatial or min(pads) < 0:
            raise n.error(f"pads={pads} must be {2 * spatial} non-negative ints")
        return pads[:spatial], pads[spatial:]
    if shape is None:
        shape = [i * s for i, s in zip(x.shape[2:], strides)]
    shape = list(shape)
    if len(shape) != spatial or min(shape) < 1:
        raise n.error(f"output_shape={shape} must be {spatial} positive ints (the spatial output shape)")
    total = [f - o for f, o in zip(full, shape)]
    small = [t // 2 for t in total]
    if mode == "SAME_UPPER":
        return small, [t - h for t, h in zip(total, small)]
    return [t - h for t, h in zip(total, small)], small


@converter("MaxPool", versions=(12, 22))
@converter("AveragePool", versions=(11, 19, 22))
@converter("LpPool", versions=(11, 18, 22))
def _pool(n: NodeContext) -> list[Value | None]:
    x = n.input(0)
    spatial = x.rank - 2
    if spatial < 1:
        raise n.error(f"input of shape {x.shape} has no spatial dimensions")
    kernel = list(n.attr("kernel_shape"))
    has_dilations = n.op_type == "MaxPool" or n.version >= (19 if n.op_type == "AveragePool" else 18)
    strides, dilations, pads = _window(n, x, kernel, has_dilations)
    ceil_mode = bool(n.attr("ceil_mode", 0))
    if n.op_type == "LpPool":
        return [n.emit("lp_pool", x, kernel=kernel, p=_lp_exponent(n), strides=strides, padding=pads,
                       dilation=dilations, ceil_mode=ceil_mode)]
    window = {"kernel": kernel, "strides": strides, "padding": pads, "dilation": dilations, "ceil_mode": ceil_mode}
    if n.op_type == "AveragePool":
        window["count_include_pad"] = bool(n.attr("count_include_pad", 0))
    kind = "max" if n.op_type == "MaxPool" else "avg"
    if spatial <= 2:
        flat = {"kernel": _pair(kernel, spatial, 1), "strides": _pair(strides, spatial, 1),
                "padding": _pads4(pads, spatial), "dilation": _pair(dilations, spatial, 1)}
        pooled = _from_2d(n, n.emit(f"{kind}_pool2d", _as_2d(n, x, spatial), **{**window, **flat}), spatial)
    else:
        pooled = n.emit(f"{kind}_pool_nd", x, **window)
    if n.op_type == "AveragePool":
        return [pooled]
    storage_order = n.choice("storage_order", 0, (0, 1))
    indices = n.emit("max_pool_argmax", x, pooled, **window, storage_order=storage_order) \
        if n.wants_output(1) else None
    return [pooled, indices]


@converter("GlobalAveragePool", "GlobalMaxPool", versions=(1, 22))
def _global_pool(n: NodeContext) -> Value:
    x = n.input(0)
    if x.rank < 3:
        raise n.error(f"input of shape {x.shape} has no spatial dimensions")
    if n.op_type == "GlobalAveragePool" and x.rank == 4:
        return n.emit("global_avg_pool2d", x)
    op = "mean" if n.op_type == "GlobalAveragePool" else "max"
    return n.emit(op, x, axis=list(range(2, x.rank)), keepdims=True)


@converter("GlobalLpPool", versions=(2, 22))
def _global_lp_pool(n: NodeContext) -> Value:
    x = n.input(0)
    if x.rank < 3:
        raise n.error(f"input of shape {x.shape} has no spatial dimensions")
    return n.emit("lp_pool", x, kernel=list(x.shape[2:]), p=_lp_exponent(n))


def _lp_exponent(n: NodeContext) -> int:
    p = n.attr("p", 2)
    if not isinstance(p, int) or p < 1:
        raise n.error(f"attribute p={p!r} is not supported (a positive int)")
    return p


@converter("BatchNormalization", versions=(9, 14, 15))
def _batch_norm(n: NodeContext) -> list[Value | None]:
    x = n.input(0)
    if x.rank < 2:
        raise n.error(f"input of shape {x.shape} has no channel dimension")
    scale, bias, mean, var = (n.input(k) for k in range(1, 5))
    eps = float(n.attr("epsilon", 1e-5))
    momentum = float(n.attr("momentum", 0.9))
    if n.version < 14 or not n.attr("training_mode", 0):
        return [n.emit("batch_norm_inference", x, scale, bias, mean, var, epsilon=eps, axis=1)]
    # training: normalise by the batch statistics (biased variance) and update the running ones
    reduced = [0] + list(range(2, x.rank))
    channels = (x.shape[1],)
    batch_mean = n.emit("mean", x, axis=reduced, keepdims=True)
    centred = n.emit("subtract", x, batch_mean)
    batch_var = reshape(n, n.emit("mean", n.emit("multiply", centred, centred), axis=reduced, keepdims=True),
                        channels)
    batch_mean = reshape(n, batch_mean, channels)
    y = n.emit("batch_norm_inference", x, scale, bias, batch_mean, batch_var, epsilon=eps, axis=1)

    def running(old: Value, batch: Value) -> Value:
        return n.emit("add", n.emit("multiply", old, b=momentum), n.emit("multiply", batch, b=1.0 - momentum))

    return [y, running(mean, batch_mean), running(var, batch_var)]


@converter("InstanceNormalization", versions=(6, 22))
def _instance_norm(n: NodeContext) -> Value:
    x = n.input(0)
    return _group_norm(n, x, x.shape[1] if x.rank > 1 else 1, n.input(1), n.input(2), x.dtype)


@converter("GroupNormalization", versions=(18, 21))
def _group_normalization(n: NodeContext) -> Value:
    x, scale, bias = n.input(0), n.input(1), n.input(2)
    groups = int(n.attr("num_groups"))
    if x.rank < 2 or groups < 1 or x.shape[1] % groups:
        raise n.error(f"num_groups={groups} must divide the channels of the input of shape {x.shape}")
    stash = x.dtype
    if n.version >= 21:
        stash = dtype_of(n.attr("stash_type", 1), f"ONNX node {n.name!r} attribute stash_type")
        if stash not in ("float16", "float32", "float64"):
            raise n.error(f"stash_type {stash} is not supported (float16, float32 or float64)")
    elif scale.shape == (groups,) and bias.shape == (groups,):  # opset 18: one scale and bias per group
        per_group = (groups, x.shape[1] // groups)
        scale, bias = (reshape(n, n.emit("expand", reshape(n, v, (groups, 1)), shape=list(per_group)),
                               (x.shape[1],)) for v in (scale, bias))
    return _group_norm(n, x, groups, scale, bias, stash)


def _group_norm(n: NodeContext, x: Value, groups: int, scale: Value, bias: Value, stash: str) -> Value:
    """``group_norm`` of ``x`` ``[N, C, spatial...]`` viewed as ``[N, C, prod(spatial)]``, computed in
    dtype ``stash`` (the input cast to it and the result back)."""
    if x.rank < 3:
        raise n.error(f"input of shape {x.shape} has no spatial dimensions")
    for what, v in (("scale", scale), ("bias", bias)):
        if v.shape != (x.shape[1],):
            raise n.error(f"{what} of shape {v.shape} must have shape ({x.shape[1]},), one value per channel")
    eps = float(n.attr("epsilon", 1e-5))
    flat = reshape(n, x, x.shape[:2] + (prod(x.shape[2:]),))
    if stash != x.dtype:
        flat, scale, bias = (n.emit("cast", v, dtype=stash) for v in (flat, scale, bias))
    out = n.emit("group_norm", flat, scale, bias, groups=groups, epsilon=eps)
    if stash != x.dtype:
        out = n.emit("cast", out, dtype=x.dtype)
    return reshape(n, out, x.shape)


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
