"""Tensor cores the TVM way: ``wmma.*`` fragment stages tensorized with the four warp-level builtins.

A float16 GEMM (float32 accumulation) of 96x64x48 is staged through shared memory into
``wmma.matrix_a`` / ``wmma.matrix_b`` fragments, multiplied into ``wmma.accumulator`` fragments
and stored to global memory, each step a ``te.decl_tensor_intrin`` calling
``tir.call_intrin("handle", "tir.tvm_*", ...)`` with TVM's argument order. It is checked against
numpy by the interpreter (with the race detector, threads in several orders), by the emitted CUDA
C run on the CPU, and compiled by nvcc for sm_80. Misuses are rejected with errors naming them.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te, tir
from tecomp.codegen.cuda import generate_cuda
from tecomp.error import BuildError, LoweringError, ScheduleError, TecompError
from tecomp.tir import interpreter
from tecomp.tir.wmma import FragmentError

from gpu_helpers import (HAS_NVCC, compile_source, emulate_and_compile, needs_gpu, needs_nvcc,
                         register_compiled_functions)

M, N, K = 96, 64, 48
TILE = 16
TARGET = "cuda -arch=sm_80"


def _frag_buffer(shape, dtype, name, scope):
    return tir.decl_buffer(shape, dtype, name=name, scope=scope, data_alignment=32, offset_factor=TILE * TILE)


def _mem_buffer(shape, dtype, name, scope):
    """A 16x16 tile of a larger shared or global array: its row pitch is the array's."""
    return tir.decl_buffer(shape, dtype, name=name, scope=scope, strides=[te.var(f"{name}_ld"), 1],
                           data_alignment=32, offset_factor=1)


def load_intrin(scope, shape=(TILE, TILE), layout="row_major"):
    """A fragment of ``scope`` loaded from a tile of shared memory."""
    a = te.placeholder(shape, "float16", name="a")
    c = te.compute(shape, lambda i, j: a[i, j], name="c")
    src = _mem_buffer(shape, "float16", "src", "shared")
    dst = _frag_buffer(shape, "float16", "dst", scope)
    m, n, k = (TILE, TILE, TILE) if shape == (TILE, TILE) else (32, 8, 16)  # matrix_a is m x k

    def body(ins, outs):
        ib = tir.ir_builder.create()
        s, d = ins[0], outs[0]
        ib.emit(tir.call_intrin("handle", "tir.tvm_load_matrix_sync", d.data, m, n, k, d.elem_offset // (m * k),
                                s.access_ptr("r"), s.strides[0], layout))
        return ib.get()

    return te.decl_tensor_intrin(c.op, body, name=f"load_{scope}", binds={a: src, c: dst})


def mma_intrin():
    """c += a @ b on fragments: fill with 0 to reset, mma_sync to update."""
    a = te.placeholder((TILE, TILE), "float16", name="a")
    b = te.placeholder((TILE, TILE), "float16", name="b")
    k = te.reduce_axis((0, TILE), name="k")
    c = te.compute((TILE, TILE), lambda i, j: te.sum(a[i, k].astype("float32") * b[k, j].astype("float32"), axis=k),
                   name="c")
    fa = _frag_buffer(a.shape, a.dtype, "fa", "wmma.matrix_a")
    fb = _frag_buffer(b.shape, b.dtype, "fb", "wmma.matrix_b")
    fc = _frag_buffer(c.shape, c.dtype, "fc", "wmma.accumulator")
    size = TILE * TILE

    def body(ins, outs):
        xa, xb = ins
        (xc,) = outs

        def reset():
            ib = tir.ir_builder.create()
            ib.emit(tir.call_intrin("handle", "tir.tvm_fill_fragment", xc.data, TILE, TILE, TILE,
                                    xc.elem_offset // size, 0.0))
            return ib.get()

        def update():
            ib = tir.ir_builder.create()
            ib.emit(tir.call_intrin("handle", "tir.tvm_mma_sync", xc.data, xc.elem_offset // size,
                                    xa.data, xa.elem_offset // size, xb.data, xb.elem_offset // size,
                                    xc.data, xc.elem_offset // size))
            return ib.get()

        return update(), reset(), update()

    return te.decl_tensor_intrin(c.op, body, name="mma", binds={a: fa, b: fb, c: fc})


def store_intrin():
    """An accumulator fragment stored to a tile of global memory."""
    a = te.placeholder((TILE, TILE), "float32", name="a")
    c = te.compute((TILE, TILE), lambda i, j: a[i, j], name="c")
    src = _frag_buffer(a.shape, a.dtype, "src", "wmma.accumulator")
    dst = _mem_buffer(c.shape, c.dtype, "dst", "global")

    def body(ins, outs):
        ib = tir.ir_builder.create()
        s, d = ins[0], outs[0]
        ib.emit(tir.call_intrin("handle", "tir.tvm_store_matrix_sync", s.data, TILE, TILE, TILE,
                                s.elem_offset // (TILE * TILE), d.access_ptr("w"), d.strides[0], "row_major"))
        return ib.get()

    return te.decl_tensor_intrin(c.op, body, name="store", binds={a: src, c: dst})


def gemm_schedule(a_load=None):
    """C = A @ B: blocks of 32x32, two warps (threadIdx.y) of 32x16 each, K in chunks of 16.

    Every warp owns two accumulator fragments (stacked along M), one matrix_b fragment and two
    matrix_a fragments per chunk; shared tiles are filled by all 64 threads."""
    A = te.placeholder((M, K), "float16", name="A")
    B = te.placeholder((K, N), "float16", name="B")
    k = te.reduce_axis((0, K), name="k")
    C = te.compute((M, N), lambda i, j: te.sum(A[i, k].astype("float32") * B[k, j].astype("float32"), axis=k),
                   name="C")
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])
    BS = s.cache_read(B, "shared", [C])
    AF = s.cache_read(AS, "wmma.matrix_a", [C])
    BF = s.cache_read(BS, "wmma.matrix_b", [C])
    CF = s.cache_write(C, "wmma.accumulator")

    i, j = s[C].op.axis
    bi, ii = s[C].split(i, factor=32)
    bj, jj = s[C].split(j, factor=32)
    wj, jt = s[C].split(jj, factor=TILE)
    ti, it = s[C].split(ii, factor=TILE)
    s[C].reorder(bi, bj, wj, ti, it, jt)
    s[C].bind(bi, te.thread_axis("blockIdx.y"))
    s[C].bind(bj, te.thread_axis("blockIdx.x"))
    s[C].bind(wj, te.thread_axis("threadIdx.y"))
    s[C].tensorize(it, store_intrin())

    s[CF].compute_at(s[C], wj)
    ci, cj = s[CF].op.axis
    (ck,) = s[CF].op.reduce_axis
    ko, ki = s[CF].split(ck, factor=TILE)
    cto, cti = s[CF].split(ci, factor=TILE)
    s[CF].reorder(ko, cto, cti, cj, ki)
    s[CF].tensorize(cti, mma_intrin())

    for F, S_, intrin in ((AF, AS, a_load or load_intrin("wmma.matrix_a")), (BF, BS, load_intrin("wmma.matrix_b"))):
        s[F].compute_at(s[CF], ko)
        r, c = s[F].op.axis
        ro, ri = s[F].split(r, factor=intrin.op.axis[0].dom.extent.value)
        s[F].tensorize(ri, intrin)
        s[S_].compute_at(s[CF], ko)
        fused = s[S_].fuse(*s[S_].op.axis)
        rest, tx = s[S_].split(fused, factor=32)
        _, ty = s[S_].split(rest, factor=2)
        s[S_].bind(tx, te.thread_axis("threadIdx.x"))
        s[S_].bind(ty, te.thread_axis("threadIdx.y"))
    return s, (A, B, C)


def _inputs():
    rng = np.random.default_rng(7)
    a = rng.uniform(-1, 1, (M, K)).astype("float16")
    b = rng.uniform(-1, 1, (K, N)).astype("float16")
    return a, b, a.astype("float64") @ b.astype("float64")


def test_gemm_interpreted_emulated_and_compiled():
    s, args = gemm_schedule()
    a, b, expected = _inputs()
    func = tecomp.lower(s, args, target=TARGET)["main"]
    text = generate_cuda([func]).text
    assert "#include <mma.h>" in text
    assert "nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, half, nvcuda::wmma::row_major>" in text
    assert "nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float>" in text
    for call in ("load_matrix_sync", "mma_sync", "store_matrix_sync", "fill_fragment"):
        assert f"nvcuda::wmma::{call}(" in text
    for order in ("ascending", "descending", "shuffle"):  # every warp's lane 0 does its tiles: no races
        c = np.full((M, N), np.nan, "float32")
        interpreter.run(func, [a, b, c], order=order, seed=3, races=True)
        np.testing.assert_allclose(c, expected, rtol=1e-5, atol=1e-5)
    # the interpreter again, and the CUDA C on the CPU from the same memory; then nvcc for sm_80
    _, module = emulate_and_compile(s, list(args), [a, b], expected.astype("float32"), target=TARGET)
    assert "nvcuda::wmma::mma_sync" in module.get_source()


def _run_built(a, b):
    s, args = gemm_schedule()
    mod = tecomp.build(s, list(args), target=TARGET)
    dev = tecomp.cuda(0)
    out = tecomp.nd.empty((M, N), "float32", dev)
    mod(tecomp.nd.array(a, dev), tecomp.nd.array(b, dev), out)
    return out.numpy()


@needs_nvcc
def test_built_module_runs_through_the_runtime(gpu, monkeypatch):
    """The library nvcc built, called through the runtime on the fake GPU (interpreter and emulation)."""
    register_compiled_functions(gpu, monkeypatch)
    a, b, expected = _inputs()
    np.testing.assert_allclose(_run_built(a, b), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@needs_gpu
@needs_nvcc
def test_on_tensor_cores():
    """On a GPU of sm_80 or newer: real tensor cores (float16 products, float32 sums in their order)."""
    a, b, expected = _inputs()
    np.testing.assert_allclose(_run_built(a, b), expected, rtol=1e-3, atol=1e-3)


def test_fragments_declared_from_their_uses():
    """One array per fragment stage: two accumulators and two matrix_a tiles per warp, one matrix_b."""
    s, args = gemm_schedule()
    text = generate_cuda([tecomp.lower(s, args, target=TARGET)["main"]]).text
    assert text.count("nvcuda::wmma::fragment<") == 3
    assert "float> C_wmma_accumulator[2];" in text
    assert "half, nvcuda::wmma::row_major> A_shared_wmma_matrix_a[2];" in text
    assert "half, nvcuda::wmma::row_major> B_shared_wmma_matrix_b[1];" in text
    if HAS_NVCC:
        assert ".entry" in compile_source(text)


def test_fragments_of_different_shapes_in_one_mma_are_refused():
    """matrix_a loaded as one 32x8x16 tile while the accumulators are 16x16x16: a FragmentError."""
    s, args = gemm_schedule(a_load=load_intrin("wmma.matrix_a", shape=(32, TILE)))
    func = tecomp.lower(s, args, target=TARGET)["main"]
    with pytest.raises(FragmentError, match=r"tvm_mma_sync: its fragments have different shapes.*must share m, n, k"):
        generate_cuda([func])
    with pytest.raises(FragmentError, match="different shapes"):
        interpreter.run(func, [np.zeros((M, K), "float16"), np.zeros((K, N), "float16"), np.zeros((M, N), "float32")])


def test_wmma_scope_on_a_cpu_target_is_refused():
    A = te.placeholder((32, 16), "float16", name="A")
    C = te.compute((32, 16), lambda i, j: A[i, j] * 2, name="C")
    s = te.create_schedule(C.op)
    s.cache_read(A, "wmma.matrix_a", [C])
    with pytest.raises(TecompError, match=r"A\.wmma\.matrix_a has storage scope wmma\.matrix_a.*only the cuda target"):
        tecomp.build(s, [A, C], target="llvm")


def test_unknown_scope_names_the_wmma_ones():
    A = te.placeholder((16, 16), "float16", name="A")
    B = te.compute((16, 16), lambda i, j: A[i, j], name="B")
    s = te.create_schedule(B.op)
    with pytest.raises(ScheduleError, match=r"wmma\.matrix_a, wmma\.matrix_b, wmma\.accumulator"):
        s.cache_read(A, "wmma.matrix_c", [B])


def test_fragment_bound_to_a_stage_of_another_scope_is_refused():
    """A matrix_a intrinsic on a plain local stage: tensorize names both scopes."""
    A = te.placeholder((32, 16), "float16", name="A")
    C = te.compute((32, 16), lambda i, j: A[i, j], name="C")
    s = te.create_schedule(C.op)
    AL = s.cache_read(A, "local", [C])
    s[AL].compute_at(s[C], s[C].op.axis[0])
    s[C].bind(s[C].op.axis[0], te.thread_axis("threadIdx.x"))
    lo, li = s[AL].split(s[AL].op.axis[0], factor=16)
    s[AL].tensorize(li, load_intrin("wmma.matrix_a"))
    with pytest.raises(LoweringError, match=r"scope wmma\.matrix_a.*scope local"):
        tecomp.lower(s, [A, C], target=TARGET)


def test_tensor_cores_need_an_arch_with_them():
    s, args = gemm_schedule()
    with pytest.raises(BuildError, match=r"tensor cores.*sm_70 or newer.*sm_61"):
        tecomp.build(s, list(args), target="cuda -arch=sm_61")


def test_a_fragment_read_element_by_element_is_refused():
    """A wmma stage nobody tensorized: its shape is unknown and its elements are not addressable."""
    A = te.placeholder((32, 16), "float16", name="A")
    C = te.compute((32, 16), lambda i, j: A[i, j] * 2, name="C")
    s = te.create_schedule(C.op)
    AF = s.cache_read(A, "wmma.matrix_a", [C])
    s[C].bind(s[C].op.axis[0], te.thread_axis("blockIdx.x"))
    s[AF].compute_at(s[C], s[C].op.axis[0])
    func = tecomp.lower(s, [A, C], target=TARGET)["main"]
    with pytest.raises(FragmentError, match=r"fragment A\.wmma\.matrix_a \(wmma\.matrix_a\) is never filled, loaded "
                                            r"or stored.*tensorize its stage"):
        generate_cuda([func])

