"""Serial loops of parallel loops on the CPU: one thread team for every step of the loop.

A serial loop (a recurrence's time steps) whose body runs parallel loops would launch each
of them once per step, and a launch costs about what a 4 us LSTM step saves by splitting its
product over two cores. Instead the whole loop runs on one team (``tecomp_parallel_team`` in
``runtime/thread_pool.c``)::

    caller:    the body's constant-size allocations; closure = {captured values..., loop min}
               tecomp_parallel_team(phase_fn, &closure, extent, phases, limits, threads)
    phase_fn(closure, step, phase, chunk, chunks):
               a parallel loop: body(captured..., t, start, stop) on chunk's share of its range
               a run of other statements: body(captured..., t), on one member

The body's statements are the phases, in order: each parallel loop one phase, each run of
other statements one. Members wait for a phase to finish before the next, and chunk k of a
phase goes to member k at every step, so a member's share of a recurrent weight stays in
its own cache. The allocations move out of the loop (one buffer the team shares), which is
sound because steps never overlap. A loop takes this path when one of its parallel loops
does at least ``GRAIN`` operations or streams ``STREAM_GRAIN`` bytes a step (a barrier costs
far less than a launch); the others run as before, and so does every loop where the library
is linked without tecomp's pool.
"""

from __future__ import annotations

from typing import Callable, Optional, Union

from llvmlite import ir

from ..tir import expr as E
from ..tir import stmt as S
from . import llvm_ops as ops
from .common import const_product
from .llvm import FunctionEmitter
from .llvm_parallel import (GRAIN, STREAM_GRAIN, UsedVars, capped_threads, closure_field, estimated_work,
                            footprint_bytes, weak_declaration)

Phase = Union[S.For, list]  # a parallel loop, or a run of other statements
_PHASE_FN_TYPE = ir.FunctionType(ops.VOID, [ops.PTR, ops.I64, ops.I32, ops.I64, ops.I64])


def team_phases(loop: S.For) -> Optional[tuple[list[S.Allocate], list[Phase]]]:
    """The allocations around ``loop``'s body and its phases, or None where a team does not pay
    (no parallel loop with a step's worth of work, a symbolic extent, or a body it cannot split)."""
    if not isinstance(loop.extent, E.IntImm) or loop.extent.value < 2:
        return None
    body, allocations = loop.body, []
    while isinstance(body, S.Allocate) and const_product(body.buffer.shape) is not None:
        allocations.append(body)
        body = body.body
    phases: list[Phase] = []
    for item in body.seq if isinstance(body, S.SeqStmt) else [body]:
        if isinstance(item, S.For) and item.kind is S.ForKind.PARALLEL:
            if not (isinstance(item.extent, E.IntImm) and isinstance(item.min, E.IntImm)):
                return None
            phases.append(item)
        elif phases and isinstance(phases[-1], list):
            phases[-1].append(item)
        else:
            phases.append([item])
    worth = any(isinstance(p, S.For) and p.extent.value >= 2
                and (estimated_work(p) >= GRAIN or footprint_bytes(p) >= STREAM_GRAIN) for p in phases)
    return (allocations, phases) if worth else None


def emit_team_loop(parent: FunctionEmitter, loop: S.For, found: tuple[list[S.Allocate], list[Phase]]) -> None:
    """Emit ``loop`` (serial, with ``team_phases``' answer ``found``) at ``parent``'s insertion point."""
    allocations, phases = found
    team = weak_declaration(parent.mod.module, "tecomp_parallel_team",
                             ir.FunctionType(ops.VOID, [ops.PTR, ops.PTR, ops.I64, ops.I32, ops.PTR, ops.I32]))
    b = parent.builder
    threads = capped_threads(parent, max(p.extent.value for p in phases if isinstance(p, S.For)))
    pooled = b.and_(b.icmp_unsigned("!=", team, ir.Constant(ops.PTR, None)),
                    b.icmp_signed(">", threads, ir.Constant(ops.I32, 1)))
    with b.if_else(pooled) as (on_team, alone):
        with on_team:
            _with_allocations(parent, allocations, lambda: _launch_team(parent, team, loop, phases, threads))
        with alone:  # one thread, or no pool linked: the loop as it is
            parent.plain_loop(loop)


def _with_allocations(parent: FunctionEmitter, allocations: list[S.Allocate], then: Callable[[], None]) -> None:
    if not allocations:
        then()
        return
    parent.allocated(allocations[0].buffer, lambda: _with_allocations(parent, allocations[1:], then))


def _launch_team(parent: FunctionEmitter, team: ir.Function, loop: S.For, phases: list[Phase],
                 threads: ir.Value) -> None:
    used = UsedVars()
    for phase in phases:
        for stmt in [phase] if isinstance(phase, S.For) else phase:
            used.visit(stmt)
    captured = [v for v in used.found if v is not loop.loop_var and v in parent.env]
    values = [parent.env[v] for v in captured]
    loop_ty = ops.llvm_type(loop.loop_var.dtype)
    closure_ty = ir.LiteralStructType([v.type for v in values] + [loop_ty])
    name = parent.mod.unique_name(f"{parent.fname}.team")
    bodies = [_emit_phase_body(parent, f"{name}.phase{k}", loop, phase, captured, [v.type for v in values])
              for k, phase in enumerate(phases)]
    phase_fn = _emit_phase_fn(parent, name, loop, phases, bodies, closure_ty, len(values))

    b = parent.builder
    closure = parent.entry_alloca(closure_ty, 8)
    for k, value in enumerate(values + [parent.typed(loop.min, loop.loop_var.dtype)]):
        b.store(value, closure_field(b, closure, closure_ty, k))
    limits_ty = ir.ArrayType(ops.I64, len(phases))
    limits = parent.entry_alloca(limits_ty, 8)
    for k, phase in enumerate(phases):
        most = phase.extent.value if isinstance(phase, S.For) else 1
        b.store(ir.Constant(ops.I64, most), b.gep(limits, [ir.Constant(ops.I32, 0), ir.Constant(ops.I32, k)],
                                                  source_etype=limits_ty, inbounds=True))
    b.call(team, [phase_fn, closure, ir.Constant(ops.I64, loop.extent.value), ir.Constant(ops.I32, len(phases)),
                  limits, threads])


def _emit_phase_body(parent: FunctionEmitter, name: str, loop: S.For, phase: Phase, captured: list,
                     types: list) -> ir.Function:
    """``body(captured..., t[, start, stop])``: a parallel loop over ``[start, stop)``, or the statements."""
    t_ty = ops.llvm_type(loop.loop_var.dtype)
    if isinstance(phase, S.For):
        start, stop = E.Var("start", phase.loop_var.dtype), E.Var("stop", phase.loop_var.dtype)
        range_ty = ops.llvm_type(phase.loop_var.dtype)
        fe = FunctionEmitter.new_kernel(parent.mod, name, parent.fname, captured + [loop.loop_var, start, stop],
                                        types + [t_ty, range_ty, range_ty], in_parallel=True)
        fe.serial_loop(phase.loop_var, fe.env[start], fe.env[stop], lambda: fe.stmt(phase.body))
    else:
        fe = FunctionEmitter.new_kernel(parent.mod, name, parent.fname, captured + [loop.loop_var], types + [t_ty],
                                        in_parallel=True)
        for stmt in phase:
            fe.stmt(stmt)
    fe.builder.ret_void()
    return fe.function


def _emit_phase_fn(parent: FunctionEmitter, name: str, loop: S.For, phases: list[Phase], bodies: list,
                   closure_ty: ir.Type, ncaptured: int) -> ir.Function:
    """``phase_fn(closure, step, phase, chunk, chunks)``: chunk ``chunk`` of ``chunks`` of one phase."""
    fn = ir.Function(parent.mod.module, _PHASE_FN_TYPE, name)
    fn.linkage = "internal"
    closure, step, which, chunk, chunks = fn.args
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    fields = [b.load(closure_field(b, closure, closure_ty, k), typ=closure_ty.elements[k])
              for k in range(ncaptured + 1)]
    lo = fields[ncaptured]
    t = b.add(lo, ops.cast(b, step, "int64", loop.loop_var.dtype))
    done = fn.append_basic_block("done")
    switch = b.switch(which, done)
    for k, (phase, body) in enumerate(zip(phases, bodies)):
        block = fn.append_basic_block(f"phase{k}")
        switch.add_case(ir.Constant(ops.I32, k), block)
        b.position_at_end(block)
        args = fields[:ncaptured] + [t]
        if isinstance(phase, S.For):
            extent = ir.Constant(ops.I64, phase.extent.value)
            first = b.sdiv(b.mul(extent, chunk), chunks)  # chunk k: iterations [E*k/C, E*(k+1)/C)
            last = b.sdiv(b.mul(extent, b.add(chunk, ir.Constant(ops.I64, 1))), chunks)
            dtype = phase.loop_var.dtype
            base = ir.Constant(ops.llvm_type(dtype), phase.min.value)
            args += [b.add(base, ops.cast(b, first, "int64", dtype)), b.add(base, ops.cast(b, last, "int64", dtype))]
        b.call(body, args)
        b.branch(done)
    b.position_at_end(done)
    b.ret_void()
    return fn

