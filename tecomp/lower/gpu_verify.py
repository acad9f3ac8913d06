"""Checks that a lowered function can run as CUDA kernels, and the facts the GPU passes need.

This module owns the rules a cuda function must follow and ``GPUScheduleError``,
which names the stage, the axis and the cause when one is broken. It reads the
loop IR as lowering leaves it (before :mod:`.launch` rewrites it) and never
changes it.

The rules:

* **Every top-level loop is bound.** Each statement at the top of the function
  (under the allocations of intermediate global buffers) is a kernel: a loop
  bound to ``blockIdx.*`` or ``threadIdx.*``, or a statement with no loops at
  all (a stage whose every loop has extent 1), which runs as a kernel of one
  thread. A serial, parallel or ``vthread`` loop at the top is an error, as in
  TVM ("did you forget to bind?").
* **One extent per thread tag.** Within a kernel, every loop bound to the same
  tag has the same extent: they all stand for one hardware index.
* **A loop is bound at most once.** A loop bound to a tag that an enclosing
  loop already binds is the same hardware index, which only works when the
  stage shares its storage across that index (a ``shared`` stage under a
  ``threadIdx`` loop, or a global output). A ``local`` stage is private to a
  thread, so none of its loops may be bound at all. (Binding one axis twice,
  or one tag to two axes of a stage, is refused earlier by ``Stage.bind``.)
* **Launch limits.** Threads per block is a constant at most the target's
  ``max_num_threads`` (1024 by default); the ``shared`` allocations of a kernel
  are constant-sized and together at most ``SHARED_MEMORY_LIMIT`` bytes (48 KiB,
  the static limit of every CUDA GPU); ``local`` allocations are constant-sized.
* **Storage scopes.** A ``global`` intermediate lives between kernels (at the
  top), never inside one; ``shared``/``local`` stages live inside a kernel.
* **No parallel loops** inside a kernel (bind them instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ..error import LoweringError
from ..tir import dtype as dt
from ..tir.expr import IntImm
from ..tir.functor import collect_vars, post_order_visit, structural_equal
from ..tir.simplify import Analyzer
from ..tir.stmt import Allocate, BufferStore, For, ForKind, LetStmt, Stmt
from ..tir.wmma import SCOPES as FRAGMENT_SCOPES
from ..tir.wmma import is_fragment_scope

SHARED_MEMORY_LIMIT = 48 * 1024
BLOCK_TAGS = ("blockIdx.x", "blockIdx.y", "blockIdx.z")
THREAD_TAGS = ("threadIdx.x", "threadIdx.y", "threadIdx.z")
LAUNCH_TAGS = BLOCK_TAGS + THREAD_TAGS
VIRTUAL_TAGS = ("vthread", "cthread")
# Where a stage nested under a loop of the same tag may keep its storage (see the module docstring).
_SHARING_SCOPES = {"threadIdx": ("shared", "global"), "blockIdx": ("global",)}


class GPUScheduleError(LoweringError):
    """A schedule that cannot run as CUDA kernels: names the stage, the axis and the cause."""


@dataclass
class KernelFacts:
    """What one kernel root binds: per launch tag its extent and the loops bound to it."""

    extents: dict = field(default_factory=dict)       # tag -> PrimExpr
    loops: dict = field(default_factory=dict)         # tag -> list[For]
    shared: list = field(default_factory=list)        # shared Allocates, in program order
    shared_bytes: int = 0
    threads_per_block: int = 1


def stage_of(s: Any) -> str:
    """The name of the stage a loop belongs to: the last buffer stored under it (stages computed
    at one of its loops come before its own store)."""
    found: list[str] = []
    post_order_visit(s, lambda n: found.append(n.buffer.name) if isinstance(n, BufferStore) else None)
    return found[-1] if found else "?"


def stored_scopes(s: Stmt) -> set:
    """The storage scopes of the buffers stored under ``s``."""
    scopes: set = set()
    post_order_visit(s, lambda n: scopes.add(n.buffer.scope) if isinstance(n, BufferStore) else None)
    return scopes


def _constant_elements(buf: Any) -> Optional[int]:
    count = 1
    for extent in buf.shape:
        if not isinstance(extent, IntImm):
            return None
        count *= extent.value
    return count


def _where(loop: For) -> str:
    return f"stage {stage_of(loop.body)}, axis {loop.loop_var.name} ({loop.thread_tag})"


class _KernelChecker:
    """Walks one kernel root, collecting KernelFacts and raising GPUScheduleError on a broken rule."""

    def __init__(self, kernel: str, size_vars: set, max_threads: int, shared_limit: int):
        self.kernel = kernel
        self.size_vars = size_vars
        self.max_threads = max_threads
        self.shared_limit = shared_limit
        self.facts = KernelFacts()
        self.analyzer = Analyzer()
        self.enclosing: dict[str, For] = {}

    def fail(self, message: str) -> GPUScheduleError:
        return GPUScheduleError(f"kernel {self.kernel}: {message}")

    def walk(self, s: Any) -> None:
        if isinstance(s, For):
            self.loop(s)
        elif isinstance(s, Allocate):
            self.allocate(s)
            self.walk(s.body)
        elif isinstance(s, Stmt):
            for child in _children(s):
                self.walk(child)

    def loop(self, s: For) -> None:
        if s.kind is ForKind.PARALLEL:
            raise self.fail(f"stage {stage_of(s.body)}, axis {s.loop_var.name} is marked parallel, which has "
                            "no meaning inside a CUDA kernel; bind it to a thread index or leave it serial")
        tag = s.thread_tag if s.kind is ForKind.THREAD_BINDING else ""
        if tag not in LAUNCH_TAGS:
            self.walk(s.body)
            return
        self.check_extent(s)
        stored = stored_scopes(s.body)
        if stored and stored <= {"local"}:
            raise self.fail(f"{_where(s)}: the stage has scope local, which is private to each thread, so "
                            "binding its loop would split it across threads that each need all of it; compute "
                            "it inside the thread loop that reads it, or give it scope shared")
        outer = self.enclosing.get(tag)
        if outer is not None:
            allowed = _SHARING_SCOPES[tag.split(".")[0]]
            private = sorted(stored_scopes(s.body) - set(allowed))
            if private:
                raise self.fail(
                    f"{_where(s)} is bound inside axis {outer.loop_var.name} of stage {stage_of(outer.body)}, "
                    f"already bound to {tag}, so the loop would be bound twice: its {'/'.join(private)} "
                    f"storage is private to each {tag.split('.')[0]}; bind it to another tag, or use "
                    f"scope {' or '.join(allowed)}")
        self.enclosing[tag] = s
        try:
            self.walk(s.body)
        finally:
            if outer is None:
                del self.enclosing[tag]
            else:
                self.enclosing[tag] = outer

    def check_extent(self, s: For) -> None:
        tag, extent = s.thread_tag, self.analyzer.simplify(s.extent)
        loop_vars = sorted(v.name for v in collect_vars(extent) - self.size_vars)
        if loop_vars or not (isinstance(s.min, IntImm) and s.min.value == 0):
            raise self.fail(f"{_where(s)} has extent {extent} (from {s.min}), which depends on "
                            f"{', '.join(loop_vars) or 'its start'}; a launch extent may depend on "
                            "argument shapes only")
        if tag in THREAD_TAGS and not isinstance(extent, IntImm):
            raise self.fail(f"{_where(s)} has the symbolic extent {extent}; threads per block must be a "
                            "constant: split the axis by a constant factor and bind the inner part")
        known = self.facts.extents.get(tag)
        if known is None:
            self.facts.extents[tag] = extent
            self.facts.loops[tag] = [s]
            return
        if not structural_equal(known, extent):
            first = self.facts.loops[tag][0]
            raise self.fail(f"conflicting extents for {tag}: {_where(s)} has extent {extent}, but "
                            f"{_where(first)} has extent {known}; every loop bound to one thread tag "
                            "in a kernel must have the same extent")
        self.facts.loops[tag].append(s)

    def allocate(self, s: Allocate) -> None:
        buf = s.buffer
        if buf.scope == "global":
            raise self.fail(f"stage {buf.name} has scope global but is computed inside the kernel; a global "
                            "intermediate must be computed at root (its own kernel), or use a cache stage "
                            "with scope 'shared' or 'local'")
        if buf.scope not in ("shared", "local") and not is_fragment_scope(buf.scope):
            raise self.fail(f"stage {buf.name} has storage scope {buf.scope!r}, which the CUDA backend does "
                            f"not support (use 'shared' or 'local', or {', '.join(FRAGMENT_SCOPES)} for tensor "
                            "core fragments)")
        count = _constant_elements(buf)
        if count is None:
            raise self.fail(f"stage {buf.name} ({buf.scope}) needs {' * '.join(map(str, buf.shape))} elements, "
                            f"which is not a constant; {buf.scope} memory is sized when the kernel is compiled, "
                            "so tile the stage by constant factors")
        if buf.scope == "shared":
            self.facts.shared.append(s)
            self.facts.shared_bytes += count * dt.parse(buf.dtype).bits // 8

    def finish(self) -> KernelFacts:
        facts = self.facts
        threads = 1
        for tag in THREAD_TAGS:
            if tag in facts.extents:
                threads *= facts.extents[tag].value
        facts.threads_per_block = threads
        if threads > self.max_threads:
            dims = ", ".join(f"{tag}={facts.extents[tag]} ({_where(facts.loops[tag][0])})"
                             for tag in THREAD_TAGS if tag in facts.extents)
            raise self.fail(f"{threads} threads per block exceed the target's limit of {self.max_threads} "
                            f"(max_num_threads): {dims}")
        if facts.shared_bytes > self.shared_limit:
            parts = ", ".join(f"{a.buffer.name} {_constant_elements(a.buffer) * dt.parse(a.buffer.dtype).bits // 8} B"
                              for a in facts.shared)
            raise self.fail(f"shared memory of {facts.shared_bytes} bytes exceeds the limit of "
                            f"{self.shared_limit} bytes per block ({parts}); use smaller tiles")
        return facts


def _children(s: Stmt) -> tuple:
    from ..tir.stmt import AttrStmt, IfThenElse, SeqStmt
    if isinstance(s, SeqStmt):
        return s.seq
    if isinstance(s, IfThenElse):
        return (s.then_case,) if s.else_case is None else (s.then_case, s.else_case)
    if isinstance(s, (For, Allocate, AttrStmt, LetStmt)):
        return (s.body,)
    return ()


def check_kernel(root: Stmt, kernel: str, size_vars: set, max_threads: int,
                 shared_limit: int = SHARED_MEMORY_LIMIT) -> KernelFacts:
    """The launch facts of one kernel root; GPUScheduleError when it breaks a rule."""
    checker = _KernelChecker(kernel, size_vars, max_threads, shared_limit)
    checker.walk(root)
    return checker.finish()


def is_kernel_root(s: Stmt) -> bool:
    """A statement that starts a kernel: a loop bound to a launch tag, or one with no loop at all."""
    if isinstance(s, For):
        return s.kind is ForKind.THREAD_BINDING and s.thread_tag in LAUNCH_TAGS
    has_loop: list = []
    post_order_visit(s, lambda n: has_loop.append(n) if isinstance(n, For) else None)
    return not has_loop


def unbound_top_error(s: Stmt, func_name: str) -> GPUScheduleError:
    """The error for a top-level statement that is not a kernel."""
    if isinstance(s, For):
        how = (f"bound to {s.thread_tag}" if s.kind is ForKind.THREAD_BINDING
               else f"a {s.kind.value} loop")
        return GPUScheduleError(
            f"function {func_name}: stage {stage_of(s.body)}, axis {s.loop_var.name} is {how} outside any "
            "kernel; on cuda every top-level loop of a stage must be bound to blockIdx.* or threadIdx.* "
            "(split it and bind the parts)")
    if isinstance(s, Allocate):
        return GPUScheduleError(
            f"function {func_name}: stage {s.buffer.name} has scope {s.buffer.scope} but is computed at root; "
            f"{s.buffer.scope} memory exists only inside a kernel, so compute_at it inside the kernel that "
            "reads it")
    return GPUScheduleError(f"function {func_name}: stage {stage_of(s)} computes outside any kernel "
                            f"({type(s).__name__} at the top level); bind its loops to thread indices")
