"""Whole models compiled for a GPU (``tecomp.graph.build(graph, "cuda", params)``).

Every kernel of the model is GPU-scheduled, lowered to launch form and compiled by nvcc; the
model library carries the device code and the model description. Without a GPU the model runs
on ``fake_pycuda`` (kernels executed by the reference interpreter on fake device memory), so the
executor's own code runs for real: weights uploaded once, the planned arena addressed by offsets,
launches in step order, copies, per-step event timing, export and load. Tests marked ``gpu`` run
the same models on a real GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import tecomp
import tecomp.graph
from tecomp.error import ArgumentError
from tecomp.tuner.task import extract_from_graph
from tecomp.runtime.cuda_driver import CUDAUnavailableError

from gpu_helpers import needs_gpu, needs_nvcc, register_compiled_functions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "graph"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import graph_models as models  # noqa: E402
import onnx_models  # noqa: E402

pytestmark = needs_nvcc
TARGET = "cuda -arch=sm_90"


@pytest.fixture
def gpu(gpu, monkeypatch):
    """The fake GPU, with every function nvcc compiles registered with it, so it can run."""
    return register_compiled_functions(gpu, monkeypatch)


def _check(name, gpu, rtol=1e-4, atol=1e-4):
    graph, params, reference = models.MODELS[name]()
    module = tecomp.graph.build(graph, TARGET, params)
    inputs = models.random_inputs(graph)
    got = module.run(**inputs)
    want = reference(*inputs.values())
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
    return module, inputs


@pytest.mark.parametrize("name", ["mlp"])
def test_model_on_a_gpu_matches_numpy(name, gpu):
    module, _ = _check(name, gpu)
    assert module.device == tecomp.cuda(0)
    assert module.info["target"] == TARGET
    launched = {launch[0] for launch in gpu.launches}
    assert all(any(name.startswith(s["func"]) for name in launched) for s in module.steps if s["kind"] == "call")
    assert len(gpu.loaded_images) == 1  # one device image for the whole model


def test_weights_go_to_the_gpu_once_and_steps_are_timed_with_events(gpu):
    module, inputs = _check("mlp", gpu)
    allocations = len(gpu.memory)
    launches = len(gpu.launches)
    again = module.run(**inputs)
    assert len(gpu.memory) == allocations  # weights, arena, inputs and outputs stay allocated
    assert len(gpu.launches) == 2 * launches
    np.testing.assert_array_equal(again[0], module.run(**inputs)[0])
    steps = module.profile(**inputs, repeat=2)
    assert [s.label for s in steps] == [s["label"] for s in module.steps]
    assert all(s.seconds > 0 for s in steps)  # the fake's events advance 1.5 ms per record


def test_exported_gpu_model_loads_and_runs(gpu, tmp_path):
    module, inputs = _check("mlp", gpu)
    module.export_library(tmp_path / "mlp_cuda.so")
    loaded = tecomp.graph.load(tmp_path / "mlp_cuda.so")
    assert loaded.info["target"] == TARGET and loaded.device == tecomp.cuda(0)
    np.testing.assert_array_equal(loaded.run(**inputs)[0], module.run(**inputs)[0])
    with pytest.raises(ArgumentError, match="compiled for 'cuda -arch=sm_90'; it runs on a cuda device, not cpu"):
        tecomp.graph.load(tmp_path / "mlp_cuda.so", device=tecomp.cpu(0))


@pytest.mark.skipif(tecomp.cuda(0).exist, reason="this host has a usable GPU")
def test_without_a_gpu_the_model_builds_and_running_says_why(tmp_path):
    graph, params, _ = models.mlp()
    module = tecomp.graph.build(graph, TARGET, params)
    module.export_library(tmp_path / "m.so")
    loaded = tecomp.graph.load(tmp_path / "m.so")
    x = models.random_inputs(graph)
    with pytest.raises(CUDAUnavailableError, match="^no CUDA driver/pycuda"):
        loaded.run(**x)
    assert "__global__" in _device_source(loaded)


def test_cpu_model_refuses_a_gpu_device(tmp_path):
    graph, params, _ = models.mlp()
    tecomp.graph.build(graph, "llvm", params).export_library(tmp_path / "cpu.so")
    with pytest.raises(ArgumentError, match="runs on a cpu device, not cuda"):
        tecomp.graph.load(tmp_path / "cpu.so", device=tecomp.cuda(0))


def _device_source(module) -> str:
    from tecomp.runtime.metadata import parse_metadata
    from tecomp.runtime.module import read_metadata
    metadata, _ = parse_metadata(read_metadata(module._lib, module.library_path), module.library_path)
    return metadata["cuda"]["source"]


@pytest.mark.parametrize("name", ["cnn", "transformer"])
def test_conv_and_attention_models_on_a_gpu_match_numpy(name, gpu):
    module, _ = _check(name, gpu, rtol=1e-3, atol=1e-3)
    labels = " ".join(s["label"] for s in module.steps)
    assert ("conv2d_nchw" in labels) if name == "cnn" else ("batch_matmul" in labels and "layer_norm" in labels)


@pytest.mark.parametrize("name, build, shapes", [
    ("cnn", lambda: onnx_models.small_cnn(batch=1, image=12), {"input": (1, 3, 12, 12)}),
    # rows of 32: softmax's row statistics are split into 16 lane partials
    ("transformer", lambda: onnx_models.transformer_encoder(layers=1, d_model=32, heads=2, ffn=64),
     {"input": (1, 32, 32)}),
])
def test_onnx_model_on_a_gpu_matches_onnxruntime(name, build, shapes, gpu):
    from tecomp.frontend import from_onnx
    model = build()
    inputs = onnx_models.random_inputs(shapes, seed=3)
    graph, params = from_onnx(model, shape=shapes)
    got = tecomp.graph.build(graph, TARGET, params).run(**inputs)
    for g, w in zip(got, onnx_models.run_onnxruntime(model, inputs)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


def test_model_tasks_for_a_gpu_are_the_cuda_templates():
    graph, params, _ = models.cnn()
    names = {t.name for t in extract_from_graph(graph, params, target=TARGET)}
    assert "schedules/cuda/conv2d_nchw" in names and "schedules/cuda/dense" in names
    assert all(name.startswith("schedules/cuda/") for name in names)


def test_cli_compiles_an_onnx_model_for_cuda(tmp_path, capsys):
    from tecomp.cli import main
    onnx_model = Path(__file__).resolve().parents[2] / "examples" / "models" / "small_cnn.onnx"
    out = tmp_path / "small_cnn_cuda.so"
    assert main(["compile", str(onnx_model), "-o", str(out), "--target", TARGET, "--quiet"]) == 0
    assert "target cuda -arch=sm_90" in capsys.readouterr().out
    if not tecomp.cuda(0).exist:
        assert main(["run", str(out)]) == 1
        assert "error: no CUDA driver/pycuda" in capsys.readouterr().err
        db = tmp_path / "t.db"
        assert main(["tune", str(onnx_model), "--target", TARGET, "--trials", "1", "--tuner", "grid",
                     "--records", str(db), "--quiet"]) == 0
        printed = capsys.readouterr()
        assert f"--target '{TARGET}' -o MODEL.so" in printed.out
        with tecomp.tuner.RecordDB(db) as records:
            errors = [r.error_msg for r in records.records()]
        assert errors and all("no CUDA driver/pycuda" in e for e in errors)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer"])
def test_model_on_a_real_gpu_matches_numpy(name):
    graph, params, reference = models.MODELS[name]()
    module = tecomp.graph.build(graph, "cuda", params)
    inputs = models.random_inputs(graph)
    for got, want in zip(module.run(**inputs), reference(*inputs.values())):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
    assert all(s.seconds > 0 for s in module.profile(**inputs, repeat=3))
