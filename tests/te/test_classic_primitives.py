"""TVM's classic schedule primitives beyond the basics: cache_write after scheduling (relayout),
list-form cache_write, fuse() of nothing, create_group, set_store_predicate, scope inference
and the IterVar kinds ``iter_var_attrs`` reports."""

from __future__ import annotations

import numpy as np
import pytest

from tecomp import te
from tecomp.error import ScheduleError


def _matmul(n, m, l):
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((l, m), name="B")
    k = te.reduce_axis((0, l), name="k")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C


def test_cache_write_after_tile_lays_the_cache_out_along_the_leaves(check, rng):
    A, B, C = _matmul(13, 7, 197)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], 4, 4)
    ko, ki = s[C].split(C.op.reduce_axis[0], factor=8)
    CL = s.cache_write(C, "local")
    # one cache axis per data-parallel leaf, in leaf order; the split of k stays a reduction
    assert [iv.var.name for iv in CL.op.axis] == ["i.outer.c", "j.outer.c", "i.inner.c", "j.inner.c"]
    assert [int(d) for d in CL.shape] == [4, 2, 4, 4]
    assert s[C].relations == [] and len(s[C].leaf_iter_vars) == 2
    s[CL].vectorize(CL.op.axis[3])
    a = rng.uniform(-1, 1, (13, 197)).astype("float32")
    b = rng.uniform(-1, 1, (197, 7)).astype("float32")
    check(s, [A, B, C], [a, b], a @ b, rtol=1e-4, atol=1e-4)


def test_cache_write_after_fuse_and_reorder(check, rng):
    A = te.placeholder((7, 13), name="A")
    C = te.compute((7, 13), lambda i, j: A[i, j] * 2.0 + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[C].reorder(C.op.axis[1], C.op.axis[0])
    f = s[C].fuse(*s[C].leaf_iter_vars)
    fo, fi = s[C].split(f, factor=8)
    CL = s.cache_write(C, "local")
    assert [int(d) for d in CL.shape] == [12, 8]  # 91 elements in tiles of 8, the last one guarded
    a = rng.uniform(-1, 1, (7, 13)).astype("float32")
    check(s, [A, C], [a], a * 2 + 1)


def test_cache_write_of_a_multi_output_compute_as_a_list(check, rng):
    A = te.placeholder((197,), name="A")
    D, E = te.compute((197,), lambda i: (A[i] + 1.0, A[i] * 3.0), name="DE")
    s = te.create_schedule(D.op)
    DL, EL = s.cache_write([D, E], "local")
    assert DL.op is EL.op and DL.value_index == 0 and EL.value_index == 1
    xo, xi = s[D].split(s[D].op.axis[0], factor=16)
    s[DL].compute_at(s[D], xo)
    a = rng.uniform(-1, 1, 197).astype("float32")
    check(s, [A, D, E], [a], [a + 1, a * 3])


def test_cache_write_of_part_of_a_multi_output_compute_is_refused():
    A = te.placeholder((7,), name="A")
    D, E = te.compute((7,), lambda i: (A[i] + 1.0, A[i] * 3.0), name="DE")
    s = te.create_schedule(D.op)
    with pytest.raises(ScheduleError, match="cache_write on stage DE: give every output of its compute"):
        s.cache_write(D, "local")


def test_cache_write_refuses_to_drop_a_loop_another_stage_is_computed_at():
    A = te.placeholder((13,), name="A")
    B = te.compute((13,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((13,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[0], factor=4)
    s[B].compute_at(s[C], xo)
    with pytest.raises(ScheduleError, match="cache_write on stage C: stage B is computed at its loop i.outer"):
        s.cache_write(C, "local")


def test_fuse_of_no_axes_is_a_new_outermost_loop_of_extent_one(check, rng):
    A = te.placeholder((13,), name="A")
    C = te.compute((13,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    single = s[C].fuse()
    assert s[C].leaf_iter_vars[0] is single and single.dom.extent.value == 1
    s[C].parallel(single)
    a = rng.uniform(-1, 1, 13).astype("float32")
    check(s, [A, C], [a], a + 1)


@pytest.mark.parametrize("factor", [None, 7])
def test_fusing_a_data_parallel_and_a_reduction_axis_is_one_reduction_loop(check, rng, factor):
    A, B, C = _matmul(5, 3, 4)
    s = te.create_schedule(C.op)
    j, k = C.op.axis[1], C.op.reduce_axis[0]
    fused = s[C].fuse(j, k)  # adjacent in (i, j, k): each output element of a row, then its terms
    assert fused.iter_type == k.iter_type
    if factor is not None:  # a split that does not divide: both the init and the update are guarded
        s[C].split(fused, factor)
    a = rng.uniform(-1, 1, (5, 4)).astype("float32")
    b = rng.uniform(-1, 1, (4, 3)).astype("float32")
    check(s, [A, B, C], [a, b], a @ b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("primitive", ["bind", "tensorize", "rfactor", "cache_write"])
def test_a_loop_over_both_kinds_of_axis_refuses_what_needs_them_apart(primitive):
    A, B, C = _matmul(5, 3, 4)
    s = te.create_schedule(C.op)
    fused = s[C].fuse(C.op.axis[1], C.op.reduce_axis[0])
    calls = {"bind": lambda: s[C].bind(fused, te.thread_axis("threadIdx.x")),
             "tensorize": lambda: s[C].tensorize(fused, None),
             "rfactor": lambda: s.rfactor(C, fused),
             "cache_write": lambda: s.cache_write(C, "local")}
    with pytest.raises(ScheduleError, match="fuses data-parallel and reduction axes"):
        calls[primitive]()


def test_create_group_computes_its_members_at_one_loop(check, rng):
    A = te.placeholder((13, 7), name="A")
    x = te.compute((13, 7), lambda i, j: A[i, j] * 2.0, name="x")
    x1 = te.compute((13, 7), lambda i, j: x[i, j] + 1.0, name="x1")
    x2 = te.compute((13, 7), lambda i, j: x1[i, j] * x[i, j], name="x2")
    s = te.create_schedule(x2.op)
    g = s.create_group(outputs=x1, inputs=A)
    assert s[x1].group is g and s[x].group is g and s[x2].group is None
    g.compute_at(s[x2], x2.op.axis[0])
    assert s[x].attach_stage is s[x2] and s[x1].attach_stage is s[x2]
    a = rng.uniform(-1, 1, (13, 7)).astype("float32")
    func = check(s, [A, x2], [a], (a * 2 + 1) * (a * 2))
    assert "x[float32 * 7]" in str(func)  # one row of x per iteration of x2's outer loop


def test_create_group_without_inputs_and_nested():
    A = te.placeholder((7,), name="A")
    x = te.compute((7,), lambda i: A[i] * 2.0, name="x")
    y = te.compute((7,), lambda i: x[i] + 1.0, name="y")
    z = te.compute((7,), lambda i: y[i] + 1.0, name="z")
    s = te.create_schedule(z.op)
    inner = s.create_group(outputs=y, inputs=x)
    assert [st.name for st in inner.members] == ["y"]
    outer = s.create_group(outputs=y, inputs=x, include_inputs=True)
    assert [st.name for st in outer.members] == ["x", "y"] and inner.group is outer
    with pytest.raises(ScheduleError, match="stage y is in the group"):
        outer.compute_at(s[y], y.op.axis[0])


def test_store_predicate_guards_the_stores(check, rng):
    A = te.placeholder((13,), name="A")
    C = te.compute((13,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[C].set_store_predicate(C.op.axis[0] % 2 == 0)
    a = rng.uniform(-1, 1, 13).astype("float32")
    expected = np.where(np.arange(13) % 2 == 0, a + 1, 0).astype("float32")
    check(s, [A, C], [a], expected)


def test_scope_inferred_from_the_thread_binding_of_the_attach_point():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    assert s[B].scope == "global"
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[B].compute_at(s[C], bx)
    assert s[B].scope == "shared"
    s[B].compute_at(s[C], tx)
    assert s[B].scope == "local"
    s[B].set_scope("global")
    assert s[B].scope == "global"


def test_iter_var_attrs_report_tvm_kinds():
    A = te.placeholder((64, 64), name="A")
    C = te.compute((64, 64), lambda i, j: A[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    xo, xi = s[C].split(C.op.axis[1], factor=8)
    s[C].vectorize(xi)
    s[C].unroll(xo)
    s[C].parallel(C.op.axis[0])
    attrs = s[C].iter_var_attrs
    assert attrs[xi].iter_type == te.IterVar.Vectorized
    assert attrs[xo].iter_type == te.IterVar.Unrolled
    assert attrs[C.op.axis[0]].iter_type == te.IterVar.Parallelized
    assert (te.IterVar.DimInfo, te.IterVar.Tensorized) == (4, 8)


def test_double_buffer_refuses_an_output():
    A = te.placeholder((7,), name="A")
    C = te.compute((7,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="double_buffer on stage C: it is an output"):
        s[C].double_buffer()


def test_double_buffer_alternates_two_halves_over_the_attach_loop(check, rng):
    A = te.placeholder((13, 197), name="A")
    B = te.compute((13, 197), lambda i, j: A[i, j] * 2.0, name="B")
    C = te.compute((13, 197), lambda i, j: B[i, j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    s[B].double_buffer()
    a = rng.uniform(-1, 1, (13, 197)).astype("float32")
    func = check(s, [A, C], [a], a * 2 + 1)
    text = str(func)
    assert "B[float32 * 394]" in text and "floormod(i, 2)" in text


@pytest.mark.parametrize("how", ["split", "fuse"])
def test_splitting_or_fusing_a_compute_at_target_moves_the_attached_stage(check, rng, how):
    """As in TVM: a stage computed at an axis that is then split sits at the inner loop; at an axis
    that is fused, at the fused loop."""
    A = te.placeholder((6, 10), name="A")
    B = te.compute((6, 10), lambda i, j: A[i, j] * 2, name="B")
    C = te.compute((6, 10), lambda i, j: B[i, j] + 1, name="C")
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[1])
    if how == "split":
        _, new = s[C].split(C.op.axis[1], 4)
    else:
        new = s[C].fuse(C.op.axis[0], C.op.axis[1])
    assert s[B].attach_ivar is new
    a = rng.standard_normal((6, 10)).astype("float32")
    check(s, [A, C], [a], a * 2 + 1)


def test_a_nested_group_is_placed_inside_its_enclosing_group(check, rng):
    """TVM's nested groups: the outer group goes to the consumer's row, then the inner group (x) to a
    loop of x1 within it, so x is computed one element at a time."""
    A = te.placeholder((5, 6), name="A")
    x = te.compute((5, 6), lambda i, j: A[i, j] * 2.0, name="x")
    x1 = te.compute((5, 6), lambda i, j: x[i, j] + 1.0, name="x1")
    x2 = te.compute((5, 6), lambda i, j: x1[i, j] + 2.0, name="x2")
    s = te.create_schedule(x2.op)
    g1 = s.create_group(outputs=x, inputs=x, include_inputs=True)
    g2 = s.create_group(outputs=x1, inputs=x, include_inputs=True)
    assert s[x].group is g1 and g1.group is g2
    g2.compute_at(s[x2], x2.op.axis[0])
    g1.compute_at(s[x1], x1.op.axis[1])
    assert s[x1].attach_stage is s[x2] and s[x].attach_stage is s[x1]
    bounds = te.schedule.InferBound(s.normalize())
    assert bounds[x.op.axis[0]].extent.value == 1 and bounds[x.op.axis[1]].extent.value == 1
    a = rng.uniform(-1, 1, (5, 6)).astype("float32")
    check(s, [A, x2], [a], a * 2 + 3)
