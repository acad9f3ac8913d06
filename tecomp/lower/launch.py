"""GPU lowering: split a function into kernels and put each kernel in launch form.

``lower_for_gpu`` runs after the common pipeline for cuda targets. It checks
the rules of :mod:`.gpu_verify`, then rewrites every top-level statement into
one kernel in *launch form*::

    // attr [main_kernel0] kernel = 0
    thread_binding(blockIdx.y) for (blockIdx.y, GY)      one loop per launch tag,
      thread_binding(blockIdx.x) for (blockIdx.x, GX)    grid tags outermost
        allocate A.shared[...], shared                   shared memory, hoisted: one per block
          thread_binding(threadIdx.y) for (threadIdx.y, TY)
            thread_binding(threadIdx.x) for (threadIdx.x, TX)
              body

Every loop that a stage bound to a tag becomes that tag's one variable (the
loops stood for the same hardware index); ``vthread`` loops become serial
loops. Because every thread of a CUDA block runs the whole body, a statement
that was *not* inside a loop bound to some launched tag, and that writes
shared or global memory, is guarded by ``tag == 0`` so it still runs once per
index of the tags that do enclose it (statements writing only local memory run
in every thread: each needs its own copy). Barriers are then placed by
:mod:`.thread_sync`. Intermediate global buffers stay allocated at the top,
between kernels, where the runtime provides them as workspace.

A serial loop at the top whose body holds kernels (a scan's time loop, whose steps
depend on each other) stays on the host, as in TVM: its kernels are launched once per
iteration (:func:`host_steps`), the loop variable passed to them as an argument.

The launch form is itself loop IR: the reference interpreter runs it (blocks
one after another, the threads of a block in lockstep between barriers) and
the CUDA code generator reads grid and block sizes from its launch loops
(:func:`kernel_launch`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from ..target import Target
from ..tir import op as _op
from ..tir.expr import PrimExpr, Var
from ..tir.functor import Mutator, post_order_visit, substitute
from ..tir.stmt import (Allocate, AttrStmt, BufferStore, For, ForKind, IfThenElse, LetStmt, PrimFunc,
                        SeqStmt, Stmt, seq)
from .gpu_verify import (BLOCK_TAGS, LAUNCH_TAGS, SHARED_MEMORY_LIMIT, THREAD_TAGS, VIRTUAL_TAGS,
                         KernelFacts, check_kernel, is_kernel_root, stored_scopes, unbound_top_error)
from .thread_sync import insert_barriers

KERNEL_ATTR = "kernel"
GPU_LOWERED_ATTR = "tecomp.gpu_lowered"
# Launch order: grid tags outermost, then threads from slowest (z) to fastest (x).
_CANONICAL_ORDER = BLOCK_TAGS[::-1] + THREAD_TAGS[::-1]


@dataclass(frozen=True)
class KernelLaunch:
    """One kernel in launch form: its name, grid and block extents (x, y, z) and body parts."""

    name: str
    grid: tuple        # three PrimExprs (of size vars and constants)
    block: tuple       # three ints
    thread_vars: dict  # tag -> the Var standing for it in the body
    shared: tuple      # shared Buffers, in declaration order
    body: Stmt         # what every thread runs


def is_gpu_lowered(func: PrimFunc) -> bool:
    return any(key == GPU_LOWERED_ATTR for key, _ in func.attrs)


def lower_for_gpu(func: PrimFunc, target: Target) -> PrimFunc:
    """``func`` (from the common pipeline) split into kernels in launch form, barriers placed."""
    if is_gpu_lowered(func):
        return func
    rewriter = _TopLevel(func, target)
    body = rewriter.visit_top(func.body)
    attrs = func.attrs + ((GPU_LOWERED_ATTR, str(target)),)
    return PrimFunc(func.name, func.params, body, func.size_vars, attrs)


class _TopLevel:
    """Walks the top of a function: global allocations and sequences, down to kernel roots."""

    def __init__(self, func: PrimFunc, target: Target):
        self.func = func
        self.max_threads = target.max_num_threads
        self.size_vars = set(func.size_vars)
        self.count = 0

    def visit_top(self, s: Stmt) -> Stmt:
        if isinstance(s, Allocate) and s.buffer.scope == "global":
            return Allocate(s.buffer, self.visit_top(s.body))
        if isinstance(s, SeqStmt):
            return seq(*(self.visit_top(c) for c in s.seq))
        if isinstance(s, For) and s.kind is ForKind.SERIAL and _has_launch_loop(s.body):
            return dataclasses.replace(s, body=self.visit_top(s.body))  # a host loop around kernels
        if not is_kernel_root(s):
            raise unbound_top_error(s, self.func.name)
        name = f"{self.func.name}_kernel{self.count}"
        self.count += 1
        facts = check_kernel(s, name, self.size_vars, self.max_threads, SHARED_MEMORY_LIMIT)
        return AttrStmt(name, KERNEL_ATTR, _op.const(0), _launch_form(s, facts))


def _launch_form(root: Stmt, facts: KernelFacts) -> Stmt:
    tags = [t for t in _CANONICAL_ORDER if t in facts.extents]
    thread_vars = {t: Var(t, facts.loops[t][0].loop_var.dtype) for t in tags}
    launched = {t for t in tags if not _is_one(facts.extents[t])}
    body = _Canonicalizer(thread_vars, launched).rewrite(_VirtualThreads().visit(root), frozenset())
    body = _strip_shared(body)
    body = insert_barriers(body, {thread_vars[t]: facts.extents[t] for t in THREAD_TAGS if t in launched})
    for tag in reversed([t for t in tags if t in THREAD_TAGS]):
        body = For(thread_vars[tag], _op.const(0, thread_vars[tag].dtype), facts.extents[tag],
                   ForKind.THREAD_BINDING, body, tag)
    for alloc in reversed(facts.shared):
        body = Allocate(alloc.buffer, body)
    for tag in reversed([t for t in tags if t in BLOCK_TAGS]):
        body = For(thread_vars[tag], _op.const(0, thread_vars[tag].dtype), facts.extents[tag],
                   ForKind.THREAD_BINDING, body, tag)
    return body


def _is_one(e: PrimExpr) -> bool:
    return getattr(e, "value", None) == 1


class _Canonicalizer:
    """Replaces bound loops by their tag's variable and guards statements not under every tag."""

    def __init__(self, thread_vars: dict, launched: set):
        self.thread_vars = thread_vars
        self.launched = launched

    def rewrite(self, s: Stmt, bound: frozenset) -> Stmt:
        if isinstance(s, For) and s.kind is ForKind.THREAD_BINDING and s.thread_tag in LAUNCH_TAGS:
            var = self.thread_vars[s.thread_tag]
            body = substitute(s.body, {s.loop_var: _op.cast(var, s.loop_var.dtype)})
            return self.rewrite(body, bound | {s.thread_tag})
        missing = self.launched - bound
        if not _has_launch_loop(s):
            writes = stored_scopes(s)
            if not missing or writes <= {"local"}:
                return s  # runs in every thread: nothing to guard, or private results each needs
            if "local" not in writes:
                return _guard(s, missing, self.thread_vars)
        return self.descend(s, bound)

    def descend(self, s: Stmt, bound: frozenset) -> Stmt:
        if isinstance(s, SeqStmt):
            return seq(*(self.rewrite(c, bound) for c in s.seq))
        if isinstance(s, IfThenElse):
            other = None if s.else_case is None else self.rewrite(s.else_case, bound)
            return IfThenElse(s.condition, self.rewrite(s.then_case, bound), other)
        if isinstance(s, (For, Allocate, AttrStmt, LetStmt)):
            return dataclasses.replace(s, body=self.rewrite(s.body, bound))
        if isinstance(s, BufferStore) and s.buffer.scope != "local":
            return _guard(s, self.launched - bound, self.thread_vars)
        return s


def _has_launch_loop(s: Stmt) -> bool:
    found: list = []

    def visit(n: Any) -> None:
        if isinstance(n, For) and n.kind is ForKind.THREAD_BINDING and n.thread_tag in LAUNCH_TAGS:
            found.append(n)

    post_order_visit(s, visit)
    return bool(found)


def _guard(s: Stmt, missing: set, thread_vars: dict) -> Stmt:
    """``s`` run by index 0 of every tag in ``missing`` only."""
    if not missing:
        return s
    cond: Optional[PrimExpr] = None
    for tag in _CANONICAL_ORDER[::-1]:
        if tag in missing:
            var = thread_vars[tag]
            term = _op.cmp("==", var, _op.const(0, var.dtype))
            cond = term if cond is None else _op.logical_and(cond, term)
    return IfThenElse(cond, s)


class _VirtualThreads(Mutator):
    """``vthread`` loops become serial loops (TVM interleaves them; a loop gives the same values)."""

    def visit_For(self, node: For) -> Any:
        node = self.generic(node)
        if node.kind is ForKind.THREAD_BINDING and node.thread_tag in VIRTUAL_TAGS:
            return dataclasses.replace(node, kind=ForKind.SERIAL, thread_tag="")
        return node


class _SharedStripper(Mutator):
    """Drops shared Allocate nodes (the kernel declares them once, at its top)."""

    def visit_Allocate(self, node: Allocate) -> Any:
        body = self.visit(node.body)
        if node.buffer.scope == "shared":
            return body
        return node if body is node.body else Allocate(node.buffer, body)


def _strip_shared(s: Stmt) -> Stmt:
    return _SharedStripper().visit(s)


# ---------------------------------------------------------------- reading launch form

@dataclass(frozen=True)
class HostLoop:
    """A serial loop run on the host around kernel launches: ``steps`` once per value of ``var``."""

    var: Var
    min: PrimExpr
    extent: PrimExpr
    steps: tuple  # AttrStmt kernels and HostLoops, in execution order


def host_steps(func: PrimFunc) -> tuple:
    """What the host runs for a function in launch form, in order: kernel statements and host loops."""
    def visit(s: Any) -> list:
        if isinstance(s, AttrStmt) and s.attr_key == KERNEL_ATTR:
            return [s]
        if isinstance(s, SeqStmt):
            return [step for c in s.seq for step in visit(c)]
        if isinstance(s, Allocate):
            return visit(s.body)
        if isinstance(s, For) and s.kind is ForKind.SERIAL:
            return [HostLoop(s.loop_var, s.min, s.extent, tuple(visit(s.body)))]
        return []

    return tuple(visit(func.body))


def host_loop_vars(func: PrimFunc) -> list[Var]:
    """The variables of a function's host loops, outermost first (kernels take them as arguments)."""
    found: list[Var] = []

    def visit(steps: tuple) -> None:
        for step in steps:
            if isinstance(step, HostLoop):
                found.append(step.var)
                visit(step.steps)

    visit(host_steps(func))
    return found


def kernels(func: PrimFunc) -> list[AttrStmt]:
    """The kernel statements of a function in launch form, in program order (each once, also those
    a host loop launches repeatedly)."""
    found: list[AttrStmt] = []

    def visit(steps: tuple) -> None:
        for step in steps:
            if isinstance(step, HostLoop):
                visit(step.steps)
            else:
                found.append(step)

    visit(host_steps(func))
    return found


def workspaces(func: PrimFunc) -> list:
    """The global buffers allocated between kernels (also inside host loops), outermost first."""
    found: list = []

    def visit(s: Any) -> None:
        if isinstance(s, Allocate):
            found.append(s.buffer)
            visit(s.body)
        elif isinstance(s, SeqStmt):
            for c in s.seq:
                visit(c)
        elif isinstance(s, For) and s.kind is ForKind.SERIAL:
            visit(s.body)

    visit(func.body)
    return found


def kernel_launch(kernel: AttrStmt) -> KernelLaunch:
    """The launch of one kernel statement (see the module docstring for the shape it reads)."""
    extents: dict = {}
    thread_vars: dict = {}
    shared: list = []
    s = kernel.body
    while True:
        if isinstance(s, For) and s.kind is ForKind.THREAD_BINDING and s.thread_tag in LAUNCH_TAGS \
                and s.thread_tag not in extents:
            extents[s.thread_tag] = s.extent
            thread_vars[s.thread_tag] = s.loop_var
            s = s.body
        elif isinstance(s, Allocate) and s.buffer.scope == "shared":
            shared.append(s.buffer)
            s = s.body
        else:
            break
    one = _op.const(1)
    grid = tuple(extents.get(t, one) for t in BLOCK_TAGS)
    block = tuple(int(extents.get(t, one).value) for t in THREAD_TAGS)
    return KernelLaunch(kernel.node, grid, block, thread_vars, tuple(shared), s)
