"""Bad input to lower/build/call: a TecompError naming the culprit, and the process goes on."""

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import ArgumentError, LoweringError, TargetError, TecompError


def _vadd(n=16):
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    return A, B, C


@pytest.fixture
def vadd():
    A, B, C = _vadd()
    return tecomp.build(te.create_schedule(C.op), [A, B, C], name="vadd")


def test_wrong_arity(vadd):
    a = np.zeros(16, "float32")
    with pytest.raises(ArgumentError, match=r"vadd expects 3 arguments \(A, B, C\), got 2"):
        vadd(a, a)


def test_wrong_shape_names_argument(vadd):
    a, c = np.zeros(16, "float32"), np.zeros(16, "float32")
    with pytest.raises(ArgumentError, match=r"argument 1 \(B\).*dimension 0 is 15, expected 16"):
        vadd(a, np.zeros(15, "float32"), c)


def test_wrong_dtype_names_argument(vadd):
    a, c = np.zeros(16, "float32"), np.zeros(16, "float32")
    with pytest.raises(ArgumentError, match=r"argument 1 \(B\): expected dtype float32, got float64"):
        vadd(a, np.zeros(16), c)


def test_wrong_rank_and_type(vadd):
    a, c = np.zeros(16, "float32"), np.zeros(16, "float32")
    with pytest.raises(ArgumentError, match="expected 1 dimensions"):
        vadd(a, np.zeros((4, 4), "float32"), c)
    with pytest.raises(ArgumentError, match="expected a tecomp NDArray or a numpy array, got list"):
        vadd(a, [0.0] * 16, c)


def test_output_aliasing_an_input_is_refused(vadd):
    a, b = np.ones(16, "float32"), np.ones(16, "float32")
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): shares memory with argument 0"):
        vadd(a, b, a)
    vadd(a, a, b)  # reading one array twice is fine
    np.testing.assert_array_equal(b, 2 * a)


def test_symbolic_shapes_must_agree():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.placeholder((n,), name="B")
    C = te.compute((n,), lambda i: A[i] + B[i], name="C")
    f = tecomp.build(te.create_schedule(C.op), [A, B, C], name="vadd_n")
    with pytest.raises(ArgumentError, match=r"argument 1 \(B\): dimension 0 is 12, but size var n is 10"):
        f(np.zeros(10, "float32"), np.zeros(12, "float32"), np.zeros(10, "float32"))
    out = np.zeros(10, "float32")
    f(np.ones(10, "float32"), np.ones(10, "float32"), out)  # still usable after the error
    np.testing.assert_array_equal(out, 2)


def test_unknown_target():
    A, B, C = _vadd()
    s = te.create_schedule(C.op)
    with pytest.raises(TargetError, match="opencl"):
        tecomp.build(s, [A, B, C], target="opencl")
    with pytest.raises(TargetError):
        tecomp.build(s, [A, B, C], target="llvm -mcpu")


def test_cuda_target_rejects_unbound_loops_clearly():
    A, B, C = _vadd()
    with pytest.raises(LoweringError, match="stage C, axis i is a serial loop outside any kernel; on cuda"):
        tecomp.build(te.create_schedule(C.op), [A, B, C], target="cuda")


def test_input_missing_from_arguments():
    A, B, C = _vadd()
    with pytest.raises(LoweringError, match="reads input B, which is not in the argument list"):
        tecomp.lower(te.create_schedule(C.op), [A, C])


def test_argument_that_is_not_a_tensor():
    A, B, C = _vadd()
    with pytest.raises(LoweringError, match="argument 1"):
        tecomp.lower(te.create_schedule(C.op), [A, "B", C])


def test_shape_var_no_argument_carries():
    n = te.var("n")
    A = te.placeholder((16,), name="A")
    C = te.compute((n,), lambda i: A[i] * 2.0, name="C")
    D = te.compute((16,), lambda i: C[i] + 1.0, name="D")
    with pytest.raises(LoweringError, match="uses n"):
        tecomp.lower(te.create_schedule(D.op), [A, D])


def test_compute_at_not_dominating_a_consumer():
    A = te.placeholder((16,), name="A")
    B = te.compute((16,), lambda i: A[i] + 1.0, name="B")
    C = te.compute((16,), lambda i: B[i] * 2.0, name="C")
    D = te.compute((16,), lambda i: C[i] + B[i], name="D")
    s = te.create_schedule(D.op)
    s[B].compute_at(s[C], C.op.axis[0])
    with pytest.raises(LoweringError, match="B is computed at C.i, but its consumer D runs outside"):
        tecomp.lower(s, [A, D])
    s[B].compute_root()  # the schedule is still usable once fixed
    f = tecomp.build(s, [A, D])
    a, d = np.arange(16, dtype="float32"), np.zeros(16, "float32")
    f(a, d)
    np.testing.assert_array_equal(d, (a + 1) * 2 + (a + 1))


def test_all_errors_share_the_base_class():
    for cls in (ArgumentError, LoweringError, TargetError):
        assert issubclass(cls, TecompError)


def test_build_without_args():
    A, B, C = _vadd()
    with pytest.raises(TecompError, match="give the argument tensors"):
        tecomp.build(te.create_schedule(C.op))
