"""Invalid GPU schedules are refused with an error naming the stage, the axis and the cause."""

from __future__ import annotations

import pytest

import tecomp
from tecomp import te
from tecomp.error import LoweringError, ScheduleError
from tecomp.lower.gpu_verify import GPUScheduleError


def _vector(n=256, name="C"):
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 1.0, name=name)
    return A, C, te.create_schedule(C.op)


def _lower(s, args, target="cuda"):
    return tecomp.lower(s, args, target=target)


def _bind(stage, axis, tag):
    stage.bind(axis, te.thread_axis(tag))


def test_gpu_schedule_error_is_a_lowering_error():
    assert issubclass(GPUScheduleError, LoweringError)


def test_unbound_top_loop_names_stage_and_axis():
    A, C, s = _vector()
    with pytest.raises(GPUScheduleError, match=r"stage C, axis i is a serial loop outside any kernel; on cuda every "
                                               r"top-level loop of a stage must be bound to blockIdx\.\* or threadIdx"):
        _lower(s, [A, C])


def test_parallel_or_virtual_thread_at_the_top_is_not_a_kernel():
    A, C, s = _vector()
    s[C].parallel(C.op.axis[0])
    with pytest.raises(GPUScheduleError, match="axis i is a parallel loop outside any kernel"):
        _lower(s, [A, C])
    A, C, s = _vector()
    _bind(s[C], C.op.axis[0], "vthread")
    with pytest.raises(GPUScheduleError, match="axis i is bound to vthread outside any kernel"):
        _lower(s, [A, C])


def test_loop_inside_a_kernel_may_not_be_parallel():
    A, C, s = _vector()
    bx, rest = s[C].split(C.op.axis[0], nparts=4)
    _bind(s[C], bx, "blockIdx.x")
    s[C].parallel(rest)
    with pytest.raises(GPUScheduleError, match="stage C, axis i.inner is marked parallel"):
        _lower(s, [A, C])


def test_a_loop_bound_twice_is_refused_when_scheduling():
    A, C, s = _vector()
    xo, xi = s[C].split(C.op.axis[0], factor=32)
    _bind(s[C], xo, "blockIdx.x")
    with pytest.raises(ScheduleError, match="axis i.outer is already marked thread_binding"):
        _bind(s[C], xo, "threadIdx.x")
    with pytest.raises(ScheduleError, match="thread blockIdx.x is already bound to axis i.outer"):
        _bind(s[C], xi, "blockIdx.x")


def test_a_local_stage_may_not_bind_its_loops():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("local")
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    s[B].compute_at(s[C], bx)
    _bind(s[B], s[B].op.axis[0], "threadIdx.x")
    with pytest.raises(GPUScheduleError, match=r"stage B, axis i \(threadIdx.x\): the stage has scope local, which "
                                               r"is private to each thread"):
        _lower(s, [A, C])


def test_block_index_bound_again_inside_a_kernel_is_a_loop_bound_twice():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("shared")
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    s[B].compute_at(s[C], bx)
    _, inner = s[B].split(s[B].op.axis[0], nparts=8)
    _bind(s[B], _, "blockIdx.x")
    with pytest.raises(GPUScheduleError, match=r"stage B, axis i.outer \(blockIdx.x\) is bound inside axis i.outer "
                                               r"of stage C, already bound to blockIdx.x, so the loop would be bound "
                                               r"twice: its shared storage is private to each blockIdx"):
        _lower(s, [A, C])


def test_threads_per_block_over_the_targets_limit():
    A, C, s = _vector(4096)
    bx, tx = s[C].split(C.op.axis[0], factor=2048)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    with pytest.raises(GPUScheduleError, match=r"2048 threads per block exceed the target's limit of 1024 "
                                               r"\(max_num_threads\): threadIdx.x=2048 \(stage C, axis i.inner"):
        _lower(s, [A, C])
    A, C, s = _vector(4096)
    bx, tx = s[C].split(C.op.axis[0], factor=512)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    _lower(s, [A, C])
    with pytest.raises(GPUScheduleError, match="512 threads per block exceed the target's limit of 256"):
        _lower(s, [A, C], target="cuda -max_num_threads=256")


def test_shared_memory_over_the_limit_names_the_buffers():
    A = te.placeholder((256, 128), name="A")
    C = te.compute((256, 128), lambda i, j: A[i, j] * 2.0, name="C")
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])
    io, ii = s[C].split(C.op.axis[0], factor=128)
    _bind(s[C], io, "blockIdx.x")
    _bind(s[C], C.op.axis[1], "threadIdx.x")
    s[AS].compute_at(s[C], io)
    with pytest.raises(GPUScheduleError, match=r"shared memory of 65536 bytes exceeds the limit of 49152 bytes per "
                                               r"block \(A.shared 65536 B\)"):
        _lower(s, [A, C])


def test_conflicting_extents_for_one_thread_tag():
    A = te.placeholder((64,), name="A")
    C = te.compute((64,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    AS = s.cache_read(A, "shared", [C])
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    s[AS].compute_at(s[C], bx)
    _, t16 = s[AS].split(s[AS].op.axis[0], factor=4)
    _bind(s[AS], t16, "threadIdx.x")
    with pytest.raises(GPUScheduleError, match=r"conflicting extents for threadIdx.x: stage C, axis i.inner "
                                               r"\(threadIdx.x\) has extent 8, but stage A.shared, axis ax0.inner "
                                               r"\(threadIdx.x\) has extent 4"):
        _lower(s, [A, C])


def test_threads_per_block_must_be_a_constant():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    C = te.compute((n,), lambda i: A[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    _bind(s[C], C.op.axis[0], "threadIdx.x")
    with pytest.raises(GPUScheduleError, match="stage C, axis i \\(threadIdx.x\\) has the symbolic extent n"):
        _lower(s, [A, C])


def test_global_intermediate_inside_a_kernel():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    bx, tx = s[C].split(C.op.axis[0], factor=8)
    _bind(s[C], bx, "blockIdx.x")
    _bind(s[C], tx, "threadIdx.x")
    s[B].set_scope("global")  # left unset, TVM's rule makes a stage computed inside threadIdx local
    s[B].compute_at(s[C], tx)
    with pytest.raises(GPUScheduleError, match="stage B has scope global but is computed inside the kernel"):
        _lower(s, [A, C])


def test_shared_stage_at_root_has_no_kernel_to_live_in():
    A = te.placeholder((64,), name="A")
    B = te.compute((64,), lambda i: A[i] * 2.0, name="B")
    C = te.compute((64,), lambda i: B[i] + 1.0, name="C")
    s = te.create_schedule(C.op)
    s[B].set_scope("shared")
    _bind(s[C], C.op.axis[0], "threadIdx.x")
    with pytest.raises(GPUScheduleError, match="stage B has scope shared but is computed at root"):
        _lower(s, [A, C])


def test_build_reports_the_same_errors():
    A, C, s = _vector()
    with pytest.raises(GPUScheduleError, match="outside any kernel"):
        tecomp.build(s, [A, C], target="cuda")
