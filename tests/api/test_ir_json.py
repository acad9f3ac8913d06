"""``tvm.ir.save_json`` / ``load_json``: tecomp's IR objects through JSON text and back."""

import json

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te
from tecomp.ir_json import SerializationError

from test_classic_te import cumulative_sum_scan


def test_schedule_round_trip_keeps_sharing_and_builds_the_same_function(rng):
    n = 32
    A = te.placeholder((n, n), name="A")
    k = te.reduce_axis((0, n), name="k")
    B = te.compute((n,), lambda i: te.sum(A[i, k] * 2, axis=k), name="B")
    s = te.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=8)
    s[B].vectorize(xi)
    loaded = tvm.ir.load_json(tvm.ir.save_json(s))
    assert isinstance(loaded, te.Schedule) and loaded is not s
    assert str(loaded.outputs[0].body) == str(B.op.body)
    LB = loaded.outputs[0].output(0)
    LA = LB.op.input_tensors[0]
    assert loaded[LB].leaf_iter_vars[1] in loaded[LB].iter_var_attrs  # the same IterVar object, shared
    f = tvm.build(loaded, [LA, LB])
    a = rng.standard_normal((n, n)).astype("float32")
    b = tvm.nd.empty((n,), "float32")
    f(tvm.nd.array(a), b)
    np.testing.assert_allclose(b.numpy(), (a * 2).sum(axis=1), rtol=1e-5, atol=1e-4)


def test_scan_op_and_tensor_round_trip():
    _, update, res = cumulative_sum_scan()
    op = tvm.ir.load_json(tvm.ir.save_json(res.op))
    assert isinstance(op, te.ScanOp) and str(op.update[0].op.body) == str(update.op.body)
    t = tvm.ir.load_json(tvm.ir.save_json(update))
    assert isinstance(t, te.Tensor) and str(t) == str(update)


def test_functions_and_foreign_classes_are_refused():
    with pytest.raises(SerializationError, match="Python function"):
        tvm.ir.save_json({"f": lambda x: x})
    with pytest.raises(SerializationError, match="not a tecomp object"):
        tvm.ir.save_json(np.zeros(2))
    forged = json.dumps({"root": {"r": 0}, "nodes": [{"t": "obj", "cls": "subprocess:Popen", "attrs": {}}]})
    with pytest.raises(SerializationError, match="not a tecomp class"):
        tvm.ir.load_json(forged)
    with pytest.raises(tvm.TVMError):
        tvm.ir.load_json("not json")
