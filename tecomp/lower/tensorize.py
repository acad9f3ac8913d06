"""Tensorized stages in lowering: the loops from the tensorized axis inward become the intrinsic.

For ``s[C].tensorize(yi, intrin)`` the loops of ``C`` from ``yi`` inward must cover exactly
the intrinsic's axes: its data-parallel axes match the stage's last ones and its reduction
axes the stage's last reduction axes (TVM's rule), extent for extent, and every other axis
once. The stage's body, rewritten over the intrinsic's axis variables and reading the
intrinsic's placeholders (inputs matched in order of first use) at offsets, must be the
intrinsic's body. Each intrinsic buffer is then bound to the region it stands for: accesses
become element offsets from the region's start in the real buffer (by its strides), a stride
the buffer declares as a variable takes the real stride, a variable ``elem_offset`` the region's
offset (a multiple of the buffer's ``offset_factor``, else an error), the buffer's ``data`` the
real buffer's (fragment builtins pass it), and ``access_ptr`` addresses the region's first
element. A tensor core fragment buffer binds only to a stage of its own scope. A reduction
whose loops continue outside the tensorized ones runs the intrinsic's ``reset`` before them (over
the data-parallel loops among them, on loops of its own) and its ``update`` inside.
"""

from __future__ import annotations

from typing import Any

from ..error import LoweringError
from ..te.operation import ComputeOp
from ..te.schedule import Stage
from ..te.tensor import collect_input_tensors
from ..te.tensor_intrin import TensorIntrin
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import BufferLoad, PrimExpr, ProducerLoad, Reduce, Var, is_const_int
from ..tir.functor import Mutator, post_order_visit, structural_equal, substitute, uses_var
from ..tir.interval import Interval, eval_interval
from ..tir.ir_builder import flat_view
from ..tir.stmt import BufferStore, For, ForKind, Stmt, seq
from ..tir.wmma import is_fragment_scope
from .flatten import flat_index
from .schedule_ops import _guarded


class _ToIntrinsic(Mutator):
    """Loads of the stage's inputs become loads of the intrinsic's placeholders, at offsets."""

    def __init__(self, to_placeholder: dict, starts: dict, analyzer: Any, where: str):
        self.to_placeholder = to_placeholder
        self.starts = starts
        self.analyzer = analyzer
        self.where = where

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        placeholder = self.to_placeholder.get(node.producer)
        if placeholder is None:
            return node
        start = self.starts[node.producer]
        rel = [self.analyzer.simplify(_op.sub(i, s)) for i, s in zip(node.indices, start)]
        dropped = len(rel) - len(placeholder.shape)
        if dropped < 0 or not all(is_const_int(r, 0) for r in rel[:dropped]):
            raise LoweringError(f"{self.where}: {node.producer.name} is read over more dimensions than the "
                                f"intrinsic's {placeholder.name} has")
        return ProducerLoad(placeholder, tuple(rel[dropped:]))


class _Canon(Mutator):
    """Simplified indices, so equal accesses compare equal."""

    def __init__(self, analyzer: Any):
        self.analyzer = analyzer

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        return ProducerLoad(node.producer, tuple(self.analyzer.simplify(i) for i in node.indices))


def _same_computation(a: PrimExpr, b: PrimExpr, analyzer: Any) -> bool:
    canon = _Canon(analyzer)
    if isinstance(a, Reduce) != isinstance(b, Reduce):
        return False
    if not isinstance(a, Reduce):
        return structural_equal(canon.visit(a), canon.visit(b))
    x, y = Var("x", a.dtype), Var("y", a.dtype)
    return (len(a.source) == len(b.source)
            and all(structural_equal(canon.visit(p), canon.visit(q)) for p, q in zip(a.source, b.source))
            and structural_equal(analyzer.simplify(a.condition), analyzer.simplify(b.condition))
            and structural_equal(a.combiner.combine((x,), (y,)), b.combiner.combine((x,), (y,)))
            and structural_equal(a.combiner.identity, b.combiner.identity))


class _BindBuffers(Mutator):
    """Accesses to an intrinsic's buffer (or to the flat view ``access_ptr`` makes) go to the real one."""

    def __init__(self, bindings: dict):
        self.bindings = bindings  # data var -> (intrinsic buffer, flat real buffer, base offset, strides)

    def _target(self, buf: Buffer, indices: tuple) -> Any:
        entry = self.bindings.get(buf.data)
        if entry is None:
            return None
        declared, real, base, strides = entry
        offset = base
        if buf is declared:
            for idx, stride in zip(indices, strides):
                offset = _op.add(offset, _op.mul(idx, stride))
        else:  # a flat view of it: the index already counts elements
            offset = _op.add(offset, indices[0])
        return real, (offset,)

    def visit_BufferLoad(self, node: BufferLoad) -> Any:
        node = self.generic(node)
        target = self._target(node.buffer, node.indices)
        return node if target is None else BufferLoad(*target)

    def visit_BufferStore(self, node: BufferStore) -> Any:
        node = self.generic(node)
        target = self._target(node.buffer, node.indices)
        return node if target is None else BufferStore(target[0], node.value, target[1])


def tensorized_nest(nb: Any, st: Stage, sb: Any, pos: int, intrin: TensorIntrin) -> Stmt:
    """The nest of stage ``st`` whose leaves from ``pos`` inward are replaced by ``intrin``."""
    op: ComputeOp = st.op
    leaves = st.leaf_iter_vars
    inner, outer = leaves[pos:], leaves[:pos]
    where = f"tensorize on stage {st.name}, axis {leaves[pos].name}"
    analyzer = nb.analyzer
    for iv in inner:
        if nb.attached.get((id(st), id(iv))):
            raise LoweringError(f"{where}: stage {nb.attached[(id(st), id(iv))][0].name} is computed at loop "
                                f"{iv.name}, inside the tensorized loops")
    iop = intrin.op
    if len(iop.axis) > len(op.axis) or len(iop.reduce_axis) > len(op.reduce_axis):
        raise LoweringError(f"{where}: intrinsic {intrin.name} has {len(iop.axis)} axes and {len(iop.reduce_axis)} "
                            f"reduction axes, the stage only {len(op.axis)} and {len(op.reduce_axis)}")
    matched = dict(zip(op.axis[len(op.axis) - len(iop.axis):], iop.axis))
    matched.update(zip(op.reduce_axis[len(op.reduce_axis) - len(iop.reduce_axis):], iop.reduce_axis))
    leaf_dom = {iv.var: Interval(_op.const(0, iv.var.dtype), _op.sub(sb.extents[iv], 1)) for iv in inner}
    leaf_zero = {iv.var: _op.const(0, iv.var.dtype) for iv in inner}
    vmap: dict = {}
    root_start: dict = {}
    for iv in list(op.axis) + list(op.reduce_axis):
        value = sb.root_index(iv)
        start = analyzer.simplify(substitute(value, leaf_zero))
        extent = analyzer.simplify(_op.add(_op.sub(eval_interval(value, leaf_dom, analyzer).max, start), 1))
        target = matched.get(iv)
        want = target.dom.extent if target is not None else _op.const(1, extent.dtype)
        if not analyzer.can_prove(_op.cmp("==", extent, want)):
            has = f"has extent {want} there" if target is not None else "has no axis for it"
            raise LoweringError(f"{where}: the tensorized loops cover {extent} values of axis {iv.name}, but "
                                f"intrinsic {intrin.name} {has}")
        if target is not None and not is_const_int(target.dom.extent, 1):
            vmap[iv.var] = _op.add(start, _op.sub(target.var, target.dom.min))
        else:
            vmap[iv.var] = start
        root_start[iv] = start

    body = nb.bodies[st]
    inputs = collect_input_tensors(body)
    if len(inputs) != len(intrin.inputs):
        raise LoweringError(f"{where}: the stage reads {len(inputs)} tensors ({', '.join(t.name for t in inputs)}), "
                            f"intrinsic {intrin.name} {len(intrin.inputs)}")
    intrin_dom = {v.var: Interval.from_range(v.dom.min, v.dom.extent) for v in list(iop.axis) + list(iop.reduce_axis)}
    starts = _region_starts(body, vmap, intrin_dom, analyzer)
    to_intrin = _ToIntrinsic(dict(zip(inputs, intrin.inputs)), starts, analyzer, where)
    unit = {v.var: v.dom.min for v in list(iop.axis) + list(iop.reduce_axis) if is_const_int(v.dom.extent, 1)}
    for mine, theirs in zip(body, iop.body):
        if not _same_computation(to_intrin.visit(substitute(mine, vmap)), substitute(theirs, unit), analyzer):
            raise LoweringError(f"{where}: the stage's body {mine} does not compute what intrinsic {intrin.name} "
                                f"computes ({theirs})")

    bindings: dict = {}
    stride_vars: dict = {}
    regions = [(nb.schedule[t], t.value_index, starts[t]) for t in inputs]
    regions += [(st, k, tuple(root_start[iv] for iv in op.axis)) for k in range(op.num_outputs)]
    for declared, (owner, vi, start) in zip(intrin.buffers, regions):
        real = nb.storage.buffer(owner, vi)
        local = nb.storage.local_indices(owner, vi, start)
        real_strides = (real.strides or real.row_major_strides())[len(real.shape) - len(declared.shape):]
        for dim, (want, have) in enumerate(zip(declared.strides or declared.row_major_strides(), real_strides)):
            if isinstance(want, Var):
                stride_vars[want] = have
            elif not analyzer.can_prove(_op.cmp("==", want, have)):
                raise LoweringError(f"{where}: intrinsic buffer {declared.name} has stride {want} in dimension {dim}, "
                                    f"but its region of {real.name} has stride {have}; declare its strides with "
                                    "variables (tir.decl_buffer(..., strides=[te.var('s'), 1]))")
        if declared.scope != real.scope and (is_fragment_scope(declared.scope) or is_fragment_scope(real.scope)):
            raise LoweringError(f"{where}: intrinsic buffer {declared.name} has scope {declared.scope}, but the "
                                f"region it stands for is in {real.name} of scope {real.scope}; give the stage "
                                f"scope {declared.scope} (cache_read/cache_write) or declare the buffer with "
                                f"scope={real.scope!r}")
        base = analyzer.simplify(flat_index(real, local))
        if isinstance(declared.elem_offset, Var):  # TVM binds it to the region's offset in the real buffer
            stride_vars[declared.elem_offset] = base
            factor = declared.offset_factor
            if factor > 1 and not analyzer.can_prove(_op.cmp("==", _op.floormod(base, factor), 0)):
                raise LoweringError(f"{where}: intrinsic buffer {declared.name} has offset_factor {factor}, but "
                                    f"its region starts at element {base} of {real.name}, not provably a "
                                    f"multiple of {factor}; tile the stage so each region starts there")
        elif declared.elem_offset is not None and not is_const_int(declared.elem_offset, 0):
            raise LoweringError(f"{where}: intrinsic buffer {declared.name} has the constant elem_offset "
                                f"{declared.elem_offset}; declare it with a variable (or offset_factor), "
                                "which is bound to the region's offset")
        stride_vars[declared.data] = real.data  # the intrinsic may pass its buffer's data (a fragment)
        bindings[declared.data] = (declared, flat_view(real), base,
                                   tuple(substitute(s, stride_vars) for s in (declared.strides or real_strides)))
    binder = _BindBuffers(bindings)

    def bound(stmt: Stmt) -> Stmt:
        return substitute(binder.visit(stmt), stride_vars)

    guard = _op.logical_and(nb._guard(st, sb, reduce=False), nb._guard(st, sb, reduce=True))
    if st.store_predicate is not None:
        guard = _op.logical_and(guard, nb._store_predicate(st))
    if uses_var(guard, [iv.var for iv in inner]):
        raise LoweringError(f"{where}: a split inside the tensorized loops does not divide its axis, so the "
                            "intrinsic would run past the tensor's end; choose factors that divide")
    outer_red = [k for k, iv in enumerate(outer) if iv.is_reduce]
    if not outer_red:
        full = intrin.body if intrin.body is not None else seq(intrin.reduce_init, intrin.reduce_update)
        return nb._loops(st, sb, outer, _guarded(guard, bound(full)))
    if intrin.reduce_init is None or intrin.reduce_update is None:
        raise LoweringError(f"{where}: reduction loop {outer[outer_red[0]].name} stays outside the tensorized "
                            f"loops, so intrinsic {intrin.name} needs (body, reset, update) from its fcompute")
    first = outer_red[0]
    update = nb._loops(st, sb, outer[first:], _guarded(guard, bound(intrin.reduce_update)))
    # data-parallel loops inside the reduction ones (a warp's tiles inside the k loop): the reset
    # runs over them first, on loops of its own (as a reduction's init does)
    inner_dp = [iv for iv in outer[first:] if not iv.is_reduce]
    fresh = {iv.var: Var(iv.var.name + ".init", iv.var.dtype) for iv in inner_dp}
    init = substitute(_guarded(nb._guard(st, sb, reduce=False), bound(intrin.reduce_init)), fresh)
    for iv in reversed(inner_dp):
        init = For(fresh[iv.var], _op.const(0, iv.var.dtype), sb.extents[iv], ForKind.SERIAL, init)
    return nb._loops(st, sb, outer[:first], seq(init, update))


def _region_starts(body: tuple, vmap: dict, intrin_dom: dict, analyzer: Any) -> dict:
    """Per tensor read, the smallest index in each dimension over the intrinsic's loops."""
    starts: dict = {}

    def visit(node: Any) -> None:
        if isinstance(node, ProducerLoad):
            lows = tuple(analyzer.simplify(eval_interval(substitute(i, vmap), intrin_dom, analyzer).min)
                         for i in node.indices)
            old = starts.get(node.producer)
            starts[node.producer] = lows if old is None else tuple(
                analyzer.simplify(_op.min_expr(a, b)) for a, b in zip(old, lows))

    for b in body:
        post_order_visit(b, visit)
    return starts

