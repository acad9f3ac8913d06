"""``tecomp.lower``: from a schedule and its argument tensors to loop IR.

The pipeline: inline -> bound inference -> loop nests with attach points ->
simplify -> storage flatten -> loop partition -> vectorize -> unroll ->
simplify; for a cuda target loop partition is skipped (a guard costs a GPU
thread little, a duplicated loop nest costs code size) and the GPU passes
follow (``launch.lower_for_gpu``: binding checks, kernels in launch form,
barriers). It ends with
a check that every variable in the body is bound (a loop, a let, or a shape
variable of an argument), so a symbolic shape that no argument carries is
reported here rather than miscompiled.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..error import LoweringError
from ..te.operation import ComputeOp, ExternOp, PlaceholderOp, ScanOp
from ..te.attach_check import check_attachments
from ..te.schedule import Schedule, Stage
from ..te.tensor import Tensor
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import IntImm, PrimExpr, Var
from ..tir.functor import collect_vars, post_order_visit
from ..tir.interval import Interval
from ..tir.module import IRModule
from ..tir.simplify import Analyzer, simplify_stmt
from ..target import Target
from ..transform import current_options
from ..tir.stmt import For, LetStmt, PrimFunc, Stmt
from .binds import check_binds, param_buffer
from .bound import BoundInferrer
from .extern import extern_bodies, plan_extern_storage
from .flatten import flatten_storage
from .inline import inline_bodies
from .launch import lower_for_gpu
from .loop_partition import partition_loops
from .scan import check_scan_body_placement, plan_scan_storage, scan_bodies
from .schedule_ops import NestBuilder, StorageMap
from .unroll import unroll_loops
from .vectorize import vectorize_loops


def lower(sch: Schedule, args: Sequence[Any], name: str = "main", binds: Optional[dict] = None,
          simple_mode: bool = False, target: Any = None) -> IRModule:
    """Lower a schedule to an IRModule holding one PrimFunc called ``name``.

    ``binds`` maps argument tensors to buffers from ``tir.decl_buffer`` giving their layout
    (strides, elem_offset; see ``binds.py``).

    With a cuda ``target`` (a string or Target; the enclosing ``with Target``
    is not consulted) the function is also split into kernels in launch form.
    """
    if not isinstance(sch, Schedule):
        raise LoweringError(f"lower expects a schedule from te.create_schedule, got {type(sch).__name__}")
    gpu = Target(target) if target is not None and Target(target).kind == "cuda" else None
    if gpu is not None and binds and any(b.strides for b in binds.values() if isinstance(b, Buffer)):
        raise LoweringError("lower: binds= with strides is supported for CPU targets only; the cuda runtime "
                            "passes compact arrays")
    if gpu is not None and any(isinstance(a, Var) and not a.dtype.startswith("int") for a in args):
        raise LoweringError("lower: float scalar arguments are supported for CPU targets only")
    func = lower_to_primfunc(sch, args, name, partition=gpu is None, binds=binds)
    if gpu is not None:
        func = lower_for_gpu(func, gpu)
    return IRModule({name: func})


def stages_and_bodies(sch: Schedule) -> tuple[list[Stage], dict]:
    """The stages that get loop nests, and every stage's effective body (inlining done)."""
    check_attachments(sch)
    bodies = inline_bodies(sch)
    bodies.update(scan_bodies(sch))
    bodies.update(extern_bodies(sch))
    stages = [st for st in sch.stages if isinstance(st.op, (ComputeOp, ScanOp, ExternOp))
              and st.attach_type != "inline"]
    return stages, bodies


def lower_to_primfunc(sch: Schedule, args: Sequence[Any], name: str, partition: bool = True,
                      binds: Optional[dict] = None) -> PrimFunc:
    tensors, extra_vars = _split_args(args)
    binds = check_binds(binds, tensors)
    stages, bodies = stages_and_bodies(sch)
    check_scan_body_placement(sch, stages, bodies)
    analyzer = _shape_analyzer(tensors)
    inferrer = BoundInferrer(sch, stages, bodies, analyzer)
    bounds = inferrer.run()
    storage, params = _plan_storage(sch, tensors, stages, bounds, analyzer, inferrer.capacity, binds)
    _check_inputs_passed(sch, bodies, storage, stages)
    body = NestBuilder(sch, stages, bodies, bounds, storage, analyzer).build()
    if body is None:
        raise LoweringError(f"lower {name}: nothing to compute (no compute stage among the outputs)")
    body = simplify_stmt(body, analyzer)
    body = flatten_storage(body)
    body = simplify_stmt(body, analyzer)
    if partition:
        body = simplify_stmt(partition_loops(body, analyzer), analyzer)
    options = current_options()  # the enclosing ``with tecomp.transform.PassContext(config=...)``
    body = vectorize_loops(body, options.vectorize)
    body = unroll_loops(body, options.auto_unroll_max_step)
    body = simplify_stmt(body, analyzer)
    size_vars = _size_vars(params)
    _check_free_vars(body, size_vars, extra_vars, name)
    # scalar arguments (a Var in ``args``: integers, or floats) the caller passes at their positions,
    # carried as size variables
    scalars = tuple((pos, a) for pos, a in enumerate(args) if isinstance(a, Var))
    size_vars += [v for _, v in scalars if v not in size_vars]
    attrs = (("scalar_args", scalars),) if scalars else ()
    return PrimFunc(name, tuple(params), body, tuple(size_vars), attrs)


def _shape_analyzer(tensors: list[Tensor]) -> Analyzer:
    """An analyzer that knows every shape variable of the arguments is non-negative."""
    analyzer = Analyzer()
    for t in tensors:
        for extent in t.shape:
            for v in collect_vars(extent):
                analyzer.bind(v, Interval(_op.const(0, v.dtype), None))
    return analyzer


def _split_args(args: Sequence[Any]) -> tuple[list[Tensor], list[Var]]:
    tensors, variables = [], []
    for pos, a in enumerate(args):
        if isinstance(a, Tensor):
            tensors.append(a)
        elif isinstance(a, Var):
            variables.append(a)
        else:
            raise LoweringError(f"argument {pos} of lower is {a!r}; arguments must be tensors "
                                "(shape variables are inferred from the tensors' shapes)")
    return tensors, variables


def _plan_storage(sch: Schedule, tensors: list[Tensor], stages: list[Stage], bounds: dict,
                  analyzer: Analyzer, capacity: dict, binds: dict) -> tuple:
    storage = StorageMap()
    params: list[Buffer] = []
    seen: set = set()
    for t in tensors:
        if t.op not in sch.stage_map:
            if not isinstance(t.op, PlaceholderOp):
                raise LoweringError(f"tensor {t.name} is an argument but this schedule does not compute "
                                    "it; create the schedule over the outputs that include it")
            params.append(param_buffer(t, t.dtype, tuple(t.shape), binds, analyzer))  # an input nothing reads
            continue
        stage = sch[t]
        if stage.attach_type == "inline":  # as in TVM: a parameter that nothing writes
            params.append(param_buffer(t, t.dtype, tuple(t.shape), binds, analyzer))
            continue
        key = (id(stage), t.value_index)
        if key in seen:
            raise LoweringError(f"tensor {t.name} appears twice in the argument list")
        seen.add(key)
        current = stage.op.output(t.value_index)
        buf = param_buffer(t, current.dtype, tuple(current.shape), binds, analyzer)
        zeros = tuple(_op.const(0, s.dtype) for s in current.shape)
        storage.add(stage, t.value_index, buf, zeros, True)
        params.append(buf)
    plan_scan_storage(sch, stages, storage)
    plan_extern_storage(sch, stages, storage)
    for st in stages:
        sb = bounds[st]
        for vi in range(st.op.num_outputs):
            if storage.is_param(st, vi) or storage.key(st, vi) in storage.buffers:
                continue
            region = [sb.root_ranges[iv] for iv in st.op.axis]
            shape = tuple(_allocation_extent(r.extent, analyzer, capacity.get((st, dim)))
                          for dim, r in enumerate(region))
            strides = _aligned_strides(st, shape, analyzer)
            if st.double_buffer_on and st.attach_type == "scope":  # two halves, by the loop's parity
                strides = (analyzer.simplify(_op.mul(strides[0], shape[0])),) + strides if strides else ()
                shape = (_op.const(2, "int32"),) + shape
                storage.halves[storage.key(st, vi)] = _op.floormod(st.attach_ivar.var, 2)
            buf = Buffer(st.op.output(vi).name, st.op.output(vi).dtype, shape, st.scope, strides=strides)
            storage.add(st, vi, buf, tuple(r.min for r in region), False)
    return storage, params


def _allocation_extent(extent: PrimExpr, analyzer: Analyzer, capacity: Optional[int]) -> PrimExpr:
    """The extent to allocate: a constant upper bound of a region extent where one is known."""
    if isinstance(extent, IntImm):
        return extent
    upper = analyzer.const_int_bound(extent)[1]
    if capacity is not None and (upper is None or capacity < upper):
        upper = capacity
    return _op.const(upper, extent.dtype) if upper is not None and upper >= 0 else extent


def _aligned_strides(stage: Stage, shape: tuple, analyzer: Analyzer) -> tuple:
    """Row-major strides with ``storage_align`` padding; () when the stage asks for none.

    ``storage_align(axis, factor, offset)`` makes the stride of ``axis`` equal
    ``k * factor + offset`` for the smallest such value not below the compact one.
    """
    if not stage.storage_align_info:
        return ()
    align = {}
    for iv, factor, offset in stage.storage_align_info:
        if iv not in stage.op.axis:
            raise LoweringError(f"storage_align on stage {stage.name}: {iv.name} is not a root "
                                "data-parallel axis of the stage")
        align[list(stage.op.axis).index(iv)] = (factor, offset)
    strides: list = [None] * len(shape)
    stride: PrimExpr = _op.const(1, "int32")
    for dim in reversed(range(len(shape))):
        if dim in align:
            factor, offset = align[dim]
            stride = analyzer.simplify(
                _op.add(_op.mul(_op.floordiv(_op.add(_op.sub(stride, offset), factor - 1), factor), factor),
                        offset))
        strides[dim] = stride
        stride = analyzer.simplify(_op.mul(stride, shape[dim]))
    return tuple(strides)


def _check_inputs_passed(sch: Schedule, bodies: dict, storage: StorageMap, stages: list[Stage]) -> None:
    from .inline import tensors_read
    for st in stages:
        for src in tensors_read(bodies[st], sch):
            if isinstance(src.op, PlaceholderOp) and not storage.is_param(src, 0):
                raise LoweringError(f"stage {st.name} reads input {src.name}, which is not in the "
                                    "argument list; pass every input tensor to lower/build")


def _size_vars(params: list[Buffer]) -> list[Var]:
    found: list[Var] = []
    for buf in params:
        for extent in (*buf.shape, *buf.strides):  # stride variables (binds=) are bound at each call
            for v in _vars_in_order(extent):
                if v not in found:
                    found.append(v)
    return found


def _vars_in_order(e: PrimExpr) -> list[Var]:
    out: list[Var] = []
    post_order_visit(e, lambda n: out.append(n) if isinstance(n, Var) and n not in out else None)
    return out


def _check_free_vars(body: Stmt, size_vars: list[Var], extra: list[Var], name: str) -> None:
    bound: set = set(size_vars) | set(extra)

    def collect(n: Any) -> None:
        if isinstance(n, For):
            bound.add(n.loop_var)
        elif isinstance(n, LetStmt):
            bound.add(n.var)

    post_order_visit(body, collect)
    from ..tir.expr import Let
    post_order_visit(body, lambda n: bound.add(n.var) if isinstance(n, Let) else None)
    free = [v for v in collect_vars(body) if v not in bound and v.dtype != "handle"]
    if free:
        names = ", ".join(sorted(v.name for v in free))
        raise LoweringError(f"lower {name}: the loop body uses {names}, which no argument's shape "
                            "provides; pass the tensors whose shapes mention them")
