"""Invalid schedule primitives raise ScheduleError naming the stage and the axis."""

import pytest

import tecomp
from tecomp import te
from tecomp.error import ScheduleError


def _matmul(n=16):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C, k


def test_split_foreign_axis():
    A, B, C, k = _matmul()
    D = te.compute((4,), lambda x: A[x, 0], name="D")
    s = te.create_schedule([C.op, D.op])
    with pytest.raises(ScheduleError, match=r"split on stage C: axis x is not a leaf .*not an axis of this stage"):
        s[C].split(D.op.axis[0], factor=2)


def test_split_twice_names_axis():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    i = C.op.axis[0]
    s[C].split(i, factor=4)
    with pytest.raises(ScheduleError, match="axis i .*already split"):
        s[C].split(i, factor=2)


def test_split_needs_positive_factor_and_one_kind():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="factor must be positive"):
        s[C].split(C.op.axis[0], factor=0)
    with pytest.raises(ScheduleError, match="exactly one"):
        s[C].split(C.op.axis[0], factor=2, nparts=2)


def test_fuse_non_adjacent():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    with pytest.raises(ScheduleError, match="not adjacent"):
        s[C].fuse(i, k)


def test_reorder_duplicates_and_other_stage():
    A, B, C, k = _matmul()
    D = te.compute((16,), lambda x: A[x, 0], name="D")
    s = te.create_schedule([C.op, D.op])
    i, j = C.op.axis
    with pytest.raises(ScheduleError, match="appears twice"):
        s[C].reorder(i, i)
    with pytest.raises(ScheduleError, match="stage C: axis x"):
        s[C].reorder(i, D.op.axis[0])


def test_vectorize_and_parallel_reduction_axis():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="vectorize on stage C: axis k is a reduction"):
        s[C].vectorize(k)
    with pytest.raises(ScheduleError, match="parallel on stage C: axis k"):
        s[C].parallel(k)


def test_conflicting_annotations():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    s[C].parallel(i)
    with pytest.raises(ScheduleError, match="already marked parallel"):
        s[C].vectorize(i)


def test_bind_same_thread_twice():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    tx = te.thread_axis("threadIdx.x")
    s[C].bind(i, tx)
    with pytest.raises(ScheduleError, match="threadIdx.x is already bound to axis i"):
        s[C].bind(j, te.thread_axis("threadIdx.x"))
    with pytest.raises(ScheduleError, match="expected a te.thread_axis"):
        s[C].bind(j, C.op.axis[0])


def _chain():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * 2.0, name="C")
    return A, B, C


@pytest.mark.parametrize("entry", ["lower", "InferBound"])
def test_compute_at_its_own_loop_or_a_non_reader_fails_when_lowered(entry):
    """As in TVM, compute_at records the placement; lower (or InferBound) refuses it."""
    A, B, C = _chain()
    run = {"lower": lambda s: tecomp.lower(s, [A, C]), "InferBound": te.schedule.InferBound}[entry]
    s = te.create_schedule(C.op)
    s[B].compute_at(s[B], B.op.axis[0])
    with pytest.raises(ScheduleError, match="B is computed at loop i of B .*its own loop"):
        run(s)
    s = te.create_schedule(C.op)
    s[B].compute_at(s[C], C.op.axis[0])
    s[C].compute_at(s[B], B.op.axis[0])  # a cycle: B does not read C
    with pytest.raises(ScheduleError, match="B does not read C"):
        run(s)
    with pytest.raises(ScheduleError, match="not a leaf"):  # the loop itself is checked at the call
        s[B].compute_at(s[C], B.op.axis[0])


def test_compute_inline_reduction_and_output():
    A, B, C, k = _matmul()
    D = te.compute((16, 16), lambda i, j: C[i, j] + 1.0, name="D")
    s = te.create_schedule(D.op)
    with pytest.raises(ScheduleError, match="reduction cannot be inlined"):
        s[C].compute_inline()
    with pytest.raises(ScheduleError, match="output of the schedule"):
        s[D].compute_inline()


def test_placeholder_stage_cannot_be_scheduled():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    with pytest.raises(ScheduleError, match="placeholder"):
        s[A].split(A.op.shape[0], factor=2)


def test_cache_read_non_reader_and_scope():
    A, B, C, k = _matmul()
    D = te.compute((16,), lambda x: A[x, 0], name="D")
    s = te.create_schedule([C.op, D.op])
    with pytest.raises(ScheduleError, match="does not read"):
        s.cache_read(B, "local", [D])
    with pytest.raises(ScheduleError, match="unknown storage scope"):
        s.cache_read(A, "texture", [C])


def test_tensor_not_in_schedule():
    A, B, C, k = _matmul()
    s = te.create_schedule(C.op)
    other = te.compute((4,), lambda x: x * 1.0, name="other")
    with pytest.raises(ScheduleError, match="other is not part of this schedule"):
        _ = s[other]
