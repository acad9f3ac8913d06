"""The CUDA runtime: device arrays, checked calls, launches, workspaces, timing, export and load.

Without a GPU the runtime must say so clearly (never an ImportError). With a stand-in for
pycuda (``fake_pycuda``: host memory behind fake addresses, kernels run by the reference
interpreter) the runtime's own code runs for real: the planned grids and blocks, the
argument order, workspaces and the exported device code. Tests marked ``gpu`` run on a
real GPU and skip without one.
"""

from __future__ import annotations

import base64

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import ArgumentError, TecompError
from tecomp.runtime import load_module
from tecomp.runtime.cuda_driver import CUDANDArray, CUDAUnavailableError
from tecomp.schedules import softmax as softmax_ops
from tecomp.schedules.cuda import GemmTiles, schedule_dense, schedule_injective, schedule_softmax
from tecomp.schedules.dense import matmul

from gpu_helpers import needs_nvcc

pytestmark = needs_nvcc


def _vadd(n=256):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return schedule_injective(C, threads=64), [A, B, C]


@pytest.fixture(scope="module")
def vadd_module():
    s, args = _vadd()
    func = tecomp.lower(s, args, target="cuda")["main"]
    return func, tecomp.build(func, target="cuda")


# ---------------------------------------------------------------- no driver here

@pytest.mark.skipif(tecomp.cuda(0).exist, reason="this host has a usable GPU")
def test_without_pycuda_building_works_and_running_says_why(vadd_module, tmp_path):
    _, mod = vadd_module
    assert not tecomp.cuda(0).exist
    a = np.ones(256, "float32")
    for call in (lambda: mod(a, a, a), lambda: tecomp.nd.array(a, tecomp.cuda(0)),
                 lambda: tecomp.nd.empty((4,), "float32", tecomp.cuda(0)),
                 lambda: mod.time_evaluator("main", tecomp.cuda(0))(a, a, a)):
        with pytest.raises(CUDAUnavailableError, match=r"^no CUDA driver/pycuda: "):
            call()
    mod.export_library(tmp_path / "vadd.so")
    loaded = load_module(tmp_path / "vadd.so")
    with pytest.raises(CUDAUnavailableError, match="no CUDA driver/pycuda"):
        loaded(a, a, a)


def test_exported_library_carries_device_code_and_source(vadd_module, tmp_path):
    _, mod = vadd_module
    (tmp_path / "lib").mkdir()  # export_library creates no directory
    mod.export_library(tmp_path / "lib" / "vadd.so")
    loaded = load_module(tmp_path / "lib" / "vadd.so")
    assert loaded.function_names == ("main",) and loaded.device_kind == "cuda"
    assert loaded.get_source() == mod.get_source("cuda")
    section = loaded.metadata["cuda"]
    assert base64.b64decode(section["image"]) == base64.b64decode(mod.metadata["cuda"]["image"])
    assert section["functions"]["main"]["kernels"][0]["block"] == [64, 1, 1]
    with pytest.raises(TecompError, match="runs on a CUDA GPU"):
        loaded.time_evaluator("main", tecomp.cpu(0))


# ---------------------------------------------------------------- with a stand-in driver

def test_device_arrays_copy_in_and_out(gpu, rng):
    x = rng.standard_normal((3, 5)).astype("float32")
    d = tecomp.nd.array(x, tecomp.cuda(0))
    assert isinstance(d, CUDANDArray) and d.shape == (3, 5) and d.dtype == "float32"
    assert d.device == tecomp.cuda(0)
    np.testing.assert_array_equal(d.numpy(), x)
    e = tecomp.nd.empty((3, 5), "float32", tecomp.cuda(0)).copyfrom(d)
    np.testing.assert_array_equal(np.asarray(e), x)
    host = d.copyto(tecomp.cpu(0))
    np.testing.assert_array_equal(host.numpy(), x)
    back = host.copyto(tecomp.cuda(0))
    np.testing.assert_array_equal(back.numpy(), x)
    assert gpu.context_depth == 0


def test_a_built_module_runs_and_checks_its_arguments(gpu, vadd_module, rng):
    func, mod = vadd_module
    gpu.register(func)
    a, b = rng.standard_normal(256).astype("float32"), rng.standard_normal(256).astype("float32")
    da, db = tecomp.nd.array(a, tecomp.cuda(0)), tecomp.nd.array(b, tecomp.cuda(0))
    dc = tecomp.nd.empty((256,), "float32", tecomp.cuda(0))
    mod(da, db, dc)
    np.testing.assert_allclose(dc.numpy(), a + b)
    assert gpu.launches == [("main_kernel0", (1, 1, 1), (64, 1, 1))]
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): got a ndarray; this function runs on a CUDA GPU"):
        mod(da, db, np.zeros(256, "float32"))
    with pytest.raises(ArgumentError, match=r"argument 0 \(A\): got on cpu\(0\)"):
        mod(tecomp.nd.array(a), db, dc)
    with pytest.raises(ArgumentError, match="expected shape \\[256\\], got \\(8,\\)"):
        mod(da, db, tecomp.nd.empty((8,), "float32", tecomp.cuda(0)))
    with pytest.raises(ArgumentError, match="expected dtype float32, got float64"):
        mod(da, db, tecomp.nd.empty((256,), "float64", tecomp.cuda(0)))
    with pytest.raises(ArgumentError, match="shares memory with argument 0"):
        mod(da, db, da)


def test_kernels_with_workspaces_run_in_order(gpu, rng):
    X = te.placeholder((6, 40), name="X")
    Y = softmax_ops.softmax(X)
    s = schedule_softmax(Y, threads=32)
    func = tecomp.lower(s, [X, Y], target="cuda")["main"]
    mod = tecomp.build(func, target="cuda")
    gpu.register(func)
    x = rng.standard_normal((6, 40)).astype("float32")
    dy = tecomp.nd.empty((6, 40), "float32", tecomp.cuda(0))
    mod(tecomp.nd.array(x, tecomp.cuda(0)), dy)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(dy.numpy(), e / e.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert [name for name, _, _ in gpu.launches] == ["main_kernel0", "main_kernel1", "main_kernel2"]
    plan = mod.metadata["cuda"]["functions"]["main"]
    assert [w["name"] for w in plan["workspaces"]] == ["row_max", "row_sum"]


def test_symbolic_shapes_launch_the_grid_they_need(gpu, rng):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * 2.0, name="C")
    s = schedule_injective(C, threads=32, vector=1)
    func = tecomp.lower(s, [A, C], target="cuda")["main"]
    mod = tecomp.build(func, target="cuda")
    gpu.register(func)
    for size in (5, 100):
        a = rng.standard_normal(size).astype("float32")
        dc = tecomp.nd.empty((size,), "float32", tecomp.cuda(0))
        mod(tecomp.nd.array(a, tecomp.cuda(0)), dc)
        np.testing.assert_allclose(dc.numpy(), a * 2)
    assert [g for _, g, _ in gpu.launches] == [(1, 1, 1), (4, 1, 1)]


def test_matmul_runs_through_the_runtime_and_time_evaluator_uses_events(gpu, rng):
    a, b = rng.standard_normal((32, 24)).astype("float32"), rng.standard_normal((24, 32)).astype("float32")
    A, B = te.placeholder((32, 24), name="A"), te.placeholder((24, 32), name="B")
    with tecomp.target.Target("cuda"):
        C = matmul(A, B)
    s = schedule_dense(C, GemmTiles(4, 4, 4, 4, 8))
    func = tecomp.lower(s, [A, B, C], target="cuda")["main"]
    mod = tecomp.build(func, target="cuda")
    gpu.register(func)
    args = [tecomp.nd.array(a, tecomp.cuda(0)), tecomp.nd.array(b, tecomp.cuda(0)),
            tecomp.nd.empty((32, 32), "float32", tecomp.cuda(0))]
    result = mod.time_evaluator(mod.entry_name, tecomp.cuda(0), number=2, repeat=2)(*args)
    np.testing.assert_allclose(args[2].numpy(), a @ b, rtol=1e-4, atol=1e-4)
    assert result.results == (0.0015 / 2, 0.0015 / 2)  # the fake's events tick 1.5 ms per record
    assert len(gpu.loaded_images) == 1 and gpu.loaded_images[0] == base64.b64decode(mod.metadata["cuda"]["image"])


def test_a_loaded_library_runs_like_the_built_one(gpu, vadd_module, tmp_path, rng):
    func, mod = vadd_module
    gpu.register(func)
    mod.export_library(tmp_path / "vadd.so")
    loaded = load_module(tmp_path / "vadd.so")
    a = rng.standard_normal(256).astype("float32")
    da = tecomp.nd.array(a, tecomp.cuda(0))
    dc = tecomp.nd.empty((256,), "float32", tecomp.cuda(0))
    loaded(da, da.copyto(tecomp.cuda(0)), dc)
    np.testing.assert_allclose(dc.numpy(), 2 * a)
