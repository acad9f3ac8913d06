"""``tir.call_packed`` in generated CPU code: a call back into a registered Python function.

The library holds one exported pointer slot, ``__tecomp_packed_call``, that
the runtime fills when it loads the library (``tecomp.runtime.registry``).
A call passes a signature string (``name|b<dtype>:<ndim>|i|f``), the data
pointers of its buffer arguments and an int64 array of their dimensions and
of its scalar arguments (floats as the bits of a double). A nonzero answer
is a failed check: the kernel returns and the runtime re-raises the Python
exception. Must not optimize or touch files.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from ..runtime.packed_func import ERROR_PACKED_FUNC
from ..runtime.registry import CALLBACK_SYMBOL
from ..tir import dtype as dt
from ..tir import expr as E
from ..tir.buffer import Buffer
from ..tir.op import convert
from . import llvm_checks as checks
from . import llvm_ops as ops

if TYPE_CHECKING:
    from .llvm import FunctionEmitter, ModuleEmitter


def callback_slot(mod: "ModuleEmitter") -> ir.GlobalVariable:
    """The library's exported callback slot (only declared in a module that imports shared state)."""
    mod.shared_used.add("callback")
    slot = mod.module.globals.get(CALLBACK_SYMBOL)
    if slot is None:
        slot = ir.GlobalVariable(mod.module, ops.PTR, CALLBACK_SYMBOL)
        if mod.state != "import":
            slot.initializer = ir.Constant(ops.PTR, None)
    return slot


def call_packed(fe: "FunctionEmitter", e: E.Call) -> ir.Value:
    """Emit the call of ``e`` (``tvm_call_packed``); its value is 0 (a failure returns from the kernel)."""
    b = fe.builder
    name = e.args[0].value
    kinds: list[str] = []
    pointers: list[ir.Value] = []
    values: list[ir.Value] = []
    for a in e.args[1:]:
        if isinstance(a, Buffer):
            kinds.append(f"b{a.dtype}:{len(a.shape)}")
            pointers.append(fe.buffer_ptr(a))
            values.extend(fe.typed(convert(d), "int64") for d in a.shape)
        elif dt.is_float(a.dtype):
            kinds.append("f")
            pointers.append(ir.Constant(ops.PTR, None))
            values.append(b.bitcast(fe.typed(a, "float64"), ops.I64))
        else:
            kinds.append("i")
            pointers.append(ir.Constant(ops.PTR, None))
            values.append(fe.typed(a, "int64"))
    ptr_array = fe.entry_alloca(ir.ArrayType(ops.PTR, max(1, len(pointers))), 8)
    value_array = fe.entry_alloca(ir.ArrayType(ops.I64, max(1, len(values))), 8)
    for k, p in enumerate(pointers):
        b.store(p, b.gep(ptr_array, [ir.Constant(ops.I64, k)], source_etype=ops.PTR))
    for k, v in enumerate(values):
        b.store(v, b.gep(value_array, [ir.Constant(ops.I64, k)], source_etype=ops.I64))
    signature = checks.c_string(fe.mod, "|".join([name] + kinds))
    fnty = ir.FunctionType(ops.I32, [ops.PTR, ops.PTR, ops.PTR])
    callee = b.load(callback_slot(fe.mod), typ=fnty.as_pointer())  # typed, for the indirect call
    result = b.call(callee, [signature, ptr_array, value_array])
    ok = b.icmp_signed("==", result, ir.Constant(ops.I32, 0))
    checks.fail_unless(fe, ok, ERROR_PACKED_FUNC, f"packed function {name} raised an exception", [])
    return ir.Constant(ops.I32, 0)
