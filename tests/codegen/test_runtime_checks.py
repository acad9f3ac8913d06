"""Run-time checks of generated CPU code: a heap allocation that fails and (with
``bound_check=True``) a buffer access out of bounds raise tecomp errors naming the buffer; the
calling process survives and the function keeps working."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import BuildError, TecompError
from tecomp.runtime import AllocationError, KernelError, OutOfBoundsError


def _huge_intermediate(rows: int, cols: int):
    """C[0] = sum of row 0 of B, where B (rows x cols float32) is computed in full first."""
    A = te.placeholder((7,), name="A")
    B = te.compute((rows, cols), lambda i, j: A[j % 7] + 1.0, name="B_huge")
    r = te.reduce_axis((0, cols), name="r")
    C = te.compute((1,), lambda i: te.sum(B[i, r], axis=r), name="C")
    return te.create_schedule(C.op), [A, C]


@pytest.mark.parametrize("rows, size", [(1 << 22, "17592186044416"), (1 << 28, "1125899906842624")],
                         ids=["16TiB", "1PiB"])
def test_a_failed_allocation_raises_naming_the_buffer_and_size(rows, size):
    f = tecomp.build(*_huge_intermediate(rows, 1 << 20))
    a, c = np.arange(7, dtype="float32"), np.zeros(1, "float32")
    with pytest.raises(AllocationError, match=rf"cannot allocate {size} bytes for buffer B_huge "
                                              rf"\({rows * (1 << 20)} float32\)"):
        f(a, c)
    with pytest.raises(AllocationError):  # the error state was cleared: it fails the same way again
        f(a, c)


def test_an_allocation_that_fits_still_runs():
    f = tecomp.build(*_huge_intermediate(3, 40_013))  # 480 KB: on the heap, not the stack
    a, c = np.arange(7, dtype="float32"), np.zeros(1, "float32")
    f(a, c)
    np.testing.assert_allclose(c, [(np.arange(40_013) % 7 + 1).sum()], rtol=1e-5)


def _shifted(n: int, shift: int, split: int = 0):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i + shift] * 2.0, name="B")
    s = te.create_schedule(B.op)
    if split:
        outer, inner = s[B].split(B.op.axis[0], factor=split)
        s[B].parallel(outer)
        s[B].vectorize(inner)
    return s, [A, B]


def test_out_of_bounds_reads_raise_only_under_bound_check():
    s, args = _shifted(13, 1)
    a, b = np.arange(13, dtype="float32"), np.zeros(13, "float32")
    tecomp.build(s, args)(a, b)  # unchecked: reads past the end, silently
    checked = tecomp.build(s, args, bound_check=True)
    with pytest.raises(OutOfBoundsError, match="load of buffer A at flat index 13 is out of bounds: "
                                               "it has 13 elements"):
        checked(a, b)
    assert issubclass(OutOfBoundsError, KernelError) and issubclass(KernelError, TecompError)


@pytest.mark.parametrize("n, shift, split, index", [(197, 3, 8, 197), (197, -2, 16, -2), (7, -1, 0, -1)])
def test_bound_check_in_parallel_and_vector_loops(n, shift, split, index):
    s, args = _shifted(n, shift, split)
    f = tecomp.build(s, args, bound_check=True)
    with pytest.raises(OutOfBoundsError, match=f"buffer A at flat index {index} is out of bounds: it has {n}"):
        f(np.ones(n, "float32"), np.zeros(n, "float32"))


def test_bound_check_passes_correct_programs_with_symbolic_shapes():
    n = te.var("n")
    A = te.placeholder((n, 5), name="A")
    B = te.compute((n, 5), lambda i, j: A[i, 4 - j] + 1.0, name="B")
    s = te.create_schedule(B.op)
    s[B].parallel(B.op.axis[0])
    f = tecomp.build(s, [A, B], bound_check=True)
    a = np.random.default_rng(0).standard_normal((197, 5)).astype("float32")
    b = np.zeros_like(a)
    f(a, b)
    np.testing.assert_allclose(b, a[:, ::-1] + 1.0)


def test_bound_check_is_llvm_only():
    s, args = _shifted(13, 0)
    with pytest.raises(BuildError, match="llvm target only"):
        tecomp.build(s, args, target="cuda", bound_check=True)
