"""The emitted CUDA C run on the CPU (``tecomp.runtime.cuda_emulation``): a second oracle that needs no GPU.

A hand-made mistake in the CUDA C (an operator, an index, a barrier removed, a cast) is
caught on a machine without a GPU: the emulated kernel writes something else than the
interpreter, or the emulation stops at a misaligned vector access, a write outside an
argument or a barrier only some threads reach. Code the emulation cannot compile fails with
the compiler's message and the emitted line; the fake GPU runs every launch this way too.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.codegen.cuda import generate_cuda, plan_to_json
from tecomp.runtime import cuda_emulation as emu
from tecomp.schedules.cuda import GemmTiles, schedule_dense
from tecomp.schedules.dense import matmul
from tecomp.tir.interpreter import run

import emulation
from gpu_helpers import needs_nvcc


def _gemm():
    A, B = te.placeholder((32, 16), name="A"), te.placeholder((16, 32), name="B")
    C = matmul(A, B)
    s = schedule_dense(C, GemmTiles(threads_y=4, threads_x=4, rows=4, cols=4, k_tile=8))
    return tecomp.lower(s, [A, B, C], target="cuda")["main"]


def _scaled_to_int():
    """B[i] = int(A[i] * 1000.5) + i: a float-to-int cast, 64 threads a block."""
    A = te.placeholder((128,), name="A")
    B = te.compute((128,), lambda i: (A[i] * 1000.5).astype("int32") + i, name="B")
    s = te.create_schedule(B.op)
    bx, tx = s[B].split(B.op.axis[0], factor=64)
    s[B].bind(bx, te.thread_axis("blockIdx.x"))
    s[B].bind(tx, te.thread_axis("threadIdx.x"))
    return tecomp.lower(s, [A, B], target="cuda")["main"]


def _case(make, rng):
    """(func, its CUDA C, the plan, the arrays before a run, the arrays after the interpreter's run)."""
    func = make()
    generated = generate_cuda([func])
    inputs = [rng.standard_normal([int(d) for d in b.shape]).astype(b.dtype) if b.dtype == "float32"
              else np.zeros([int(d) for d in b.shape], b.dtype) for b in func.params]
    before = [x.copy() for x in inputs]
    run(func, inputs)
    return func, generated.text, plan_to_json(func, generated.plans[0]), before, inputs


def _mutated(text, old, new):
    assert old in text, f"{old!r} is not in the emitted source:\n{text}"
    return text.replace(old, new, 1)


@pytest.mark.parametrize("make, old, new", [
    (_gemm, "] + ", "] - "),                                  # an operator
    (_gemm, "A_shared[((int)threadIdx.y) * 32", "A_shared[((int)threadIdx.y) * 32 + 1"),  # an index
    (_gemm, "__syncthreads();\n", "\n"),                       # the barrier before the tiles are read
    (_scaled_to_int, "(int)(", "(signed char)("),             # a cast
], ids=["operator", "index", "barrier", "cast"])
def test_a_mutated_kernel_fails_on_a_machine_without_a_gpu(make, old, new, rng):
    func, text, plan, before, after = _case(make, rng)
    emulation.check_function(text, plan, before, after)  # the emitted source itself agrees
    with pytest.raises((AssertionError, emu.EmulatedKernelError), match="differs from the interpreter|kernel main"):
        emulation.check_function(_mutated(text, old, new), plan, before, after)


@needs_nvcc
def test_the_fake_gpu_runs_the_registered_cuda_c_beside_the_interpreter(gpu, rng):
    func = _gemm()
    text = generate_cuda([func]).text
    gpu.register(func, source=_mutated(text, "] + ", "] - "))
    a, b = rng.standard_normal((32, 16)).astype("float32"), rng.standard_normal((16, 32)).astype("float32")
    mod = tecomp.build(func, target="cuda")
    dev = [tecomp.nd.array(x, tecomp.cuda(0)) for x in (a, b, np.zeros((32, 32), "float32"))]
    with pytest.raises(AssertionError, match="the emitted CUDA C run on the CPU differs from the interpreter"):
        mod(*dev)
    gpu.register(func, source=text)
    mod(*dev)
    np.testing.assert_allclose(dev[2].numpy(), a @ b, rtol=1e-5, atol=1e-5)


def test_a_misaligned_vector_access_stops_the_kernel(rng):
    func, text, plan, before, after = _case(_gemm, rng)
    assert "*(const float4*)(A + " in text
    lib = emu.library(text)
    kernel = plan["kernels"][0]
    args = [x.copy() for x in before]
    with pytest.raises(emu.EmulatedKernelError, match=r"kernel.cu:\d+:\d+: misaligned access to 'const struct float4' "
                                                      r"at 0x[0-9a-f]+, which needs 16-byte alignment, in block "
                                                      r"\(0, 0, 0\) thread"):
        lib.launch(kernel["name"], [int(g) for g in kernel["grid"]], kernel["block"], args,
                   addresses=[0x10008, 0x20000, 0x30000])
    np.testing.assert_array_equal(args[2], before[2])  # nothing is copied back from a failed launch


def test_the_fake_gpu_checks_a_float4_pointers_alignment(gpu):
    func = _gemm()
    gpu.register(func)
    kernel = plan_to_json(func, generate_cuda([func]).plans[0])["kernels"][0]
    gpu.context_depth += 1
    try:
        bufs = [int(gpu.mem_alloc(n)) for n in (32 * 16 * 4 + 16, 16 * 32 * 4, 32 * 32 * 4)]
        with pytest.raises(AssertionError, match=r"A pointer 0x[0-9a-f]+ is not aligned to 16 bytes"):
            gpu.launch(kernel["name"], "PPP", tuple(kernel["grid"]), tuple(kernel["block"]),
                       (bufs[0] + 4, bufs[1], bufs[2]))
    finally:
        gpu.context_depth -= 1


@pytest.mark.parametrize("old, new, message", [
    ("B[", "B[64 + ", r"wrote outside argument 1 \(512 bytes\), at byte offsets \[\d+"),
    ("B[", "((int*)64)[", r"segmentation fault at address 0x[0-9a-f]+ in block \(\d+, 0, 0\) thread \(\d+, 0, 0\)"),
], ids=["past the end", "unmapped"])
def test_a_write_outside_its_argument_stops_the_kernel(old, new, message, rng):
    func, text, plan, before, after = _case(_scaled_to_int, rng)
    with pytest.raises(emu.EmulatedKernelError, match=message):
        emu.run_function(emu.library(_mutated(text, old, new)), plan, [x.copy() for x in before])


def test_a_barrier_only_some_threads_reach_is_divergence(rng):
    func, text, plan, before, after = _case(_gemm, rng)
    broken = _mutated(text, "__syncthreads();", "if (threadIdx.x == 0) __syncthreads();")
    with pytest.raises(emu.EmulatedKernelError, match=r"__syncthreads\(\) reached by 4 of the 16 threads of block "
                                                      r"\(0, 0, 0\); the others ended \(barrier divergence\)"):
        emu.run_function(emu.library(broken), plan, [x.copy() for x in before])


def test_source_the_emulation_cannot_compile_is_an_error_naming_the_line():
    text = generate_cuda([_scaled_to_int()]).text
    broken = _mutated(text, "(int)(", "(int)tecomp_no_such_function(")
    line = next(k for k, t in enumerate(broken.splitlines(), 1) if "tecomp_no_such_function" in t)
    with pytest.raises(emu.EmulationBuildError, match=rf"(?s)the CUDA source does not compile on the CPU emulation of "
                                                      rf"CUDA:.*kernel.cu:{line}:\d+: error: .*tecomp_no_such_function"
                                                      rf".*the emitted lines it names:\n  kernel.cu:{line}: "):
        emu.build_library(broken)


def test_float16_and_fast_math_kernels_agree_with_the_interpreter(rng):
    X = te.placeholder((64,), "float16", name="X")
    Y = te.compute((64,), lambda i: te.exp(X[i]) * X[i] + te.sqrt(te.abs(X[i])), name="Y")
    Z = te.placeholder((64,), name="Z")
    W = te.compute((64,), lambda i: te.exp(Z[i]) + te.log(te.abs(Z[i]) + 1.0), name="W")
    for out, inp, fast in ((Y, X, False), (W, Z, True)):
        s = te.create_schedule(out.op)
        bx, tx = s[out].split(out.op.axis[0], factor=32)
        s[out].bind(bx, te.thread_axis("blockIdx.x"))
        s[out].bind(tx, te.thread_axis("threadIdx.x"))
        func = tecomp.lower(s, [inp, out], target="cuda")["main"]
        generated = generate_cuda([func], fast_math=fast)
        assert ("__expf(" in generated.text) == fast and ("hexp(" in generated.text) == (not fast)
        x = rng.uniform(-2, 2, 64).astype(inp.dtype)
        y = np.full(64, np.nan, out.dtype)
        run(func, [x, y])
        emulation.check_function(generated.text, plan_to_json(func, generated.plans[0]),
                                 [x, np.full(64, np.nan, out.dtype)], [x, y])
