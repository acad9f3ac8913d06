"""Run-time checks in generated CPU code: failed heap allocations and (opt-in) buffer bounds.

Owns the error state of a module: an ``i32`` error code and a text buffer,
module-private, and the exported ``const char* __tecomp_error_message(void)``
that returns the text. A failed check records its code and message (the
first failure of a call wins, also across the threads of a parallel loop,
by compare-and-swap) and returns from the kernel function it is in; the
exported entry then hands the code back to its caller (and clears it), and
the runtime (:mod:`tecomp.runtime.packed_func`) raises it as a tecomp error
with the message. After a failure the outputs are unspecified and heap
buffers allocated before it in the call are not freed. The codes are those
of :mod:`tecomp.runtime.packed_func`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llvmlite import ir

from ..runtime.packed_func import ERROR_ALLOCATION, ERROR_OUT_OF_BOUNDS
from ..tir import dtype as dt
from ..tir import expr as E
from ..tir.buffer import Buffer
from ..tir.op import convert
from . import llvm_ops as ops
from .common import contiguous_base

if TYPE_CHECKING:
    from .llvm import FunctionEmitter, ModuleEmitter

ERROR_TEXT_BYTES = 512
_CODE, _TEXT, _GETTER = "__tecomp_error_code", "__tecomp_error_text", "__tecomp_error_message"


def error_state(mod: "ModuleEmitter") -> tuple[ir.GlobalVariable, ir.GlobalVariable]:
    """The module's (error code, error text) globals and their getter, created on first use
    (only declared in a module that imports the library's shared state)."""
    module = mod.module
    mod.shared_used.add("error")
    if _CODE not in module.globals:
        code = ir.GlobalVariable(module, ops.I32, _CODE)
        text_ty = ir.ArrayType(ops.I8, ERROR_TEXT_BYTES)
        text = ir.GlobalVariable(module, text_ty, _TEXT)
        if mod.state != "import":
            for g in (code, text):
                g.linkage = "internal" if mod.state == "private" else ""
                g.initializer = ir.Constant(g.value_type, None)
            getter = ir.Function(module, ir.FunctionType(ops.PTR, []), _GETTER)
            ir.IRBuilder(getter.append_basic_block("entry")).ret(text)
    return module.globals[_CODE], module.globals[_TEXT]


def entry_result(mod: "ModuleEmitter", b: ir.IRBuilder) -> ir.Value:
    """The entry's return value after its kernel ran: the recorded error code (then cleared), or 0."""
    if _CODE not in mod.module.globals:
        return ir.Constant(ops.I32, 0)
    code, _ = error_state(mod)
    return b.atomic_rmw("xchg", code, ir.Constant(ops.I32, 0), "seq_cst")


def c_string(mod: "ModuleEmitter", text: str) -> ir.GlobalVariable:
    data = bytearray(text.encode("utf-8") + b"\0")
    ty = ir.ArrayType(ops.I8, len(data))
    g = ir.GlobalVariable(mod.module, ty, mod.unique_name("tecomp.errfmt"))
    g.global_constant = True
    g.linkage = "private"
    g.initializer = ir.Constant(ty, data)
    return g


def fail_unless(fe: "FunctionEmitter", ok: ir.Value, code: int, fmt: str, args: list) -> None:
    """Unless ``ok`` (an i1): record ``code`` and ``printf(fmt, *args)`` (64-bit integer args)
    if no error is recorded yet, and return from the current (void) kernel function."""
    b = fe.builder
    fail_bb, ok_bb = fe.new_block("check.fail"), fe.new_block("check.ok")
    b.cbranch(ok, ok_bb, fail_bb)
    b.position_at_end(fail_bb)
    code_var, text = error_state(fe.mod)
    swapped = b.cmpxchg(code_var, ir.Constant(ops.I32, 0), ir.Constant(ops.I32, code), "seq_cst", "seq_cst")
    with b.if_then(b.extract_value(swapped, 1)):
        snprintf = ops.declare(fe.mod.module, "snprintf",
                               ir.FunctionType(ops.I32, [ops.PTR, ops.I64, ops.PTR], var_arg=True))
        b.call(snprintf, [text, ir.Constant(ops.I64, ERROR_TEXT_BYTES), c_string(fe.mod, fmt)] + args)
    b.ret_void()
    b.position_at_end(ok_bb)


def _printf_literal(text: str) -> str:
    return text.replace("%", "%%")


def check_allocation(fe: "FunctionEmitter", ptr: ir.Value, nbytes: ir.Value, buf: Buffer) -> None:
    """A NULL ``ptr`` from the heap allocation of ``buf`` is an error naming it and the size."""
    ok = fe.builder.icmp_unsigned("!=", ptr, ir.Constant(ops.PTR, None))
    elements = " x ".join(str(int(d)) if isinstance(d, E.IntImm) else str(d) for d in buf.shape)
    fail_unless(fe, ok, ERROR_ALLOCATION,
                f"cannot allocate %llu bytes for buffer {_printf_literal(buf.name)} "
                f"({_printf_literal(f'{elements} {buf.dtype}')})", [nbytes])


def _flat_extent(fe: "FunctionEmitter", buf: Buffer) -> ir.Value:
    extent: ir.Value = ir.Constant(ops.I64, 1)
    for dim in buf.shape:
        extent = fe.builder.mul(extent, fe.typed(convert(dim), "int64"))
    return extent


def check_access(fe: "FunctionEmitter", buf: Buffer, index: E.PrimExpr, what: str) -> None:
    """With bound checking on: every lane of the flat ``index`` of an access to ``buf`` lies in
    [0, number of elements), else an error naming the buffer, the index and the extent."""
    if not fe.mod.bound_check:
        return
    lanes = dt.lanes(index.dtype)
    scalar = dt.with_lanes(index.dtype, 1)
    b = fe.builder
    if lanes == 1 or isinstance(index, E.Broadcast):
        values = [ops.cast(b, fe.expr(index if lanes == 1 else index.value), scalar, "int64")]
    elif contiguous_base(index) is not None:
        first = ops.cast(b, fe.expr(contiguous_base(index)), scalar, "int64")
        values = [first, b.add(first, ir.Constant(ops.I64, lanes - 1))]
    else:
        offsets = fe.expr(index)
        values = [ops.cast(b, b.extract_element(offsets, ir.Constant(ops.I32, k)), scalar, "int64")
                  for k in range(lanes)]
    extent = _flat_extent(fe, buf)
    fmt = (f"{what} of buffer {_printf_literal(buf.name)} at flat index %lld is out of bounds: "
           f"it has %lld elements")
    for value in values:
        ok = fe.builder.icmp_unsigned("<", value, extent)  # a negative index is a huge unsigned one
        fail_unless(fe, ok, ERROR_OUT_OF_BOUNDS, fmt, [value, extent])
