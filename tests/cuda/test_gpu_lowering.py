"""GPU lowering: kernels in launch form, guards, hoisted shared memory, barriers, launch extents.

Every schedule is checked numerically by running the lowered cuda IR in the reference
interpreter (threads of a block in lockstep between barriers) and compiled with nvcc.
"""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.lower.launch import kernel_launch, kernels, workspaces
from tecomp.lower.thread_sync import barrier, insert_barriers
from tecomp.lower.gpu_verify import GPUScheduleError
from tecomp.runtime.cuda_module import evaluate
from tecomp.tir import (Allocate, BufferLoad, BufferStore, Evaluate, For, ForKind, IfThenElse, Mutator,
                        PrimFunc, Var, const, decl_buffer, post_order_visit, seq)
from tecomp.tir.interpreter import run
from tecomp.tir.races import DataRaceError

from gpu_helpers import emulate, emulate_and_compile


def _count(func, predicate) -> int:
    found = []
    post_order_visit(func.body, lambda n: found.append(n) if predicate(n) else None)
    return len(found)


def _is_barrier(n) -> bool:
    return isinstance(n, Evaluate) and getattr(n.value, "op", None) == "tvm_storage_sync"


def tiled_matmul(n=32, l=16, m=32, tile=8, k_tile=4):
    """The classic schedule: 8x8 threads, 2x2 outputs each, A and B tiles staged in shared memory."""
    A = te.placeholder((n, l), name="A")
    B = te.placeholder((l, m), name="B")
    k = te.reduce_axis((0, l), name="k")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    AA, BB = s.cache_read(A, "shared", [C]), s.cache_read(B, "shared", [C])
    CL = s.cache_write(C, "local")
    i, j = s[C].op.axis
    io, ii = s[C].split(i, factor=2 * tile)
    jo, ji = s[C].split(j, factor=2 * tile)
    ty, iii = s[C].split(ii, factor=2)
    tx, jii = s[C].split(ji, factor=2)
    s[C].reorder(io, jo, ty, tx, iii, jii)
    for axis, tag in ((io, "blockIdx.y"), (jo, "blockIdx.x"), (ty, "threadIdx.y"), (tx, "threadIdx.x")):
        s[C].bind(axis, te.thread_axis(tag))
    s[CL].compute_at(s[C], tx)
    ko, ki = s[CL].split(s[CL].op.reduce_axis[0], factor=k_tile)
    s[CL].reorder(ko, ki, *s[CL].op.axis)
    for T in (AA, BB):
        s[T].compute_at(s[CL], ko)
        fused = s[T].fuse(*s[T].op.axis)
        rest, t_x = s[T].split(fused, factor=tile)
        _, t_y = s[T].split(rest, factor=tile)
        s[T].bind(t_x, te.thread_axis("threadIdx.x"))
        s[T].bind(t_y, te.thread_axis("threadIdx.y"))
    return s, [A, B, C]


def test_tiled_matmul_launch_form_barriers_and_numerics(rng):
    s, args = tiled_matmul()
    a, b = rng.standard_normal((32, 16), "float32"), rng.standard_normal((16, 32), "float32")
    func, _ = emulate_and_compile(s, args, [a, b], a @ b, rtol=1e-4, atol=1e-4)
    (kernel,) = kernels(func)
    launch = kernel_launch(kernel)
    assert launch.name == "main_kernel0"
    assert [int(g) for g in launch.grid] == [2, 2, 1] and launch.block == (8, 8, 1)
    assert [b.name for b in launch.shared] == ["A.shared", "B.shared"]
    # RAW between the copies and the products, WAR before the next k tile overwrites them.
    assert _count(func, _is_barrier) == 2
    text = str(func)
    k_loop = text.index("for (k.outer")
    assert text.index("tvm_storage_sync", k_loop) < text.index("A.shared[", k_loop)
    assert "thread_binding(threadIdx.x) for (threadIdx.x, 8)" in text


def test_without_its_barriers_the_kernel_races(rng):
    """Barriers removed: the race detector names a shared tile and two threads; the CUDA C run in
    other thread orders than the interpreter's disagrees with it."""
    s, args = tiled_matmul()
    func = tecomp.lower(s, args, target="cuda")["main"]

    class DropBarriers(Mutator):
        def visit_SeqStmt(self, node):
            kept = [self.visit(c) for c in node.seq if not _is_barrier(c)]
            return seq(*kept)

    broken = PrimFunc(func.name, func.params, DropBarriers().visit(func.body), func.size_vars, func.attrs)
    a, b = rng.standard_normal((32, 16), "float32"), rng.standard_normal((16, 32), "float32")
    (good,) = emulate(func, [a, b], [(32, 32)])
    np.testing.assert_allclose(good, a @ b, rtol=1e-4, atol=1e-4)
    with pytest.raises(DataRaceError, match=r"data race on [AB]\.shared\[\d+\]: .* by thread blockIdx\.y=0, "
                                            r"blockIdx\.x=0, threadIdx\.y=\d+, threadIdx\.x=\d+ in `.*` and .* with "
                                            r"no barrier between them"):
        run(broken, [a, b, np.zeros((32, 32), "float32")], races=True)
    with pytest.raises(AssertionError, match="the emitted CUDA C run on the CPU differs from the interpreter"):
        emulate(broken, [a, b], [(32, 32)])


def test_plain_lowering_without_a_target_is_unchanged():
    s, args = tiled_matmul()
    text = str(tecomp.lower(s, args))
    assert "kernel" not in text and "tvm_storage_sync" not in text
    assert "thread_binding(threadIdx.x) for (j.inner.outer, 8)" in text


def test_stage_computed_outside_thread_loops_runs_in_thread_zero_then_syncs(rng):
    """A shared stage at the block level (not bound to threads) is written by thread 0, read by all."""
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[63 - i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("shared")
    bx, tx = s[C].split(C.op.axis[0], nparts=2)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[B].compute_at(s[C], bx)
    a = rng.standard_normal(64).astype("float32")
    func, _ = emulate_and_compile(s, [A, C], [a], (a * 2)[::-1] + 1)
    text = str(func)
    assert "if ((threadIdx.x == 0))" in text
    assert _count(func, _is_barrier) == 1


def test_local_stage_outside_thread_loops_is_computed_by_every_thread(rng):
    A = te.placeholder((4,), name="A")
    S = te.compute((1,), lambda i: A[0] + A[1] + A[2] + A[3], name="S")
    C = te.compute((32,), lambda i: S[0] * i.astype("float32"), name="C")
    s = te.create_schedule(C.op)
    s[S].set_scope("local")
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[S].compute_at(s[C], bx)
    a = rng.standard_normal(4).astype("float32")
    func, _ = emulate_and_compile(s, [A, C], [a], a.sum(dtype="float32") * np.arange(32, dtype="float32"))
    assert "threadIdx.x == 0" not in str(func) and _count(func, _is_barrier) == 0


def test_local_stage_read_through_the_same_thread_index_holds_one_thread_part(rng):
    """A local stage computed at a threadIdx.x loop, read by a consumer whose loop is bound to
    threadIdx.x too: that loop is the same thread, so each thread computes one element (TVM's
    bound), not the consumer loop's 32."""
    A = te.placeholder((64,), name="A")
    A1 = te.compute((64,), lambda i: A[i] * 2.0, name="A1")
    A2 = te.compute((64,), lambda i: A1[i] + 1.0, name="A2")
    A3 = te.compute((64,), lambda i: A2[i] * 3.0, name="A3")
    s = te.create_schedule(A3.op)
    s[A2].set_scope("shared")
    s[A1].set_scope("local")
    bx, tx = s[A3].split(A3.op.axis[0], factor=32)
    s[A3].bind(bx, te.thread_axis("blockIdx.x"))
    s[A3].bind(tx, te.thread_axis("threadIdx.x"))
    s[A2].compute_at(s[A3], tx)
    s[A2].bind(s[A2].split(A2.op.axis[0], nparts=1)[1], te.thread_axis("threadIdx.x"))
    s[A1].compute_at(s[A3], tx)
    bounds = te.schedule.InferBound(s)
    assert bounds[A1.op.axis[0]].extent.value == 1 and bounds[A2.op.axis[0]].extent.value == 32
    func = tecomp.lower(s, [A, A3], target="cuda")["main"]
    sizes = {}
    post_order_visit(func.body, lambda n: sizes.update({n.buffer.name: n.buffer.shape}) if isinstance(n, Allocate) else None)
    assert [int(d) for d in sizes["A1"]] == [1] and [int(d) for d in sizes["A2"]] == [32]
    a = rng.standard_normal(64).astype("float32")
    (got,) = emulate(func, [a], [(64,)])
    np.testing.assert_allclose(got, (a * 2 + 1) * 3, rtol=1e-5)


def test_vthread_loops_become_serial_loops(rng):
    A = te.placeholder((64,), name="A")
    C = te.compute((64,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    vo, rest = s[C].split(C.op.axis[0], nparts=2)
    bx, tx = s[C].split(rest, factor=8)
    s[C].reorder(bx, vo, tx)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(vo, te.thread_axis("vthread"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    a = rng.standard_normal(64).astype("float32")
    func, _ = emulate_and_compile(s, [A, C], [a], a + 1)
    assert "vthread" not in str(func)
    assert "for (i.outer, 2)" in str(func)
    s = te.create_schedule(C.op)  # innermost, under the thread loop
    bx, rest = s[C].split(C.op.axis[0], nparts=2)
    tx, vi = s[C].split(rest, nparts=8)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    s[C].bind(vi, te.thread_axis("vthread"))
    func, _ = emulate_and_compile(s, [A, C], [a], a + 1)
    assert "vthread" not in str(func) and "for (i.inner.inner, 4)" in str(func)


def test_symbolic_extent_gives_a_grid_expression_the_runtime_evaluates(rng):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] * 3.0, name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=64)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    func = tecomp.lower(s, [A, C], target="cuda")["main"]
    launch = kernel_launch(kernels(func)[0])
    from tecomp.codegen.cuda import expr_to_json
    grid = expr_to_json(launch.grid[0], func.size_vars)
    for size in (1, 64, 65, 1000):
        assert evaluate(grid, [size]) == -(-size // 64)
        a = rng.standard_normal(size).astype("float32")
        (c,) = emulate(func, [a], [(size,)])
        np.testing.assert_allclose(c, a * 3)


def test_each_root_stage_is_a_kernel_with_workspaces_between(rng):
    A = te.placeholder((4, 32), name="A")
    T = te.compute((4, 32), lambda i, j: A[i, j] * 2.0, name="T")
    C = te.compute((4, 32), lambda i, j: T[i, 31 - j] + 1.0, name="C")
    s = te.create_schedule(C.op)
    for stage in (s[T], s[C]):
        fused = stage.fuse(*stage.op.axis)
        bx, tx = stage.split(fused, factor=32)
        stage.bind(bx, te.thread_axis("blockIdx.x"))
        stage.bind(tx, te.thread_axis("threadIdx.x"))
    a = rng.standard_normal((4, 32)).astype("float32")
    func, _ = emulate_and_compile(s, [A, C], [a], (a * 2)[:, ::-1] + 1)
    assert [k.node for k in kernels(func)] == ["main_kernel0", "main_kernel1"]
    assert [b.name for b in workspaces(func)] == ["T"]
    assert _count(func, _is_barrier) == 0  # kernels end before the next starts


# ---------------------------------------------------------------- barrier placement on hand-built IR

def _threads_body(*stmts):
    return seq(*stmts)


def _plan(body, threads=8):
    tx = _plan.tx
    return insert_barriers(body, {tx: const(threads)})


_plan.tx = Var("threadIdx.x")


def test_read_of_another_threads_element_gets_a_barrier():
    tx = _plan.tx
    S, O = decl_buffer((8,), "float32", "S", scope="shared"), decl_buffer((8,), "float32", "O")
    body = _plan(seq(BufferStore(S, const(1.0), (tx,)), BufferStore(O, BufferLoad(S, (7 - tx,)), (tx,))))
    assert [_is_barrier(c) for c in body.seq] == [False, True, False]


def test_a_thread_rereading_its_own_element_needs_no_barrier():
    tx = _plan.tx
    S, O = decl_buffer((8,), "float32", "S", scope="shared"), decl_buffer((8,), "float32", "O")
    body = _plan(seq(BufferStore(S, const(1.0), (tx,)), BufferStore(O, BufferLoad(S, (tx,)), (tx,))))
    assert not any(_is_barrier(c) for c in body.seq)


def test_value_written_by_thread_zero_is_synced_before_everyone_reads_it():
    tx = _plan.tx
    S, O = decl_buffer((1,), "float32", "S", scope="shared"), decl_buffer((8,), "float32", "O")
    body = _plan(seq(IfThenElse(tx == 0, BufferStore(S, const(2.0), (const(0),))),
                     BufferStore(O, BufferLoad(S, (const(0),)), (tx,))))
    assert [_is_barrier(c) for c in body.seq] == [False, True, False]


def test_loop_carried_overwrite_gets_a_barrier_at_the_top_of_the_loop():
    tx, k = _plan.tx, Var("k")
    S, O = decl_buffer((8,), "float32", "S", scope="shared"), decl_buffer((4, 8), "float32", "O")
    body = For(k, const(0), const(4), ForKind.SERIAL,
               seq(BufferStore(S, k.astype("float32"), (tx,)), BufferStore(O, BufferLoad(S, (7 - tx,)), (k, tx))))
    planned = _plan(body)
    assert [_is_barrier(c) for c in planned.body.seq] == [True, False, True, False]


def test_conflict_inside_a_thread_dependent_branch_is_an_error():
    tx = _plan.tx
    S, O = decl_buffer((8,), "float32", "S", scope="shared"), decl_buffer((8,), "float32", "O")
    body = IfThenElse(tx < 4, seq(BufferStore(S, const(1.0), (tx,)),
                                  BufferStore(O, BufferLoad(S, (tx + 1,)), (tx,))))
    with pytest.raises(GPUScheduleError, match="buffer S is written and read by different threads inside a branch"):
        _plan(body)


def test_barrier_placement_runs_in_the_interpreter(rng):
    """A hand-built block reversal: the planned barrier makes the interpreter's answer right."""
    tx, bx = Var("threadIdx.x"), Var("blockIdx.x")
    A, O = decl_buffer((2, 8), "float32", "A"), decl_buffer((2, 8), "float32", "O")
    S = decl_buffer((8,), "float32", "S", scope="shared")
    inner = seq(BufferStore(S, BufferLoad(A, (bx, tx)), (tx,)), BufferStore(O, BufferLoad(S, (7 - tx,)), (bx, tx)))
    planned = insert_barriers(inner, {tx: const(8)})

    def kernel(body):
        return For(bx, const(0), const(2), ForKind.THREAD_BINDING,
                   Allocate(S, For(tx, const(0), const(8), ForKind.THREAD_BINDING, body, "threadIdx.x")),
                   "blockIdx.x")

    a = rng.standard_normal((2, 8)).astype("float32")
    out = np.zeros((2, 8), "float32")
    run(PrimFunc("rev", (A, O), kernel(planned)), [a, out], order="shuffle", races=True)
    np.testing.assert_array_equal(out, a[:, ::-1])
    run(PrimFunc("rev", (A, O), kernel(inner)), [a, out])
    assert np.isnan(out).any()
    with pytest.raises(DataRaceError, match=r"data race on S\[4\]: read by thread blockIdx.x=0, threadIdx.x=3 in "
                                            r"`O\[.*` and written by thread blockIdx.x=0, threadIdx.x=4 in "
                                            r"`S\[threadIdx.x\] = "):
        run(PrimFunc("rev", (A, O), kernel(inner)), [a, out], races=True)
    assert barrier() is not barrier()
