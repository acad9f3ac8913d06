"""The CUDA operator schedules and templates: emulated numerics equal numpy, every kernel compiles.

Shapes are small because the interpreter runs every thread of every block; they are
chosen to cover both tiles that divide the problem and partial (guarded) last tiles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.lower.launch import kernel_launch, kernels
from tecomp.schedules import conv2d, dense, elementwise, reduction, softmax
from tecomp.schedules.cuda import (ConvTiles, GemmTiles, gpu_dense, schedule_conv2d_nchw, schedule_dense,
                                   schedule_for, schedule_injective, schedule_reduce, schedule_softmax)
from tecomp.schedules.cuda.conv2d import conv_workload
from tecomp.schedules.cuda.conv2d import default_tiles as conv_tiles
from tecomp.schedules.cuda.dense import default_tiles as gemm_tiles
from tecomp.schedules.cuda.dense import fit_tile
from tecomp.target import Target
from tecomp.tuner.measure import MeasureInput, MeasureResult

from gpu_helpers import emulate_and_compile


def _shape(t):
    return tuple(d.value for d in t.shape)


def _shared_buffers(func):
    return [b.name for k in kernels(func) for b in kernel_launch(k).shared]


# ---------------------------------------------------------------- elementwise

@pytest.mark.parametrize("n, vector", [(1024, 4), (1000, 4), (37, 1)])
def test_injective_chain_is_inlined_and_vectorized(n, vector, rng):
    A, B = te.placeholder((n,), name="A"), te.placeholder((n,), name="B")
    C = elementwise.relu(elementwise.add(elementwise.exp(A), B))
    a, b = rng.standard_normal(n).astype("float32"), rng.standard_normal(n).astype("float32")
    func, _ = emulate_and_compile(schedule_injective(C, threads=64, vector=vector), [A, B, C], [a, b],
                                  np.maximum(np.exp(a) + b, 0), rtol=1e-5, atol=1e-5)
    assert len(kernels(func)) == 1


# ---------------------------------------------------------------- dense / matmul

def test_shared_memory_tiled_register_blocked_dense(rng):
    A, W = te.placeholder((32, 24), name="A"), te.placeholder((32, 24), name="W")
    with Target("cuda"):
        C = dense.dense(A, W)
    a, w = rng.standard_normal((32, 24)).astype("float32"), rng.standard_normal((32, 24)).astype("float32")
    s = schedule_dense(C, GemmTiles(threads_y=4, threads_x=4, rows=4, cols=4, k_tile=8))
    func, mod = emulate_and_compile(s, [A, W, C], [a, w], a @ w.T, rtol=1e-4, atol=1e-4)
    assert _shared_buffers(func) == ["A.shared", "packed_b.shared"]
    launch = kernel_launch(kernels(func)[0])
    assert launch.block == (4, 4, 1) and [int(g) for g in launch.grid] == [2, 2, 1]
    text = mod.get_source()
    assert "__shared__ __align__(16) float A_shared[128];" in text
    assert "const float4" in text and "__syncthreads();" in text


def test_one_panel_dense_reads_b_tiles_as_vectors(rng):
    A, B = te.placeholder((32, 16), name="A"), te.placeholder((16, 32), name="B")
    C = gpu_dense(A, B, transpose_b=False)
    a, b = rng.standard_normal((32, 16)).astype("float32"), rng.standard_normal((16, 32)).astype("float32")
    s = schedule_dense(C, GemmTiles(4, 4, 4, 4, 8))
    func, mod = emulate_and_compile(s, [A, B, C], [a, b], a @ b, rtol=1e-4, atol=1e-4)
    assert "*(const float4*)(packed_b_shared + ((int)threadIdx.x) * 4" in mod.get_source()


def test_matmul_with_partial_tiles_and_an_epilogue(rng):
    A, B = te.placeholder((20, 12), name="A"), te.placeholder((12, 36), name="B")
    bias = te.placeholder((36,), name="bias")
    with Target("cuda"):
        P = dense.matmul(A, B)
    C = elementwise.relu(elementwise.add(P, bias))
    a, b = rng.standard_normal((20, 12)).astype("float32"), rng.standard_normal((12, 36)).astype("float32")
    c = rng.standard_normal(36).astype("float32")
    s = schedule_dense(C, GemmTiles(threads_y=2, threads_x=4, rows=4, cols=4, k_tile=4))
    emulate_and_compile(s, [A, B, bias, C], [a, b, c], np.maximum(a @ b + c, 0), rtol=1e-4, atol=1e-4)


def test_batch_matmul(rng):
    A, B = te.placeholder((2, 8, 12), name="A"), te.placeholder((2, 12, 16), name="B")
    with Target("cuda"):
        C = dense.batch_matmul(A, B)
    a, b = rng.standard_normal((2, 8, 12)).astype("float32"), rng.standard_normal((2, 12, 16)).astype("float32")
    emulate_and_compile(schedule_dense(C, GemmTiles(2, 4, 4, 4, 4)), [A, B, C], [a, b], a @ b,
                        rtol=1e-4, atol=1e-4)


def test_default_gemm_tiles_divide_the_problem_when_they_can():
    assert gemm_tiles(4096, 4096, 4096) == GemmTiles(16, 16, 4, 4, 8)
    assert fit_tile(48, 16, 4) == (16, 1) and fit_tile(32, 16, 4) == (16, 2)
    assert fit_tile(97, 16, 4) == fit_tile(100, 16, 4) == (16, 4)  # nothing big divides: guard the last tile


# ---------------------------------------------------------------- conv2d

def _conv_ref(x, w, stride, pad, groups=1):
    n, _, h, wd = x.shape
    oc, cpg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))).astype("float64")
    oh, ow = (h + 2 * pad - kh) // stride + 1, (wd + 2 * pad - kw) // stride + 1
    out = np.zeros((n, oc, oh, ow))
    opg = oc // groups
    for o in range(oc):
        g = o // opg
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cpg:(g + 1) * cpg, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, o] += np.einsum("nchw,c->nhw", patch, w[o, :, i, j])
    return out


@pytest.mark.parametrize("dshape, kshape, stride, pad, groups, tiles", [
    ((1, 8, 8, 8), (8, 8, 3, 3), 1, 1, 1, ConvTiles(2, 2, 2, 4, 4)),    # staged rc tiles, 16 threads
    ((1, 4, 9, 9), (6, 4, 3, 3), 2, 1, 1, None),                       # strided, default tiles
    ((1, 8, 8, 8), (8, 1, 3, 3), 1, 1, 8, None),                       # depthwise
])
def test_conv2d_direct_shared_staged(dshape, kshape, stride, pad, groups, tiles, rng):
    X, K = te.placeholder(dshape, name="X"), te.placeholder(kshape, name="K")
    Y = conv2d.conv2d_nchw(X, K, stride, pad, 1, groups)
    x, w = rng.standard_normal(dshape).astype("float32"), rng.standard_normal(kshape).astype("float32")
    func, _ = emulate_and_compile(schedule_conv2d_nchw(Y, tiles), [X, K, Y], [x, w],
                                  _conv_ref(x, w, stride, pad, groups).astype("float32"), rtol=1e-4, atol=1e-4)
    assert _shared_buffers(func) == ["pad.shared", "K.shared"]


def test_conv2d_with_bias_and_relu_epilogue(rng):
    X, K, b = te.placeholder((1, 4, 6, 6), name="X"), te.placeholder((8, 4, 1, 1), name="K"), te.placeholder((8,), name="b")
    Y = conv2d.conv2d_nchw(X, K, 1, 0, 1, 1, bias=b, activation="relu")
    x, w = rng.standard_normal((1, 4, 6, 6)).astype("float32"), rng.standard_normal((8, 4, 1, 1)).astype("float32")
    bias = rng.standard_normal(8).astype("float32")
    ref = np.maximum(_conv_ref(x, w, 1, 0) + bias[None, :, None, None], 0).astype("float32")
    emulate_and_compile(schedule_conv2d_nchw(Y), [X, K, b, Y], [x, w, bias], ref, rtol=1e-4, atol=1e-4)


def test_conv_workload_is_recovered_from_the_compute():
    X, K = te.placeholder((1, 16, 14, 14), name="X"), te.placeholder((32, 16, 3, 3), name="K")
    Y = conv2d.conv2d_nchw(X, K, 2, (1, 0, 2, 1), 1, 1)
    assert conv_workload(Y) == ((1, 16, 14, 14), (32, 16, 3, 3), (2, 2), (1, 0, 2, 1), (1, 1), 1, "float32")


def test_default_conv_tiles_divide_resnet_layers():
    for c, size in ((64, 56), (128, 28), (256, 14), (512, 7)):
        t = conv_tiles(c, size, size, c)
        assert size % t.x_threads == 0 and size % t.y_threads == 0 and c % (t.f_threads * t.f_per_thread) == 0
        assert t.f_threads * t.y_threads * t.x_threads <= 256


# ---------------------------------------------------------------- reductions and softmax

@pytest.mark.parametrize("shape, axis, op, ref", [
    ((48, 70), 1, reduction.sum, np.sum),           # rows staged through padded shared memory
    ((37, 20), 1, reduction.sum, np.sum),           # rows the block does not divide: no staging
    ((6, 5, 12), (1, 2), reduction.max, np.max),
    ((32, 33), -1, reduction.mean, np.mean),
    ((9, 30), None, reduction.mean, np.mean),      # every axis: one block reducing across its threads
])
def test_reductions_over_the_last_axes(shape, axis, op, ref, rng):
    X = te.placeholder(shape, name="X")
    Y = op(X, axis=axis)
    x = rng.standard_normal(shape).astype("float32")
    func, _ = emulate_and_compile(schedule_reduce(Y, threads=16, k_tile=8), [X, Y], [x],
                                  ref(x, axis=axis).astype("float32"), rtol=1e-5, atol=1e-5)
    assert bool(_shared_buffers(func)) == (shape in ((48, 70), (32, 33)) or axis is None)


@pytest.mark.parametrize("shape, axis, log", [((6, 40), -1, False), ((3, 10, 4), 1, True),
                                              ((4, 64), -1, False)])  # 64: row stats in 16 lane partials
def test_softmax_runs_as_three_kernels(shape, axis, log, rng):
    X = te.placeholder(shape, name="X")
    Y = (softmax.log_softmax if log else softmax.softmax)(X, axis)
    x = rng.standard_normal(shape).astype("float32")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    ref = e / e.sum(axis=axis, keepdims=True)
    func, _ = emulate_and_compile(schedule_softmax(Y, threads=16), [X, Y], [x], np.log(ref) if log else ref,
                                  rtol=1e-5, atol=1e-6)
    assert len(kernels(func)) == 3


@pytest.mark.parametrize("shape, axis, row_threads", [((4, 64), -1, 32),    # lane partials: 16 threads a row
                                                     ((5, 70), -1, 32), ((3, 50, 2), 1, 128)])
def test_softmax_row_statistics_a_block_per_row(shape, axis, row_threads, rng):
    from tecomp.schedules.cuda.softmax import schedule_softmax_output
    X = te.placeholder(shape, name="X")
    Y = softmax.softmax(X, axis)
    s = te.create_schedule(Y.op)
    schedule_softmax_output(s, Y, 32, row_threads=row_threads)
    x = rng.standard_normal(shape).astype("float32")
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    func, _ = emulate_and_compile(s, [X, Y], [x], e / e.sum(axis=axis, keepdims=True), rtol=1e-5, atol=1e-6)
    assert len(kernels(func)) == 3 and str(func).count("red_buf[") >= 2


# ---------------------------------------------------------------- templates and dispatch

@pytest.mark.parametrize("name, args, make_inputs, ref", [
    ("schedules/cuda/dense", (16, 16, 8, "float32", False, True),
     lambda r: [r.standard_normal((16, 8)), r.standard_normal((16, 8))], lambda a, w: a @ w.T),
    ("schedules/cuda/conv2d_nchw", ((1, 4, 6, 6), (4, 4, 3, 3), 1, 1, 1, 1, "float32"),
     lambda r: [r.standard_normal((1, 4, 6, 6)), r.standard_normal((4, 4, 3, 3))],
     lambda x, w: _conv_ref(x, w, 1, 1)),
    ("schedules/cuda/depthwise_conv2d_nchw", ((1, 4, 6, 6), (4, 1, 3, 3), 1, 1, 1, "float32"),
     lambda r: [r.standard_normal((1, 4, 6, 6)), r.standard_normal((4, 1, 3, 3))],
     lambda x, w: _conv_ref(x, w, 1, 1, 4)),
    ("schedules/cuda/reduce", ((16, 24), 16, "float32"), lambda r: [r.standard_normal((16, 24))],
     lambda x: x.sum(axis=1)),
    ("schedules/cuda/softmax", ((4, 24), -1, "float32", False), lambda r: [r.standard_normal((4, 24))],
     lambda x: np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)),
])
def test_templates_define_spaces_and_their_configs_build(name, args, make_inputs, ref, rng):
    task = autotvm.task.create(name, args, target="cuda")
    assert len(task.config_space) > 1 and task.target.kind == "cuda"
    inputs = [x.astype("float32") for x in make_inputs(rng)]
    expected = ref(*inputs).astype("float32")
    config = task.config_space.get(0)
    s, tensors = task.instantiate(config)
    emulate_and_compile(s, tensors, inputs, expected, rtol=1e-4, atol=1e-4)


def test_tuned_records_pick_the_schedule(rng):
    task = autotvm.task.create("schedules/cuda/dense", (32, 32, 16, "float32", False, True), target="cuda")
    pick = next(i for i in range(len(task.config_space))
                if task.config_space.get(i)["threads_y"].val == 8 and task.config_space.get(i)["rows"].val == 2
                and task.config_space.get(i)["threads_x"].val == 8 and task.config_space.get(i)["cols"].val == 4
                and task.config_space.get(i)["k_tile"].val == 16)
    record = (MeasureInput(task, task.config_space.get(pick)), MeasureResult((1e-5,), 0, "", 1.0, 0.0))
    A, W = te.placeholder((32, 16), name="A"), te.placeholder((32, 16), name="W")
    with autotvm.apply_history_best([record]), Target("cuda"):
        C = dense.dense(A, W)
        s = schedule_dense(C)
    func = tecomp.lower(s, [A, W, C], target="cuda")["main"]
    assert kernel_launch(kernels(func)[0]).block == (8, 8, 1)
    a, w = rng.standard_normal((32, 16)).astype("float32"), rng.standard_normal((32, 16)).astype("float32")
    emulate_and_compile(s, [A, W, C], [a, w], a @ w.T, rtol=1e-4, atol=1e-4)


def test_schedule_for_dispatches_on_the_target():
    X = te.placeholder((64, 64), name="X")
    Y = elementwise.exp(X)
    cuda_text = str(tecomp.lower(schedule_for("injective", Y, "cuda"), [X, Y], target="cuda"))
    cpu_text = str(tecomp.lower(schedule_for("injective", Y, "llvm"), [X, Y]))
    assert "threadIdx.x" in cuda_text and "parallel" in cpu_text
    with Target("cuda"):
        assert "blockIdx.x" in str(tecomp.lower(schedule_for("injective", Y), [X, Y]))
    with pytest.raises(tecomp.TecompError, match="no schedule for operator family 'pool'"):
        schedule_for("pool", Y, "cuda")


def test_resnet_sized_layers_lower_within_the_limits():
    """The default tiles of every ResNet-18 layer lower (threads and shared memory within limits)."""
    for c_in, c_out, size, stride, k in ((3, 64, 224, 2, 7), (64, 64, 56, 1, 3), (64, 128, 56, 2, 3),
                                          (128, 256, 28, 2, 3), (256, 512, 14, 2, 3), (256, 512, 14, 2, 1)):
        X, K = te.placeholder((1, c_in, size, size), name="X"), te.placeholder((c_out, c_in, k, k), name="K")
        Y = conv2d.conv2d_nchw(X, K, stride, k // 2)
        func = tecomp.lower(schedule_conv2d_nchw(Y), [X, K, Y], target="cuda")["main"]
        assert math.prod(kernel_launch(kernels(func)[0]).block) <= 256
        assert _shape(Y)[1] == c_out
