"""TVM classic-era names a ported test reaches for: bound-inference results as TVM reports them,
schedule attributes, module paths (``tvm.driver.build_module``, ``tvm.contrib.clang``/``nvcc``,
``tvm.container``), absent device kinds and ``tvm.testing`` helpers."""

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te


def _chain(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2, name="B")
    C = te.compute((n,), lambda i: B[i] + 1, name="C")
    return A, B, C


def test_infer_bound_is_a_map_with_the_tile_size_of_an_attached_stage():
    n = te.var("n")
    A, B, C = _chain(n)
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=8)
    s[B].compute_at(s[C], xo)
    bounds = tvm.te.schedule.InferBound(s)
    assert isinstance(bounds, tvm.container.Map) and isinstance(bounds, dict)
    # the last tile is clipped to n inside the loop nest; the region's size is the tile's, 8
    assert bounds[B.op.axis[0]].extent.value == 8
    assert bounds[xi].extent.value == 8
    tvm.testing.assert_prim_expr_equal(bounds[B.op.axis[0]].min, xo.var * 8)
    assert bounds[C.op.axis[0]].extent is n


def test_infer_bound_knows_computed_shapes_are_non_negative():
    m, n = te.var("m"), te.var("n")  # no placeholder: the sizes appear in computed shapes only
    X = te.compute((m, n), lambda i, j: tvm.tir.const(1.0, "float32"), name="X")
    Y = te.compute((m, n), lambda i, j: X[i, j] + 1.0, name="Y")
    s = te.create_schedule(Y.op)
    s[X].compute_at(s[Y], Y.op.axis[0])
    bounds = tvm.te.schedule.InferBound(s)
    assert bounds[X.op.axis[0]].extent.value == 1
    assert bounds[X.op.axis[1]].extent is n  # a row of X, not max(n, 0)


@pytest.mark.parametrize("kw,leaf", [({"factor": 32}, 1), ({"nparts": 32}, 0)])
def test_infer_bound_reports_a_split_by_more_than_the_extent_as_the_extent(check, rng, kw, leaf):
    A, B, C = _chain(8)
    s = te.create_schedule(C.op)
    parts = s[C].split(C.op.axis[0], **kw)
    s[B].compute_at(s[C], parts[0])
    assert tvm.te.schedule.InferBound(s)[parts[leaf]].extent.value == 8
    a = rng.standard_normal(8).astype("float32")
    check(s, [A, C], [a], a * 2 + 1)


def test_warp_storage_covers_the_lanes_of_threadIdx_x():
    m = te.var("m")
    A = te.placeholder((m, 8), name="A")
    B = te.compute((m, 8), lambda i, j: A[i, j] + 1, name="B")
    C = te.compute((m, 8), lambda i, j: B[i, j] * 3, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("warp")
    xo, xi = s[C].split(C.op.axis[0], factor=32)
    s[C].bind(xi, te.thread_axis("threadIdx.x"))
    s[B].compute_at(s[C], C.op.axis[1])
    bounds = tvm.te.schedule.InferBound(s)
    assert bounds[B.op.axis[0]].extent.value == 32  # relaxed over the warp's lanes
    assert bounds[B.op.axis[1]].extent.value == 1


def test_pragma_keys_and_the_vectorize_pragma(check, rng):
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] + 1, name="B")
    s = te.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=8)
    s[B].pragma(xo, "my_pragma")
    s[B].pragma(xi, "vectorize")
    assert [k.value for k in s[B].iter_var_attrs[xo].pragma_keys] == ["my_pragma"]
    assert s[B].iter_var_attrs[xi].iter_type == tvm.te.schedule.IterVar.Vectorized
    a = rng.standard_normal(64).astype("float32")
    check(s, [A, B], [a], a + 1)


def test_module_paths_of_classic_scripts():
    from tecomp.contrib import clang, nvcc
    from tecomp.driver.build_module import schedule_to_module

    assert tvm.te.schedule.Buffer is tvm.tir.Buffer
    A, B, C = _chain(16)
    mod = schedule_to_module(te.create_schedule(C.op), [A, C])
    assert isinstance(mod["main"], tvm.tir.PrimFunc)
    assert isinstance(clang.find_clang(required=False), list)
    with pytest.raises(tvm.BuildError, match="target must be"):
        nvcc.compile_cuda("", target="spirv")


def test_tvm_device_kinds_that_do_not_exist_here():
    for kind in ("opencl", "metal", "vulkan", "rocm"):
        dev = tvm.device(kind, 0)
        assert not dev.exist and not tvm.testing.device_enabled(kind)
    with pytest.raises(tvm.TargetError, match="unknown device"):
        tvm.device("tpu")


def test_assert_prim_expr_equal():
    x = te.var("x")
    tvm.testing.assert_prim_expr_equal(x * 2 + x, 3 * x)
    with pytest.raises(ValueError, match="not equal"):
        tvm.testing.assert_prim_expr_equal(x + 1, x)


def test_cache_write_of_a_reduction_whose_extent_is_the_data_axis(check, rng):
    X = te.placeholder((10,), name="X")

    def prefix_max_sum(i):
        k = te.reduce_axis((0, i), name="k")  # the reduction's extent is the output index
        init = lambda dtype: tvm.tir.Select(i > 1, tvm.tir.const(0, dtype), i.astype(dtype))  # noqa: E731
        red = te.comm_reducer(lambda x, y: tvm.te.max(x + y, i.astype("float32")), init, name="red")
        return red(X[k], axis=k)

    Y = te.compute((10,), prefix_max_sum, name="Y")
    s = te.create_schedule(Y.op)
    s.cache_write(Y, "local")
    x = rng.standard_normal(10).astype("float32")
    want = np.empty(10, "float32")
    for i in range(10):
        acc = np.float32(0 if i > 1 else i)
        for k in range(i):
            acc = max(acc + x[k], np.float32(i))
        want[i] = acc
    check(s, [X, Y], [x], want)


def test_schedule_ops_of_a_multi_output_compute_named_twice():
    A = te.placeholder((8, 4), name="A")
    C1, C2 = te.compute(A.shape, lambda i, j: (A[i, j] + 1, A[i, j] * 2), name="C")
    s = te.create_schedule([C1.op, C2.op])
    s.cache_write([C1, C2], "local")
    stmt = tvm.te.schedule.ScheduleOps(s.normalize(), None)
    stores = []
    tvm.tir.stmt_functor.post_order_visit(
        stmt, lambda n: stores.append(n.buffer.name) if isinstance(n, tvm.tir.BufferStore) else None)
    assert {"C.v0", "C.v1"} <= set(stores)


def test_attach_type_equals_tvm_codes_and_auto_inline_broadcast():
    A = te.placeholder((1,), name="A")
    B = te.placeholder((4, 4), name="B")
    T1 = te.compute((4, 4), lambda i, j: A(0) * B(i, j), name="T1", tag="broadcast")
    T2 = te.compute((4, 4), lambda i, j: T1(i, j) + 1, name="T2")
    s = te.create_schedule(T2.op)
    assert s[T1].attach_type == 1 and s[T1].attach_type == "root"
    tvm.te.schedule.AutoInlineBroadcast(s)
    assert s[T1].attach_type == 2 and s[T1].attach_type == "inline" and s[T1].attach_type != 1
    s2 = te.create_schedule(T2.op)
    s2[T1].compute_at(s2[T2], s2[T2].op.axis[0])
    assert s2[T1].attach_type == 4


@pytest.mark.parametrize("div", ["truncdiv", "floordiv", "floormod"])
def test_integer_division_by_a_zero_element_does_not_trap(div):
    """TVM leaves x / 0 undefined; tecomp's kernels give some value instead of a SIGFPE that kills
    the process, and every other element is right."""
    fn = {"truncdiv": tvm.tir.truncdiv, "floordiv": te.floordiv, "floormod": te.floormod}[div]
    ref = {"truncdiv": lambda a, b: np.trunc(a / b), "floordiv": np.floor_divide, "floormod": np.mod}[div]
    A = te.placeholder((8,), name="A", dtype="int32")
    B = te.placeholder((8,), name="B", dtype="int32")
    C = te.compute((8,), lambda i: fn(A[i], B[i]), name="C")
    f = tvm.build(te.create_schedule(C.op), [A, B, C])
    a = np.arange(-7, 9, 2, dtype="int32")
    b = np.array([3, -2, 0, 5, -3, 0, 2, 7], dtype="int32")
    c = tvm.nd.empty((8,), "int32")
    f(tvm.nd.array(a), tvm.nd.array(b), c)
    nonzero = b != 0
    np.testing.assert_array_equal(c.numpy()[nonzero], ref(a[nonzero], b[nonzero]).astype("int32"))


def test_bare_float_and_int_dtypes_are_32_bits():
    A = te.placeholder((4,), name="A", dtype="int")
    C = te.compute((4,), lambda i: A[i].equal(1).astype("float"), name="C")
    assert A.dtype == "int32" and C.dtype == "float32"
    f = tvm.build(te.create_schedule(C.op), [A, C])
    c = tvm.nd.empty((4,), C.dtype)
    f(tvm.nd.array(np.array([1, 0, 1, 2], "int32")), c)
    np.testing.assert_array_equal(c.numpy(), [1, 0, 1, 0])


def test_target_codegen_llvm_version_and_int1_in_an_llvm_intrinsic():
    assert tvm.target.codegen.llvm_version_major() >= 11
    assert tvm.tir.const(0, "int1").dtype == "bool"

    def ctlz(ins, outs):
        ib = tvm.tir.ir_builder.create()
        lz = tvm.tir.call_llvm_pure_intrin("int32", "llvm.ctlz", tvm.tir.const(2, "uint32"),
                                           ins[0].vload((0, 0)), tvm.tir.const(0, "int1"))
        ib.emit(outs[0].vstore((0, 0), lz))
        return ib.get()

    A = te.placeholder((1, 1), dtype="int32", name="A")
    C = te.extern((1, 1), [A], ctlz, name="C", dtype="int32")
    f = tvm.build(te.create_schedule(C.op), [A, C])
    c = tvm.nd.empty((1, 1), "int32")
    f(tvm.nd.array(np.array([[1 << 20]], "int32")), c)
    assert c.numpy()[0, 0] == 11
