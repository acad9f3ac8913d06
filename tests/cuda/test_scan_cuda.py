"""A scan on cuda: the time loop stays on the host and launches the update kernel once per step.

TVM lowers a scan whose init and update stages are bound to threads this way (its scan
tutorial's cumulative sum): the steps depend on each other, so each is a kernel launch, the
step passed as an argument. Checked by the interpreter and the emitted CUDA C on the CPU,
through the runtime on the fake GPU (the launches it makes), and compiled with nvcc.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import LoweringError

from gpu_helpers import emulate_and_compile, needs_nvcc


def _cumsum_scan(m, n, threads=32):
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n))
    init = te.compute((1, n), lambda _, i: X[0, i])
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i])
    result = te.scan(init, update, state, inputs=[X])
    s = te.create_schedule(result.op)
    for stage in (init, update):
        bx, tx = s[stage].split(stage.op.axis[1], factor=threads)
        s[stage].bind(bx, te.thread_axis("blockIdx.x"))
        s[stage].bind(tx, te.thread_axis("threadIdx.x"))
    return s, X, result


def test_the_time_loop_is_a_host_loop_around_the_update_kernel(rng):
    m, n = te.var("m"), te.var("n")
    s, X, result = _cumsum_scan(m, n)
    text = str(tecomp.lower(s, [X, result], target="cuda"))
    assert text.index("for (scan.idx") < text.index("main_kernel1")  # the loop encloses the kernel
    x = rng.standard_normal((7, 50)).astype("float32")
    emulate_and_compile(s, [X, result], [x], np.cumsum(x, axis=0), rtol=1e-5, atol=1e-5)


@needs_nvcc
def test_the_runtime_launches_the_update_once_per_step(gpu, rng):
    s, X, result = _cumsum_scan(6, te.var("n"))  # (the fake GPU sizes buffers from the kernel's arguments)
    func = tecomp.lower(s, [X, result], target="cuda")["main"]
    mod = tecomp.build(func, target="cuda")
    gpu.register(func)
    plan = mod.metadata["cuda"]["functions"]["main"]
    assert plan["host_vars"] == ["int32"] and plan["steps"][0] == 0 and plan["steps"][1]["body"] == [1]
    x = rng.standard_normal((6, 40)).astype("float32")
    out = tecomp.nd.empty((6, 40), "float32", tecomp.cuda(0))
    mod(tecomp.nd.array(x, tecomp.cuda(0)), out)
    np.testing.assert_allclose(out.numpy(), np.cumsum(x, axis=0), rtol=1e-5, atol=1e-5)
    assert [name for name, _, _ in gpu.launches] == ["main_kernel0"] + ["main_kernel1"] * 5
    assert mod.imported_modules[0].get_source().count("__global__") == 2


def test_a_serial_top_loop_that_computes_outside_kernels_is_still_refused():
    s, X, result = _cumsum_scan(8, 64)
    Y = te.compute((8, 64), lambda i, j: result[i, j] * 2.0, name="Y")
    s = te.create_schedule(Y.op)  # nothing bound: Y's loops and the scan's run on no thread
    with pytest.raises(LoweringError, match="outside any kernel"):
        tecomp.lower(s, [X, Y], target="cuda")
