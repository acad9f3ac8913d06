"""Parallel loops on the CPU: outlining a loop body and running it on tecomp's thread pool.

A ``For`` of kind PARALLEL becomes three pieces of LLVM IR::

    caller:  closure = {captured values..., min, extent, n, next}   (stack struct)
             tecomp_parallel_launch(worker, &closure, n)      (n: threads, see below)
    worker(closure):  unpack; until the range is used up: claim the next chunk [lo, hi)
             (an atomic add on the closure's counter); body(captured..., min+lo, min+hi)
    body(captured..., start, stop):  serial loop; pointer parameters are noalias

Chunks are claimed, not assigned: a range of ``CHUNKS_PER_THREAD`` chunks per thread
goes to whichever threads are running, so a thread the OS has descheduled (other
processes hold the cores) delays the loop by one chunk at most, not by its whole
share, while the threads still running take the rest. The pool
(``runtime/thread_pool.c``, linked into every library tecomp builds) does not wait
for a worker that had not joined by the time the chunks ran out; an object file a
user links without it (``tecomp_parallel_launch`` is a weak symbol, null there)
runs the worker on a libgomp team instead.

Captured values are the buffer pointers, size variables, enclosing loop
variables and lets that the loop body uses. Parallel loops nested in a
parallel body run serially. The thread count is libgomp's setting (``OMP_NUM_THREADS``
or ``omp_set_num_threads``, which the runtime may call through ctypes), capped
by the loop's work: waking a thread costs microseconds, so a loop gets one
thread per ``GRAIN`` estimated element operations (stores, counted through the
constant extents of the loops around them) or per ``STREAM_GRAIN`` bytes of the
buffers it touches, whichever is more (a matrix-vector product stores once per
step while it streams a matrix), and a loop too small for two calls its body
directly, without a launch. Counting loads instead made small cache-resident
kernels parallel, and their consumers then read data split across two cores'
caches. ``GRAIN`` was 32768 stores until a profile of small networks at 2 threads
showed their 10-20 us kernels (a 1x1 conv on a 14x14 map) running on one
thread: at 4096, ShuffleNetV2 ran 1.27x and MobileNetV3-small 1.09x faster and
no network of the zoo slower (transformers' small kernels included).
This module owns the outlining only; it must not emit anything but these
functions and the call.
"""

from __future__ import annotations

import math

from llvmlite import ir

from ..tir import expr as E
from ..tir import stmt as S
from ..tir.dtype import parse
from ..tir.functor import Visitor
from . import llvm_ops as ops
from .llvm import FunctionEmitter

_WORKER_TYPE = ir.FunctionType(ops.VOID, [ops.PTR])
GRAIN = 4096  # estimated element operations per thread (a few microseconds of work)
STREAM_GRAIN = 256 << 10  # bytes of memory touched per thread (about 20 us from beyond L2)
CHUNKS_PER_THREAD = 4
_UNKNOWN_EXTENT = 1 << 16  # what ``_extent`` takes a symbolic extent for


def _extent(loop: S.For) -> int:
    """The loop's constant extent; a symbolic one is taken as large (parallelism is worth it)."""
    return loop.extent.value if isinstance(loop.extent, E.IntImm) else _UNKNOWN_EXTENT


def estimated_work(stmt: S.Stmt) -> int:
    """Element operations (stores and calls) ``stmt`` performs, through its loops' extents."""
    if isinstance(stmt, S.For):
        return max(_extent(stmt), 0) * estimated_work(stmt.body)
    if isinstance(stmt, S.SeqStmt):
        return sum(estimated_work(s) for s in stmt.seq)
    if isinstance(stmt, S.IfThenElse):
        return max(estimated_work(stmt.then_case), estimated_work(stmt.else_case) if stmt.else_case else 0)
    if isinstance(stmt, (S.BufferStore, S.Evaluate)):
        return 1
    body = getattr(stmt, "body", None)
    return estimated_work(body) if isinstance(body, S.Stmt) else 0


class _Buffers(Visitor):
    """Per buffer an IR subtree reads or writes, the bytes its accesses move through the loops'
    extents; and the buffers it allocates itself."""

    def __init__(self) -> None:
        self.moved: dict = {}
        self.buffers: dict = {}
        self.allocated: set = set()
        self.scale = 1

    def visit_For(self, node: S.For) -> None:
        outer = self.scale
        self.scale *= max(_extent(node), 0)
        self.generic(node)
        self.scale = outer

    def _count(self, node, dtype: str) -> None:
        self.buffers.setdefault(node.buffer.data, node.buffer)
        t = parse(dtype)
        self.moved[node.buffer.data] = self.moved.get(node.buffer.data, 0) + self.scale * t.lanes * t.bits // 8
        self.generic(node)

    def visit_BufferLoad(self, node: E.BufferLoad) -> None:
        self._count(node, node.dtype)

    def visit_BufferStore(self, node: S.BufferStore) -> None:
        self._count(node, node.value.dtype)

    def visit_Allocate(self, node: S.Allocate) -> None:
        self.allocated.add(node.buffer.data)
        self.generic(node)


def footprint_bytes(stmt: S.Stmt) -> int:
    """Bytes of memory ``stmt`` touches outside itself: per buffer it did not allocate, the
    smaller of the buffer's size (when constant) and the bytes its accesses move. The memory a
    loop streams, which its store count does not show; a gather of a few rows from a large table
    counts the rows."""
    found = _Buffers()
    found.visit(stmt)
    total = 0
    for data, moved in found.moved.items():
        if data in found.allocated:
            continue
        buf = found.buffers[data]
        extents = [d.value if isinstance(d, E.IntImm) else d for d in buf.shape]
        size = math.prod(extents) * parse(buf.dtype).bits // 8 if all(isinstance(d, int) for d in extents) else moved
        total += min(size, moved)
    return total


def thread_count(loop: S.For) -> int:
    """Threads worth waking for ``loop``: one per ``GRAIN`` estimated operations or per
    ``STREAM_GRAIN`` bytes of memory it touches, whichever asks for more (a matrix-vector
    product stores once per step while it streams a matrix), at most one per iteration."""
    threads = max(estimated_work(loop) // GRAIN, footprint_bytes(loop) // STREAM_GRAIN)
    if isinstance(loop.extent, E.IntImm):
        threads = min(threads, loop.extent.value)
    return threads


class UsedVars(Visitor):
    """Vars an IR subtree reads, buffer data handles included, in first-use order."""

    def __init__(self) -> None:
        self.found: dict = {}

    def visit_Var(self, node: E.Var) -> None:
        self.found.setdefault(node, None)

    visit_SizeVar = visit_Var

    def _buffer_node(self, node) -> None:
        self.found.setdefault(node.buffer.data, None)
        for extent in node.buffer.shape:  # read by bound checks (llvm_checks)
            if isinstance(extent, E.PrimExpr):
                self.visit(extent)
        self.generic(node)

    visit_BufferLoad = visit_BufferStore = visit_Allocate = _buffer_node


def emit_parallel_for(parent: FunctionEmitter, loop: S.For) -> None:
    """Emit ``loop`` (kind PARALLEL) at ``parent``'s insertion point."""
    used = UsedVars()
    used.visit(loop.body)
    captured = [v for v in used.found if v is not loop.loop_var and v in parent.env]
    values = [parent.env[v] for v in captured]
    loop_ty = ops.llvm_type(loop.loop_var.dtype)
    lo = parent.typed(loop.min, loop.loop_var.dtype)
    extent = parent.typed(loop.extent, loop.loop_var.dtype)

    name = parent.mod.unique_name(f"{parent.fname}.parallel")
    body = _emit_body(parent, f"{name}.body", loop, captured, [v.type for v in values] + [loop_ty, loop_ty])
    b = parent.builder
    threads = thread_count(loop)
    if threads < 2:
        b.call(body.function, values + [lo, b.add(lo, extent)])
        return
    # closure: captured values, min, extent, threads (i64), next unclaimed iteration (i64)
    closure_ty = ir.LiteralStructType([v.type for v in values] + [loop_ty, loop_ty, ops.I64, ops.I64])
    worker = _emit_worker(parent, name, body.function, closure_ty, len(values))
    closure = parent.entry_alloca(closure_ty, 8)
    count = capped_threads(parent, threads)
    for k, value in enumerate(values + [lo, extent, b.sext(count, ops.I64), ir.Constant(ops.I64, 0)]):
        b.store(value, closure_field(b, closure, closure_ty, k))
    launch = weak_declaration(parent.mod.module, "tecomp_parallel_launch",
                               ir.FunctionType(ops.VOID, [ops.PTR, ops.PTR, ops.I32]))
    with b.if_else(b.icmp_unsigned("!=", launch, ir.Constant(ops.PTR, None))) as (pooled, alone):
        with pooled:
            b.call(launch, [worker, closure, count])
        with alone:  # an object file linked by its user without tecomp's pool: libgomp's team
            gomp = ops.declare(parent.mod.module, "GOMP_parallel",
                               ir.FunctionType(ops.VOID, [ops.PTR, ops.PTR, ops.I32, ops.I32]))
            b.call(gomp, [worker, closure, count, ir.Constant(ops.I32, 0)])


def capped_threads(parent: FunctionEmitter, cap: int) -> ir.Value:
    """The i32 thread count a loop gets: libgomp's setting, at most ``cap``."""
    b = parent.builder
    most = b.call(ops.declare(parent.mod.module, "omp_get_max_threads", ir.FunctionType(ops.I32, [])), [])
    limit = ir.Constant(ops.I32, min(cap, 2 ** 31 - 1))
    return b.select(b.icmp_signed("<", limit, most), limit, most)


def weak_declaration(module: ir.Module, name: str, fnty: ir.FunctionType) -> ir.Function:
    """``name`` declared extern_weak: its address is null where nothing linked defines it."""
    fn = module.globals.get(name)
    if fn is None:
        fn = ir.Function(module, fnty, name)
        fn.linkage = "extern_weak"
    return fn


def closure_field(b: ir.IRBuilder, closure: ir.Value, closure_ty: ir.Type, k: int) -> ir.Value:
    return b.gep(closure, [ir.Constant(ops.I32, 0), ir.Constant(ops.I32, k)],
                 source_etype=closure_ty, inbounds=True)


def _emit_body(parent: FunctionEmitter, name: str, loop: S.For, captured: list, types: list) -> FunctionEmitter:
    start, stop = E.Var("start", loop.loop_var.dtype), E.Var("stop", loop.loop_var.dtype)
    fe = FunctionEmitter.new_kernel(parent.mod, name, parent.fname, captured + [start, stop], types,
                                    in_parallel=True)
    fe.serial_loop(loop.loop_var, fe.env[start], fe.env[stop], lambda: fe.stmt(loop.body))
    fe.builder.ret_void()
    return fe


def _emit_worker(parent: FunctionEmitter, name: str, body: ir.Function, closure_ty: ir.Type,
                 ncaptured: int) -> ir.Function:
    module = parent.mod.module
    fn = ir.Function(module, _WORKER_TYPE, name)
    fn.linkage = "internal"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    closure = fn.args[0]
    fields = [b.load(closure_field(b, closure, closure_ty, k), typ=closure_ty.elements[k])
              for k in range(ncaptured + 3)]
    lo, extent, threads = fields[ncaptured:]
    extent = b.sext(extent, ops.I64) if extent.type.width < 64 else extent
    chunk = _chunk(b, extent, threads)
    claim_bb, run_bb, done_bb = (fn.append_basic_block(n) for n in ("claim", "run", "done"))
    b.branch(claim_bb)
    b.position_at_end(claim_bb)
    begin = b.atomic_rmw("add", closure_field(b, closure, closure_ty, ncaptured + 3), chunk, "monotonic")
    b.cbranch(b.icmp_signed("<", begin, extent), run_bb, done_bb)
    b.position_at_end(run_bb)
    end = b.add(begin, chunk)
    end = b.select(b.icmp_signed("<", end, extent), end, extent)
    start = b.add(lo, b.trunc(begin, lo.type) if lo.type.width < 64 else begin)
    stop = b.add(lo, b.trunc(end, lo.type) if lo.type.width < 64 else end)
    b.call(body, fields[:ncaptured] + [start, stop])
    b.branch(claim_bb)
    b.position_at_end(done_bb)
    b.ret_void()
    return fn


def _chunk(b: ir.IRBuilder, extent: ir.Value, threads: ir.Value) -> ir.Value:
    """Iterations per claimed chunk, in i64: ceil(extent / (threads * CHUNKS_PER_THREAD))."""
    pieces = b.mul(threads, ir.Constant(ops.I64, CHUNKS_PER_THREAD))
    return b.sdiv(b.sub(b.add(extent, pieces), ir.Constant(ops.I64, 1)), pieces)
