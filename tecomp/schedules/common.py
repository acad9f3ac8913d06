"""Helpers every operator of the library shares: argument checks and the injective schedule.

Operators raise ``OperatorError`` when they are *defined* with bad arguments
(shape mismatch, bad stride/padding/groups, unsupported dtype), naming the
operator and the argument, never later inside lowering.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Union

from .. import te
from ..error import OperatorError
from ..te.operation import ComputeOp
from ..te.schedule import Schedule, create_schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from ..tir.expr import IntImm

FLOAT_DTYPES = ("float16", "float32", "float64")
MIN_PARALLEL_ROWS = 16  # fewer rows than this: one fused loop, which parallelizes better
# An intermediate stage an operator wants computed once rather than inlined, because its consumer
# reads each element several times through computed indices (a resize pass).
KEEP_TAG = "keep"
LANE_PERMUTING_TAG = "lane_permuting"  # a blocked stage whose lanes come from other blocks' lanes

IntPair = Union[int, Sequence[int]]


def fail(op_name: str, argument: str, what: str) -> OperatorError:
    """The error to raise: ``<op>: argument <argument>: <what>``."""
    return OperatorError(f"{op_name}: argument {argument}: {what}")


def const_shape(t: Tensor, op_name: str, argument: str) -> tuple[int, ...]:
    """The shape of ``t`` as ints; symbolic dimensions are an OperatorError."""
    dims = []
    for k, d in enumerate(t.shape):
        if not isinstance(d, IntImm):
            raise fail(op_name, argument, f"dimension {k} is symbolic ({d}); this operator needs a "
                                          "constant shape")
        dims.append(d.value)
    return tuple(dims)


def check_dtype(t: Tensor, op_name: str, argument: str, allowed: Sequence[str] = FLOAT_DTYPES) -> None:
    if t.dtype not in allowed:
        raise fail(op_name, argument, f"dtype {t.dtype} is not supported (use one of {', '.join(allowed)})")


def int_pair(op_name: str, value: IntPair, argument: str, minimum: int) -> tuple[int, int]:
    """(h, w) from an int or a pair of ints, each at least ``minimum`` (strides, kernels, dilation)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise fail(op_name, argument, f"expected an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise fail(op_name, argument, f"values must be >= {minimum}, got {value!r}")
    return pair


def padding4(op_name: str, padding: IntPair) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from an int, (ph, pw) or (top, left, bottom, right)."""
    pads = (padding,) * 4 if isinstance(padding, int) else tuple(padding)
    if len(pads) == 2:
        pads = pads * 2
    if len(pads) != 4 or not all(isinstance(p, int) for p in pads):
        raise fail(op_name, "padding", f"expected an int, (ph, pw) or (top, left, bottom, right), "
                                       f"got {padding!r}")
    if min(pads) < 0:
        raise fail(op_name, "padding", f"must be non-negative, got {padding!r}")
    return pads


def find_by_tag(t: Tensor, tag: str) -> Optional[Tensor]:
    """The first tensor at or above ``t`` in the dataflow (depth first, inputs in order) whose op
    carries ``tag``; each stage is looked at once, however many of its consumers read it."""
    pending, seen = [t], set()
    while pending:
        t = pending.pop()
        if t.op in seen:
            continue
        if getattr(t.op, "tag", None) == tag:
            return t
        seen.add(t.op)
        pending.extend(reversed(t.op.input_tensors))
    return None


def producers_named(out: Tensor, wanted: Callable[[str], bool]) -> list[Tensor]:
    """The stages feeding ``out`` through a chain of stages whose op names ``wanted`` accepts, each once."""
    found: dict[str, Tensor] = {}
    pending = list(out.op.input_tensors)
    while pending:
        t = pending.pop()
        if wanted(t.op.name) and t.op.name not in found:
            found[t.op.name] = t
            pending.extend(t.op.input_tensors)
    return list(found.values())


def inline_between(s: Schedule, out: Tensor, anchor: Tensor) -> None:
    """Inline every stage between ``anchor`` and ``out`` (a fused elementwise epilogue chain)."""
    pending, seen = list(out.op.input_tensors), {anchor.op}
    while pending:
        t = pending.pop()
        if t.op in seen or not _depends_on(t, anchor):
            continue
        seen.add(t.op)
        s[t].compute_inline()
        pending.extend(t.op.input_tensors)


def _depends_on(t: Tensor, anchor: Tensor) -> bool:
    return t.op is anchor.op or any(_depends_on(i, anchor) for i in t.op.input_tensors)


def accumulator_dtype(dtype: str) -> str:
    """The dtype sums of ``dtype`` values accumulate in: float32 for float16 (whose 11-bit significand
    loses the terms of a long sum), ``dtype`` itself otherwise. Operators round the result once."""
    return "float32" if dtype == "float16" else dtype


PARTIAL_TAG = "lane_partial"
LANE_CHOICES = (16, 8, 4, 1)  # vector widths a row-wise operator's template offers


def row_lanes(extent: int) -> int:
    """The vector width for rows of ``extent`` contiguous elements: 16, or 8 where 8 divides the
    row and 16 does not (a 40-channel layer norm: five vectors, where 16 lanes leave a tail of 8
    that runs as a scalar loop, per row, and cost more than the vectors)."""
    return 8 if extent % 16 and extent % 8 == 0 else 16


def lane_choices(extent: int) -> list[int]:
    """``LANE_CHOICES`` with ``row_lanes(extent)`` first: the fallback config's width."""
    first = row_lanes(extent)
    return [first] + [v for v in LANE_CHOICES if v != first]


def lane_split_reduce(reducer: Callable[..., Any], rows: tuple, extent: int,
                      value: Callable[[tuple, Any], Any], name: str, lanes: Optional[int] = None) -> Tensor:
    """``reducer`` (``te.sum``/``te.max``/...) of ``value(row, r)`` over ``r < extent`` for each row.

    A float reduction is a chain of dependent adds that the compiler may not reorder. When
    ``extent`` spans at least two vectors it is computed in two stages:
    ``<name>_partial[row, lane]`` over ``r = k * lanes + lane`` for the whole vectors (``lanes``
    independent accumulators: one vector, see ``schedule_lane_partials``), then ``name`` over
    the lanes and the ``extent % lanes`` elements left (197 = 12 x 16 + 5). ``lanes`` defaults
    to ``row_lanes(extent)``.
    """
    lanes = lanes or row_lanes(extent)
    if extent < 2 * lanes:
        r = te.reduce_axis((0, extent), name="r")
        return te.compute(rows, lambda *i: reducer(value(i, r), axis=r), name=name)
    whole, tail = divmod(extent, lanes)
    ko = te.reduce_axis((0, whole), name="r_outer")
    partial = te.compute(rows + (lanes,), lambda *i: reducer(value(i[:-1], ko * lanes + i[-1]), axis=ko),
                         name=f"{name}_partial", tag=PARTIAL_TAG)
    rl = te.reduce_axis((0, lanes + tail), name="r_lane")
    if not tail:
        return te.compute(rows, lambda *i: reducer(partial[i + (rl,)], axis=rl), name=name)

    def lane_or_tail(i: tuple) -> Any:
        # both reads are clamped in bounds: a select may evaluate both sides
        in_lanes = rl < lanes
        return tir_op.select(in_lanes, partial[i + (tir_op.min_expr(rl, lanes - 1),)],
                             value(i, whole * lanes + tir_op.max_expr(rl - lanes, 0)))

    return te.compute(rows, lambda *i: reducer(lane_or_tail(i), axis=rl), name=name)


def schedule_lane_partials(s: Schedule, stages: Sequence[Tensor]) -> None:
    """Vectorize the lane axis of the ``lane_split_reduce`` partial stages among ``stages``,
    with their reduction outside it."""
    for t in stages:
        if getattr(t.op, "tag", None) == PARTIAL_TAG:
            stage = s[t]
            lane = stage.op.axis[-1]
            stage.reorder(*stage.op.reduce_axis, lane)
            stage.vectorize(lane)


def as_list(outs: Any) -> list[Tensor]:
    return list(outs) if isinstance(outs, (list, tuple)) else [outs]


def vectorize_innermost(s: Schedule, t: Tensor, lanes: int) -> None:
    """Split the innermost axis of ``t``'s stage by ``lanes`` and vectorize it (a tail that the
    split leaves is peeled off by loop partitioning)."""
    stage = s[t]
    extent = t.shape[-1].value
    if lanes > 1 and extent >= lanes:
        _, vi = stage.split(stage.op.axis[-1], factor=lanes)
        stage.vectorize(vi)


def parallel_rows(s: Schedule, out: Tensor, lead: int, per_row: Sequence[Tensor]) -> None:
    """Fuse ``out``'s first ``lead`` axes into one parallel loop and compute ``per_row`` stages there.

    The shape of row-wise operators (softmax, layer norm): each row's
    statistics are produced inside the row loop that consumes them.
    """
    if not lead:
        return
    stage = s[out]
    axes = stage.op.axis[:lead]
    row = stage.fuse(*axes) if lead > 1 else axes[0]
    stage.parallel(row)
    for t in per_row:
        s[t].compute_at(stage, row)


def schedule_each_output(outs: Any, schedule_output: Callable[[Schedule, Tensor], None]) -> Schedule:
    """A schedule over ``outs`` with ``schedule_output(s, out)`` applied to each output."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for o in outs:
        schedule_output(s, o)
    return s


def schedule_injective_stage(s: Schedule, out: Tensor, vector_lanes: int = 16) -> None:
    """Run the rows of an elementwise stage in parallel and vectorize along each row (its tail
    peeled off by loop partitioning); with few rows or rows of under 8 elements, fuse all axes
    into one loop, run chunks in parallel and vectorize the innermost part.

    Rows come first because a vector of the fused loop reads through the divisions and
    remainders of every dimension, which fold into one vector access only for plain elementwise
    reads, not for a concatenation, a transpose or a layout change.
    """
    stage = s[out]
    axes = list(stage.op.axis)
    if not axes:
        return
    shape = [d.value if isinstance(d, IntImm) else None for d in out.shape]
    rows = math.prod(shape[:-1]) if None not in shape else 0
    if len(axes) > 1 and rows >= MIN_PARALLEL_ROWS and shape[-1] >= 8:
        width = shape[-1]
        stage.parallel(stage.fuse(*axes[:-1]) if len(axes) > 2 else axes[0])
        lanes = vector_lanes if width % vector_lanes == 0 or (width > vector_lanes and width % 8) else 8
        _, inner = stage.split(axes[-1], factor=lanes)
        stage.vectorize(inner)
        return
    fused = stage.fuse(*axes) if len(axes) > 1 else axes[0]
    total = math.prod(shape) if None not in shape else None
    if total is not None and total >= 4 * vector_lanes:
        outer, inner = stage.split(fused, factor=vector_lanes)
        stage.vectorize(inner)
        stage.parallel(outer)
    elif total is None or total > 1:
        stage.parallel(fused)


def _schedule_lanes_outer(s: Schedule, out: Tensor) -> None:
    """A blocked ``[N, C/b, H, W, b]`` output whose lanes read lanes of other blocks: rows of
    blocks in parallel, and in each row the lanes unrolled outside the columns, so each lane's
    source (block, lane) is worked out once per row instead of per element (the lanes as a
    vector would each need a scalar load through that arithmetic). A task writes whole rows of
    its block: tasks over lanes would share the cache lines they write."""
    stage = s[out]
    n, cb, h, w, lane = stage.op.axis
    stage.reorder(n, cb, h, lane, w)
    stage.parallel(stage.fuse(n, cb, h))
    stage.unroll(lane)


def schedule_injective(outs: Any,
                       schedule_output: Callable[[Schedule, Tensor], None] = schedule_injective_stage) -> Schedule:
    """Default schedule of injective (elementwise, broadcast, layout) operators.

    Intermediate elementwise stages are inlined into their consumers, except those tagged
    ``KEEP_TAG``, which run as root stages scheduled like outputs where the outputs have their
    rank (a layout change after them, such as into blocked channels, vectorizes along another
    axis, where one inlined pass reads whole vectors); each output is fused, parallelized and
    vectorized (by ``schedule_output``, for a kind of output that needs its own loop order),
    except a blocked output reading a stage tagged ``LANE_PERMUTING_TAG`` (a blocked channel
    shuffle), whose lanes go outside its spatial loops (``_schedule_lanes_outer``).
    """
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    kept = []
    for stage in s.stages:
        op = stage.op
        if isinstance(op, ComputeOp) and not stage.is_output and not op.reduce_axis:
            rank = len(op.output(0).shape)
            if op.tag == KEEP_TAG and all(len(o.shape) == rank for o in outs):
                kept.append(op.output(0))
            else:
                stage.compute_inline()
    for t in kept:
        schedule_injective_stage(s, t)
    for t in outs:
        if len(t.shape) == 5 and find_by_tag(t, LANE_PERMUTING_TAG) is not None:
            _schedule_lanes_outer(s, t)
        else:
            schedule_output(s, t)
    return s
