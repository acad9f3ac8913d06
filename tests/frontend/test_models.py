"""Whole ONNX models through from_onnx + tecomp.graph.build against onnxruntime.

The models come from benchmarks/onnx_models.py (built with onnx.helper, seeded weights): small
configurations of an MLP, a conv-bn-relu-pool CNN and a transformer encoder block, then the
issue-5 benchmark configurations (ResNet-18 and MobileNetV2 only under ``-m slow``).
"""

from __future__ import annotations

import pytest
from conftest import assert_matches_onnxruntime, onnx_models


@pytest.mark.parametrize("name, build, shapes", [
    ("mlp", lambda: onnx_models.mlp(batch=4, sizes=(32, 64, 48, 10)), {"input": (4, 32)}),
    ("cnn", lambda: onnx_models.small_cnn(batch=2, image=16), {"input": (2, 3, 16, 16)}),
    ("transformer_block", lambda: onnx_models.transformer_encoder(layers=1, d_model=32, heads=4, ffn=64),
     {"input": (1, 8, 32)}),
    ("transformer_block_batch2", lambda: onnx_models.transformer_encoder(layers=1, d_model=32, heads=4, ffn=64),
     {"input": (2, 8, 32)}),
    ("transformer_block_gelu_op", lambda: onnx_models.transformer_encoder(layers=1, d_model=16, heads=2, gelu="op"),
     {"input": (1, 5, 16)}),
])
def test_small_model_matches_onnxruntime(name, build, shapes):
    assert_matches_onnxruntime(build(), onnx_models.random_inputs(shapes, seed=3))


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_benchmark_model_matches_onnxruntime(name):
    build, shapes = onnx_models.BENCHMARKS[name]
    assert_matches_onnxruntime(build(), onnx_models.random_inputs(shapes))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_benchmark_cnn_matches_onnxruntime(name):
    build, shapes = onnx_models.BENCHMARKS[name]
    assert_matches_onnxruntime(build(), onnx_models.random_inputs(shapes))


def test_bundled_example_model_is_reproducible_and_runs(tmp_path):
    """examples/models/small_cnn.onnx: small, rewritten byte for byte by make_models.py, matches onnxruntime."""
    import importlib.util
    from pathlib import Path

    from tecomp.frontend import load_onnx

    models_dir = Path(__file__).parents[2] / "examples" / "models"
    spec = importlib.util.spec_from_file_location("make_models", models_dir / "make_models.py")
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    for fresh in make_models.main(tmp_path):
        bundled = models_dir / fresh.name
        assert bundled.stat().st_size < 200_000
        assert bundled.read_bytes() == fresh.read_bytes(), f"rerun make_models.py: {bundled.name} is stale"
        model = load_onnx(bundled)
        shape = tuple(d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim)
        assert_matches_onnxruntime(model, onnx_models.random_inputs({model.graph.input[0].name: shape}))
