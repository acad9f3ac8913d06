"""TVM classic-era names a ported test reaches for: bound-inference results as TVM reports them,
schedule attributes, module paths (``tvm.driver.build_module``, ``tvm.contrib.clang``/``nvcc``,
``tvm.container``), absent device kinds and ``tvm.testing`` helpers."""

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


@pytest.mark.parametrize("kw,leaf", [({"factor": 32}, 1), ({"nparts": 32}, 0)])
def test_split_by_more_than_the_extent_gives_a_loop_of_the_extent(check, rng, kw, leaf):
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
