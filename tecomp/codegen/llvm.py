"""Loop IR to LLVM IR: expressions, statements and the exported entry functions.

This module owns the translation of flattened ``PrimFunc`` bodies into an
``llvmlite.ir.Module``: one exported ``int32_t NAME(void** args, int64_t*
size_var_values)`` per PrimFunc (see :class:`ModuleEmitter`), an internal
``NAME.impl`` holding the body with ``noalias`` tensor pointers, and the
``__tecomp_metadata`` function. Types, casts and math intrinsics live in
:mod:`.llvm_ops`, the outlining of parallel loops in :mod:`.llvm_parallel`.
It must not optimize, verify, emit object code or touch files: that is the
build driver's job (:mod:`.build`).
"""

from __future__ import annotations

import contextlib
import re
from typing import Callable, Iterator, Optional

from llvmlite import ir

from ..error import BuildError, TecompError
from ..tir import dtype as dt
from ..tir import expr as E
from ..tir import stmt as S
from ..tir.buffer import Buffer
from ..tir.op import convert
from ..tir.wmma import is_fragment_scope
from . import llvm_checks as checks
from . import llvm_ops as ops
from .common import const_product as _const_product
from .common import contiguous_base as _contiguous_base
from .common import method_for as _method
from .vecmath import VectorMath

# Constant-size allocations up to this many bytes live on the stack; larger
# ones go to the heap so that worker threads' stacks cannot overflow.
STACK_ALLOC_LIMIT = 128 * 1024
ALLOC_ALIGN = 64

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CPU_NOOP_CALLS = ("tvm_storage_sync",)

_CMP = {E.EQ: "==", E.NE: "!=", E.LT: "<", E.LE: "<=", E.GT: ">", E.GE: ">="}


class ModuleEmitter:
    """Builds one ``ir.Module`` holding any number of PrimFuncs.

    A library may be split over several modules, compiled apart and linked
    together (a model's kernels, see :mod:`.parallel_objects`). Its
    module-wide state (the error code and text of :mod:`.llvm_checks`, the
    callback slot of :mod:`.llvm_packed`) then lives in one module: the
    others are built with ``state="import"`` and only declare what they use
    (listed in ``shared_used``), the owner with ``state="export"`` defines it
    with external linkage (``define_shared``). A library of one module keeps
    it private (``state="private"``).
    """

    def __init__(self, triple: str = "", data_layout: str = "", features: str = "", bound_check: bool = False,
                 state: str = "private", keep_blocks: bool = True):
        if state not in ("private", "import", "export"):
            raise ValueError(f"ModuleEmitter state must be private, import or export, not {state!r}")
        self.module = ir.Module(name="tecomp")
        self.state = state
        self.shared_used: set[str] = set()  # "error" and/or "callback": module-wide state this module uses
        self.bound_check = bound_check  # every buffer access checks its index (llvm_checks)
        self.keep_blocks = keep_blocks  # constant-size heap buffers kept between calls (block_slot)
        self.vector_math = VectorMath(features)
        self.module.triple = triple
        self.module.data_layout = data_layout
        self._counter = 0

    def unique_name(self, base: str) -> str:
        self._counter += 1
        return f"{base}.{self._counter}"

    def add_primfunc(self, func: S.PrimFunc) -> None:
        """Emit ``func`` as the exported entry point ``func.name`` (ABI in the module docstring)."""
        if not _IDENT.match(func.name):
            raise BuildError(f"function name {func.name!r} is not a C identifier")
        if func.name in self.module.globals:
            raise BuildError(f"function {func.name!r} is defined twice in one build")
        entry, impl_args = self._open_entry(func)
        impl_vars = [b.data for b in func.params] + list(func.size_vars)
        impl = FunctionEmitter.new_kernel(self, f"{func.name}.impl", func.name,
                                          impl_vars, [v.type for v in impl_args])
        try:
            impl.stmt(func.body)
        except TecompError:
            raise
        except Exception as exc:  # llvmlite rejects ill-typed IR with TypeError/ValueError
            raise BuildError(f"function {func.name}: cannot generate LLVM IR: {exc}") from exc
        impl.builder.ret_void()
        entry.call(impl.function, impl_args)
        entry.ret(checks.entry_result(self, entry))

    def _open_entry(self, func: S.PrimFunc) -> tuple:
        """Start the exported function; return its builder and the impl's argument values."""
        fn = ir.Function(self.module, ir.FunctionType(ops.I32, [ops.PTR, ops.PTR]), func.name)
        args_ptr, sizes_ptr = fn.args
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        values = []
        seen: set = set()
        for i, buf in enumerate(func.params):
            if not isinstance(buf, Buffer):
                raise BuildError(f"function {func.name}: parameter {i} is {buf!r}, not a Buffer")
            if buf.data in seen:
                raise BuildError(f"function {func.name}: buffer {buf.name} is passed twice")
            seen.add(buf.data)
            slot = b.gep(args_ptr, [ir.Constant(ops.I64, i)], source_etype=ops.PTR, inbounds=True)
            values.append(b.load(slot, typ=ops.PTR, align=8))
        for j, var in enumerate(func.size_vars):
            slot = b.gep(sizes_ptr, [ir.Constant(ops.I64, j)], source_etype=ops.I64, inbounds=True)
            raw = "float64" if var.dtype.startswith("float") else "int64"  # a float argument: its double's bits
            values.append(ops.cast(b, b.load(slot, typ=ops.llvm_type(raw), align=8), raw, var.dtype))
        return b, values

    def define_shared(self, kinds: set[str]) -> None:
        """Define the module-wide state of ``kinds`` (from other modules' ``shared_used``) here."""
        if "error" in kinds:
            checks.error_state(self)
        if "callback" in kinds:
            from .llvm_packed import callback_slot
            callback_slot(self)

    def add_metadata(self, text: str) -> None:
        """Emit ``const char* __tecomp_metadata(void)`` returning ``text``."""
        data = bytearray(text.encode("utf-8") + b"\0")
        arr = ir.ArrayType(ops.I8, len(data))
        g = ir.GlobalVariable(self.module, arr, "__tecomp_metadata_text")
        g.global_constant = True
        g.linkage = "private"
        g.initializer = ir.Constant(arr, data)
        fn = ir.Function(self.module, ir.FunctionType(ops.PTR, []), "__tecomp_metadata")
        ir.IRBuilder(fn.append_basic_block("entry")).ret(g)


class FunctionEmitter:
    """Emits statements and expressions into one LLVM function.

    ``env`` maps loop-IR Vars (loop variables, lets, size vars and the
    ``data`` handle of every visible buffer) to LLVM values.
    """

    def __init__(self, mod: ModuleEmitter, function: ir.Function, fname: str,
                 env: dict, in_parallel: bool):
        self.mod = mod
        self.function = function
        self.fname = fname
        self.env = env
        self.in_parallel = in_parallel
        # Allocas go to "entry", code to the blocks from "body" on; keeping them
        # apart means no two builders ever insert into one block.
        self.entry = function.append_basic_block("entry")
        body = function.append_basic_block("body")
        self._entry_jump = ir.IRBuilder(self.entry).branch(body)
        self.builder = ir.IRBuilder(body)

    @classmethod
    def new_kernel(cls, mod: ModuleEmitter, name: str, fname: str, variables: list,
                   types: list, in_parallel: bool = False) -> "FunctionEmitter":
        """An internal ``void`` function taking ``variables`` as parameters.

        Pointer parameters are ``noalias``: distinct tensors never overlap,
        which lets LLVM keep accumulators in registers and vectorize freely.
        """
        fn = ir.Function(mod.module, ir.FunctionType(ops.VOID, types), name)
        fn.linkage = "internal"
        for arg in fn.args:
            if isinstance(arg.type, ir.PointerType):
                arg.add_attribute("noalias")
        return cls(mod, fn, fname, dict(zip(variables, fn.args)), in_parallel)

    @contextlib.contextmanager
    def bound(self, var: E.Var, value: ir.Value) -> Iterator[None]:
        """``var`` bound to ``value`` within the block (an outer binding comes back after)."""
        outer = self.env.get(var)
        self.env[var] = value
        try:
            yield
        finally:
            if outer is None:
                del self.env[var]
            else:
                self.env[var] = outer

    def error(self, message: str) -> BuildError:
        return BuildError(f"function {self.fname}: {message}")

    def new_block(self, name: str) -> ir.Block:
        return self.function.append_basic_block(name)

    # ------------------------------------------------------------ dispatch
    def stmt(self, s: S.Stmt) -> None:
        method = _method(type(self), "_s_", type(s))
        if method is None:
            raise self.error(f"the LLVM backend cannot compile the statement {type(s).__name__}")
        method(self, s)

    def expr(self, e: E.PrimExpr) -> ir.Value:
        method = _method(type(self), "_e_", type(e))
        if method is None:
            raise self.error(f"the LLVM backend cannot compile the expression {type(e).__name__} ({e})")
        return method(self, e)

    # ------------------------------------------------------------ statements
    def _s_SeqStmt(self, s: S.SeqStmt) -> None:
        for child in s.seq:
            self.stmt(child)

    def _s_Evaluate(self, s: S.Evaluate) -> None:
        v = s.value
        if isinstance(v, E.Call) and v.op in _CPU_NOOP_CALLS:
            return
        if not isinstance(v, (E.IntImm, E.FloatImm, E.StringImm)):
            self.expr(v)

    def _s_AttrStmt(self, s: S.AttrStmt) -> None:
        self.stmt(s.body)

    def _s_LetStmt(self, s: S.LetStmt) -> None:
        with self.bound(s.var, self.expr(s.value)):
            self.stmt(s.body)

    def _s_IfThenElse(self, s: S.IfThenElse) -> None:
        cond = self.scalar_condition(s.condition)
        then_bb, merge_bb = self.new_block("if.then"), self.new_block("if.end")
        else_bb = self.new_block("if.else") if s.else_case is not None else merge_bb
        self.builder.cbranch(cond, then_bb, else_bb)
        self.builder.position_at_end(then_bb)
        self.stmt(s.then_case)
        self.builder.branch(merge_bb)
        if s.else_case is not None:
            self.builder.position_at_end(else_bb)
            self.stmt(s.else_case)
            self.builder.branch(merge_bb)
        self.builder.position_at_end(merge_bb)

    def _s_For(self, s: S.For) -> None:
        if s.kind is S.ForKind.THREAD_BINDING:
            raise self.error(
                f"loop {s.loop_var.name} is bound to the GPU thread {s.thread_tag or '?'}, "
                "which the llvm target cannot run; build for target 'cuda' or do not bind it")
        if s.kind is S.ForKind.PARALLEL and not self.in_parallel:
            from .llvm_parallel import emit_parallel_for
            emit_parallel_for(self, s)
            return
        if s.kind is S.ForKind.SERIAL and not self.in_parallel:
            from .llvm_team import emit_team_loop, team_phases
            phases = team_phases(s)
            if phases is not None:
                emit_team_loop(self, s, phases)
                return
        self.plain_loop(s)

    def plain_loop(self, s: S.For) -> None:
        """``s`` as an ordinary loop. UNROLLED and a VECTORIZED loop the vectorizer left behind run
        serially; LLVM's own unroller and vectorizer still see them."""
        lo = self.typed(s.min, s.loop_var.dtype)
        hi = self.arith(E.Add, lo, self.typed(s.extent, s.loop_var.dtype), s.loop_var.dtype)
        self.serial_loop(s.loop_var, lo, hi, lambda: self.stmt(s.body))

    def serial_loop(self, var: E.Var, lo: ir.Value, hi: ir.Value, body: Callable[[], None]) -> None:
        """``for (var = lo; var < hi; ++var) body()``."""
        b = self.builder
        pre = b.block
        header, body_bb, exit_bb = self.new_block("for.head"), self.new_block("for.body"), self.new_block("for.end")
        b.branch(header)
        b.position_at_end(header)
        phi = b.phi(lo.type, name=var.name)
        phi.add_incoming(lo, pre)
        signed = not dt.parse(var.dtype).is_uint
        cmp = b.icmp_signed if signed else b.icmp_unsigned
        b.cbranch(cmp("<", phi, hi), body_bb, exit_bb)
        b.position_at_end(body_bb)
        with self.bound(var, phi):
            body()
        nxt = b.add(phi, ir.Constant(lo.type, 1), flags=("nsw",) if signed else ())
        phi.add_incoming(nxt, b.block)
        b.branch(header)
        b.position_at_end(exit_bb)

    def _s_Allocate(self, s: S.Allocate) -> None:
        self.allocated(s.buffer, lambda: self.stmt(s.body))

    def allocated(self, buf: Buffer, body: Callable[[], None]) -> None:
        """``body()`` emitted with ``buf`` allocated (on the stack when small and constant)."""
        if is_fragment_scope(buf.scope):
            raise BuildError(f"buffer {buf.name} has storage scope {buf.scope}, a tensor core fragment, which only "
                             "the cuda target has; build for target 'cuda -arch=sm_80' (or sm_70 and newer), or "
                             "give the stage scope 'local' and drop the wmma intrinsics")
        elem = ops.llvm_type(buf.dtype, in_memory=True)
        elem_bytes = ops.byte_size(buf.dtype)
        count = _const_product(buf.shape)
        if count is not None and count * elem_bytes <= STACK_ALLOC_LIMIT:
            with self.bound(buf.data, self.entry_alloca(ir.ArrayType(elem, max(count, 1)), ALLOC_ALIGN)):
                body()
            return
        nbytes = ir.Constant(ops.I64, elem_bytes)
        for extent in map(convert, buf.shape):
            nbytes = self.builder.mul(nbytes, self.typed(extent, "int64"))
        slot = self.block_slot() if count is not None and self.mod.keep_blocks else None
        ptr = self.heap_alloc(nbytes) if slot is None else self.reuse_block(slot, nbytes)
        checks.check_allocation(self, ptr, nbytes, buf)
        with self.bound(buf.data, ptr):
            body()
        if slot is not None:  # keep this block for the next call; free the one a concurrent call kept
            ptr = self.builder.atomic_rmw("xchg", slot, ptr, "acq_rel")
        free = ops.declare(self.mod.module, "free", ir.FunctionType(ops.VOID, [ops.PTR]))
        self.builder.call(free, [ptr])

    def entry_alloca(self, ty: ir.Type, align: int) -> ir.Value:
        """Stack storage of type ``ty`` reserved once in the entry block."""
        b = ir.IRBuilder(self.entry)
        b.position_before(self._entry_jump)
        slot = b.alloca(ty)
        slot.align = align
        slot.type = ops.PTR  # llvmlite types allocas with typed pointers; this IR is opaque-pointer
        return slot

    def block_slot(self) -> ir.GlobalVariable:
        """A module-private pointer holding the block an allocation site last freed (null: none).

        Sites of a constant size reuse their block from call to call: a fresh block of over
        glibc's mmap threshold comes from the kernel with every page faulted in on first touch,
        which costs more than the kernel itself for a conv's padded input or a Winograd
        transform (2-3 ms of a 1 ms kernel). A site keeps at most one block until the process
        ends, so code loaded once and dropped (a tuning candidate) is compiled without slots."""
        slot = ir.GlobalVariable(self.mod.module, ops.PTR, self.mod.unique_name("tecomp.block"))
        slot.linkage = "internal"
        slot.initializer = ir.Constant(ops.PTR, None)
        return slot

    def reuse_block(self, slot: ir.GlobalVariable, nbytes: ir.Value) -> ir.Value:
        """The block ``slot`` holds (taking it, so a concurrent call allocates its own), else a new one."""
        b = self.builder
        kept = b.atomic_rmw("xchg", slot, ir.Constant(ops.PTR, None), "acq_rel")
        entry, fresh_bb, join_bb = b.block, self.new_block("alloc.fresh"), self.new_block("alloc.join")
        b.cbranch(b.icmp_unsigned("==", kept, ir.Constant(ops.PTR, None)), fresh_bb, join_bb)
        b.position_at_end(fresh_bb)
        fresh = self.heap_alloc(nbytes)
        fresh_end = b.block
        b.branch(join_bb)
        b.position_at_end(join_bb)
        ptr = b.phi(ops.PTR)
        ptr.add_incoming(kept, entry)
        ptr.add_incoming(fresh, fresh_end)
        return ptr

    def heap_alloc(self, nbytes: ir.Value) -> ir.Value:
        b = self.builder
        fnty = ir.FunctionType(ops.PTR, [ops.I64, ops.I64])
        aligned_alloc = ops.declare(self.mod.module, "aligned_alloc", fnty)
        mask = ir.Constant(ops.I64, ALLOC_ALIGN - 1)
        rounded = b.and_(b.add(nbytes, mask), b.not_(mask))  # aligned_alloc wants a multiple
        return b.call(aligned_alloc, [ir.Constant(ops.I64, ALLOC_ALIGN), rounded])

    def _s_BufferStore(self, s: S.BufferStore) -> None:
        buf, index = s.buffer, self.flat_index(s.buffer, s.indices)
        checks.check_access(self, buf, index, "store")
        lanes = dt.lanes(index.dtype)
        value = self.expr(s.value)
        if lanes > 1 and dt.lanes(s.value.dtype) == 1:
            value = ops.splat(self.builder, value, lanes)
        b = self.builder
        if dt.is_bool(buf.dtype):
            value = b.zext(value, ops.llvm_type(dt.with_lanes(buf.dtype, lanes), in_memory=True))
        base, align = self.buffer_ptr(buf), ops.byte_size(buf.dtype)
        elem = ops.llvm_type(buf.dtype, in_memory=True)
        contiguous = _contiguous_base(index)
        if lanes == 1 or contiguous is not None:
            first = index if lanes == 1 else contiguous
            b.store(value, b.gep(base, [self.expr(first)], source_etype=elem, inbounds=True), align=align)
            return
        offsets = self.expr(index)
        for lane in range(lanes):
            k = ir.Constant(ops.I32, lane)
            ptr = b.gep(base, [b.extract_element(offsets, k)], source_etype=elem, inbounds=True)
            b.store(b.extract_element(value, k), ptr, align=align)

    # ------------------------------------------------------------ memory
    def flat_index(self, buf: Buffer, indices: tuple) -> E.PrimExpr:
        if len(indices) != 1:
            raise self.error(f"access to buffer {buf.name} has {len(indices)} indices; "
                             "the LLVM backend needs flattened (1-D) accesses")
        return indices[0]

    def buffer_ptr(self, buf: Buffer) -> ir.Value:
        ptr = self.env.get(buf.data)
        if ptr is None:
            raise self.error(f"buffer {buf.name} is neither a parameter nor allocated here")
        return ptr

    def _e_BufferLoad(self, e: E.BufferLoad) -> ir.Value:
        buf, index = e.buffer, self.flat_index(e.buffer, e.indices)
        checks.check_access(self, buf, index, "load")
        lanes = dt.lanes(index.dtype)
        base, align = self.buffer_ptr(buf), ops.byte_size(buf.dtype)
        elem = ops.llvm_type(buf.dtype, in_memory=True)
        b = self.builder
        contiguous = _contiguous_base(index)
        if lanes == 1 or isinstance(index, E.Broadcast):
            scalar_index = index if lanes == 1 else index.value
            ptr = b.gep(base, [self.expr(scalar_index)], source_etype=elem, inbounds=True)
            value = b.load(ptr, typ=elem, align=align)
            if lanes > 1:
                value = ops.splat(b, value, lanes)
        elif contiguous is not None:
            ptr = b.gep(base, [self.expr(contiguous)], source_etype=elem, inbounds=True)
            value = b.load(ptr, typ=ir.VectorType(elem, lanes), align=align)
        else:
            value = self._gather(base, elem, align, self.expr(index), lanes)
        if dt.is_bool(buf.dtype):
            value = b.icmp_unsigned("!=", value, ir.Constant(value.type, None))
        return value

    def _gather(self, base: ir.Value, elem: ir.Type, align: int, offsets: ir.Value, lanes: int) -> ir.Value:
        b = self.builder
        out = ir.Constant(ir.VectorType(elem, lanes), ir.Undefined)
        for lane in range(lanes):
            k = ir.Constant(ops.I32, lane)
            ptr = b.gep(base, [b.extract_element(offsets, k)], source_etype=elem, inbounds=True)
            out = b.insert_element(out, b.load(ptr, typ=elem, align=align), k)
        return out

    # ------------------------------------------------------------ leaves
    def _e_IntImm(self, e: E.IntImm) -> ir.Value:
        return ops.const(e.dtype, e.value)

    def _e_FloatImm(self, e: E.FloatImm) -> ir.Value:
        return ops.const(e.dtype, e.value)

    def _e_Var(self, e: E.Var) -> ir.Value:
        value = self.env.get(e)
        if value is None:
            raise self.error(f"variable {e.name} is used where it is not defined")
        return value

    def _e_Let(self, e: E.Let) -> ir.Value:
        with self.bound(e.var, self.expr(e.value)):
            return self.expr(e.body)

    def typed(self, e: E.PrimExpr, dtype: str) -> ir.Value:
        """``e`` evaluated and converted to ``dtype``."""
        return ops.cast(self.builder, self.expr(e), e.dtype, dtype)

    def scalar_condition(self, e: E.PrimExpr) -> ir.Value:
        if dt.lanes(e.dtype) != 1:
            raise self.error(f"the branch condition {e} is a vector ({e.dtype}); "
                             "the vectorizer must scalarize such branches")
        return self.typed(e, "bool")

    # ------------------------------------------------------------ arithmetic
    def operands(self, e) -> tuple:
        """Both operands of a binary node, with a scalar side splat to the other's lanes."""
        a, b = self.expr(e.a), self.expr(e.b)
        la, lb = dt.lanes(e.a.dtype), dt.lanes(e.b.dtype)
        if la != lb:
            if la == 1:
                a = ops.splat(self.builder, a, lb)
            else:
                b = ops.splat(self.builder, b, la)
        dtype = e.a.dtype if la >= lb else e.b.dtype
        return a, b, dtype

    def arith(self, cls: type, a: ir.Value, b: ir.Value, dtype: str) -> ir.Value:
        t, bld = dt.parse(dtype), self.builder
        if t.is_float and cls in _FLOAT_ARITH:
            return _FLOAT_ARITH[cls](bld, a, b)
        if t.is_float and cls in (E.FloorDiv, E.FloorMod):
            q = ops.math_call(bld, "floor", [bld.fdiv(a, b)], dtype)
            return q if cls is E.FloorDiv else bld.fsub(a, bld.fmul(q, b))
        flags = _int_flags(dtype)
        if cls is E.Add:
            return bld.add(a, b, flags=flags)
        if cls is E.Sub:
            return bld.sub(a, b, flags=flags)
        if cls is E.Mul:
            return bld.mul(a, b, flags=flags)
        if cls in (E.Div, E.FloorDiv, E.FloorMod):
            b = self._nonzero_divisor(b, dtype)
        if cls is E.Div:
            return bld.sdiv(a, b) if t.is_int else bld.udiv(a, b)
        if cls is E.FloorDiv:
            return self._floor_div_mod(a, b, t, want_div=True)
        if cls is E.FloorMod:
            return self._floor_div_mod(a, b, t, want_div=False)
        raise self.error(f"no arithmetic {cls.__name__} on {dtype}")

    def _nonzero_divisor(self, b: ir.Value, dtype: str) -> ir.Value:
        """``b``, or 1 where it is 0: an integer division by zero (undefined in TVM's IR) gives an
        unspecified value instead of a hardware trap that kills the process."""
        if isinstance(b, ir.Constant):
            return b
        is_zero = self.builder.icmp_unsigned("==", b, ir.Constant(b.type, None))
        return self.builder.select(is_zero, ops.const(dtype, 1), b)

    def _floor_div_mod(self, a: ir.Value, b: ir.Value, t: dt.DataType, want_div: bool) -> ir.Value:
        bld = self.builder
        if not t.is_int:
            return bld.udiv(a, b) if want_div else bld.urem(a, b)
        zero = ir.Constant(a.type, None)
        rem = bld.srem(a, b)
        # truncation rounded toward zero: step down when the remainder's sign differs from b's
        adjust = bld.and_(bld.icmp_signed("!=", rem, zero),
                          bld.icmp_signed("!=", bld.icmp_signed("<", rem, zero),
                                          bld.icmp_signed("<", b, zero)))
        if want_div:
            return bld.sub(bld.sdiv(a, b), bld.zext(adjust, a.type))
        return bld.select(adjust, bld.add(rem, b), rem)

    def _binary(self, e) -> ir.Value:
        a, b, dtype = self.operands(e)
        divisor = _power_of_two(e.b) if isinstance(e, (E.FloorDiv, E.FloorMod)) else None
        if divisor is not None and not dt.parse(dtype).is_float:
            return self._floor_by_power_of_two(type(e), a, divisor, dtype)
        return self.arith(type(e), a, b, dtype)

    def _floor_by_power_of_two(self, cls: type, a: ir.Value, divisor: int, dtype: str) -> ir.Value:
        """Floor division / modulo by 2^k as an arithmetic shift / a mask: exact for either sign,
        and one instruction instead of the general srem/sdiv correction."""
        bld = self.builder
        if cls is E.FloorMod:
            return bld.and_(a, ops.const(dtype, divisor - 1))
        shift = ops.const(dtype, divisor.bit_length() - 1)
        return bld.ashr(a, shift) if dt.parse(dtype).is_int else bld.lshr(a, shift)

    _e_Add = _e_Sub = _e_Mul = _e_Div = _e_FloorDiv = _e_FloorMod = _binary

    def _min_max(self, e) -> ir.Value:
        a, b, dtype = self.operands(e)
        op = "<" if isinstance(e, E.Min) else ">"
        return self.builder.select(self.compare(op, a, b, dtype), a, b)

    _e_Min = _e_Max = _min_max

    def compare(self, op: str, a: ir.Value, b: ir.Value, dtype: str) -> ir.Value:
        t = dt.parse(dtype)
        if t.is_float:
            if op == "!=":
                return self.builder.fcmp_unordered(op, a, b)
            return self.builder.fcmp_ordered(op, a, b)
        if t.is_int:
            return self.builder.icmp_signed(op, a, b)
        return self.builder.icmp_unsigned(op, a, b)

    def _e_CmpOp(self, e: E.CmpOp) -> ir.Value:
        a, b, dtype = self.operands(e)
        return self.compare(_CMP[type(e)], a, b, dtype)

    def _e_And(self, e: E.And) -> ir.Value:
        a, b, _ = self.operands(e)
        return self.builder.and_(a, b)

    def _e_Or(self, e: E.Or) -> ir.Value:
        a, b, _ = self.operands(e)
        return self.builder.or_(a, b)

    def _e_Not(self, e: E.Not) -> ir.Value:
        return self.builder.not_(self.expr(e.a))

    def _e_Cast(self, e: E.Cast) -> ir.Value:
        return self.typed(e.value, e.dtype)

    def _e_Select(self, e: E.Select) -> ir.Value:
        cond = self.expr(e.condition)
        t, f = self.expr(e.true_value), self.expr(e.false_value)
        lanes = max(dt.lanes(e.true_value.dtype), dt.lanes(e.false_value.dtype), dt.lanes(e.condition.dtype))
        if lanes > 1:
            t, f = (v if isinstance(v.type, ir.VectorType) else ops.splat(self.builder, v, lanes) for v in (t, f))
        return self.builder.select(cond, t, f)

    # ------------------------------------------------------------ vectors
    def _e_Ramp(self, e: E.Ramp) -> ir.Value:
        vec_dtype = f"{e.base.dtype}x{e.lanes}"
        if isinstance(e.base, E.IntImm) and isinstance(e.stride, E.IntImm):
            t = ops.llvm_type(vec_dtype)
            values = [e.base.value + k * e.stride.value for k in range(e.lanes)]
            return ir.Constant(t, [ops.const(e.base.dtype, v) for v in values])
        b = self.builder
        base, stride = self.expr(e.base), self.expr(e.stride)
        steps = b.mul(ops.splat(b, stride, e.lanes), _iota(vec_dtype), flags=_int_flags(e.base.dtype))
        return b.add(ops.splat(b, base, e.lanes), steps, flags=_int_flags(e.base.dtype))

    def _e_Broadcast(self, e: E.Broadcast) -> ir.Value:
        return ops.splat(self.builder, self.expr(e.value), e.lanes)

    def _e_Shuffle(self, e: E.Shuffle) -> ir.Value:
        """The vectors concatenated lane by lane (scalars inserted as one lane), then the picks."""
        b = self.builder
        values = [self.expr(v) for v in e.vectors]
        elem = values[0].type.element if isinstance(values[0].type, ir.VectorType) else values[0].type
        lanes = [v.type.count if isinstance(v.type, ir.VectorType) else 1 for v in values]
        whole = ir.Constant(ir.VectorType(elem, sum(lanes)), ir.Undefined)
        pos = 0
        for v, n in zip(values, lanes):
            for k in range(n):
                lane = b.extract_element(v, ir.Constant(ir.IntType(32), k)) if isinstance(v.type, ir.VectorType) else v
                whole = b.insert_element(whole, lane, ir.Constant(ir.IntType(32), pos))
                pos += 1
        picks = [i.value for i in e.indices]
        if len(picks) == 1:
            return b.extract_element(whole, ir.Constant(ir.IntType(32), picks[0]))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), len(picks)), [ir.Constant(ir.IntType(32), p) for p in picks])
        return b.shuffle_vector(whole, ir.Constant(whole.type, ir.Undefined), mask)

    # ------------------------------------------------------------ calls
    def _e_Call(self, e: E.Call) -> ir.Value:
        if e.op == "if_then_else":
            return self._if_then_else(e)
        if e.op in ("call_extern", "call_llvm_intrin"):
            return self._call_extern(e)
        if e.op == "address_of":  # Buffer.access_ptr: a pointer to one element of a flat buffer
            (load,) = e.args
            elem = ops.llvm_type(load.buffer.dtype, in_memory=True)
            index = self.expr(self.flat_index(load.buffer, load.indices))
            return self.builder.gep(self.buffer_ptr(load.buffer), [index], source_etype=elem, inbounds=True)
        if e.op == "popcount":
            return self.builder.ctpop(self.expr(e.args[0]))
        if e.op == "prefetch":  # TVM's tir.prefetch(address, rw, locality, cache type): a hint
            return self._prefetch(e)
        if e.op == "tvm_call_packed":
            from .llvm_packed import call_packed
            return call_packed(self, e)
        if e.op in ops.MATH_OPS:
            args = [self.typed(a, e.dtype) for a in e.args]
            vector = self.mod.vector_math.call(self.builder, e.op, args, e.dtype)
            return vector if vector is not None else ops.math_call(self.builder, e.op, args, e.dtype)
        raise self.error(f"unknown intrinsic {e.op!r} for the llvm target; known: "
                         f"if_then_else, {', '.join(sorted(ops.MATH_OPS))}")

    def _prefetch(self, e: E.Call) -> ir.Value:
        if len(e.args) != 4 or not all(isinstance(a, E.IntImm) for a in e.args[1:]):
            raise self.error("tir.prefetch takes an address and three integer constants "
                             "(read/write, locality, cache type)")
        address = self.expr(e.args[0])
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [address.type, i32, i32, i32])
        fn = self.mod.module.globals.get("llvm.prefetch.p0") or ir.Function(self.mod.module, fnty, "llvm.prefetch.p0")
        self.builder.call(fn, [address] + [ir.Constant(i32, a.value) for a in e.args[1:]])
        return ops.const(e.dtype, 0)

    def _call_extern(self, e: E.Call) -> ir.Value:
        """A call of a C function by name (``tir.call_extern``; the linker resolves it) or of an LLVM
        intrinsic (``tir.call_llvm_intrin``: its first ``num_signature`` argument types name the
        overload, ``llvm.sqrt`` on a float is ``llvm.sqrt.f32``, unless the name already says it)."""
        name, args = e.args[0].value, [self.expr(a) for a in e.args[1:]]
        if e.op == "call_llvm_intrin":
            signature, args = e.args[1].value, args[1:]
            suffix = "".join("." + _overload_suffix(a.type) for a in args[:signature])
            if suffix and not name.endswith(suffix):
                name += suffix
        fnty = ir.FunctionType(ops.llvm_type(e.dtype), [a.type for a in args])
        fn = self.mod.module.globals.get(name)
        if fn is None:
            fn = ir.Function(self.mod.module, fnty, name)
        elif fn.function_type != fnty:
            raise self.error(f"call_extern {name}: called with two different signatures")
        return self.builder.call(fn, args)

    def _if_then_else(self, e: E.Call) -> ir.Value:
        """Only the taken branch runs, so a branch may load out of bounds when not taken."""
        cond, then_e, else_e = e.args
        b = self.builder
        c = self.scalar_condition(cond)
        then_bb, else_bb, merge_bb = self.new_block("ite.then"), self.new_block("ite.else"), self.new_block("ite.end")
        b.cbranch(c, then_bb, else_bb)
        results = []
        for bb, branch in ((then_bb, then_e), (else_bb, else_e)):
            b.position_at_end(bb)
            results.append((self.typed(branch, e.dtype), b.block))
            b.branch(merge_bb)
        b.position_at_end(merge_bb)
        phi = b.phi(results[0][0].type)
        for value, block in results:
            phi.add_incoming(value, block)
        return phi


_FLOAT_ARITH = {
    E.Add: lambda b, x, y: b.fadd(x, y, flags=ops.FLOAT_FLAGS),
    E.Sub: lambda b, x, y: b.fsub(x, y, flags=ops.FLOAT_FLAGS),
    E.Mul: lambda b, x, y: b.fmul(x, y, flags=ops.FLOAT_FLAGS),
    E.Div: lambda b, x, y: b.fdiv(x, y),
}

def _overload_suffix(ty: ir.Type) -> str:
    """LLVM's name of a type in an overloaded intrinsic's name (i32, f32, v8i8, p0)."""
    if isinstance(ty, ir.VectorType):
        return f"v{ty.count}{_overload_suffix(ty.element)}"
    if isinstance(ty, ir.IntType):
        return f"i{ty.width}"
    if isinstance(ty, ir.PointerType):
        return "p0"
    return {ir.HalfType: "f16", ir.FloatType: "f32", ir.DoubleType: "f64"}[type(ty)]


def _power_of_two(e: E.PrimExpr) -> Optional[int]:
    """The value of a constant (or broadcast constant) positive power of two, else None."""
    if isinstance(e, E.Broadcast):
        e = e.value
    if isinstance(e, E.IntImm) and e.value > 0 and e.value & (e.value - 1) == 0:
        return e.value
    return None


def _int_flags(dtype: str) -> tuple:
    """``nsw`` on signed integer arithmetic (as TVM): lets LLVM widen int32 indices."""
    return ("nsw",) if dt.parse(dtype).is_int else ()


def _iota(vec_dtype: str) -> ir.Constant:
    t = dt.parse(vec_dtype)
    return ir.Constant(ops.llvm_type(vec_dtype), [ops.const(str(t.element()), k) for k in range(t.lanes)])
