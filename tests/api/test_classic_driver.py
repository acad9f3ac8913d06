"""Classic-TVM build and driver usage, TIR names and errors, written the TVM way (imports rewritten)."""

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir


def _vadd(n=64):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute(A.shape, lambda i: A[i] + B[i], name="C")
    return A, B, C, te.create_schedule(C.op)


def test_errors_are_tvm_errors_and_runtime_errors():
    assert issubclass(tvm.TecompError, tvm.TVMError) and issubclass(tvm.TVMError, RuntimeError)
    A, B, C, s = _vadd()
    with pytest.raises(RuntimeError):
        s[C].split(C.op.axis[0], factor=0)
    with pytest.raises(tvm.error.TVMError):
        tvm.build(s, [A, C])  # B is read but not an argument


def test_runtime_convert_and_enabled():
    c = tvm.runtime.convert(3)
    assert isinstance(c, tir.IntImm) and c.value == 3
    assert [x.value for x in tvm.runtime.convert([1, 2.5])] == [1, 2.5]
    assert tvm.runtime.enabled("llvm") and not tvm.runtime.enabled("opencl")


def test_pass_context_disables_vectorize_and_unrolls():
    A, B, C, s = _vadd()
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[C].vectorize(xi)
    with tvm.transform.PassContext(opt_level=3, config={"tir.disable_vectorize": True}):
        plain = str(tvm.lower(s, [A, B, C], simple_mode=True))
    assert "ramp(" not in plain and "ramp(" in str(tvm.lower(s, [A, B, C]))
    A2, B2, C2, s2 = _vadd(4)
    with tvm.transform.PassContext(config={"tir.UnrollLoop": {"auto_max_step": 16}}):
        unrolled = str(tvm.lower(s2, [A2, B2, C2]))
    assert "for (" not in unrolled and "for (" in str(tvm.lower(s2, [A2, B2, C2]))


def test_pass_context_instruments_bound_checkers():
    n = 16
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[tir.indexmod(i * 3, 17)], name="B")  # reads A[16] at i = 11
    s = te.create_schedule(B.op)
    with tvm.transform.PassContext(opt_level=3, config={"tir.instrument_bound_checkers": True}):
        f = tvm.build(s, [A, B], "llvm")
    with pytest.raises(tvm.runtime.OutOfBoundsError):
        f(tvm.nd.array(np.zeros(n, "float32")), tvm.nd.empty((n,)))
    with pytest.raises(tvm.TVMError, match="unknown config key"):
        tvm.transform.PassContext(config={"tir.no_such_option": 1})


def test_build_of_lowered_functions_list_module_and_driver():
    A, B, C, s = _vadd()
    add = tvm.lower(s, [A, B, C], name="vadd")
    D = te.compute(A.shape, lambda i: A[i] * 2, name="D")
    twice = tvm.lower(te.create_schedule(D.op), [A, D], name="twice")
    m = tvm.build([add, twice], "llvm")
    a = tvm.nd.array(np.arange(64, dtype="float32"))
    b, c = tvm.nd.empty((64,)), tvm.nd.empty((64,))
    m["twice"](a, b)
    m["vadd"](a, b, c)
    np.testing.assert_allclose(c.numpy(), np.arange(64) * 3)
    single = tvm.driver.build(add, target="llvm")
    single(a, b, c)
    assert tvm.build({"llvm": twice})["twice"] is not None
    np.testing.assert_allclose(c.numpy(), np.arange(64) * 3)


def test_lower_with_an_inlined_argument_stage():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: A[i] + 1, name="B")
    C = te.compute((8,), lambda i: B[i] * 2, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_inline()
    mod = tvm.lower(s, [A, B, C], simple_mode=True)
    assert [p.name for p in mod["main"].params] == ["A", "B", "C"]
    f = tvm.build(s, [A, B, C])
    c = tvm.nd.empty((8,))
    f(tvm.nd.array(np.ones(8, "float32")), tvm.nd.empty((8,)), c)
    np.testing.assert_allclose(c.numpy(), 4)


def test_target_host_and_kind_name():
    t = tvm.target.Target(target="llvm", host="llvm")
    assert t.kind.name == "llvm" and t.host.kind.name == "llvm" and tvm.target.Target("cuda").host is None
    assert tvm.target.Target.host() == tvm.target.Target("llvm")


def test_tir_names_evaluate_in_compiled_code():
    n = 16
    A = te.placeholder((n,), name="A")
    I = te.placeholder((n,), name="I", dtype="int32")
    B = te.compute((n,), lambda i: tir.call_pure_extern("float32", "expf", A[i]) + tir.exp(A[i])
                   + tir.fmod(A[i], 0.3) + tir.call_llvm_pure_intrin("float32", "llvm.fabs", 1, A[i]), name="B")
    C = te.compute((n,), lambda i: tir.popcount(I[i]) + tir.indexmod(i, 5)
                   + tir.call_llvm_pure_intrin("int32", "llvm.ctpop.i32", tir.const(1, "uint32"), I[i]), name="C")
    s = te.create_schedule([B.op, C.op])
    f = tvm.build(s, [A, I, B, C])
    a = np.linspace(-1, 1, n).astype("float32")
    ints = np.arange(n, dtype="int32") * 7
    b, c = tvm.nd.empty((n,)), tvm.nd.empty((n,), "int32")
    f(tvm.nd.array(a), tvm.nd.array(ints), b, c)
    np.testing.assert_allclose(b.numpy(), 2 * np.exp(a) + np.fmod(a, np.float32(0.3)) + np.abs(a), rtol=1e-5)
    np.testing.assert_array_equal(c.numpy(), [2 * bin(v).count("1") + k % 5 for k, v in enumerate(ints)])
    x = te.var("x")
    assert isinstance(x.equal(3), tir.EQ)


def test_decl_buffer_options_and_loop_ir_field_names():
    buf = tir.decl_buffer((4, 8), "float32", name="W", offset_factor=1, data_alignment=64, strides=[16, 1])
    assert [int(s) for s in buf.strides] == [16, 1]
    assert int(tir.decl_buffer((4,), elem_offset=3).elem_offset) == 3  # used by binds= (test_classic_binds)
    A = te.placeholder((16, 4), name="A")
    B = te.compute((16, 4), lambda i, j: A[i, j] + 1, name="B")
    C = te.compute((16, 4), lambda i, j: B[i, j] * 2, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    body = tvm.lower(s, [A, C])["main"].body
    assert isinstance(body, tir.For) and body.loop_var.name == "i" and body.kind == tir.ForKind.SERIAL
    allocs = []
    tir.stmt_functor.post_order_visit(body, lambda n: allocs.append(n) if isinstance(n, tir.Allocate) else None)
    assert len(allocs) == 1 and [int(e) for e in allocs[0].extents] == [4] and allocs[0].dtype == "float32"


def test_infer_bound_and_schedule_ops_entry_points():
    A, B, C, s = _vadd()
    xo, xi = s[C].split(C.op.axis[0], factor=16)
    s = s.normalize()
    bounds = te.schedule.InferBound(s)
    assert int(bounds[xo].extent) == 4 and int(bounds[xi].extent) == 16
    stmt = te.schedule.ScheduleOps(s, bounds)
    assert isinstance(stmt, tir.For) and stmt.loop_var.name == "i.outer"
    assert tvm.ir.structural_equal(stmt, stmt)


def test_ir_builder_loop_kinds_allocate_and_let():
    n = 32
    A = te.placeholder((n,), name="A")

    def body(ins, outs):
        ib = tir.ir_builder.create()
        a, out = ib.buffer_ptr(ins[0]), ib.buffer_ptr(outs[0])
        tmp = ib.allocate("float32", (n,), name="tmp", scope="local")
        with ib.for_range(0, n, name="i", kind="parallel") as i:
            tmp[i] = a[i] * 3.0
        half = ib.let("half", n // 2)
        with ib.for_range(0, n, name="j", kind="unroll") as j:
            with ib.if_scope(j < half):
                out[j] = tmp[j]
            with ib.else_scope():
                out[j] = -tmp[j]
        return ib.get()

    B = te.extern((n,), [A], body, name="B")
    f = tvm.build(te.create_schedule(B.op), [A, B])
    a = np.arange(n, dtype="float32")
    b = tvm.nd.empty((n,))
    f(tvm.nd.array(a), b)
    np.testing.assert_allclose(b.numpy(), np.where(np.arange(n) < n // 2, 3 * a, -3 * a))


def test_contrib_utils_tempdir_and_cc(tmp_path):
    from tecomp.contrib import cc, utils
    temp = utils.tempdir()
    src = temp.relpath("add.c")
    with open(src, "w") as fh:
        fh.write("int add_one(int x) { return x + 1; }\n")
    cc.create_shared(temp.relpath("libadd.so"), [src])
    import ctypes
    assert ctypes.CDLL(temp.relpath("libadd.so")).add_one(41) == 42
    assert "libadd.so" in temp.listdir()
    A, B, C, s = _vadd()
    path = temp.relpath("vadd.so")
    tvm.build(s, [A, B, C]).export_library(path)
    assert tvm.runtime.load_module(path) is not None


def test_testing_helpers():
    tvm.testing.assert_allclose(tvm.nd.array(np.ones(3, "float32")), np.ones(3))
    with pytest.raises(AssertionError):
        tvm.testing.assert_allclose(np.ones(3), np.zeros(3))
    assert ("llvm", tvm.cpu(0)) in tvm.testing.enabled_targets()


@tvm.testing.parametrize_targets("llvm")
def test_parametrize_targets_gives_target_and_device(target, dev):
    assert target == "llvm" and dev == tvm.cpu(0)


def test_autotvm_names():
    from tecomp import autotvm
    opt = autotvm.measure_option(builder="local", runner=autotvm.LocalRunner(number=1))
    assert isinstance(opt["builder"], autotvm.LocalBuilder)
    with pytest.raises(tvm.TecompError, match="only named builder is 'local'"):
        autotvm.measure_option(builder="rpc", runner="local")
    assert autotvm.callback.log_to_file is autotvm.callback.log_to_db


def test_auto_inline_elementwise_and_injective():
    m, n = te.var("m"), te.var("n")
    A, B = te.placeholder((m, n), name="A"), te.placeholder((m, n), name="B")
    T1 = te.compute((m, n), lambda i, j: A(i, j) * B(i, j), name="T1")
    T2 = te.compute((m, n), lambda i, j: T1(j % m, i % n) + 1, name="T2")  # reads T1 out of order
    k = te.reduce_axis((0, n), "k")
    R = te.compute((m,), lambda i: te.sum(T2[i, k], axis=k), name="R")
    s = te.create_schedule(R.op)
    te.schedule.AutoInlineElemWise(s)
    assert [s[t].attach_type for t in (T1, T2, R)] == ["inline", "root", "root"]
    s = te.create_schedule(R.op)
    te.schedule.AutoInlineInjective(s)
    assert [s[t].attach_type for t in (T1, T2, R)] == ["inline", "inline", "root"]
    f = tvm.build(s, [A, B, R])
    a, b = np.random.default_rng(8).random((2, 3, 3), dtype="float32")
    r = tvm.nd.empty((3,))
    f(tvm.nd.array(a), tvm.nd.array(b), r)
    np.testing.assert_allclose(r.numpy(), ((a * b).T + 1).sum(axis=1), rtol=1e-5)
