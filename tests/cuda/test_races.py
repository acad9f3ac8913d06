"""The interpreter's race detector: GPU threads in several orders, a shadow record of shared and global memory.

``interpreter.run(func, args, order=..., races=True)`` runs the blocks and the threads of
each block ascending, descending or in a seeded shuffle, and reports an address written by
one thread and read or written by another with no barrier between them. Every CUDA
schedule of the library and candidates of the CUDA tuning templates pass it in all three
orders; a barrier removed before a neighbour's read, two threads storing to one address and
two blocks storing to one address are each reported, naming the buffer, threads and statements.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.schedules import conv2d, dense, norm, reduction, softmax
from tecomp.schedules.cuda import CUDA_SCHEDULES, schedule_fallback, schedule_for
from tecomp.tir import BufferStore, FloorMod, Mutator, PrimFunc, const, seq
from tecomp.tir.interpreter import run
from tecomp.tir.races import ORDERS, DataRaceError

from test_gpu_lowering import _is_barrier


def _drop_barriers(func):
    class DropBarriers(Mutator):
        def visit_SeqStmt(self, node):
            return seq(*[self.visit(c) for c in node.seq if not _is_barrier(c)])
    return PrimFunc(func.name, func.params, DropBarriers().visit(func.body), func.size_vars, func.attrs)


def _check_race_free(func, inputs, want, rtol=1e-5):
    """``func`` matches ``want`` (a list of arrays) in every thread order with the race detector on."""
    for k, order in enumerate(ORDERS):
        outs = [np.full(w.shape, np.nan, w.dtype) for w in want]
        run(func, [x.copy() for x in inputs] + outs, order=order, seed=k, races=True)
        for got, w in zip(outs, want):
            np.testing.assert_allclose(got, w, rtol=rtol, atol=rtol, err_msg=f"{order} order")


def _neighbour_stage(rows=2, n=32):
    """C[r, i] = B[r, max(i - 1, 0)] + B[r, i], B = 2 A staged in shared memory by a row's 32 threads."""
    A = te.placeholder((rows, n), name="A")
    B = te.compute((rows, n), lambda r, i: A[r, i] * 2.0, name="B")
    C = te.compute((rows, n), lambda r, i: B[r, te.max(i - 1, 0)] + B[r, i], name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("shared")
    s[C].bind(C.op.axis[0], te.thread_axis("blockIdx.x"))
    s[C].bind(C.op.axis[1], te.thread_axis("threadIdx.x"))
    s[B].compute_at(s[C], C.op.axis[0])
    s[B].bind(s[B].op.axis[1], te.thread_axis("threadIdx.x"))
    return tecomp.lower(s, [A, C], target="cuda")["main"]


def test_a_missing_barrier_before_a_neighbours_read_is_reported(rng):
    func = _neighbour_stage()
    a = rng.standard_normal((2, 32)).astype("float32")
    want = 2 * a[:, np.maximum(np.arange(32) - 1, 0)] + 2 * a
    _check_race_free(func, [a], [want])
    broken = _drop_barriers(func)
    c = np.zeros((2, 32), "float32")
    run(broken, [a, c])  # ascending: every thread's neighbour already wrote, so the numbers hide the bug
    np.testing.assert_allclose(c, want)
    run(broken, [a, c], order="descending")
    assert not np.allclose(c, want)
    with pytest.raises(DataRaceError, match=r"data race on B\[\d+\]: written by thread blockIdx.x=0, threadIdx.x=\d+ "
                                            r"in `B\[.*` and read by thread blockIdx.x=0, threadIdx.x=\d+ in `C\[.*`, "
                                            r"with no barrier between them"):
        run(broken, [a, c], races=True)


def test_a_one_block_kernel_reading_the_previous_kernels_output_is_not_a_race(rng):
    """A kernel launched as one block (thread loops, no grid loop) starts after the grid kernel before it."""
    A = te.placeholder((4, 32), name="A")
    B = te.compute((4, 32), lambda r, i: A[r, i] * 2.0, name="B")
    C = te.compute((4, 32), lambda r, i: B[3 - r, i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].bind(B.op.axis[0], te.thread_axis("blockIdx.x"))
    s[B].bind(B.op.axis[1], te.thread_axis("threadIdx.x"))
    s[C].bind(s[C].fuse(*C.op.axis), te.thread_axis("threadIdx.x"))
    func = tecomp.lower(s, [A, C], target="cuda")["main"]
    a = rng.standard_normal((4, 32)).astype("float32")
    _check_race_free(func, [a], [2 * a[::-1] + 1])


class _StoreAt(Mutator):
    """Every store to ``name`` goes to ``index(old index)`` instead."""

    def __init__(self, name, index):
        super().__init__()
        self.name, self.index = name, index

    def visit_BufferStore(self, node):
        if node.buffer.name != self.name:
            return node
        return BufferStore(node.buffer, node.value, (self.index(node.indices[0]),))


def _vadd(n=128, threads=64):
    A, B = te.placeholder((n,), name="A"), te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=threads)
    s[C].bind(bx, te.thread_axis("blockIdx.x"))
    s[C].bind(tx, te.thread_axis("threadIdx.x"))
    return tecomp.lower(s, [A, B, C], target="cuda")["main"]


@pytest.mark.parametrize("index, between", [
    (lambda i: const(3, i.dtype), "with no barrier between them"),          # every thread stores C[3]
    (lambda i: FloorMod(i, const(64, i.dtype)), "in different blocks"),    # block 1 stores where block 0 did
])
def test_two_threads_storing_one_address_are_reported(index, between, rng):
    func = _vadd()
    broken = PrimFunc(func.name, func.params, _StoreAt("C", index).visit(func.body), func.size_vars, func.attrs)
    a, b = rng.standard_normal(128).astype("float32"), rng.standard_normal(128).astype("float32")
    _check_race_free(func, [a, b], [a + b])
    with pytest.raises(DataRaceError, match=rf"data race on C\[\d+\]: written by thread .* and written by thread "
                                            rf".*, {between}"):
        run(broken, [a, b, np.zeros(128, "float32")], races=True)


# ---------------------------------------------------------------- the library's schedules

def _case(kind):
    """(outputs, inputs as placeholders) of a small instance of an operator family."""
    X = te.placeholder((3, 40), name="X")
    if kind == "injective":
        return te.compute((3, 40), lambda i, j: X[i, j] * 2.0 + 1.0, name="Y"), [X]
    if kind == "reduce":
        return reduction.sum(X, axis=1), [X]
    if kind in ("softmax", "log_softmax"):
        return getattr(softmax, kind)(X, -1), [X]
    if kind == "layer_norm":
        G, B = te.placeholder((40,), name="G"), te.placeholder((40,), name="B")
        return norm.layer_norm(X, G, B, -1), [X, G, B]
    if kind in ("dense", "matmul"):
        W = te.placeholder((24, 40) if kind == "dense" else (40, 24), name="W")
        return getattr(dense, kind)(X, W), [X, W]
    if kind == "batch_matmul":
        P, Q = te.placeholder((2, 6, 16), name="P"), te.placeholder((2, 16, 8), name="Q")
        return dense.batch_matmul(P, Q), [P, Q]
    D = te.placeholder((1, 4, 6, 6), name="D")
    if kind == "conv2d_nchw":
        K = te.placeholder((4, 4, 3, 3), name="K")
        return conv2d.conv2d_nchw(D, K, 1, 1), [D, K]
    K = te.placeholder((4, 1, 3, 3), name="K")
    return conv2d.conv2d_nchw(D, K, 1, 1, groups=4), [D, K]


def _reference(out, inputs, arrays):
    """The outputs of the unscheduled computation, run by the interpreter (the trusted oracle)."""
    func = tecomp.lower(te.create_schedule(out.op), inputs + [out])["main"]
    want = np.zeros([int(d) for d in out.shape], out.dtype)
    run(func, arrays + [want])
    return want


@pytest.mark.parametrize("kind", sorted(CUDA_SCHEDULES) + ["fallback"])
def test_every_cuda_schedule_of_the_library_is_race_free(kind, rng):
    out, inputs = _case("reduce" if kind == "fallback" else kind)
    arrays = [rng.standard_normal([int(d) for d in t.shape]).astype("float32") for t in inputs]
    s = schedule_fallback(out) if kind == "fallback" else schedule_for(kind, out, "cuda")
    func = tecomp.lower(s, inputs + [out], target="cuda")["main"]
    _check_race_free(func, arrays, [_reference(out, inputs, arrays)], rtol=1e-4)


@pytest.mark.parametrize("template, args, count, max_threads", [
    ("schedules/cuda/dense", (16, 24, 32, "float32", False, True), 1, 64),
    ("schedules/cuda/reduce", ((6, 64), 6), 2, None),
    pytest.param("schedules/cuda/dense", (16, 24, 32, "float32", False, True), 16, None, marks=pytest.mark.slow),
    pytest.param("schedules/cuda/softmax", ((4, 64),), 8, None, marks=pytest.mark.slow),
    pytest.param("schedules/cuda/conv2d_nchw", ((1, 4, 6, 6), (4, 4, 3, 3), 1, 1, 1, 1, "float32"), 8, None,
                 marks=pytest.mark.slow),
])
def test_tuning_candidates_are_race_free(template, args, count, max_threads, rng):
    """Candidates spread over a CUDA template's space (by default only small blocks: the race detector
    runs every thread in Python), checked as LocalRunner(check_correctness=True) checks them."""
    task = autotvm.task.create(template, args, target="cuda")
    space = [task.config_space.get(k) for k in range(len(task.config_space))]
    if max_threads is not None:
        space = [c for c in space if _block_threads(c) <= max_threads]
    assert space
    for index in np.linspace(0, len(space) - 1, min(count, len(space))).astype(int):
        sch, tensors = task.instantiate(space[index])
        try:
            func = tecomp.lower(sch, tensors, target="cuda")["main"]
        except tecomp.error.TecompError:
            continue  # over a device limit: the builder records it, nothing runs
        *inputs, out = tensors
        arrays = [rng.standard_normal([int(d) for d in t.shape]).astype("float32") for t in inputs]
        _check_race_free(func, arrays, [_reference(out, inputs, arrays)], rtol=1e-4)


def _block_threads(config):
    """Threads per block a dense candidate asks for (its thread knobs' product)."""
    return math.prod(config[k].val for k in ("threads_y", "threads_x"))
