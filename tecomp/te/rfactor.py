"""``Schedule.rfactor``: factor a reduction into partial reductions over one of its axes.

``rfactor(B, ki)`` on ``B[i] = sum(A[i, k], k)`` after ``k -> (ko, ki)`` makes a new stage
``B.rf[ki, i] = sum(A[i, ko * f + ki], ko)`` (``ki`` becomes a data-parallel axis, inserted at
``factor_axis``) and turns ``B`` into ``B[i] = sum(B.rf[v, i], v)`` over a fresh reduction
axis ``v`` of ``ki``'s extent, as TVM does. The axes tied to ``ki`` by splits and fuses are
"touched": the root reduction axes among them are rewritten in terms of the leaves, the
other touched leaves become the new stage's reduction axes, and a guard keeps a split that
does not divide inside its range. Relations that do not touch ``ki`` (data-parallel splits,
splits of other reduction axes) carry over to the new stage. Owns only this rewrite;
lowering treats the result like any other pair of stages.
"""

from __future__ import annotations

from typing import Any

from ..error import ScheduleError
from ..tir import op as _op
from ..tir.expr import PrimExpr, Reduce, Var, is_const_int
from ..tir.functor import substitute
from ..tir.simplify import Analyzer
from .operation import ComputeOp
from .relations import derived, linked, pass_down, pass_up, split_guard
from .tensor import IterVar, Range, Tensor


def _touched(stage: Any, axis: IterVar) -> set:
    """``axis`` and every iteration variable linked to it through the stage's splits and fuses."""
    touched = {axis}
    changed = True
    while changed:
        changed = False
        for rel in stage.relations:
            group = linked(rel)
            if any(v in touched for v in group) and not all(v in touched for v in group):
                touched.update(group)
                changed = True
    return touched


def _touched_domains(stage: Any, touched: set, analyzer: Analyzer) -> tuple[dict, dict, PrimExpr]:
    """Extents of the touched variables, each touched root's value from the leaves, and the guard."""
    extents = {iv: iv.dom.extent for iv in stage.op.reduce_axis if iv in touched}
    rels = [r for r in stage.relations if linked(r)[0] in touched]
    pass_down(rels, extents, analyzer)
    values: dict = {iv: iv.var for iv in stage.leaf_iter_vars if iv in touched}
    pass_up(rels, extents, values)
    return extents, values, split_guard(rels, extents, values, analyzer)


def _single_step(red: Reduce) -> PrimExpr:
    """A reduction over no axes as a plain expression: the identity combined with the source once."""
    identity = red.combiner.identity[red.value_index]
    value = red.combiner.combine(red.combiner.identity, red.source)[red.value_index]
    return value if is_const_int(red.condition, 1) else _op.if_then_else(red.condition, value, identity)


def rfactor(schedule: Any, tensor: Tensor, axis: IterVar, factor_axis: int = 0) -> Any:
    """See the module docstring; returns the factored tensor (a list for a multi-output reduction)."""
    from .schedule import Stage
    if not isinstance(tensor, Tensor):
        raise ScheduleError(f"rfactor: expected the reduction's tensor, got {tensor!r}")
    stage = schedule[tensor]
    axis = stage._leaf(axis, "rfactor")
    stage._refuse_mixed(None, "rfactor")
    op: ComputeOp = stage.op
    if not op.body or not isinstance(op.body[0], Reduce):
        raise ScheduleError(f"rfactor on stage {stage.name}: it is not a reduction")
    if not axis.is_reduce:
        raise ScheduleError(f"rfactor on stage {stage.name}: axis {axis.name} is a data-parallel axis; "
                            "give one of its reduction axes (or a split of one)")
    for other in schedule.stages:
        if other.attach_type == "scope" and other.attach_stage is stage:
            raise ScheduleError(f"rfactor on stage {stage.name}: stage {other.name} is computed at its loop "
                                f"{other.attach_ivar.name}; call rfactor before compute_at")
    ndim = len(op.axis)
    pos = factor_axis if factor_axis >= 0 else ndim + 1 + factor_axis
    if not 0 <= pos <= ndim:
        raise ScheduleError(f"rfactor on stage {stage.name}: factor_axis {factor_axis} is out of range for "
                            f"a {ndim}-dimensional output (valid: {-ndim - 1}..{ndim})")
    analyzer = Analyzer()
    touched = _touched(stage, axis)
    extents, values, guard = _touched_domains(stage, touched, analyzer)
    for iv in op.reduce_axis:
        if iv in touched and not is_const_int(iv.dom.min, 0):
            values[iv] = _op.add(iv.dom.min, values[iv])

    factored = IterVar(Range(_op.const(0, axis.var.dtype), extents[axis]), axis.var, IterVar.DataPar)
    copies = {iv: IterVar(Range(_op.const(0, iv.var.dtype), extents[iv]), iv.var, IterVar.CommReduce)
              for iv in stage.leaf_iter_vars if iv in touched and iv is not axis}
    rf_reduce = tuple(iv for iv in op.reduce_axis if iv not in touched) + tuple(copies.values())
    rf_axis = op.axis[:pos] + (factored,) + op.axis[pos:]
    vsub = {iv.var: values[iv] for iv in op.reduce_axis if iv in touched}
    first: Reduce = op.body[0]
    cond = _op.logical_and(guard, first.condition)
    rf_body = tuple(substitute(Reduce(first.combiner.without_init(), first.source, rf_reduce, cond, k), vsub)
                    for k in range(len(op.body)))
    if not rf_reduce:  # every reduction loop was factored: each partial is one combined element
        rf_body = tuple(_single_step(r) for r in rf_body)
    rf_shape = op.shape[:pos] + (extents[axis],) + op.shape[pos:]
    rf_op = ComputeOp(f"{op.name}.rf", op.tag, op.attrs, rf_axis, rf_reduce, rf_body, rf_shape)

    rf_stage = Stage(rf_op, schedule)
    rf_stage.relations = [r for r in stage.relations if linked(r)[0] not in touched]
    leaf_map = {axis: factored, **copies}
    rf_stage.leaf_iter_vars = [leaf_map.get(iv, iv) for iv in stage.leaf_iter_vars]
    kept_outputs = [v for r in rf_stage.relations for v in derived(r)]
    rf_stage.all_iter_vars = list(rf_axis) + list(rf_reduce) + kept_outputs
    schedule._insert_before(stage, rf_stage)

    new_axis = tuple(IterVar(iv.dom, Var(iv.name, iv.var.dtype), iv.iter_type) for iv in op.axis)
    merge = IterVar(Range(_op.const(0, axis.var.dtype), extents[axis]), Var(axis.name + ".v", axis.var.dtype),
                    IterVar.CommReduce)
    indices = tuple(iv.var for iv in op.axis)
    indices = indices[:pos] + (merge.var,) + indices[pos:]
    partials = tuple(rf_op.output(k)[indices] for k in range(rf_op.num_outputs))
    rename = {old.var: new.var for old, new in zip(op.axis, new_axis)}
    body = tuple(substitute(Reduce(first.combiner, partials, (merge,), _op.const(True), k), rename)
                 for k in range(len(op.body)))
    stage.op = ComputeOp(op.name, op.tag, op.attrs, new_axis, (merge,), body, op.shape)
    stage.relations = []
    stage.iter_var_attrs = {}
    stage._reset_iter_vars()
    schedule.stage_map[stage.op] = stage
    outs = [rf_op.output(k) for k in range(rf_op.num_outputs)]
    return outs[0] if len(outs) == 1 else outs
