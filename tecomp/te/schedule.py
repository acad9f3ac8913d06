"""Schedules: stages, iteration-variable relations, attach points, dataflow rewrites.

Schedule primitives do not build loops. They record relations between
iteration variables (split, fuse), edit each stage's ordered list of leaf
variables, annotate leaves (vectorize, unroll, parallel, bind) and record
where a stage is computed (root, inline, or at a loop of another stage).
``tecomp.lower`` turns all of that into loop IR. Every invalid request is
rejected here, at the call, with a ``ScheduleError`` naming the stage and
the variable; only where ``compute_at`` places a stage is checked when the
schedule is lowered (``attach_check``), as TVM does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from ..error import ScheduleError
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import IntImm, PrimExpr, ProducerLoad, Reduce, StringImm, Var
from ..tir.functor import Mutator
from ..tir.stmt import ForKind
from ..tir.wmma import SCOPES as FRAGMENT_SCOPES
from ..tir.wmma import is_fragment_scope
from .operation import ComputeOp, ExternOp, PlaceholderOp, ScanOp
from .relations import Fuse, Singleton, Split, mixed_axes
from .tensor import IterVar, Operation, Range, Tensor
from .tensor_compute import TensorComputeOp

__all__ = ["Buffer", "Fuse", "Schedule", "Singleton", "Split", "Stage", "create_schedule"]


@dataclass(eq=False)
class IterVarAttr:
    """What a leaf loop becomes: its ForKind, the thread it is bound to, pragmas."""

    kind: ForKind = ForKind.SERIAL
    bind_thread: Optional[IterVar] = None
    pragmas: list = field(default_factory=list)
    tensor_intrin: Any = None

    @property
    def iter_type(self) -> int:
        """TVM's view of the annotation: ``IterVar.Unrolled``, ``Vectorized``, ``Parallelized``, ..."""
        if self.tensor_intrin is not None:
            return IterVar.Tensorized
        return {ForKind.UNROLLED: IterVar.Unrolled, ForKind.VECTORIZED: IterVar.Vectorized,
                ForKind.PARALLEL: IterVar.Parallelized,
                ForKind.THREAD_BINDING: IterVar.ThreadIndex}.get(self.kind, IterVar.DataPar)

    @property
    def pragma_keys(self) -> tuple:
        """TVM's view of the pragmas' keys, as string constants."""
        return tuple(StringImm(key) for key, _ in self.pragmas)

    @property
    def pragma_values(self) -> tuple:
        """The pragmas' values, in the order of ``pragma_keys``."""
        return tuple(value for _, value in self.pragmas)


class AttachType(str):
    """Where a stage is placed: "root", "inline" or "scope", equal also to TVM's code for it
    (``kGroupRoot`` 1, ``kInline`` 2, ``kScope`` 4), as scripts test ``stage.attach_type == 1``."""

    _CODES = {"root": 1, "inline": 2, "scope": 4}

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int) and not isinstance(other, bool):
            return self._CODES[str(self)] == other
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


_ROOT, _INLINE, _SCOPE = AttachType("root"), AttachType("inline"), AttachType("scope")


class Stage:
    """The schedule of one operation."""

    def __init__(self, op: Operation, schedule: "Schedule"):
        self.op = op
        self.origin_op = op
        self.schedule = schedule
        self._scope: Optional[str] = None   # None: inferred from the attach point (see ``scope``)
        self.store_predicate: Optional[PrimExpr] = None
        self.double_buffer_on = False
        self.group: Optional[Group] = None
        self.attach_type = _ROOT           # root | inline | scope
        self.attach_stage: Optional[Stage] = None
        self.attach_ivar: Optional[IterVar] = None
        self.relations: list = []
        self.iter_var_attrs: dict = {}
        self.storage_align_info: list = []
        self.is_output = False
        self._reset_iter_vars()
        if isinstance(op, TensorComputeOp):
            self._tensorize_intrinsic_loops(op)

    def _tensorize_intrinsic_loops(self, op: TensorComputeOp) -> None:
        """A tensor compute's loops: its own axes, its own reduction axes, then the intrinsic's,
        which the intrinsic replaces (TVM's TensorComputeOp)."""
        inner = op.axis[op.num_outer:] + op.reduce_axis[op.num_outer_reduce:]
        self.leaf_iter_vars = (list(op.axis[:op.num_outer]) + list(op.reduce_axis[:op.num_outer_reduce])
                               + list(inner))
        if inner:
            self.tensorize(inner[0], op.intrin)

    def _reset_iter_vars(self) -> None:
        if isinstance(self.op, ComputeOp):
            roots = list(self.op.axis) + list(self.op.reduce_axis)
        elif isinstance(self.op, ScanOp):
            roots = self.op.root_iter_vars
        else:
            roots = []
        self.all_iter_vars = list(roots)
        self.leaf_iter_vars = list(roots)

    @property
    def name(self) -> str:
        return self.op.name

    def __repr__(self) -> str:
        return f"Stage({self.name})"

    # ------------------------------------------------------------ checks
    def _require_compute(self, primitive: str) -> None:
        if isinstance(self.op, ScanOp):
            raise ScheduleError(f"{primitive}: stage {self.name} is a scan; schedule its body stages (its "
                                "one loop is the scan axis, where stages can be computed)")
        if isinstance(self.op, ExternOp):
            raise ScheduleError(f"{primitive}: stage {self.name} is a te.extern; its hand-written body is not "
                                "scheduled and runs at root")
        if not isinstance(self.op, ComputeOp):
            raise ScheduleError(f"{primitive}: stage {self.name} is a placeholder (an input); "
                                "only compute stages can be scheduled")

    def _refuse_mixed(self, iv: Optional[IterVar], primitive: str) -> None:
        """Refuse ``primitive`` on loop ``iv`` (on the stage when None) where it runs over both a
        data-parallel and a reduction axis (a fuse of the two): only plain loops can hold it."""
        mixed = mixed_axes(self.relations)
        hit = [v for v in self.all_iter_vars if v in mixed and (iv is None or v is iv)]
        if hit:
            raise ScheduleError(f"{primitive} on stage {self.name}: loop {hit[0].name} fuses data-parallel and "
                                f"reduction axes; {primitive} needs them apart (fuse only axes of one kind)")

    def _leaf(self, iv: Any, primitive: str) -> IterVar:
        self._require_compute(primitive)
        if not isinstance(iv, IterVar):
            raise ScheduleError(f"{primitive} on stage {self.name}: expected an IterVar (an axis), "
                                f"got {iv!r}")
        if iv not in self.leaf_iter_vars:
            leaves = ", ".join(v.name for v in self.leaf_iter_vars)
            if iv in self.all_iter_vars:
                reason = "it was already split or fused"
            else:
                reason = "it is not an axis of this stage"
            raise ScheduleError(f"{primitive} on stage {self.name}: axis {iv.name} is not a leaf "
                                f"iteration variable ({reason}); leaves are [{leaves}]")
        return iv

    def _attr(self, iv: IterVar) -> IterVarAttr:
        attr = self.iter_var_attrs.get(iv)
        if attr is None:
            attr = self.iter_var_attrs[iv] = IterVarAttr()
        return attr

    def _annotate(self, iv: Any, kind: ForKind, primitive: str) -> None:
        iv = self._leaf(iv, primitive)
        attr = self._attr(iv)
        if attr.bind_thread is not None:
            raise ScheduleError(f"{primitive} on stage {self.name}: axis {iv.name} is already bound "
                                f"to {attr.bind_thread.thread_tag}")
        if attr.kind not in (ForKind.SERIAL, kind):
            raise ScheduleError(f"{primitive} on stage {self.name}: axis {iv.name} is already "
                                f"marked {attr.kind.value}")
        attr.kind = kind

    # ------------------------------------------------------------ loop shape
    def split(self, parent: IterVar, factor: Any = None, nparts: Any = None) -> tuple:
        """Split ``parent`` into (outer, inner) by inner extent ``factor`` or outer extent ``nparts``."""
        parent = self._leaf(parent, "split")
        if (factor is None) == (nparts is None):
            raise ScheduleError(f"split on stage {self.name}, axis {parent.name}: give exactly one "
                                "of factor= or nparts=")
        amount = _op.convert(factor if factor is not None else nparts)
        if isinstance(amount, IntImm) and amount.value <= 0:
            what = "factor" if factor is not None else "nparts"
            raise ScheduleError(f"split on stage {self.name}, axis {parent.name}: {what} must be "
                                f"positive, got {amount.value}")
        if parent in self.iter_var_attrs and self.iter_var_attrs[parent].kind is not ForKind.SERIAL:
            raise ScheduleError(f"split on stage {self.name}: axis {parent.name} is already marked "
                                f"{self.iter_var_attrs[parent].kind.value}; split before annotating")
        outer = IterVar(None, Var(parent.name + ".outer", parent.var.dtype), parent.iter_type)
        inner = IterVar(None, Var(parent.name + ".inner", parent.var.dtype), parent.iter_type)
        self.relations.append(Split(parent, outer, inner,
                                    amount if factor is not None else None,
                                    amount if nparts is not None else None))
        self._replace_leaf(parent, [outer, inner])
        self._move_attached(parent, inner)
        return outer, inner

    def _move_attached(self, old: IterVar, new: IterVar) -> None:
        """Stages computed at ``old``, no longer a loop, move to ``new``: as in TVM, the inner loop
        of a split axis or the fused loop of a fused one."""
        for st in self.schedule.stages:
            if st.attach_type == "scope" and st.attach_stage is self and st.attach_ivar is old:
                st.attach_ivar = new

    def _replace_leaf(self, old: IterVar, new: list) -> None:
        pos = self.leaf_iter_vars.index(old)
        self.leaf_iter_vars[pos:pos + 1] = new
        self.all_iter_vars.extend(new)

    def tile(self, x_parent: IterVar, y_parent: IterVar, x_factor: Any, y_factor: Any) -> tuple:
        """Split two axes and reorder to (x.outer, y.outer, x.inner, y.inner)."""
        xo, xi = self.split(x_parent, factor=x_factor)
        yo, yi = self.split(y_parent, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, *args: IterVar) -> IterVar:
        """Fuse adjacent leaves (outermost first) into one loop."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args:  # TVM: a new loop of extent one, outermost
            self._require_compute("fuse")
            single = IterVar(Range(_op.const(0, "int32"), _op.const(1, "int32")), Var("singleton", "int32"),
                             IterVar.DataPar)
            self.relations.append(Singleton(single))
            self.all_iter_vars.append(single)
            self.leaf_iter_vars.insert(0, single)
            return single
        ivs = [self._leaf(a, "fuse") for a in args]
        fused = ivs[0]
        for inner in ivs[1:]:
            fused = self._fuse_two(fused, inner)
        return fused

    def _fuse_two(self, outer: IterVar, inner: IterVar) -> IterVar:
        pos_o = self.leaf_iter_vars.index(outer)
        pos_i = self.leaf_iter_vars.index(inner)
        if pos_i != pos_o + 1:
            raise ScheduleError(f"fuse on stage {self.name}: axes {outer.name} and {inner.name} are "
                                "not adjacent, outer first, in the loop order; reorder them first")
        for iv in (outer, inner):
            attr = self.iter_var_attrs.get(iv)
            if attr is not None and (attr.kind is not ForKind.SERIAL or attr.bind_thread is not None):
                raise ScheduleError(f"fuse on stage {self.name}: axis {iv.name} is already annotated; "
                                    "fuse before annotating")
        # as in TVM, fusing a data-parallel and a reduction axis gives a reduction loop
        kind = inner.iter_type if inner.is_reduce else outer.iter_type
        fused = IterVar(None, Var(f"{outer.name}.{inner.name}.fused", outer.var.dtype), kind)
        self.relations.append(Fuse(outer, inner, fused))
        self.leaf_iter_vars[pos_o:pos_i + 1] = [fused]
        self._move_attached(outer, fused)
        self._move_attached(inner, fused)
        self.all_iter_vars.append(fused)
        return fused

    def reorder(self, *args: IterVar) -> None:
        """Put the given leaves in this relative order (other leaves keep their places)."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        ivs = [self._leaf(a, "reorder") for a in args]
        if len(set(map(id, ivs))) != len(ivs):
            raise ScheduleError(f"reorder on stage {self.name}: an axis appears twice in "
                                f"({', '.join(v.name for v in ivs)})")
        positions = sorted(self.leaf_iter_vars.index(v) for v in ivs)
        for pos, iv in zip(positions, ivs):
            self.leaf_iter_vars[pos] = iv

    # ------------------------------------------------------------ annotations
    def vectorize(self, iv: IterVar) -> None:
        if isinstance(iv, IterVar) and iv.is_reduce:
            raise ScheduleError(f"vectorize on stage {self.name}: axis {iv.name} is a reduction axis; "
                                "only data-parallel axes can be vectorized")
        self._annotate(iv, ForKind.VECTORIZED, "vectorize")

    def unroll(self, iv: IterVar) -> None:
        self._annotate(iv, ForKind.UNROLLED, "unroll")

    def parallel(self, iv: IterVar) -> None:
        if isinstance(iv, IterVar) and iv.is_reduce:
            raise ScheduleError(f"parallel on stage {self.name}: axis {iv.name} is a reduction axis; "
                                "parallel iterations would race on the output")
        self._annotate(iv, ForKind.PARALLEL, "parallel")

    def bind(self, iv: IterVar, thread_ivar: IterVar) -> None:
        """Bind a leaf loop to a GPU thread index created by ``te.thread_axis``."""
        iv = self._leaf(iv, "bind")
        if not isinstance(thread_ivar, IterVar) or thread_ivar.iter_type != IterVar.ThreadIndex:
            raise ScheduleError(f"bind on stage {self.name}, axis {iv.name}: expected a "
                                f"te.thread_axis(...), got {thread_ivar!r}")
        self._refuse_mixed(iv, "bind")
        if iv.is_reduce and not thread_ivar.thread_tag.startswith("threadIdx"):
            raise ScheduleError(f"bind on stage {self.name}: reduction axis {iv.name} can only be bound to "
                                f"threadIdx.* (a cross-thread reduction), not {thread_ivar.thread_tag}")
        attr = self._attr(iv)
        if attr.kind is not ForKind.SERIAL:
            raise ScheduleError(f"bind on stage {self.name}: axis {iv.name} is already marked "
                                f"{attr.kind.value}")
        if attr.bind_thread is not None and attr.bind_thread is not thread_ivar:
            raise ScheduleError(f"bind on stage {self.name}: axis {iv.name} is already bound to "
                                f"{attr.bind_thread.thread_tag}")
        for other, other_attr in self.iter_var_attrs.items():
            bound = other_attr.bind_thread
            if other is not iv and bound is not None and bound.thread_tag == thread_ivar.thread_tag \
                    and thread_ivar.thread_tag != "vthread":
                raise ScheduleError(f"bind on stage {self.name}: thread {thread_ivar.thread_tag} is "
                                    f"already bound to axis {other.name}; cannot bind it to {iv.name}")
        attr.bind_thread = thread_ivar
        attr.kind = ForKind.THREAD_BINDING

    def tensorize(self, var: IterVar, tensor_intrin: Any) -> None:
        """Replace the loops from ``var`` inward by a tensor intrinsic (``te.decl_tensor_intrin``);
        lowering checks that they compute what the intrinsic computes."""
        from .tensor_intrin import check_intrin
        iv = self._leaf(var, "tensorize")
        self._refuse_mixed(None, "tensorize")
        intrin = check_intrin(tensor_intrin, f"tensorize on stage {self.name}, axis {iv.name}")
        for other, attr in self.iter_var_attrs.items():
            if attr.tensor_intrin is not None and other is not iv:
                raise ScheduleError(f"tensorize on stage {self.name}: axis {other.name} is already tensorized")
        attr = self._attr(iv)
        if attr.kind is not ForKind.SERIAL:
            raise ScheduleError(f"tensorize on stage {self.name}: axis {iv.name} is already marked "
                                f"{attr.kind.value}")
        attr.tensor_intrin = intrin

    def pragma(self, iv: IterVar, key: str, value: Any = None) -> None:
        iv = self._leaf(iv, "pragma")
        if key == "unroll_explicit" or key == "unroll":
            self._annotate(iv, ForKind.UNROLLED, "pragma")
            return
        if key == "vectorize":  # as in TVM: the same as ``vectorize(iv)``
            self.vectorize(iv)
            return
        self._attr(iv).pragmas.append((key, value))

    def storage_align(self, axis: IterVar, factor: int, offset: int) -> None:
        self._require_compute("storage_align")
        if axis not in self.all_iter_vars:
            raise ScheduleError(f"storage_align on stage {self.name}: {axis!r} is not an axis of it")
        self.storage_align_info.append((axis, int(factor), int(offset)))

    # ------------------------------------------------------------ placement
    def compute_at(self, parent: "Stage", scope: IterVar) -> None:
        """Compute this stage inside loop ``scope`` of stage ``parent``; whether ``parent`` reads
        this stage is checked when the schedule is lowered (``attach_check``), as in TVM."""
        self._require_compute("compute_at")
        if not isinstance(parent, Stage):
            raise ScheduleError(f"compute_at on stage {self.name}: the first argument must be a stage "
                                f"(s[tensor]), got {parent!r}")
        if isinstance(parent.op, ScanOp):
            if scope is not parent.op.scan_axis:
                raise ScheduleError(f"compute_at on stage {self.name}: the only loop of scan {parent.name} is "
                                    f"its scan axis {parent.op.scan_axis.name}, not {scope!r}")
        else:
            parent._leaf(scope, f"compute_at of {self.name}")
        if parent.attach_type == "inline":
            raise ScheduleError(f"compute_at on stage {self.name}: stage {parent.name} is inlined "
                                "and has no loops")
        self.attach_type = _SCOPE
        self.attach_stage = parent
        self.attach_ivar = scope

    def compute_inline(self) -> None:
        """Substitute this stage's expression into every consumer."""
        self._require_compute("compute_inline")
        if self.op.reduce_axis:
            raise ScheduleError(f"compute_inline on stage {self.name}: a reduction cannot be inlined")
        if self.is_output:
            raise ScheduleError(f"compute_inline on stage {self.name}: it is an output of the schedule")
        for st in self.schedule.stages:
            if st.attach_type == "scope" and st.attach_stage is self:
                raise ScheduleError(f"compute_inline on stage {self.name}: stage {st.name} is computed "
                                    "at one of its loops")
        self.attach_type = _INLINE
        self.attach_stage = self.attach_ivar = None

    def compute_root(self) -> None:
        self._require_compute("compute_root")
        self.attach_type = _ROOT
        self.attach_stage = self.attach_ivar = None

    def set_scope(self, scope: str) -> None:
        self._scope = scope

    @property
    def scope(self) -> str:
        """The storage scope: as set, else TVM's rule: ``local`` inside a loop bound to threadIdx (or
        vthread), ``shared`` inside one bound to blockIdx only, ``global`` elsewhere."""
        if self._scope is not None:
            return self._scope
        rank = -1
        cur = self
        seen = {id(self)}
        while cur.attach_type == "scope" and id(cur.attach_stage) not in seen:  # a cycle fails in lower
            seen.add(id(cur.attach_stage))
            parent = cur.attach_stage
            leaves = parent.leaf_iter_vars
            enclosing = leaves[:leaves.index(cur.attach_ivar) + 1] if cur.attach_ivar in leaves else []
            for iv in enclosing:
                attr = parent.iter_var_attrs.get(iv)
                tag = attr.bind_thread.thread_tag if attr is not None and attr.bind_thread is not None else ""
                if tag:
                    rank = max(rank, 0 if tag.startswith("blockIdx") else 1)
            cur = parent
        return ("global", "shared", "local")[rank + 1]

    @scope.setter
    def scope(self, scope: str) -> None:
        self._scope = scope

    def set_store_predicate(self, predicate: Any) -> None:
        """Store this stage's results only where ``predicate`` holds (e.g. one thread of a group)."""
        self._require_compute("set_store_predicate")
        self.store_predicate = _op.convert(predicate)

    def double_buffer(self) -> None:
        """Give this stage two buffers that alternate between iterations of the loop it is computed at."""
        self._require_compute("double_buffer")
        if self.is_output:
            raise ScheduleError(f"double_buffer on stage {self.name}: it is an output of the schedule; only an "
                                "intermediate stage computed at a loop can be double-buffered")
        self.double_buffer_on = True


class _ReplaceLoads(Mutator):
    """Redirect loads of some tensors to others (cache_read / cache_write rewrites)."""

    def __init__(self, mapping: dict):
        self.mapping = mapping

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        node = self.generic(node)
        target = self.mapping.get(node.producer)
        return ProducerLoad(target, node.indices) if target is not None else node


class Schedule:
    """The schedule of a program: one Stage per operation, producers first."""

    def __init__(self, outputs: list[Operation]):
        self.outputs = outputs
        self.stages: list[Stage] = []
        self.stage_map: dict[Operation, Stage] = {}
        for op in _post_dfs(outputs):
            st = Stage(op, self)
            st.is_output = op in outputs
            self.stages.append(st)
            self.stage_map[op] = st
        for st in self.stages:
            if isinstance(st.op, ScanOp):
                self._attach_scan_body(st)

    def _attach_scan_body(self, scan_stage: Stage) -> None:
        """Compute the stages between a scan's state placeholders and its updates at the scan's loop."""
        op: ScanOp = scan_stage.op
        states = {id(t.op) for t in op.state_placeholder}
        reads_state: dict = {}

        def in_body(node: Operation) -> bool:
            if id(node) not in reads_state:
                reads_state[id(node)] = any(id(t.op) in states or in_body(t.op) for t in node.input_tensors)
            return reads_state[id(node)]

        updates = {id(t.op) for t in op.update}  # in the body even when they read no state: they write row t
        todo, seen = [t.op for t in op.update], set()
        while todo:
            node = todo.pop()
            if id(node) in seen or not isinstance(node, ComputeOp) or \
                    (id(node) not in updates and not in_body(node)):
                continue
            seen.add(id(node))
            stage = self.stage_map[node]
            stage.attach_type, stage.attach_stage, stage.attach_ivar = "scope", scan_stage, op.scan_axis
            todo.extend(t.op for t in node.input_tensors)

    def __getitem__(self, key: Union[Tensor, Operation]) -> Stage:
        op = key.op if isinstance(key, Tensor) else key
        st = self.stage_map.get(op)
        if st is None:
            name = getattr(op, "name", repr(op))
            raise ScheduleError(f"{name} is not part of this schedule (schedules cover the outputs "
                                "passed to create_schedule and everything they read)")
        return st

    def current_tensor(self, tensor: Tensor) -> Tensor:
        """The tensor that now holds ``tensor``'s values (its stage's current op)."""
        return self[tensor].op.output(tensor.value_index)

    def reads_transitively(self, consumer: Stage, producer: Stage) -> bool:
        todo, seen = [consumer], set()
        while todo:
            st = todo.pop()
            for t in st.op.input_tensors:
                src = self[t]
                if src is producer:
                    return True
                if id(src) not in seen:
                    seen.add(id(src))
                    todo.append(src)
        return False

    # ------------------------------------------------------------ dataflow rewrites
    def cache_read(self, tensor: Tensor, scope: str, readers: Iterable[Any]) -> Tensor:
        """A copy of ``tensor`` in ``scope`` that ``readers`` read instead of the original."""
        _check_scope(scope, "cache_read")
        if not isinstance(tensor, Tensor):
            raise ScheduleError(f"cache_read: expected a tensor, got {tensor!r}")
        src_stage = self[tensor]
        reader_stages = [self[r] for r in (readers if isinstance(readers, (list, tuple)) else [readers])]
        if not reader_stages:
            raise ScheduleError(f"cache_read of {tensor.name}: give at least one reader")
        current = self.current_tensor(tensor)
        cache = _copy_op(f"{tensor.name}.{scope}", current)
        for st in reader_stages:
            reads = {t.op for t in st.op.input_tensors}
            if current.op not in reads and tensor.op not in reads:
                raise ScheduleError(f"cache_read of {tensor.name}: stage {st.name} does not read it")
            mapping = {tensor: cache, current: cache}
            st.op = _rewrite_op(st.op, mapping)
            self.stage_map[st.op] = st
        cache_stage = Stage(cache.op, self)
        cache_stage.set_scope(scope)
        self._insert_after(src_stage, cache_stage)
        return cache

    def cache_write(self, tensor: Any, scope: str) -> Any:
        """Compute ``tensor`` (or every output of a multi-output compute, as a list) into a cache in
        ``scope``; the original stage becomes a copy of the cache.

        As in TVM, the cache is laid out along the stage's data-parallel *leaf* loops (after
        split, tile, fuse and reorder), each of them an axis ``<leaf>.c`` of the cache stage; the
        original stage loses its loop structure and copies from the cache.
        """
        _check_scope(scope, "cache_write")
        tensors = list(tensor) if isinstance(tensor, (list, tuple)) else [tensor]
        if not tensors or not all(isinstance(t, Tensor) for t in tensors):
            raise ScheduleError(f"cache_write: expected a tensor or a list of tensors, got {tensor!r}")
        stage = self[tensors[0]]
        stage._require_compute("cache_write")
        stage._refuse_mixed(None, "cache_write")
        op: ComputeOp = stage.op
        if any(self[t] is not stage for t in tensors) or \
                sorted(t.value_index for t in tensors) != list(range(op.num_outputs)):
            raise ScheduleError(f"cache_write on stage {stage.name}: give every output of its compute, "
                                f"all {op.num_outputs} of them, as one list (got {[t.name for t in tensors]})")
        for other in self.stages:
            if other.attach_type == "scope" and other.attach_stage is stage and other.attach_ivar not in op.axis:
                raise ScheduleError(f"cache_write on stage {stage.name}: stage {other.name} is computed at its loop "
                                    f"{other.attach_ivar.name}, which the rewrite removes; call cache_write first")
        from ..tir.functor import substitute
        from ..tir.simplify import Analyzer
        from .relations import linked, pass_down, pass_down_index, pass_up, split_guard
        analyzer = Analyzer()
        extents = {iv: ext for iv, ext in zip(op.axis, op.shape)}
        dp_rels = [r for r in stage.relations if not linked(r)[0].is_reduce]  # the cache keeps the reduction
        pass_down(dp_rels, extents, analyzer)
        leaves = [iv for iv in stage.leaf_iter_vars if not iv.is_reduce]
        cache_axis = tuple(IterVar(Range(_op.const(0, extents[iv].dtype), extents[iv]),
                                   Var(iv.name + ".c", iv.var.dtype), IterVar.DataPar) for iv in leaves)
        values = {iv: new.var for iv, new in zip(leaves, cache_axis)}
        pass_up(dp_rels, extents, values)
        guard = split_guard(dp_rels, extents, values, analyzer)
        vmap = {iv.var: values[iv] for iv in op.axis}
        reduce_axis = tuple(_rebase_reduce_axis(iv, vmap) for iv in op.reduce_axis)
        rebased = {id(old): new for old, new in zip(op.reduce_axis, reduce_axis) if new is not old}
        cache_body = tuple(_guard_body(_with_reduce_axis(substitute(b, vmap), rebased), guard)
                           for b in op.body)
        cache_op = ComputeOp(f"{op.name}.{scope}", op.tag, op.attrs, cache_axis, reduce_axis, cache_body,
                             tuple(extents[iv] for iv in leaves))
        index = {iv: iv.var for iv in op.axis}
        pass_down_index(dp_rels, extents, index)
        copy_indices = tuple(index[iv] for iv in leaves)
        stage.op = op.with_body(tuple(cache_op.output(k)[copy_indices] for k in range(op.num_outputs)),
                                reduce_axis=())
        stage.relations = []
        stage.iter_var_attrs = {}
        stage._reset_iter_vars()
        cache_stage = Stage(cache_op, self)
        cache_stage.set_scope(scope)
        self._insert_before(stage, cache_stage)
        caches = [cache_op.output(t.value_index) for t in tensors]
        return caches if isinstance(tensor, (list, tuple)) else caches[0]

    def rfactor(self, tensor: Tensor, axis: IterVar, factor_axis: int = 0) -> Any:
        """Factor the reduction of ``tensor`` over its reduction loop ``axis`` (see ``te.rfactor``)."""
        from .rfactor import rfactor
        return rfactor(self, tensor, axis, factor_axis)

    def create_group(self, outputs: Any, inputs: Any, include_inputs: bool = False) -> "Group":
        """A group of the stages on the paths from ``inputs`` to ``outputs`` (the outputs included,
        the inputs only with ``include_inputs``), which ``compute_at`` can place together."""
        outs = [self[t] for t in (outputs if isinstance(outputs, (list, tuple)) else [outputs])]
        ins = {id(self[t]) for t in (inputs if isinstance(inputs, (list, tuple)) else [inputs])}
        members: list[Stage] = []
        todo = list(outs)
        while todo:
            st = todo.pop()
            if any(m is st for m in members):
                continue
            if id(st) in ins:
                if include_inputs:
                    members.append(st)
                continue
            members.append(st)
            todo.extend(self[t] for t in st.op.input_tensors)
        group = Group(self, [st for st in self.stages if any(m is st for m in members)])
        for st in group.members:
            top = st
            while top.group is not None and top.group is not group:
                top = top.group
            if top is not group:
                top.group = group
        return group

    def _insert_after(self, anchor: Stage, new: Stage) -> None:
        self.stages.insert(self.stages.index(anchor) + 1, new)
        self.stage_map[new.op] = new

    def _insert_before(self, anchor: Stage, new: Stage) -> None:
        self.stages.insert(self.stages.index(anchor), new)
        self.stage_map[new.op] = new
        self.stage_map[anchor.op] = anchor

    def normalize(self) -> "Schedule":
        """Kept for TVM compatibility; schedules here are always normalized."""
        return self


class Group:
    """Stages placed together: ``compute_at`` on the group attaches each member not placed inside
    the group (those computed at root) at the given loop."""

    def __init__(self, schedule: Schedule, members: list[Stage]):
        self.schedule = schedule
        self.members = members
        self.group: Optional[Group] = None  # the group this one is nested in
        self.placement: Optional[tuple] = None  # (stage, loop) of the last compute_at

    @property
    def name(self) -> str:
        return "group(" + ", ".join(st.name for st in self.members) + ")"

    def __repr__(self) -> str:
        return f"Group({', '.join(st.name for st in self.members)})"

    def compute_at(self, parent: Stage, scope: IterVar) -> None:
        """Attach the members computed at root, and those an enclosing group placed (a group nested
        in another is placed inside it, as in TVM)."""
        if any(parent is st for st in self.members):
            raise ScheduleError(f"compute_at on {self.name}: stage {parent.name} is in the group")
        enclosing = []
        outer = self.group
        while outer is not None:
            if outer.placement is not None:
                enclosing.append(outer.placement)
            outer = outer.group
        for st in self.members:
            placed_outside = st.attach_type == "scope" and any(
                st.attach_stage is at_stage and st.attach_ivar is at_ivar for at_stage, at_ivar in enclosing)
            if st.attach_type == "root" or placed_outside:
                st.compute_at(parent, scope)
        self.placement = (parent, scope)

    def compute_root(self) -> None:
        for st in self.members:
            if st.attach_type == "scope" and not any(st.attach_stage is m for m in self.members):
                st.compute_root()


def _rebase_reduce_axis(iv: IterVar, vmap: dict) -> IterVar:
    """``iv`` with its domain over the cache's axes, where that domain uses a data-parallel axis
    (``te.reduce_axis((0, i))`` in the body of axis ``i``); ``iv`` itself otherwise."""
    from ..tir.functor import substitute
    dom = Range(substitute(iv.dom.min, vmap), substitute(iv.dom.extent, vmap))
    if dom.min is iv.dom.min and dom.extent is iv.dom.extent:
        return iv
    return IterVar(dom, iv.var, iv.iter_type)


def _with_reduce_axis(body: PrimExpr, rebased: dict) -> PrimExpr:
    """``body`` with its Reduce's axes replaced by their rebased copies (``rebased``: id -> IterVar)."""
    if isinstance(body, Reduce) and rebased:
        import dataclasses
        return dataclasses.replace(body, axis=tuple(rebased.get(id(iv), iv) for iv in body.axis))
    return body


def _guard_body(body: PrimExpr, guard: PrimExpr) -> PrimExpr:
    """``body`` evaluated only where ``guard`` holds (a reduction gets it as part of its condition)."""
    if isinstance(guard, IntImm) and guard.value:
        return body
    if isinstance(body, Reduce):
        return Reduce(body.combiner, body.source, body.axis, _op.logical_and(guard, body.condition),
                      body.value_index)
    return _op.if_then_else(guard, body, _op.const(0, body.dtype))


def _check_scope(scope: str, primitive: str) -> None:
    if scope not in ("global", "shared", "local", "warp") and not is_fragment_scope(scope):
        raise ScheduleError(f"{primitive}: unknown storage scope {scope!r}; use global, shared or local (or, "
                            f"for tensor core fragments on cuda, {', '.join(FRAGMENT_SCOPES)})")


def _copy_op(name: str, tensor: Tensor) -> Tensor:
    axis = tuple(IterVar(Range(_op.const(0, s.dtype), s), Var(f"ax{k}", s.dtype), IterVar.DataPar)
                 for k, s in enumerate(tensor.shape))
    body = (tensor[tuple(iv.var for iv in axis)],)
    return ComputeOp(name, "", {}, axis, (), body, tensor.shape).output(0)


def _rewrite_op(op: Operation, mapping: dict) -> Operation:
    if not isinstance(op, ComputeOp):
        return op
    mutator = _ReplaceLoads(mapping)
    return op.with_body(tuple(mutator.visit(b) for b in op.body))


def _post_dfs(outputs: list[Operation]) -> list[Operation]:
    """Every operation reachable from ``outputs``, producers before consumers."""
    order: list[Operation] = []
    visited: set = set()
    for root in outputs:
        stack = [(root, False)]
        while stack:
            op, expanded = stack.pop()
            if expanded:
                order.append(op)
                continue
            if id(op) in visited:
                continue
            visited.add(id(op))
            stack.append((op, True))
            for t in reversed(op.input_tensors):
                if id(t.op) not in visited:
                    stack.append((t.op, False))
    return order


def create_schedule(ops: Any) -> Schedule:
    """A schedule for the given output operation(s) (or tensors)."""
    items = ops if isinstance(ops, (list, tuple)) else [ops]
    outs = []
    for o in items:
        op = o.op if isinstance(o, Tensor) else o
        if not isinstance(op, (ComputeOp, PlaceholderOp, ScanOp, ExternOp)):
            raise ScheduleError(f"create_schedule expects operations or tensors, got {o!r}")
        outs.append(op)
    return Schedule(outs)


def InferBound(sch: Schedule) -> dict:  # noqa: N802 (TVM's name)
    """TVM's ``te.schedule.InferBound``: each iteration variable's range (``tecomp.lower.entry_points``)."""
    from ..lower.entry_points import infer_bound
    return infer_bound(sch)


def ScheduleOps(sch: Schedule, bounds: Any = None) -> Any:  # noqa: N802 (TVM's name)
    """TVM's ``te.schedule.ScheduleOps``: the schedule's loop nest as a statement."""
    from ..lower.entry_points import schedule_ops
    return schedule_ops(sch, bounds)


def AutoInlineElemWise(sch: Schedule) -> None:  # noqa: N802 (TVM's name)
    """TVM's ``te.schedule.AutoInlineElemWise``: inline the elementwise non-output stages."""
    from .auto_inline import auto_inline_elemwise
    auto_inline_elemwise(sch)


def AutoInlineBroadcast(sch: Schedule) -> None:  # noqa: N802 (TVM's name)
    """TVM's ``te.schedule.AutoInlineBroadcast``: as in TVM, every non-output stage without a
    reduction counts as a broadcast, so this inlines what ``AutoInlineInjective`` does."""
    AutoInlineInjective(sch)


def AutoInlineInjective(sch: Schedule) -> None:  # noqa: N802 (TVM's name)
    """TVM's ``te.schedule.AutoInlineInjective``: inline the non-output stages without a reduction."""
    from .auto_inline import auto_inline_injective
    auto_inline_injective(sch)
