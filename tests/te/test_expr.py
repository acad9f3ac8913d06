"""The tensor-expression language: construction, dtypes, and errors at definition time."""

import pytest

from tecomp import te
from tecomp.error import ExprError
from tecomp.tir import Call, FloorDiv, FloorMod, Reduce, Select


def test_placeholder_and_compute_shapes():
    n = te.var("n")
    A = te.placeholder((n, 4), name="A")
    B = te.compute(A.shape, lambda i, j: A[i, j] * 2.0, name="B")
    assert B.dtype == "float32"
    assert B.ndim == 2
    assert [iv.name for iv in B.op.axis] == ["i", "j"]
    assert B.op.input_tensors == [A]


def test_integer_division_is_floor_and_true_division_rejected_on_ints():
    i = te.var("i")
    assert isinstance(i // 4, FloorDiv)
    assert isinstance(i % 4, FloorMod)
    assert isinstance(te.indexdiv(i, 4), FloorDiv)
    with pytest.raises(ExprError, match="ambiguous"):
        _ = i / 4


def test_constant_folding_of_shapes():
    assert (te.const(6) * 4 + 1).value == 25
    assert (te.const(7) // 2).value == 3
    assert (te.const(-7) % 3).value == 2


def test_dtype_promotion():
    i = te.var("i")
    x = te.var("x", "float16")
    assert (i + 1.5).dtype == "float32"
    assert (x * 2.0).dtype == "float16"
    assert (i.astype("int64") + i).dtype == "int64"
    assert (te.var("y", "float64") + x).dtype == "float64"


def test_reduction_and_reducers():
    A = te.placeholder((8, 8), name="A")
    k = te.reduce_axis((0, 8), name="k")
    S = te.compute((8,), lambda i: te.sum(A[i, k], axis=k), name="S")
    assert isinstance(S.op.body[0], Reduce)
    assert S.op.reduce_axis == (k,)
    M = te.compute((8,), lambda i: te.max(A[i, k], axis=k), name="M")
    assert M.op.body[0].combiner.name == "max"
    elementwise = te.max(A[0, 0], A[1, 1])
    assert not isinstance(elementwise, Reduce)


def test_comm_reducer_custom():
    prod = te.comm_reducer(lambda x, y: x * y, lambda t: te.const(1, t), name="prod")
    A = te.placeholder((4, 3), name="A")
    k = te.reduce_axis((0, 3), name="k")
    P = te.compute((4,), lambda i: prod(A[i, k], axis=k), name="P")
    assert P.op.body[0].combiner.name == "prod"


def test_reduction_must_be_whole_body():
    A = te.placeholder((8, 8), name="A")
    k = te.reduce_axis((0, 8), name="k")
    with pytest.raises(ExprError, match="whole body"):
        te.compute((8,), lambda i: te.sum(A[i, k], axis=k) + 1.0, name="bad")


def test_reduce_with_non_reduce_axis_rejected():
    A = te.placeholder((8, 8), name="A")
    with pytest.raises(ExprError, match="not a reduce_axis"):
        te.compute((8,), lambda i: te.sum(A[i, 0], axis=[A.op.shape[0]]), name="bad")


def test_wrong_index_count_names_tensor():
    A = te.placeholder((8, 8), name="A")
    with pytest.raises(ExprError, match="tensor A has 2 dimensions"):
        te.compute((8,), lambda i: A[i], name="bad")


def test_float_index_rejected():
    A = te.placeholder((8,), name="A")
    X = te.placeholder((8,), name="X")
    with pytest.raises(ExprError, match="index 0 of tensor A"):
        te.compute((8,), lambda i: A[X[i]], name="bad")


def test_unknown_dtype_rejected():
    with pytest.raises(ExprError, match="unknown dtype"):
        te.placeholder((4,), dtype="floaty32")
    with pytest.raises(ExprError, match="unsupported dtype"):
        te.placeholder((4,), dtype="float8")


def test_if_then_else_and_select():
    A = te.placeholder((8,), name="A")
    B = te.compute((8,), lambda i: te.if_then_else(i > 0, A[i - 1], 0.0), name="B")
    assert isinstance(B.op.body[0], Call) and B.op.body[0].op == "if_then_else"
    C = te.compute((8,), lambda i: te.select(te.all(i > 0, i < 7), A[i], 1.0), name="C")
    assert isinstance(C.op.body[0], Select)


def test_python_bool_of_expression_is_an_error():
    i = te.var("i")
    with pytest.raises(ExprError, match="Python bool"):
        if i < 3:
            pass


def test_intrinsics_and_limits():
    x = te.var("x", "float32")
    for f in (te.exp, te.log, te.sqrt, te.rsqrt, te.tanh, te.sigmoid, te.erf, te.floor, te.ceil):
        assert f(x).dtype == "float32"
    assert te.power(x, 2.0).dtype == "float32"
    assert te.max_value("int8").value == 127
    assert te.min_value("uint8").value == 0
    assert te.max_value("float16").value == 65504.0


def test_thread_axis_validates_tag():
    assert te.thread_axis("threadIdx.x").thread_tag == "threadIdx.x"
    with pytest.raises(ExprError, match="unknown thread tag"):
        te.thread_axis("threadIdx.w")
