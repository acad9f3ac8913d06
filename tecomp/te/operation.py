"""Defining tensors: placeholders, compute operations, reductions, variables.

``compute(shape, fcompute)`` calls ``fcompute`` once with fresh axis
variables named after its parameters and records the resulting expression.
Reductions (``te.sum`` and friends, or any ``comm_reducer``) must be the
whole body of a compute, as in TVM.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

from ..error import ExprError
from ..tir import dtype as dt
from ..tir import op as _op
from ..tir.expr import CommReducer, PrimExpr, Reduce, SizeVar, Var
from ..tir.functor import post_order_visit
from .tensor import IterVar, Operation, Range, Tensor, collect_input_tensors


class PlaceholderOp(Operation):
    """An input tensor of the program."""

    def __init__(self, name: str, shape: tuple, dtype: str):
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self._outputs = (Tensor(self, 0, shape, dtype),)


class ComputeOp(Operation):
    """Tensors whose elements are ``body[k]`` evaluated at each point of ``axis``."""

    def __init__(self, name: str, tag: str, attrs: dict, axis: tuple, reduce_axis: tuple,
                 body: tuple, shape: tuple):
        self.name = name
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.axis = axis
        self.reduce_axis = reduce_axis
        self.body = body
        self.shape = shape
        self.num_outputs = len(body)
        self._outputs = tuple(Tensor(self, k, shape, b.dtype) for k, b in enumerate(body))
        self._inputs: Optional[list] = None

    @property
    def input_tensors(self) -> list[Tensor]:
        if self._inputs is None:
            self._inputs = collect_input_tensors(self.body)
        return self._inputs

    def with_body(self, body: tuple, name: Optional[str] = None, axis: Optional[tuple] = None,
                  reduce_axis: Optional[tuple] = None) -> "ComputeOp":
        """A new op like this one with another body (used by schedule rewrites)."""
        return ComputeOp(name or self.name, self.tag, self.attrs,
                         self.axis if axis is None else axis,
                         self.reduce_axis if reduce_axis is None else reduce_axis,
                         body, self.shape)


def _shape_tuple(shape: Any, what: str) -> tuple:
    if isinstance(shape, (int, PrimExpr)) or hasattr(shape, "var"):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise ExprError(f"shape of {what} must be a tuple of ints or expressions, got {shape!r}") from None
    result = []
    for d in dims:
        if isinstance(d, float) and d.is_integer():  # ``N / bn`` of two ints, which TVM accepts
            d = int(d)
        e = _op.convert(d)
        if not dt.is_integral(e.dtype) or dt.is_bool(e.dtype):
            raise ExprError(f"shape of {what} must be integers, got {d!r}")
        if isinstance(e, _op.IntImm) and e.value < 0:
            raise ExprError(f"shape of {what} has a negative dimension {e.value}")
        result.append(e)
    return tuple(result)


def placeholder(shape: Any, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of the given shape and dtype."""
    dtype = str(dt.parse(dtype))  # the canonical name ("float" is float32)
    return PlaceholderOp(name, _shape_tuple(shape, f"placeholder {name}"), dtype).output(0)


def _axis_names(fcompute: Callable, ndim: int, op_name: str) -> list[str]:
    try:
        sig = inspect.signature(fcompute)
    except (TypeError, ValueError):
        return [f"i{k}" for k in range(ndim)]
    params = list(sig.parameters.values())
    names = [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
    if len(names) < len(params) and len(names) <= ndim:  # (a, b, *rest): rest takes the remaining axes
        return names + [f"i{k}" for k in range(len(names), ndim)]
    if len(names) > ndim:
        raise ExprError(f"compute {op_name}: fcompute takes {len(names)} arguments but the shape has "
                        f"{ndim} dimensions")
    return names  # fewer: the outer axes of a tensor compute (checked by ``compute``)


def compute(shape: Any, fcompute: Callable, name: str = "compute", tag: str = "",
            attrs: Optional[dict] = None) -> Any:
    """A tensor (or a list of tensors) defined elementwise by ``fcompute``."""
    shape = _shape_tuple(shape, f"compute {name}")
    tag = tag or current_tag()
    names = _axis_names(fcompute, len(shape), name)
    axis = tuple(IterVar(Range(_op.const(0, s.dtype), s), Var(n, s.dtype), IterVar.DataPar)
                 for n, s in zip(names, shape))
    result = fcompute(*[iv.var for iv in axis])
    from .tensor_compute import TensorIntrinCall, tensor_compute  # it builds on ComputeOp
    if len(axis) < len(shape) or isinstance(result, TensorIntrinCall):
        if not isinstance(result, TensorIntrinCall):
            raise ExprError(f"compute {name}: fcompute takes {len(axis)} arguments but the shape has "
                            f"{len(shape)} dimensions (only a call of a tensor intrinsic covers the rest)")
        return tensor_compute(shape, axis, result, name, tag, attrs or {}).output(0)
    multi = isinstance(result, (list, tuple))
    body = tuple(_op.convert(b) for b in (result if multi else (result,)))
    if not body:
        raise ExprError(f"compute {name}: fcompute returned no values")
    reduce_axis = _check_reductions(body, name)
    op = ComputeOp(name, tag, attrs or {}, axis, reduce_axis, body, shape)
    outs = [op.output(k) for k in range(op.num_outputs)]
    return outs if multi else outs[0]


def _check_reductions(body: tuple, name: str) -> tuple:
    """Reductions must be the whole body; returns the reduce axes."""
    tops = [b for b in body if isinstance(b, Reduce)]
    for b in body:
        nested: list = []
        roots = b.source + (b.condition,) if isinstance(b, Reduce) else (b,)
        for r in roots:
            post_order_visit(r, lambda n: nested.append(n) if isinstance(n, Reduce) else None)
        if nested:
            raise ExprError(f"compute {name}: a reduction must be the whole body of a compute, "
                            "not part of a larger expression; compute it as its own tensor")
    if not tops:
        return ()
    if len(tops) != len(body):
        raise ExprError(f"compute {name}: all outputs must be reductions or none")
    if any(t.combiner is not tops[0].combiner or t.source is not tops[0].source or t.value_index != k
           for k, t in enumerate(tops)):
        raise ExprError(f"compute {name}: several reductions must be the outputs of one tuple reducer, "
                        "in order (T0, T1 = argmax((idx, val), axis=k))")
    return tuple(tops[0].axis)


def reduce_axis(dom: Any, name: str = "rv") -> IterVar:
    """A reduction axis over ``dom`` = (min, max) half-open, or a Range."""
    if isinstance(dom, Range):
        rng = dom
    else:
        try:
            lo, hi = dom
        except (TypeError, ValueError):
            raise ExprError(f"reduce_axis {name}: domain must be (begin, end), got {dom!r}") from None
        lo_e, hi_e = _op.convert(lo), _op.convert(hi)
        rng = Range(lo_e, _op.sub(hi_e, lo_e))
    return IterVar(rng, Var(name, rng.extent.dtype), IterVar.CommReduce)


def thread_axis(dom: Any = None, tag: str = "", name: str = "") -> IterVar:
    """An axis bound to a GPU thread index (``blockIdx.x``, ``threadIdx.y``, ``vthread``)."""
    if isinstance(dom, str):
        tag, dom = dom, None
    if not tag:
        raise ExprError("thread_axis needs a tag such as 'threadIdx.x' or 'blockIdx.x'")
    valid = {f"{k}.{a}" for k in ("blockIdx", "threadIdx") for a in "xyz"} | {"vthread", "cthread"}
    if tag not in valid:
        raise ExprError(f"unknown thread tag {tag!r}; use one of {sorted(valid)}")
    rng = None
    if dom is not None:
        rng = dom if isinstance(dom, Range) else Range(_op.convert(dom[0]), _op.convert(dom[1] - dom[0]))
    return IterVar(rng, Var(name or tag, "int32"), IterVar.ThreadIndex, tag)


def var(name: str = "tindex", dtype: str = "int32") -> Var:
    """A symbolic scalar variable (e.g. a shape dimension)."""
    dt.parse(dtype)
    return Var(name, dtype)


def size_var(name: str = "size", dtype: str = "int32") -> SizeVar:
    """A symbolic variable known to be non-negative."""
    dt.parse(dtype)
    return SizeVar(name, dtype)


def comm_reducer(fcombine: Callable, fidentity: Callable, name: str = "reduce") -> Callable:
    """A commutative reducer: ``reducer(expr, axis, where=None)`` builds a reduction.

    Called with two expressions instead (``te.max(a, b)``) it combines them
    elementwise, as TVM's reducers do. A tuple reducer (argmax) takes a tuple
    ``expr``; ``fcombine(x, y)`` then gets and returns tuples, ``fidentity``
    takes one dtype per value, and the reducer returns one reduction per value
    (the outputs of one compute).
    """

    def reducer(expr: Any, axis: Any, where: Any = None, init: Any = None) -> Any:
        if not _is_axis_arg(axis):
            return fcombine(_op.convert(expr), _op.convert(axis))
        axes = [axis] if isinstance(axis, IterVar) else list(axis)
        for a in axes:
            if not isinstance(a, IterVar) or not a.is_reduce:
                raise ExprError(f"{name}: axis {a!r} is not a reduce_axis")
        multi = isinstance(expr, (list, tuple))
        srcs = tuple(_op.convert(e) for e in (expr if multi else (expr,)))
        lhs = tuple(Var(f"x{k}" if multi else "x", s.dtype) for k, s in enumerate(srcs))
        rhs = tuple(Var(f"y{k}" if multi else "y", s.dtype) for k, s in enumerate(srcs))
        combined = fcombine(lhs, rhs) if multi else (fcombine(lhs[0], rhs[0]),)
        plain = fidentity(*(s.dtype for s in srcs)) if multi else (fidentity(srcs[0].dtype),)
        identity = plain if init is None else tuple(init) if multi else (init,)
        if len(combined) != len(srcs) or len(identity) != len(srcs) or len(plain) != len(srcs):
            raise ExprError(f"{name}: fcombine, fidentity and init must give {len(srcs)} values, one per "
                            "reduced value")
        combined = tuple(_op.convert(c) for c in combined)
        identity = tuple(_op.cast(i, s.dtype) for i, s in zip(identity, srcs))
        plain = tuple(_op.cast(i, s.dtype) for i, s in zip(plain, srcs))
        cond = _op.const(True) if where is None else _op.convert(where)
        combiner = CommReducer(lhs, rhs, combined, identity, name, None if init is None else plain)
        reds = tuple(Reduce(combiner, srcs, tuple(axes), cond, k) for k in range(len(srcs)))
        return reds if multi else reds[0]

    reducer.__name__ = name
    reducer.__doc__ = f"Reduction '{name}' over reduce axes (or elementwise on two expressions)."
    return reducer


def _is_axis_arg(axis: Any) -> bool:
    if isinstance(axis, IterVar):
        return axis.is_reduce
    return isinstance(axis, (list, tuple))


sum = comm_reducer(lambda x, y: _op.add(x, y), lambda t: _op.const(0, t), name="sum")  # noqa: A001
max = comm_reducer(_op.max_expr, _op.min_value, name="max")  # noqa: A001
min = comm_reducer(_op.min_expr, _op.max_value, name="min")  # noqa: A001


class ScanOp(Operation):
    """A recurrence over the first dimension of its states, run as one sequential loop.

    Output ``k`` has the shape of ``state_placeholder[k]``: rows ``[0, init)``
    are ``init[k]``, row ``t`` (``init <= t < T``) is ``update[k]`` at ``t``,
    which may read the state's earlier rows through the placeholder. The
    update and every stage between the placeholders and it (the *body*) run
    inside the scan's loop over ``scan_axis`` for one row at a time; stages
    that do not read a state run before the loop, over every row.
    """

    def __init__(self, name: str, tag: str, attrs: dict, scan_axis: IterVar, init: tuple, update: tuple,
                 state_placeholder: tuple, spatial_axis: tuple):
        self.name = name
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.scan_axis = scan_axis
        self.init = init
        self.update = update
        self.state_placeholder = state_placeholder
        self.spatial_axis = spatial_axis      # per state: an IterVar for each non-scan dimension
        self.num_outputs = len(update)
        self._outputs = tuple(Tensor(self, k, s.shape, s.dtype) for k, s in enumerate(state_placeholder))

    @property
    def root_iter_vars(self) -> list[IterVar]:
        return [self.scan_axis] + [iv for axes in self.spatial_axis for iv in axes]

    @property
    def input_tensors(self) -> list[Tensor]:
        return list(self.init) + list(self.update)


def scan(init: Any, update: Any, state_placeholder: Any, inputs: Any = None, name: str = "scan",
         tag: str = "", attrs: Optional[dict] = None) -> Any:
    """A recurrence: ``state[:init_rows] = init``, ``state[t] = update[t]`` for the later rows, in order.

    Each argument is a tensor or a list (one entry per state). ``update`` is
    a compute over the state's whole shape that reads ``state_placeholder``
    at rows before ``t`` (``s[t - 1, i]``). Returns the scan's output tensor
    (a list for several states). ``inputs`` is accepted for TVM compatibility;
    the body is found from the placeholders.
    """
    def as_tuple(x: Any, what: str) -> tuple:
        items = tuple(x) if isinstance(x, (list, tuple)) else (x,)
        if not items or not all(isinstance(t, Tensor) for t in items):
            raise ExprError(f"scan {name}: {what} must be a tensor or a list of tensors, got {x!r}")
        return items

    init_t, update_t = as_tuple(init, "init"), as_tuple(update, "update")
    states = as_tuple(state_placeholder, "state_placeholder")
    if inputs is not None:
        as_tuple(inputs, "inputs")
    if not len(init_t) == len(update_t) == len(states):
        raise ExprError(f"scan {name}: init, update and state_placeholder must have one entry per state, got "
                        f"{len(init_t)}, {len(update_t)} and {len(states)}")
    for k, (i, u, s) in enumerate(zip(init_t, update_t, states)):
        if not isinstance(s.op, PlaceholderOp):
            raise ExprError(f"scan {name}: state_placeholder {k} ({s.name}) must be a te.placeholder")
        if not isinstance(i.op, ComputeOp) or not isinstance(u.op, ComputeOp):
            raise ExprError(f"scan {name}: init and update of state {k} must be computes (te.compute)")
        if not s.shape:
            raise ExprError(f"scan {name}: state {k} ({s.name}) is a scalar; its first dimension is the scan axis")
        if not (i.dtype == u.dtype == s.dtype):
            raise ExprError(f"scan {name}: state {k}: init {i.dtype}, update {u.dtype} and placeholder {s.dtype} "
                            "must have one dtype")
        if len(i.shape) != len(s.shape) or len(u.shape) != len(s.shape) or \
                not all(_same_dim(a, b) and _same_dim(a, c) for a, b, c in zip(i.shape[1:], u.shape[1:], s.shape[1:])) \
                or not _same_dim(u.shape[0], s.shape[0]):
            raise ExprError(f"scan {name}: state {k}: update {[str(d) for d in u.shape]} must have the "
                            f"placeholder's shape {[str(d) for d in s.shape]} and init "
                            f"{[str(d) for d in i.shape]} all but its first dimension")
    first, total = init_t[0].shape[0], states[0].shape[0]
    if any(not _same_dim(i.shape[0], first) or not _same_dim(s.shape[0], total) for i, s in zip(init_t, states)):
        raise ExprError(f"scan {name}: every state needs the same number of rows and of init rows")
    scan_axis = IterVar(Range(first, _op.sub(total, first)), Var(f"{name}.idx", total.dtype), IterVar.Ordered)
    spatial = tuple(tuple(IterVar(Range(_op.const(0, d.dtype), d), Var(f"{name}.s{k}.i{j + 1}", d.dtype),
                                  IterVar.DataPar) for j, d in enumerate(s.shape[1:]))
                    for k, s in enumerate(states))
    op = ScanOp(name, tag, attrs or {}, scan_axis, init_t, update_t, states, spatial)
    outs = [op.output(k) for k in range(op.num_outputs)]
    return outs if isinstance(update, (list, tuple)) else outs[0]


def _same_dim(a: PrimExpr, b: PrimExpr) -> bool:
    if isinstance(a, _op.IntImm) and isinstance(b, _op.IntImm):
        return a.value == b.value
    return a is b


class ExternOp(Operation):
    """Tensors computed by a hand-written loop-IR body (``te.extern``).

    ``body`` reads ``input_placeholders`` and writes ``output_placeholders``
    (Buffers); lowering rebinds them to where ``inputs`` and the outputs live.
    ``axis`` (over the first output's shape) lets bound inference and storage
    treat the stage as covering its whole output; the body is not scheduled.
    """

    def __init__(self, name: str, tag: str, attrs: dict, inputs: tuple, input_placeholders: tuple,
                 output_placeholders: tuple, body: Any):
        self.name = name
        self.tag = tag
        self.attrs = dict(attrs or {})
        self.inputs = inputs
        self.input_placeholders = input_placeholders
        self.output_placeholders = output_placeholders
        self.body = body
        self.shape = output_placeholders[0].shape
        self.axis = tuple(IterVar(Range(_op.const(0, d.dtype), d), Var(f"{name}.i{k}", d.dtype), IterVar.DataPar)
                          for k, d in enumerate(self.shape))
        self.reduce_axis: tuple = ()
        self.num_outputs = len(output_placeholders)
        self._outputs = tuple(Tensor(self, k, b.shape, b.dtype) for k, b in enumerate(output_placeholders))

    @property
    def input_tensors(self) -> list[Tensor]:
        return list(self.inputs)


def extern(shape: Any, inputs: Any, fcompute: Callable, name: str = "extern", dtype: Any = None,
           in_buffers: Any = None, out_buffers: Any = None, tag: str = "", attrs: Optional[dict] = None) -> Any:
    """Tensors of ``shape`` computed by ``fcompute(ins, outs)``, TVM's ``te.extern``.

    ``ins``/``outs`` are Buffers (``tir.decl_buffer``) of the inputs and
    outputs; ``fcompute`` returns a statement (``tir.ir_builder``'s
    ``get()``) or an expression such as ``tir.call_extern(...)``. A list
    of shapes gives several outputs (a list is returned).
    """
    from ..tir.buffer import Buffer, decl_buffer
    from ..tir.stmt import Evaluate, Stmt
    tag = tag or current_tag()
    multi = isinstance(shape, (list, tuple)) and bool(shape) and isinstance(shape[0], (list, tuple))
    shapes = [_shape_tuple(s, f"extern {name}") for s in (shape if multi else [shape])]
    ins = tuple(inputs) if isinstance(inputs, (list, tuple)) else (inputs,)
    if not all(isinstance(t, Tensor) for t in ins):
        raise ExprError(f"extern {name}: inputs must be a list of tensors, got {inputs!r}")
    if dtype is None:
        if not ins:
            raise ExprError(f"extern {name}: give dtype= (there is no input to take it from)")
        dtype = ins[0].dtype
    dtypes = list(dtype) if isinstance(dtype, (list, tuple)) else [dtype] * len(shapes)
    if len(dtypes) != len(shapes):
        raise ExprError(f"extern {name}: {len(dtypes)} dtypes for {len(shapes)} outputs")
    in_bufs = tuple(in_buffers) if in_buffers is not None else tuple(
        decl_buffer(t.shape, t.dtype, t.name) for t in ins)
    out_bufs = tuple(out_buffers) if out_buffers is not None else tuple(
        decl_buffer(s, d, f"{name}.out{k}" if multi else name) for k, (s, d) in enumerate(zip(shapes, dtypes)))
    for what, bufs, count in (("in_buffers", in_bufs, len(ins)), ("out_buffers", out_bufs, len(shapes))):
        if len(bufs) != count or not all(isinstance(b, Buffer) for b in bufs):
            raise ExprError(f"extern {name}: {what} must be {count} Buffers (tir.decl_buffer), got {bufs!r}")
    body = fcompute(list(in_bufs), list(out_bufs))
    if isinstance(body, PrimExpr):
        body = Evaluate(body)
    if not isinstance(body, Stmt):
        raise ExprError(f"extern {name}: fcompute must return a statement (ir_builder.get()) or an "
                        f"expression, got {body!r}")
    op = ExternOp(name, tag, attrs or {}, ins, in_bufs, out_bufs, body)
    outs = [op.output(k) for k in range(op.num_outputs)]
    return outs if multi else outs[0]


_tags: list[str] = []


def current_tag() -> str:
    """The tag of the innermost ``te.tag_scope`` (``""`` outside one)."""
    return _tags[-1] if _tags else ""


class tag_scope:  # noqa: N801 (TVM's name)
    """``with te.tag_scope("conv"):`` tags the operations defined inside; also a decorator."""

    def __init__(self, tag: str):
        self.tag = tag

    def __enter__(self) -> "tag_scope":
        _tags.append(self.tag)
        return self

    def __exit__(self, *exc: Any) -> None:
        _tags.pop()

    def __call__(self, fdecl: Callable) -> Callable:
        import functools

        @functools.wraps(fdecl)
        def tagged(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fdecl(*args, **kwargs)
        return tagged
