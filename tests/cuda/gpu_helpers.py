"""Helpers of the CUDA tests: emulate lowered kernels with the reference interpreter, compile them with nvcc.

``emulate_and_compile`` is the check every GPU schedule goes through in CI: lower for cuda,
run the launch-form IR on numpy arrays with the interpreter (blocks in turn, the threads of a
block in lockstep between barriers) and the emitted CUDA C on the CPU (``emulation``), compare
with numpy, then build it (CUDA C, nvcc) so the kernel is known to compile. Without nvcc the
compile step is skipped with a reason; without a GPU nothing here needs one.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp.codegen.cuda import generate_cuda, plan_to_json
from tecomp.codegen.nvcc import find_nvcc
from tecomp.lower.launch import is_gpu_lowered
from tecomp.tir import interpreter

import emulation

HAS_NVCC = find_nvcc() is not None
needs_nvcc = pytest.mark.skipif(not HAS_NVCC, reason="nvcc (the CUDA toolkit) is not installed")
needs_gpu = pytest.mark.skipif(not tecomp.cuda(0).exist, reason="no CUDA GPU with pycuda and a driver")


def emulate(func, inputs, out_shapes, out_dtypes="float32"):
    """Run a lowered PrimFunc with the interpreter; returns the outputs. A GPU-lowered one also runs
    as the CUDA C the backend emits, on the CPU, which must write the same (``emulation``)."""
    dtypes = out_dtypes if isinstance(out_dtypes, (list, tuple)) else [out_dtypes] * len(out_shapes)
    outs = [np.full(s, np.nan if np.dtype(d).kind == "f" else 0, d) for s, d in zip(out_shapes, dtypes)]
    arrays = [np.ascontiguousarray(x) for x in inputs] + outs
    before = [a.copy() for a in arrays]
    interpreter.run(func, arrays)
    if is_gpu_lowered(func):
        generated = generate_cuda([func])
        emulation.check_function(generated.text, plan_to_json(func, generated.plans[0]), before, arrays,
                                 size_values(func, arrays))
    return outs


def size_values(func, arrays):
    """The values of ``func``'s size variables, read from the shapes of ``arrays`` (numpy scalars)."""
    found = {}
    for buf, a in zip(func.params, arrays):
        for dim, n in zip(buf.shape, a.shape):
            found.setdefault(dim, n)
    return [np.dtype(v.dtype).type(found[v]) for v in func.size_vars]


def emulate_and_compile(sch, args, inputs, expected, rtol=1e-5, atol=1e-5, target="cuda"):
    """Interpreter on the cuda-lowered IR == numpy; then the build (nvcc) succeeds. Returns (func, module)."""
    expected = expected if isinstance(expected, (list, tuple)) else [expected]
    func = tecomp.lower(sch, args, target=target)["main"]
    got = emulate(func, inputs, [e.shape for e in expected], [e.dtype for e in expected])
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=str(func))
    if not HAS_NVCC:
        pytest.skip("numerics checked by emulation; nvcc (the CUDA toolkit) is not installed, so the kernel "
                    "was not compiled")
    return func, tecomp.build(func, target=target)


def compile_source(text: str) -> str:
    """``text`` compiled for the CPU emulation (an error fails the test), then to PTX with nvcc (a
    BuildError carries nvcc's message); skips without nvcc."""
    emulation.emu.build_library(text)
    if not HAS_NVCC:
        pytest.skip("nvcc (the CUDA toolkit) is not installed, so the generated kernel was not compiled")
    from tecomp.codegen.nvcc import compile_cuda
    return compile_cuda(text, None, "ptx").decode()


def register_compiled_functions(gpu, monkeypatch):
    """``gpu`` (the fake GPU) with every function nvcc compiles registered with it (and the CUDA C nvcc
    compiled), so it can run."""
    from tecomp.codegen import cuda_build
    from tecomp.lower.launch import lower_for_gpu
    from tecomp.target import Target

    real = cuda_build.compile_device_code

    def compile_and_register(funcs, target, fast_math=False):
        code = real(funcs, target, fast_math)
        for func in funcs:
            gpu.register(lower_for_gpu(func, Target(target)), code.source)
        return code

    monkeypatch.setattr(cuda_build, "compile_device_code", compile_and_register)
    return gpu
