"""ONNX converters for the opset-23+ operators of large language models: RMSNormalization,
RotaryEmbedding and Attention (scaled dot-product attention with masks, causal and sliding-window
masking, grouped-query heads, soft capping and a key/value cache). Each is decomposed at import
onto library operators (``batch_matmul``, ``softmax``, elementwise arithmetic, ``mean``,
``where``, slicing and concatenation); masks known at import are built here in numpy.
"""

from __future__ import annotations

import math

import numpy as np

from .common import axis as norm_axis
from .common import binary, reshape
from .importer import NodeContext, Value
from .registry import converter

_STASH_FLOAT32 = 1  # onnx.TensorProto.FLOAT: RMSNormalization's only stash type


def _float_input(n: NodeContext, k: int, what: str) -> Value:
    value = n.input(k)
    if value.dtype not in ("float16", "float32", "float64"):
        raise n.error(f"{what} has dtype {value.dtype}; only float16, float32 and float64 are supported")
    return value


def _slice_last(n: NodeContext, x: Value, begin: int, end: int, step: int = 1) -> Value:
    if (begin, end, step) == (0, x.shape[-1], 1):
        return x
    return n.emit("strided_slice", x, begin=[begin], end=[end], strides=[step], axes=[x.rank - 1])


# ---------------------------------------------------------------------------- RMSNormalization

@converter("RMSNormalization", versions=(23,))
def _rms_normalization(n: NodeContext) -> Value:
    stash = n.attr("stash_type", _STASH_FLOAT32)
    if stash != _STASH_FLOAT32:
        raise n.error(f"stash_type={stash} is not supported (only 1: statistics in float32)")
    x, scale = _float_input(n, 0, "X"), n.input(1)
    lead = norm_axis(n, n.attr("axis", -1), x.rank)
    eps = float(n.attr("epsilon", 1e-5))
    if scale.dtype != x.dtype:
        raise n.error(f"scale has dtype {scale.dtype}, X has {x.dtype}; they must agree")
    try:
        fits = np.broadcast_shapes(scale.shape, x.shape[lead:]) == x.shape[lead:]
    except ValueError:
        fits = False
    if not fits:
        raise n.error(f"scale of shape {scale.shape} does not broadcast to the normalised shape {x.shape[lead:]}")
    wide = n.emit("cast", x, dtype="float32") if x.dtype == "float16" else x  # stash_type 1: float32 statistics
    mean_square = n.emit("mean", n.emit("multiply", wide, wide), axis=list(range(lead, x.rank)), keepdims=True)
    normalised = n.emit("divide", wide, n.emit("sqrt", n.emit("add", mean_square, b=eps)))
    if wide is not x:
        normalised = n.emit("cast", normalised, dtype=x.dtype)
    return binary(n, "multiply", normalised, scale)


# ---------------------------------------------------------------------------- RotaryEmbedding

@converter("RotaryEmbedding", versions=(23,))
def _rotary_embedding(n: NodeContext) -> Value:
    x = _float_input(n, 0, "X")
    cos, sin, positions = n.input(1), n.input(2), n.optional(3)
    num_heads = int(n.attr("num_heads", 0))
    interleaved = bool(n.choice("interleaved", 0, (0, 1)))
    if x.rank == 4:
        if num_heads and num_heads != x.shape[1]:
            raise n.error(f"num_heads={num_heads} does not match X's shape {x.shape} (batch, heads, seq, head)")
        batch, heads, seq, head = x.shape
        xs = x
    elif x.rank == 3:
        if num_heads <= 0:
            raise n.error("a 3-D X (batch, seq, hidden) needs the num_heads attribute")
        batch, seq, hidden = x.shape
        if hidden % num_heads:
            raise n.error(f"hidden size {hidden} is not a multiple of num_heads={num_heads}")
        heads, head = num_heads, hidden // num_heads
        xs = reshape(n, x, (batch, seq, heads, head))
    else:
        raise n.error(f"X of shape {x.shape} must be 3-D (batch, seq, hidden) or 4-D (batch, heads, seq, head)")
    rot = int(n.attr("rotary_embedding_dim", 0)) or head
    if rot % 2 or not 0 < rot <= head:
        raise n.error(f"rotary_embedding_dim={rot} must be even and at most the head size {head}")
    half = rot // 2
    tables = []
    for what, table in (("cos_cache", cos), ("sin_cache", sin)):
        if table.dtype != x.dtype:
            raise n.error(f"{what} has dtype {table.dtype}, X has {x.dtype}; they must agree")
        if positions is not None:
            if table.rank != 2 or positions.shape != (batch, seq):
                raise n.error(f"with position_ids {what} must be (max_position, {half}) and position_ids "
                              f"({batch}, {seq}); got {table.shape} and {positions.shape}")
            table = n.emit("take", table, positions, axis=0)
        if table.shape != (batch, seq, half):
            raise n.error(f"{what} gives shape {table.shape}, expected ({batch}, {seq}, {half}) "
                          "(rotary_embedding_dim / 2 values per position)")
        # broadcast over the heads axis of xs: (batch, 1, seq, half) for 4-D X, (batch, seq, 1, half) for 3-D
        tables.append(reshape(n, table, (batch, 1, seq, half) if x.rank == 4 else (batch, seq, 1, half)))
    cos, sin = tables
    x1, x2 = ((_slice_last(n, xs, 0, rot, 2), _slice_last(n, xs, 1, rot, 2)) if interleaved
              else (_slice_last(n, xs, 0, half), _slice_last(n, xs, half, rot)))
    real = n.emit("subtract", n.emit("multiply", cos, x1), n.emit("multiply", sin, x2))
    imag = n.emit("add", n.emit("multiply", sin, x1), n.emit("multiply", cos, x2))
    if interleaved:  # (real, imag) pairs side by side
        pair_shape = real.shape + (1,)
        rotated = n.emit("concatenate", reshape(n, real, pair_shape), reshape(n, imag, pair_shape), axis=-1)
        parts = [reshape(n, rotated, real.shape[:-1] + (rot,))]
    else:
        parts = [real, imag]
    if rot < head:
        parts.append(_slice_last(n, xs, rot, head))
    out = n.emit("concatenate", *parts, axis=-1)
    return reshape(n, out, x.shape)


# ---------------------------------------------------------------------------- Attention

_SOFTMAX_PRECISIONS = {0: None, 1: "float32", 10: "float16", 11: "float64"}


def _heads_4d(n: NodeContext, v: Value, heads: int, what: str) -> Value:
    """A 3-D (batch, seq, heads * size) input as (batch, heads, seq, size)."""
    batch, seq, hidden = v.shape
    if hidden % heads:
        raise n.error(f"{what}'s hidden size {hidden} is not a multiple of {heads} heads")
    split = reshape(n, v, (batch, seq, heads, hidden // heads))
    return n.emit("transpose", split, axes=[0, 2, 1, 3])


def _attention_inputs(n: NodeContext) -> tuple[Value, Value, Value, int]:
    """Q, K, V as (batch, heads, seq, size) and the rank they came in."""
    q, k, v = (_float_input(n, i, w) for i, w in enumerate(("Q", "K", "V")))
    if not q.rank == k.rank == v.rank or q.rank not in (3, 4):
        raise n.error(f"Q, K and V must all be 3-D or all 4-D; got shapes {q.shape}, {k.shape}, {v.shape}")
    if not q.dtype == k.dtype == v.dtype:
        raise n.error(f"Q, K and V have dtypes {q.dtype}, {k.dtype}, {v.dtype}; they must agree")
    q_heads, kv_heads = int(n.attr("q_num_heads", 0)), int(n.attr("kv_num_heads", 0))
    if q.rank == 3:
        if q_heads <= 0 or kv_heads <= 0:
            raise n.error("3-D Q, K, V need the q_num_heads and kv_num_heads attributes")
        q, k, v = _heads_4d(n, q, q_heads, "Q"), _heads_4d(n, k, kv_heads, "K"), _heads_4d(n, v, kv_heads, "V")
        return q, k, v, 3
    if n.version >= 25 and (n.has_attr("q_num_heads") or n.has_attr("kv_num_heads")):
        raise n.error("q_num_heads and kv_num_heads must not be given with 4-D Q, K, V")
    if (q_heads and q_heads != q.shape[1]) or (kv_heads and kv_heads != k.shape[1]):
        raise n.error(f"q_num_heads={q_heads}, kv_num_heads={kv_heads} do not match Q {q.shape} and K {k.shape}")
    return q, k, v, 4


def _mask_bias(n: NodeContext, allowed: np.ndarray, dtype: str) -> Value:
    """0 where ``allowed``, -inf elsewhere, as an import-time constant."""
    return n.constant(np.where(allowed, 0, -np.inf).astype(dtype))


@converter("Attention", versions=(23, 24, 25))
def _attention(n: NodeContext) -> list[Value | None]:
    q, k, v, rank = _attention_inputs(n)
    batch, q_heads, q_len, size = q.shape
    kv_heads, v_size = k.shape[1], v.shape[3]
    if k.shape[0] != batch or v.shape[:3] != k.shape[:3] or k.shape[3] != size:
        raise n.error(f"Q {q.shape}, K {k.shape} and V {v.shape} (as batch, heads, seq, size) do not agree")
    if q_heads % kv_heads:
        raise n.error(f"{q_heads} query heads are not a multiple of {kv_heads} key/value heads")
    dtype = q.dtype
    past_key, past_value = n.optional(4), n.optional(5)
    if (past_key is None) != (past_value is None):
        raise n.error("past_key and past_value must be given together")
    offset = 0
    if past_key is not None:
        for what, past, now in (("past_key", past_key, k), ("past_value", past_value, v)):
            if past.rank != 4 or past.shape[:2] != now.shape[:2] or past.shape[3] != now.shape[3] \
                    or past.dtype != dtype:
                raise n.error(f"{what} of shape {past.shape} ({past.dtype}) does not fit the incoming "
                              f"{now.shape} ({now.dtype}) as (batch, kv_heads, past_seq, size)")
        offset = past_key.shape[2]
        k = n.emit("concatenate", past_key, k, axis=2)
        v = n.emit("concatenate", past_value, v, axis=2)
    kv_len = k.shape[2]
    nonpad = n.optional(6) if n.version >= 24 else None
    if nonpad is not None and past_key is not None:
        raise n.error("nonpad_kv_seqlen cannot be combined with past_key/past_value")

    # Additive bias (batch, heads, q_len, kv_len)-broadcastable: attn_mask, causal, window, padding.
    terms: list[Value] = []
    mask = n.optional(3)
    if mask is not None:
        terms.append(_attn_mask(n, mask, dtype, kv_len))
    causal = bool(n.choice("is_causal", 0, (0, 1)))
    left = int(n.attr("left_window_size", -1)) if n.version >= 25 else -1
    right = int(n.attr("right_window_size", -1)) if n.version >= 25 else -1
    if left < -1 or right < -1:
        raise n.error(f"left_window_size={left}, right_window_size={right} must be -1 or non-negative")
    rows, cols = np.arange(q_len)[:, None], np.arange(kv_len)[None, :]
    if nonpad is None:
        # query i sits at position i + offset: causal keeps keys j <= it, the window keeps its neighbourhood
        pos = rows + offset
        allowed = np.ones((q_len, kv_len), bool)
        if causal:
            allowed &= cols <= pos
        if left >= 0:
            allowed &= pos - cols <= left
        if right >= 0:
            allowed &= cols - pos <= right
        if not allowed.all():
            terms.append(_mask_bias(n, allowed, dtype))
    else:
        terms.append(_padding_bias(n, nonpad, batch, q_len, kv_len, causal, left, right, dtype))
    bias = None
    for term in terms:
        bias = term if bias is None else binary(n, "add", bias, term)

    # Scores: query heads h = g * group + i share key/value head g, so (batch * kv_heads) products
    # of (group * q_len) rows each; the scale multiplies Q once.
    group = q_heads // kv_heads
    scale = n.attr("scale", None)
    scale = 1.0 / math.sqrt(size) if scale is None else float(scale)
    qs = n.emit("multiply", q, b=scale) if scale != 1.0 else q
    scores = n.emit("batch_matmul", reshape(n, qs, (batch * kv_heads, group * q_len, size)),
                    reshape(n, k, (batch * kv_heads, kv_len, size)), transpose_b=True)
    scores = reshape(n, scores, (batch, q_heads, q_len, kv_len))
    qk_out = scores
    softcap = float(n.attr("softcap", 0.0))
    if softcap < 0:
        raise n.error(f"softcap={softcap} must be non-negative (0: none)")
    if softcap > 0:
        scores = n.emit("multiply", n.emit("tanh", n.emit("multiply", scores, b=1.0 / softcap)), b=softcap)
    mode = n.choice("qk_matmul_output_mode", 0, (0, 1, 2, 3))
    if mode == 1:
        qk_out = scores
    if bias is not None:
        scores = binary(n, "add", scores, bias)
    if mode == 2:
        qk_out = scores
    precision = n.attr("softmax_precision", 0)
    if precision not in _SOFTMAX_PRECISIONS:
        raise n.error(f"softmax_precision={precision} is not supported (supported: 1 float, 10 float16, "
                      "11 double)")
    wide = _SOFTMAX_PRECISIONS[precision]
    if wide is not None and wide != dtype:
        scores = n.emit("cast", scores, dtype=wide)
    probs = n.emit("softmax", scores, axis=3)
    if probs.dtype != dtype:
        probs = n.emit("cast", probs, dtype=dtype)
    if bias is not None:
        probs = _zero_masked_rows(n, probs, bias)
    if mode == 3:
        qk_out = probs
    out = n.emit("batch_matmul", reshape(n, probs, (batch * kv_heads, group * q_len, kv_len)),
                 reshape(n, v, (batch * kv_heads, kv_len, v_size)))
    out = reshape(n, out, (batch, q_heads, q_len, v_size))
    if rank == 3:
        out = reshape(n, n.emit("transpose", out, axes=[0, 2, 1, 3]), (batch, q_len, q_heads * v_size))
    return [out, k, v, qk_out]


def _attn_mask(n: NodeContext, mask: Value, dtype: str, kv_len: int) -> Value:
    """attn_mask as an additive bias of ``dtype``: a bool mask is 0 where True and -inf where False; a
    mask shorter than the keys is extended with -inf (keys it does not cover are not attended)."""
    if mask.dtype == "bool":
        mask = n.emit("where", mask, n.constant(np.zeros((), dtype)), n.constant(np.array(-np.inf, dtype)))
    elif mask.dtype != dtype:
        raise n.error(f"attn_mask has dtype {mask.dtype}; expected bool or the dtype of Q ({dtype})")
    if mask.rank == 0 or mask.rank > 4:
        raise n.error(f"attn_mask of shape {mask.shape} must have rank 1 to 4")
    short = kv_len - mask.shape[-1]
    if short < 0:
        raise n.error(f"attn_mask of shape {mask.shape} covers more than the {kv_len} keys")
    if short > 0:
        mask = n.emit("concatenate", mask, n.constant(np.full(mask.shape[:-1] + (short,), -np.inf, dtype)), axis=-1)
    return mask


def _padding_bias(n: NodeContext, nonpad: Value, batch: int, q_len: int, kv_len: int, causal: bool,
                  left: int, right: int, dtype: str) -> Value:
    """The bias of an external cache: keys ``j < nonpad_kv_seqlen[b]`` are valid; query ``i`` sits at
    position ``i + nonpad_kv_seqlen[b] - q_len`` for the causal and window bounds. Shape (batch, 1, q, kv)."""
    if nonpad.shape != (batch,) or nonpad.dtype not in ("int32", "int64"):
        raise n.error(f"nonpad_kv_seqlen must be ({batch},) int64, got {nonpad.dtype}{list(nonpad.shape)}")
    valid = reshape(n, nonpad, (batch, 1, 1, 1))
    rows, cols = np.arange(q_len)[:, None], np.arange(kv_len)[None, :]
    col = n.constant(cols.astype(nonpad.dtype))

    def at_most(bound: np.ndarray) -> Value:  # bound[i, j] <= nonpad[b]
        return n.emit("less_equal", n.constant(bound.astype(nonpad.dtype)), valid)

    allowed = n.emit("less", col, valid)  # j < nonpad[b]
    conditions = []
    if causal:  # j <= i + nonpad[b] - q_len
        conditions.append(at_most(cols - rows + q_len))
    if left >= 0:  # i + nonpad[b] - q_len - j <= left
        conditions.append(n.emit("less_equal", valid, n.constant((cols - rows + q_len + left).astype(nonpad.dtype))))
    if right >= 0:  # j - (i + nonpad[b] - q_len) <= right
        conditions.append(at_most(cols - rows + q_len - right))
    for c in conditions:
        allowed = n.emit("logical_and", allowed, c)
    return n.emit("where", allowed, n.constant(np.zeros((), dtype)), n.constant(np.array(-np.inf, dtype)))


def _zero_masked_rows(n: NodeContext, probs: Value, bias: Value) -> Value:
    """Rows whose every key is masked (bias all -inf) give zeros, not the NaN of an all -inf softmax."""
    if bias.const is not None:
        masked = np.isneginf(bias.const.max(axis=-1, initial=-np.inf, keepdims=True))
        if not masked.any():
            return probs
        keep = n.constant(~masked)
    else:  # any key of the row not at -inf (as uint8: a float max starts from the lowest finite value)
        attended = n.emit("cast", n.emit("greater", bias, n.constant(np.array(-np.inf, bias.dtype))), dtype="uint8")
        keep = n.emit("cast", n.emit("max", attended, axis=[bias.rank - 1], keepdims=True), dtype="bool")
    return n.emit("where", keep, probs, n.constant(np.zeros((), probs.dtype)))

