"""CUDA C generation and nvcc: readable kernels, vector accesses, intrinsics per dtype, indices, errors."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.codegen import nvcc
from tecomp.codegen.cuda import generate_cuda
from tecomp.error import BuildError
from tecomp.schedules.cuda import schedule_injective

from gpu_helpers import compile_source, emulate_and_compile, needs_nvcc


def _elementwise(fn, dtype="float32", n=64, vector=1, threads=64):
    A = te.placeholder((n,), dtype, name="A")
    C = te.compute((n,), lambda i: fn(A[i]), name="C")
    return schedule_injective(C, threads=threads, vector=vector), [A, C]


def _source(s, args, **kwargs):
    """The CUDA C of a schedule, after checking that nvcc compiles it."""
    func = tecomp.lower(s, args, target="cuda")["main"]
    text = generate_cuda([func], "cuda", **kwargs).text
    compile_source(text)
    return text


def test_kernel_signature_is_restrict_const_and_launch_bounded():
    text = _source(*_elementwise(lambda x: x + 1.0))
    assert ('extern "C" __global__ void __launch_bounds__(64) main_kernel0('
            'const float* __restrict__ A, float* __restrict__ C) {') in text
    assert "C[((int)threadIdx.x)] = A[((int)threadIdx.x)] + 1.0f;" in text


@needs_nvcc
def test_module_sources_default_to_cuda_and_ptx_is_compiled(rng):
    s, args = _elementwise(lambda x: x * 2.0)
    a = rng.standard_normal(64).astype("float32")
    _, mod = emulate_and_compile(s, args, [a], a * 2)
    assert mod.get_source() == mod.get_source("cuda")
    assert "__global__" in mod.get_source()
    ptx = mod.get_source("ptx")
    assert ".entry main_kernel0" in ptx and ".version" in ptx
    assert mod.metadata["cuda"]["image_format"] == "fatbin"


def test_aligned_vector_loop_uses_float4_loads_and_stores(rng):
    s, args = _elementwise(lambda x: x * 3.0, n=1024, vector=4)
    text = _source(s, args)
    assert "const float4 v1 = *(const float4*)(A + ((int)blockIdx.x) * 256 + ((int)threadIdx.x) * 4);" in text
    assert "*(float4*)(C + " in text and "make_float4(v1.x * 3.0f, v1.y * 3.0f, v1.z * 3.0f, v1.w * 3.0f)" in text


def _rows(width, read, lanes, inner):
    """Rows of ``width`` floats, one block per row, ``lanes``-wide vectorized columns read at ``read``."""
    n = te.var("n")
    A = te.placeholder((n, width), name="A")
    C = te.compute((n, inner), lambda i, j: A[i, read(j)] + 1.0, name="C")
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    jo, ji = s[C].split(j, factor=lanes)
    s[C].bind(i, te.thread_axis("blockIdx.x"))
    s[C].bind(jo, te.thread_axis("threadIdx.x"))
    s[C].vectorize(ji)
    return _source(s, [A, C])


def test_vector_accesses_only_where_alignment_is_proven():
    text = _rows(8, lambda j: j, 4, 8)
    assert "const float4 v1 = *(const float4*)(A + ((int)blockIdx.x) * 8 + ((int)threadIdx.x) * 4);" in text
    assert "const float2" in _rows(6, lambda j: j, 2, 6)  # i * 6 + jo * 2 is even
    shifted = _rows(7, lambda j: j + 1, 4, 4)  # loads start at i * 7 + 1: scalar lanes; stores stay aligned
    assert "const float4" not in shifted and "*(float4*)(C + ((int)blockIdx.x) * 4)" in shifted
    assert "make_float4(A[((int)blockIdx.x) * 7 + 1] + 1.0f, A[((int)blockIdx.x) * 7 + 2] + 1.0f" in shifted


@pytest.mark.parametrize("dtype, expected", [
    ("float32", ["expf(", "erff(", "tanhf(", "sqrtf(", "rsqrtf(", "powf(", "fabsf(", "floorf(", "ceilf("]),
    ("float64", ["exp(", "erf(", "tanh(", "sqrt(", "rsqrt(", "pow(", "fabs(", "floor(", "ceil("]),
    ("float16", ["hexp(", "__float2half(erff(__half2float(", "__float2half(tanhf(", "hsqrt(", "hrsqrt(",
                 "__habs(", "hfloor(", "hceil(", "#include <cuda_fp16.h>"]),
])
def test_math_intrinsics_follow_the_dtype(dtype, expected, rng):
    def fn(x):
        y = te.abs(x) + te.const(0.5, dtype)
        return (te.exp(x) + te.erf(x) * te.tanh(x) + te.sqrt(y) + te.rsqrt(y) + te.power(y, x)
                + te.floor(x) + te.ceil(x))

    s, args = _elementwise(fn, dtype)
    text = _source(s, args)
    for name in expected:
        assert name in text, name
    assert "__expf" not in text
    a = rng.uniform(-1, 1, 64).astype(dtype)
    x = a.astype("float64")
    from math import erf
    y = np.abs(x) + 0.5
    ref = (np.exp(x) + np.vectorize(erf)(x) * np.tanh(x) + np.sqrt(y) + 1 / np.sqrt(y) + y ** x
           + np.floor(x) + np.ceil(x))
    tol = 2e-2 if dtype == "float16" else 1e-5
    emulate_and_compile(s, args, [a], ref.astype(dtype), rtol=tol, atol=tol)


def test_fast_math_is_opt_in():
    s, args = _elementwise(lambda x: te.exp(x) + te.log(te.abs(x) + 1.0))
    assert "__expf" not in _source(s, args)
    fast = _source(s, args, fast_math=True)
    assert "__expf(" in fast and "__logf(" in fast


def test_int64_shapes_give_long_long_indices(rng):
    n = te.var("n", "int64")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * 2.0, name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=128)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    text = _source(s, [A, C])
    assert "long long n)" in text
    assert "const long long i1 = ((long long)blockIdx.x) * 128LL + ((long long)threadIdx.x);" in text
    assert "if (i1 < n) {" in text and "C[i1] = A[i1] * 2.0f;" in text
    a = rng.standard_normal(300).astype("float32")
    emulate_and_compile(s, [A, C], [a], a * 2)


def test_floor_division_of_values_that_may_be_negative_uses_the_helper(rng):
    A = te.placeholder((64,), "int32", name="A")
    C = te.compute((64,), lambda i: te.floordiv(A[i], 3) * 10 + te.floormod(A[i], 3), name="C")
    s = schedule_injective(C, threads=64, vector=1)
    text = _source(s, [A, C])
    assert "tecomp_floordiv(A[((int)threadIdx.x)], 3)" in text and "template <typename T>" in text
    a = rng.integers(-20, 20, 64).astype("int32")
    emulate_and_compile(s, [A, C], [a], (a // 3) * 10 + a % 3)


def test_index_arithmetic_shared_by_a_guard_and_its_store_is_computed_once(rng):
    X, K = te.placeholder((1, 2, 5, 5), name="X"), te.placeholder((2, 2, 3, 3), name="K")
    from tecomp.schedules import conv2d
    from tecomp.schedules.cuda import ConvTiles, schedule_conv2d_nchw
    Y = conv2d.conv2d_nchw(X, K, 1, 1)
    text = _source(schedule_conv2d_nchw(Y, ConvTiles(1, 2, 5, 5, 2)), [X, K, Y])
    assert "const int i1 = " in text and "if (i1 < " in text


def test_non_negative_index_division_is_plain_c(rng):
    A = te.placeholder((8, 8), name="A")
    C = te.compute((64,), lambda i: A[i // 8, i % 8] + 1.0, name="C")
    s = schedule_injective(C, threads=64, vector=1)
    text = _source(s, [A, C])
    assert "tecomp_floordiv" not in text
    a = rng.standard_normal((8, 8)).astype("float32")
    emulate_and_compile(s, [A, C], [a], a.reshape(64) + 1)


def test_select_padding_and_small_integer_types(rng):
    A = te.placeholder((64,), "int8", name="A")
    C = te.compute((64,), lambda i: te.if_then_else(A[i] > 3, A[i] * 2, A[i] - 1).astype("int8"), name="C")
    B = te.compute((64,), lambda i: A[i] > 0, name="B")
    a = rng.integers(-50, 50, 64).astype("int8")
    s = schedule_injective(C, threads=64, vector=1)
    assert "? (signed char)(A[((int)threadIdx.x)] * (signed char)2)" in _source(s, [A, C])
    emulate_and_compile(s, [A, C], [a], np.where(a > 3, a * 2, a - 1).astype("int8"))
    emulate_and_compile(schedule_injective(B, threads=64, vector=1), [A, B], [a], a > 0)
    P = te.placeholder((60,), name="P")
    Q = te.compute((64,), lambda i: te.if_then_else(te.all(i >= 2, i < 62), P[i - 2], 0.0), name="Q")
    p = rng.standard_normal(60).astype("float32")
    emulate_and_compile(schedule_injective(Q, threads=64, vector=1), [P, Q], [p], np.pad(p, 2))


@needs_nvcc
def test_nvcc_errors_carry_nvccs_own_message():
    with pytest.raises(BuildError, match=r"nvcc failed \(exit \d+\) compiling the CUDA source of broken for "
                                         r"sm_90:\n.*error"):
        nvcc.compile_cuda("this is not CUDA;", "sm_90", "ptx", name="broken")


def test_missing_nvcc_is_a_build_error(monkeypatch):
    monkeypatch.setattr(nvcc, "find_nvcc", lambda: None)
    s, args = _elementwise(lambda x: x + 1.0)
    with pytest.raises(BuildError, match="cannot compile CUDA kernels: nvcc was not found"):
        tecomp.build(s, args, target="cuda")


def test_bad_architecture_is_a_build_error():
    with pytest.raises(BuildError, match="invalid CUDA architecture 'gfx90a'"):
        nvcc.arch_flags("gfx90a", "fatbin")
    assert nvcc.arch_flags("sm_90", "fatbin") == ["-gencode", "arch=compute_90,code=[sm_90,compute_90]"]
