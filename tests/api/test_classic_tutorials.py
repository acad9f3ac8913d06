"""The flows of TVM's classic tutorials, written afresh in their style (imports rewritten).

Tensor expressions, schedule primitives, extern ops, math intrinsics, tuple inputs, the GEMM
optimisation steps, and an AutoTVM template tuned from a script without a ``__main__`` guard.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir
from tecomp.contrib import cc, utils


def test_tensor_expression_getting_started_flow():
    tgt = tvm.target.Target(target="llvm", host="llvm")
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute(A.shape, lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    outer, inner = s[C].split(C.op.axis[0], factor=4)
    s[C].parallel(outer)
    s[C].vectorize(inner)
    fadd = tvm.build(s, [A, B, C], tgt, name="myadd")
    dev = tvm.device(tgt.kind.name, 0)
    a = tvm.nd.array(np.random.uniform(size=1024).astype(A.dtype), dev)
    b = tvm.nd.array(np.random.uniform(size=1024).astype(B.dtype), dev)
    c = tvm.nd.array(np.zeros(1024, dtype=C.dtype), dev)
    fadd(a, b, c)
    tvm.testing.assert_allclose(c.numpy(), a.numpy() + b.numpy())
    assert fadd.time_evaluator(fadd.entry_name, dev, number=3)(a, b, c).mean > 0
    temp = utils.tempdir()
    fadd.save(temp.relpath("myadd.o"))
    cc.create_shared(temp.relpath("myadd.so"), [temp.relpath("myadd.o")])
    fadd.export_library(temp.relpath("myadd_lib.so"))
    for name in ("myadd.so", "myadd_lib.so"):
        loaded = tvm.runtime.load_module(temp.relpath(name))
        c = tvm.nd.array(np.zeros(1024, dtype=C.dtype), dev)
        loaded(a, b, c)
        tvm.testing.assert_allclose(c.numpy(), a.numpy() + b.numpy())


def test_schedule_primitives_flow():
    n, m = 64, 48
    A = te.placeholder((m, n), name="A")
    B = te.compute((m, n), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((m, n), lambda i, j: B[i, j] + 1, name="C")
    D = te.compute((m, n), lambda i, j: C[i, j] - A[i, j], name="D")
    s = te.create_schedule(D.op)
    xo, yo, xi, yi = s[D].tile(D.op.axis[0], D.op.axis[1], x_factor=16, y_factor=8)
    fused = s[D].fuse(xo, yo)
    s[D].reorder(fused, yi, xi)
    s[B].compute_inline()
    s[C].compute_at(s[D], fused)
    text = str(tvm.lower(s, [A, D], simple_mode=True))
    assert "B[" not in text.split("{", 1)[1] and "allocate C" in text
    f = tvm.build(s, [A, D])
    a = np.random.default_rng(0).random((m, n), dtype="float32")
    d = tvm.nd.empty((m, n))
    f(tvm.nd.array(a), d)
    tvm.testing.assert_allclose(d.numpy(), a * 2 + 1 - a, rtol=1e-6)


def test_extern_op_flow():
    from tecomp.contrib import cblas
    n, l, m = 32, 16, 24
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((l, m), name="B")
    C = cblas.matmul(A, B)
    D = te.compute(C.shape, lambda i, j: C[i, j] + 1.0, name="D")
    s = te.create_schedule(D.op)
    f = tvm.build(s, [A, B, D], "llvm")

    @tvm.register_func("tvm.contrib.my_tvm_addone", override=True)
    def my_tvm_addone(x, y):
        x.copyto(y)
        y.copyfrom(y.numpy() + 1)

    E = te.extern(A.shape, [A], lambda ins, outs: tir.call_packed("tvm.contrib.my_tvm_addone", ins[0], outs[0]),
                  name="E")
    g = tvm.build(te.create_schedule(E.op), [A, E], "llvm")
    rng = np.random.default_rng(1)
    a, b = rng.random((n, l), dtype="float32"), rng.random((l, m), dtype="float32")
    d, e = tvm.nd.empty((n, m)), tvm.nd.empty((n, l))
    f(tvm.nd.array(a), tvm.nd.array(b), d)
    g(tvm.nd.array(a), e)
    tvm.testing.assert_allclose(d.numpy(), a @ b + 1, rtol=1e-5)
    tvm.testing.assert_allclose(e.numpy(), a + 1, rtol=1e-6)


def test_intrinsics_and_math_flow():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute(A.shape, lambda i: te.exp(A[i]), name="B")
    C = te.compute(A.shape, lambda i: tir.call_pure_extern("float32", "expf", A[i]), name="C")
    D = te.compute(A.shape, lambda i: te.sigmoid(A[i]) + te.log(te.abs(A[i]) + 1.0), name="D")
    s = te.create_schedule([B.op, C.op, D.op])
    f = tvm.build(s, [A, B, C, D], "llvm")
    a = np.linspace(-3, 3, 50).astype("float32")
    outs = [tvm.nd.empty((50,)) for _ in range(3)]
    f(tvm.nd.array(a), *outs)
    tvm.testing.assert_allclose(outs[0].numpy(), np.exp(a), rtol=1e-5)
    tvm.testing.assert_allclose(outs[1].numpy(), np.exp(a), rtol=1e-6)
    tvm.testing.assert_allclose(outs[2].numpy(), 1 / (1 + np.exp(-a)) + np.log(np.abs(a) + 1), rtol=1e-5)


def test_tuple_inputs_flow():
    n, m = te.var("n"), te.var("m")
    A0 = te.placeholder((m, n), name="A0")
    A1 = te.placeholder((m, n), name="A1")
    B0, B1 = te.compute((m, n), lambda i, j: (A0[i, j] + 2, A1[i, j] * 3), name="B")
    s = te.create_schedule(B0.op)
    f = tvm.build(s, [A0, A1, B0, B1])
    rng = np.random.default_rng(2)
    a0, a1 = rng.random((4, 5), dtype="float32"), rng.random((4, 5), dtype="float32")
    b0, b1 = tvm.nd.empty((4, 5)), tvm.nd.empty((4, 5))
    f(tvm.nd.array(a0), tvm.nd.array(a1), b0, b1)
    tvm.testing.assert_allclose(b0.numpy(), a0 + 2, rtol=1e-6)
    tvm.testing.assert_allclose(b1.numpy(), a1 * 3, rtol=1e-6)


def test_gemm_optimisation_steps():
    M = K = N = 128
    bn, kfactor = 32, 4
    k = te.reduce_axis((0, K), "k")
    A = te.placeholder((M, K), name="A")
    B = te.placeholder((K, N), name="B")
    packedB = te.compute((N / bn, K, bn), lambda x, y, z: B[y, x * bn + z], name="packedB")
    C = te.compute((M, N), lambda x, y: te.sum(A[x, k] * packedB[tir.indexdiv(y, bn), k, tir.indexmod(y, bn)],
                                               axis=k), name="C")
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "global")
    mo, no, mi, ni = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    s[CC].compute_at(s[C], no)
    mc, nc = s[CC].op.axis
    (kaxis,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kaxis, factor=kfactor)
    s[CC].reorder(ko, mc, ki, nc)
    s[CC].vectorize(nc)
    s[CC].unroll(ki)
    s[C].parallel(mo)
    x, y, z = s[packedB].op.axis
    s[packedB].vectorize(z)
    s[packedB].parallel(x)
    f = tvm.build(s, [A, B, C], target="llvm", name="mmult")
    rng = np.random.default_rng(3)
    a, b = rng.random((M, K), dtype="float32"), rng.random((K, N), dtype="float32")
    c = tvm.nd.array(np.zeros((M, N), dtype="float32"))
    f(tvm.nd.array(a), tvm.nd.array(b), c)
    tvm.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-5)


_TUNING_SCRIPT = """
import numpy as np
import tecomp as tvm
from tecomp import te, autotvm

@autotvm.template("tutorial/matmul_guardless")
def matmul(N, L, M, dtype):
    A = te.placeholder((N, L), name="A", dtype=dtype)
    B = te.placeholder((L, M), name="B", dtype=dtype)
    k = te.reduce_axis((0, L), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=2)
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(yo, xo, s[C].op.reduce_axis[0], yi, xi)
    return s, [A, B, C]

task = autotvm.task.create("tutorial/matmul_guardless", args=(32, 32, 32, "float32"), target="llvm")
option = autotvm.measure_option(builder="local", runner=autotvm.LocalRunner(number=2))
tuner = autotvm.tuner.RandomTuner(task)
tuner.tune(n_trial=3, measure_option=option, callbacks=[autotvm.callback.log_to_file("matmul.log")])
with autotvm.apply_history_best("matmul.log"):
    with tvm.target.Target("llvm"):
        s, args = matmul(32, 32, 32, "float32")
        func = tvm.build(s, args)
a, b = np.random.rand(32, 32).astype("float32"), np.random.rand(32, 32).astype("float32")
c = tvm.nd.empty((32, 32))
func(tvm.nd.array(a), tvm.nd.array(b), c)
tvm.testing.assert_allclose(c.numpy(), a @ b, rtol=1e-4)
print("tuned and applied")
"""


@pytest.mark.slow
def test_autotvm_template_in_a_script_without_main_guard(tmp_path):
    script = tmp_path / "tune_matmul.py"
    script.write_text(textwrap.dedent(_TUNING_SCRIPT))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("tuned and applied") == 1
