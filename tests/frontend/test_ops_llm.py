"""The opset-23+ LLM operators (RMSNormalization, RotaryEmbedding, Attention) against onnxruntime, and
against onnx's ReferenceEvaluator where onnxruntime's CPU provider differs from the specification
(external-cache padding, sliding windows, fully masked rows)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from tecomp.error import GraphError
from tecomp.frontend import from_onnx

from conftest import assert_matches_onnxruntime, run_tecomp

F, H, B, I64 = TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BOOL, TensorProto.INT64
rng = np.random.default_rng(23)


def one_node(op, inputs, outputs=("y",), opset=23, **attrs):
    """A model of one ``op`` node; ``inputs`` maps names to arrays (name '' skips an optional input)."""
    names = list(inputs)
    node = helper.make_node(op, names, list(outputs), **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
                      for k, a in inputs.items() if k],
        [helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(next(iter(inputs.values())).dtype), None)
         for o in outputs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, {k: a for k, a in inputs.items() if k}


def normal(*shape, dtype="float32"):
    return rng.standard_normal(shape).astype(dtype)


def assert_matches_reference(model, feeds, rtol=1e-4):
    want = ReferenceEvaluator(model).run(None, feeds)
    got = run_tecomp(model, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * (float(np.abs(w).max()) or 1.0))


# ---------------------------------------------------------------------------- RMSNormalization

@pytest.mark.parametrize("dtype, axis, scale_shape", [
    ("float32", -1, (13,)), ("float32", 1, (7, 13)), ("float16", -1, (13,)),
])
def test_rms_normalization(dtype, axis, scale_shape):
    model, feeds = one_node("RMSNormalization", {"x": normal(3, 7, 13, dtype=dtype) * 3,
                                                 "scale": normal(*scale_shape, dtype=dtype)},
                            axis=axis, epsilon=1e-3)
    assert_matches_onnxruntime(model, feeds, rtol=1e-3 if dtype == "float16" else 1e-4)


def test_rms_normalization_rejects_other_stash_types():
    model, _ = one_node("RMSNormalization", {"x": normal(2, 5), "scale": normal(5)}, stash_type=11)
    with pytest.raises(GraphError, match="stash_type=11 is not supported"):
        from_onnx(model)


def test_rms_normalization_scale_must_fit_the_normalised_shape():
    model, _ = one_node("RMSNormalization", {"x": normal(2, 5), "scale": normal(3, 5)})
    with pytest.raises(GraphError, match=r"scale of shape \(3, 5\) does not broadcast to the normalised shape \(5,\)"):
        from_onnx(model)


# ---------------------------------------------------------------------------- RotaryEmbedding

def _caches(positions, half, dtype="float32"):
    angle = np.arange(positions)[:, None] / (10000 ** (np.arange(half) / half))[None, :]
    return np.cos(angle).astype(dtype), np.sin(angle).astype(dtype)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_4d_with_position_ids(interleaved):
    cos, sin = _caches(31, 6)
    model, feeds = one_node("RotaryEmbedding", {"x": normal(2, 3, 7, 12), "cos": cos, "sin": sin,
                                                "pos": rng.integers(0, 31, (2, 7)).astype("int64")},
                            interleaved=interleaved)
    assert_matches_onnxruntime(model, feeds)


@pytest.mark.parametrize("interleaved", [0, 1])
def test_rotary_embedding_3d_partial_rotation(interleaved):
    cos, sin = _caches(7, 4)
    batch_cos, batch_sin = np.stack([cos, cos[::-1]]), np.stack([sin, sin[::-1]])
    model, feeds = one_node("RotaryEmbedding", {"x": normal(2, 7, 3 * 10), "cos": batch_cos, "sin": batch_sin},
                            num_heads=3, rotary_embedding_dim=8, interleaved=interleaved)
    assert_matches_onnxruntime(model, feeds)


def test_rotary_embedding_3d_needs_num_heads():
    cos, sin = _caches(5, 2)
    model, _ = one_node("RotaryEmbedding", {"x": normal(1, 5, 8), "cos": cos[None], "sin": sin[None]})
    with pytest.raises(GraphError, match="needs the num_heads attribute"):
        from_onnx(model)


# ---------------------------------------------------------------------------- Attention

@pytest.mark.parametrize("mask_keys", [11, 9])
def test_attention_4d_float_mask(mask_keys):
    # a mask covering 9 of the 11 keys leaves the last two unattended (onnxruntime wants them all)
    model, feeds = one_node("Attention", {"q": normal(2, 3, 7, 16), "k": normal(2, 3, 11, 16),
                                          "v": normal(2, 3, 11, 5), "mask": normal(7, mask_keys)}, scale=0.3)
    if mask_keys == 11:
        assert_matches_onnxruntime(model, feeds)
    else:
        assert_matches_reference(model, feeds)


def test_attention_3d_gqa_bool_mask_causal():
    mask = rng.random((2, 1, 7, 7)) < 0.8
    mask[..., 0] = True  # every row attends a key
    model, feeds = one_node("Attention", {"q": normal(2, 7, 6 * 8), "k": normal(2, 7, 2 * 8), "v": normal(2, 7, 2 * 8),
                                          "mask": mask}, q_num_heads=6, kv_num_heads=2, is_causal=1)
    assert_matches_onnxruntime(model, feeds)


def test_attention_with_past_and_present_key_values():
    inputs = {"q": normal(1, 4, 3, 8), "k": normal(1, 2, 3, 8), "v": normal(1, 2, 3, 8), "": None,
              "past_k": normal(1, 2, 13, 8), "past_v": normal(1, 2, 13, 8)}
    names = ["q", "k", "v", "", "past_k", "past_v"]
    node = helper.make_node("Attention", names, ["y", "present_k", "present_v"], is_causal=1)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(k, F, inputs[k].shape) for k in names if k],
                              [helper.make_tensor_value_info(o, F, None) for o in ("y", "present_k", "present_v")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)], ir_version=10)
    assert_matches_onnxruntime(model, {k: inputs[k] for k in names if k})


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_attention_softcap_and_qk_output_modes(mode):
    # mode 0 is the raw product (the specification and onnxruntime; the reference evaluator soft-caps it)
    model, feeds = one_node("Attention", {"q": normal(1, 2, 5, 8) * 3, "k": normal(1, 2, 6, 8) * 3,
                                          "v": normal(1, 2, 6, 8), "mask": normal(5, 6)},
                            outputs=("y", "", "", "qk"), softcap=2.5, qk_matmul_output_mode=mode)
    assert_matches_onnxruntime(model, feeds)


def test_attention_fully_masked_rows_give_zeros():
    mask = rng.random((1, 1, 5, 6)) < 0.5
    mask[0, 0, 2] = False
    model, feeds = one_node("Attention", {"q": normal(1, 2, 5, 8), "k": normal(1, 2, 6, 8),
                                          "v": normal(1, 2, 6, 8), "mask": mask})
    (y,) = run_tecomp(model, feeds)
    assert not np.isnan(y).any() and not y[:, :, 2].any()
    assert_matches_reference(model, feeds)


def test_attention24_external_cache_padding_is_a_runtime_input():
    model, feeds = one_node("Attention", {"q": normal(3, 2, 4, 8), "k": normal(3, 2, 9, 8), "v": normal(3, 2, 9, 8),
                                          "": None, "": None, "": None, "nonpad": np.array([9, 6, 4])},
                            opset=24, is_causal=1)
    model.graph.node[0].input[:] = ["q", "k", "v", "", "", "", "nonpad"]
    assert_matches_reference(model, feeds)


def test_attention25_sliding_window():
    model, feeds = one_node("Attention", {"q": normal(1, 2, 9, 8), "k": normal(1, 2, 9, 8), "v": normal(1, 2, 9, 8)},
                            opset=25, is_causal=1, left_window_size=3)
    assert_matches_reference(model, feeds)


def test_attention_float16_matches_onnxruntime():
    model, feeds = one_node("Attention", {"q": normal(2, 4, 7, 32, dtype="float16"),
                                          "k": normal(2, 4, 13, 32, dtype="float16"),
                                          "v": normal(2, 4, 13, 32, dtype="float16")}, is_causal=0)
    assert_matches_onnxruntime(model, feeds, rtol=1e-3)


@pytest.mark.parametrize("inputs, attrs, message", [
    ({"q": normal(1, 5, 8), "k": normal(1, 5, 8), "v": normal(1, 5, 8)}, {},
     "3-D Q, K, V need the q_num_heads and kv_num_heads attributes"),
    ({"q": normal(1, 3, 5, 8), "k": normal(1, 2, 5, 8), "v": normal(1, 2, 5, 8)}, {},
     "3 query heads are not a multiple of 2 key/value heads"),
    ({"q": normal(1, 2, 5, 8), "k": normal(1, 2, 5, 8), "v": normal(1, 2, 5, 8)}, {"softmax_precision": 16},
     "softmax_precision=16 is not supported"),
])
def test_attention_errors(inputs, attrs, message):
    model, _ = one_node("Attention", inputs, **attrs)
    with pytest.raises(GraphError, match=message):
        from_onnx(model)
