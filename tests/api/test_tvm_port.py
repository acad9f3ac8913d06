"""A TVM script ports by changing imports: api.md sections 1-3, written the TVM way."""

import numpy as np

import tecomp as tvm
from tecomp import te


def test_vadd_script_from_the_api_contract(tmp_path):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B", dtype="float32")
    C = te.compute(A.shape, lambda i: A[i] + B[i], name="C")
    assert C.shape[0] is n and C.dtype == "float32" and C.op.input_tensors == [A, B]

    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=64)
    s[C].vectorize(xi)
    s[C].parallel(xo)
    mod = tvm.lower(s, [A, B, C], name="vadd", simple_mode=True)
    text = str(mod)
    assert "parallel for (i.outer" in text and "ramp(" in text

    f = tvm.build(s, [A, B, C], target="llvm", name="vadd")
    assert "define" in f.get_source("ll") and f.get_source("asm")
    dev = tvm.device("llvm", 0)
    assert dev == tvm.cpu(0)
    a = tvm.nd.array(np.arange(1000, dtype="float32"), dev)
    b = tvm.nd.array(np.ones(1000, "float32"), dev)
    c = tvm.nd.empty((1000,), "float32", dev)
    f(a, b, c)
    np.testing.assert_array_equal(c.numpy(), np.arange(1000) + 1)
    t = f.time_evaluator(f.entry_name, dev, number=10, repeat=3)(a, b, c)
    assert len(t.results) == 3 and t.mean > 0 and t.median > 0

    path = str(tmp_path / "vadd.so")
    f.export_library(path)
    g = tvm.runtime.load_module(path)
    c2 = tvm.nd.empty((1000,), "float32", dev)
    g(a, b, c2)
    np.testing.assert_array_equal(c2.numpy(), c.numpy())


def test_matmul_with_reduce_axis_and_schedule_primitives():
    X = te.placeholder((64, 32), name="X")
    Y = te.placeholder((32, 48), name="Y")
    k = te.reduce_axis((0, 32), name="k")
    M = te.compute((64, 48), lambda i, j: te.sum(X[i, k] * Y[k, j], axis=k), name="M")
    s = te.create_schedule(M.op)
    MM = s.cache_write(M, "local")
    mo, no, mi, ni = s[M].tile(M.op.axis[0], M.op.axis[1], x_factor=16, y_factor=16)
    f_ = s[M].fuse(mo, no)
    s[M].parallel(f_)
    s[MM].compute_at(s[M], f_)
    ko, ki = s[MM].split(s[MM].op.reduce_axis[0], nparts=4)
    s[MM].reorder(ko, ki, *s[MM].op.axis)
    s[MM].unroll(ki)
    s[MM].vectorize(s[MM].op.axis[1])
    f = tvm.build(s, [X, Y, M])
    x = np.random.default_rng(1).standard_normal((64, 32)).astype("float32")
    y = np.random.default_rng(2).standard_normal((32, 48)).astype("float32")
    m = tvm.nd.empty((64, 48))
    f(tvm.nd.array(x), tvm.nd.array(y), m)
    np.testing.assert_allclose(m.numpy(), x @ y, rtol=1e-5, atol=1e-5)


def test_expression_language_names():
    x = te.var("x", "float32")
    i = te.size_var("i")
    for e in (te.exp(x), te.log(x), te.sqrt(x), te.rsqrt(x), te.tanh(x), te.sigmoid(x), te.erf(x),
              te.abs(x), te.power(x, 2.0), te.floor(x), te.ceil(x), te.if_then_else(i > 0, x, 0.0),
              te.max_value("float32"), te.min_value("int8"), te.const(1, "int64"),
              te.floordiv(i, 3), te.floormod(i, 3), te.indexdiv(i, 3), te.indexmod(i, 3),
              te.all(i > 0, i < 9), te.any(i > 0, i < 9), x.astype("float16")):
        assert e.dtype
    for dtype in ("float16", "float32", "float64", "int8", "int32", "int64", "uint8", "bool"):
        assert te.placeholder((2,), dtype=dtype).dtype == dtype
