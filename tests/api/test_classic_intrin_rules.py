"""Intrinsic lowering rules, TVM's way (``tvm.ir.register_intrin_lowering`` / ``register_op_attr``).

A new intrinsic made with ``tir.call_intrin`` gets its meaning on a target from a rule that
returns, say, a ``call_pure_extern`` of a math function; ``build`` applies the target's rules.
Each test registers ops of its own name: the registry is global, as in TVM.
"""

import numpy as np
import pytest

import tecomp as tvm
from tecomp import te, tir
from tecomp.codegen.nvcc import find_nvcc
from tecomp.ir import register_intrin_lowering, register_op_attr


def _log_rule(call):
    assert isinstance(call, tir.Call) and call.op.name.startswith("tir.")
    if call.dtype == "float32":
        return tir.call_pure_extern("float32", "logf", call.args[0])
    return call


def _mylog_schedule(op_name, n=32):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: tir.call_intrin(A.dtype, op_name, A[i]) * 2.0, name="B")
    return A, B, te.create_schedule(B.op)


def test_a_call_names_its_op_the_tvm_way():
    x = te.var("x", "float32")
    call = te.exp(x)
    assert call.op.name == "tir.exp" and call.op == "exp"
    assert tir.call_intrin("float32", "tir.anything", x).op.name == "tir.anything"
    assert tir.CallEffectKind.Pure == 1 and tir.CallEffectKind.Opaque == tir.CallEffectKind.UpdateState


def test_a_new_intrinsic_lowered_by_an_llvm_rule():
    register_op_attr("tir.test_rules_log", "TCallEffectKind", tir.CallEffectKind.Pure)
    register_intrin_lowering("tir.test_rules_log", target="llvm", f=_log_rule, level=99)
    A, B, s = _mylog_schedule("tir.test_rules_log")
    f = tvm.build(s, [A, B], "llvm")
    a = np.linspace(0.5, 4, 32).astype("float32")
    b = np.zeros(32, "float32")
    f(a, b)
    np.testing.assert_allclose(b, 2 * np.log(a), rtol=1e-6)


def test_rule_levels_a_higher_one_replaces_the_same_one_is_an_error():
    calls = []

    @register_intrin_lowering("tir.test_rules_levels", target="llvm", level=10)
    def low(call):
        calls.append("low")
        return tir.call_pure_extern(call.dtype, "logf", call.args[0])

    def high(call):
        calls.append("high")
        return tir.call_pure_extern(call.dtype, "expf", call.args[0])

    register_intrin_lowering("tir.test_rules_levels", target="llvm", f=high, level=20)
    register_intrin_lowering("tir.test_rules_levels", target="llvm", f=low, level=5)  # lower: ignored
    with pytest.raises(tvm.TVMError, match="already registered at level 20"):
        register_intrin_lowering("tir.test_rules_levels", target="llvm", f=low, level=20)
    A, B, s = _mylog_schedule("tir.test_rules_levels", n=8)
    f = tvm.build(s, [A, B], "llvm")
    a = np.linspace(0, 1, 8).astype("float32")
    b = np.zeros(8, "float32")
    f(a, b)
    np.testing.assert_allclose(b, 2 * np.exp(a), rtol=1e-6)
    assert calls == ["high"]


def test_a_rule_for_another_target_does_not_apply_and_a_wrong_result_is_refused():
    register_intrin_lowering("tir.test_rules_cuda_only", target="cuda", f=_log_rule, level=99)
    A, B, s = _mylog_schedule("tir.test_rules_cuda_only")
    with pytest.raises(tvm.TVMError, match="test_rules_cuda_only"):
        tvm.build(s, [A, B], "llvm")  # no llvm rule: the code generator does not know the op
    register_intrin_lowering("tir.test_rules_bad", target="llvm", f=lambda call: 1.0, level=99)
    A, B, s = _mylog_schedule("tir.test_rules_bad")
    with pytest.raises(tvm.TVMError, match="must return an expression of dtype float32"):
        tvm.build(s, [A, B], "llvm")


@pytest.mark.skipif(find_nvcc() is None, reason="building for cuda needs nvcc")
def test_cuda_rule_and_extern_device_calls_in_the_kernel_source():
    register_intrin_lowering("tir.test_rules_cuda_log", target="cuda", f=_log_rule, level=99)
    A, B, s = _mylog_schedule("tir.test_rules_cuda_log", n=256)
    C = te.compute((256,), lambda i: tir.call_pure_extern("float32", "__expf", B[i]), name="C")
    s = te.create_schedule(C.op)
    for stage in (B, C):
        bx, tx = s[stage].split(stage.op.axis[0], factor=64)
        s[stage].bind(bx, te.thread_axis("blockIdx.x"))
        s[stage].bind(tx, te.thread_axis("threadIdx.x"))
    source = tvm.build(s, [A, C], "cuda").imported_modules[0].get_source()
    assert "logf(A[" in source and "__expf(B[" in source
