"""Softmax and log-softmax over one axis (numerically stable), their default CPU schedule and
tuning template.

Both are four stages: the row maximum, ``exp(x - max)``, the row sum, and the output. The
schedule runs the fused axes before ``axis`` in parallel and computes the three
intermediate stages per row inside that loop, so a row stays in cache.
"""

from __future__ import annotations

from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (accumulator_dtype, check_dtype, const_shape, fail, lane_choices, lane_split_reduce,
                     parallel_rows, producers_named, row_lanes, schedule_each_output, schedule_lane_partials,
                     vectorize_innermost)

ROW_STAGE_ATTR = "softmax_axis"
TEMPLATE = "schedules/softmax"


def _axis(op_name: str, x: Any, axis: int) -> tuple[tuple[int, ...], int]:
    if not isinstance(x, Tensor):
        raise fail(op_name, "x", f"expected a tensor, got {type(x).__name__}")
    check_dtype(x, op_name, "x")
    shape = const_shape(x, op_name, "x")
    if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
        raise fail(op_name, "axis", f"{axis!r} is out of range for a tensor of rank {len(shape)}")
    return shape, axis % len(shape)


def _row_stages(x: Tensor, shape: tuple[int, ...], axis: int) -> tuple[Tensor, Tensor, Tensor]:
    """The row maximum, ``exp(x - max)`` and its row sum (reduced stages drop ``axis``); the last two in
    ``accumulator_dtype`` (float32 for float16)."""
    rows = shape[:axis] + shape[axis + 1:]

    def at(i: tuple, r: Any) -> tuple:
        return tuple(i[:axis]) + (r,) + tuple(i[axis:])

    # the lane split pays only when the reduced axis is the contiguous one
    lanes = row_lanes(shape[axis]) if axis == len(shape) - 1 else shape[axis] + 1
    xmax = lane_split_reduce(te.max, rows, shape[axis], lambda i, r: x[at(i, r)], "row_max", lanes)
    acc = accumulator_dtype(x.dtype)
    shifted = te.compute(shape, lambda *i: te.exp(tir_op.cast(x[i], acc)
                                                  - tir_op.cast(xmax[i[:axis] + i[axis + 1:]], acc)), name="row_exp")
    total = lane_split_reduce(te.sum, rows, shape[axis], lambda i, r: shifted[at(i, r)], "row_sum", lanes)
    return xmax, shifted, total


def _attrs(shape: tuple, axis: int, dtype: str, log: bool) -> dict:
    return {ROW_STAGE_ATTR: axis, "template": TEMPLATE, "workload": (shape, axis, dtype, log)}


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis`` (ONNX Softmax, opset 13)."""
    shape, axis = _axis("softmax", x, axis)
    _, shifted, total = _row_stages(x, shape, axis)

    def normalised(*i: Any) -> Any:
        # times the row's reciprocal: a scalar division LLVM hoists out of the row's vector loop,
        # where dividing each element costs a vector division
        return tir_op.cast(shifted[i] * (te.const(1.0, total.dtype) / total[i[:axis] + i[axis + 1:]]), x.dtype)

    return te.compute(shape, normalised, name="softmax", attrs=_attrs(shape, axis, x.dtype, False))


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    """``x - max - log(sum(exp(x - max)))`` along ``axis`` (ONNX LogSoftmax, opset 13)."""
    shape, axis = _axis("log_softmax", x, axis)
    xmax, _, total = _row_stages(x, shape, axis)

    def fcompute(*i: Any) -> Any:
        row = i[:axis] + i[axis + 1:]
        acc = total.dtype
        return tir_op.cast(tir_op.cast(x[i], acc) - tir_op.cast(xmax[row], acc) - te.log(total[row]), x.dtype)

    return te.compute(shape, fcompute, name="log_softmax", attrs=_attrs(shape, axis, x.dtype, True))


def schedule_softmax_output(s: Schedule, out: Tensor, lanes: int = 16) -> None:
    """Parallel over the fused axes before ``axis``; max, exp and sum computed per row there."""
    axis = out.op.attrs[ROW_STAGE_ATTR]
    stages = producers_named(out, lambda name: name.startswith("row_"))
    parallel_rows(s, out, axis, stages)
    schedule_lane_partials(s, stages)
    for t in [out] + [t for t in stages if t.op.name == "row_exp"]:
        vectorize_innermost(s, t, lanes)


def schedule_softmax(outs: Any) -> Schedule:
    """Schedule of ``softmax``/``log_softmax`` (see the module docstring), with the vector width the
    dispatch context picks for the workload (tuned under ``apply_history_best``, else the fallback)."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        cfg = autotvm.task.dispatched_config(TEMPLATE, out.op.attrs["workload"])
        schedule_softmax_output(s, out, cfg["lanes"].val)

    return schedule_each_output(outs, schedule_output)


schedule_log_softmax = schedule_softmax


@autotvm.template(TEMPLATE)
def softmax_template(shape: tuple, axis: int = -1, dtype: str = "float32",
                     log: bool = False) -> tuple[Schedule, list[Tensor]]:
    """Tunable softmax/log_softmax: knob vector lanes of the elementwise stages."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    out = (log_softmax if log else softmax)(x, axis)
    cfg = autotvm.get_config()
    cfg.define_knob("lanes", lane_choices(shape[-1]))
    s = te.create_schedule(out.op)
    schedule_softmax_output(s, out, cfg["lanes"].val)
    return s, [x, out]
