"""Normalisation operators: ``layer_norm`` (with its default schedule and tuning template),
``group_norm`` (ONNX GroupNormalization and InstanceNormalization, with its schedule) and
``batch_norm_inference`` (elementwise, scheduled by ``schedule_injective``).

Layer norm is three stages: the mean and the (two-pass, so stable) variance over the
normalised trailing axes, then the scaled output. The schedule runs the leading axes
fused in parallel and computes both statistics per row inside that loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import te
from .. import tuner as autotvm
from ..te.schedule import Schedule
from ..te.tensor import Tensor
from ..tir import op as tir_op
from .common import (PARTIAL_TAG, accumulator_dtype, check_dtype, const_shape, fail, lane_choices, lane_split_reduce,
                     parallel_rows, producers_named, schedule_each_output, schedule_injective,
                     schedule_injective_stage, schedule_lane_partials, vectorize_innermost)

LEAD_ATTR = "layer_norm_lead"
TEMPLATE = "schedules/layer_norm"


def _tensor(op_name: str, t: Any, argument: str) -> tuple[int, ...]:
    if not isinstance(t, Tensor):
        raise fail(op_name, argument, f"expected a tensor, got {type(t).__name__}")
    check_dtype(t, op_name, argument)
    return const_shape(t, op_name, argument)


def _first_normalised(axis: int | Sequence[int], ndim: int) -> int:
    """The first normalised axis; a list must name the trailing axes, each once, in order."""
    axes = [axis] if isinstance(axis, int) else list(axis)
    if not axes or any(not isinstance(a, int) or not -ndim <= a < ndim for a in axes):
        raise fail("layer_norm", "axis", f"{axis!r} is out of range for a tensor of rank {ndim}")
    axes = [a % ndim for a in axes]
    if isinstance(axis, int):
        return axes[0]
    if axes != list(range(ndim - len(axes), ndim)):
        raise fail("layer_norm", "axis", f"{axis!r} must list the trailing axes in order")
    return axes[0]


def layer_norm(x: Tensor, gamma: Tensor, beta: Tensor, axis: int | Sequence[int] = -1,
               epsilon: float = 1e-5) -> Tensor:
    """ONNX LayerNormalization: normalise over the axes from ``axis`` to the last.

    ``out = (x - mean) / sqrt(var + epsilon) * gamma + beta`` with the mean and the biased
    variance taken over ``x.shape[axis:]``; ``gamma`` and ``beta`` have that shape. ``axis``
    may also be the list of those trailing axes.
    """
    shape = _tensor("layer_norm", x, "x")
    lead = _first_normalised(axis, len(shape))
    norm_shape = shape[lead:]
    for name, t in (("gamma", gamma), ("beta", beta)):
        if _tensor("layer_norm", t, name) != norm_shape or t.dtype != x.dtype:
            raise fail("layer_norm", name, f"expected shape {norm_shape} and dtype {x.dtype}, "
                                           f"got {tuple(d.value for d in t.shape)} {t.dtype}")
    if not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise fail("layer_norm", "epsilon", f"must be a non-negative number, got {epsilon!r}")
    count = 1
    for d in norm_shape:
        count *= d
    acc = accumulator_dtype(x.dtype)  # float16: statistics and the normalisation in float32

    def wide(v: Any) -> Any:
        return tir_op.cast(v, acc)

    inv = te.const(1.0 / count, acc)
    mean = _row_reduce(x, lead, lambda v, i: wide(v), "ln_mean", inv)
    var = _row_reduce(x, lead, lambda v, i: (wide(v) - mean[i]) * (wide(v) - mean[i]), "ln_var", inv)
    eps = te.const(float(epsilon), acc)

    def fcompute(*i: Any) -> Any:
        row, tail = i[:lead], i[lead:]
        return tir_op.cast((wide(x[i]) - mean[row]) * te.rsqrt(var[row] + eps) * wide(gamma[tail]) + wide(beta[tail]),
                           x.dtype)

    return te.compute(shape, fcompute, name="layer_norm",
                      attrs={LEAD_ATTR: lead, "template": TEMPLATE, "workload": (shape, axis, x.dtype, epsilon)})


def _row_reduce(x: Tensor, lead: int, term: Any, name: str, scale: Any) -> Tensor:
    """``scale * sum(term(x[row, r...], row))`` over the axes from ``lead`` on."""
    shape = tuple(d.value for d in x.shape)
    if lead == len(shape) - 1:
        total = lane_split_reduce(te.sum, shape[:lead], shape[lead], lambda i, r: term(x[i + (r,)], i),
                                  f"{name}_sum")
    else:
        rs = [te.reduce_axis((0, d), name=f"r{k}") for k, d in enumerate(shape[lead:])]
        total = te.compute(shape[:lead], lambda *i: te.sum(term(x[tuple(i) + tuple(rs)], i), axis=rs),
                           name=f"{name}_sum")
    return te.compute(shape[:lead], lambda *i: total[i] * scale, name=name)


def schedule_layer_norm_output(s: Schedule, out: Tensor, lanes: int = 16) -> None:
    """Parallel over the fused leading axes; mean and variance computed per row there."""
    lead = out.op.attrs[LEAD_ATTR]
    stages = producers_named(out, lambda name: name.startswith("ln_"))
    parallel_rows(s, out, lead, stages)
    schedule_lane_partials(s, stages)
    vectorize_innermost(s, out, lanes)


def schedule_layer_norm(outs: Any) -> Schedule:
    """Schedule of ``layer_norm`` (see the module docstring), with the vector width the dispatch
    context picks for the workload (tuned under ``apply_history_best``, else the fallback)."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        cfg = autotvm.task.dispatched_config(TEMPLATE, out.op.attrs["workload"])
        schedule_layer_norm_output(s, out, cfg["lanes"].val)

    return schedule_each_output(outs, schedule_output)


@autotvm.template(TEMPLATE)
def layer_norm_template(shape: tuple, axis: int | list = -1, dtype: str = "float32",
                        epsilon: float = 1e-5) -> tuple[Schedule, list[Tensor]]:
    """Tunable layer_norm: knob vector lanes of the output stage."""
    x = te.placeholder(tuple(shape), dtype, name="x")
    lead = _first_normalised(axis if isinstance(axis, int) else list(axis), len(shape))
    gamma = te.placeholder(tuple(shape[lead:]), dtype, name="gamma")
    beta = te.placeholder(tuple(shape[lead:]), dtype, name="beta")
    out = layer_norm(x, gamma, beta, axis, epsilon)
    cfg = autotvm.get_config()
    cfg.define_knob("lanes", lane_choices(shape[-1]))
    s = te.create_schedule(out.op)
    schedule_layer_norm_output(s, out, cfg["lanes"].val)
    return s, [x, gamma, beta, out]


def group_norm(x: Tensor, gamma: Tensor, beta: Tensor, groups: int, epsilon: float = 1e-5) -> Tensor:
    """ONNX GroupNormalization (InstanceNormalization when ``groups`` equals the channels) of
    ``x`` ``[N, C, spatial...]``: the C channels form ``groups`` consecutive groups; each (sample,
    group) is normalised by its mean and biased variance, then channel ``c`` is scaled by
    ``gamma[c]`` and shifted by ``beta[c]``.

    Statistics are two-pass: per (sample, channel) partial sums over the spatial axes (as lane
    partials when long), then per group; the variance sums squares about the group mean.
    """
    op_name = "group_norm"
    shape = _tensor(op_name, x, "x")
    if len(shape) < 3:
        raise fail(op_name, "x", f"expected (N, C, spatial...) with at least one spatial axis, got shape {shape}")
    n, c = shape[:2]
    if not isinstance(groups, int) or groups < 1 or c % groups:
        raise fail(op_name, "groups", f"must be a positive int dividing the {c} channels, got {groups!r}")
    for name, t in (("gamma", gamma), ("beta", beta)):
        if _tensor(op_name, t, name) != (c,) or t.dtype != x.dtype:
            raise fail(op_name, name, f"expected shape ({c},) and dtype {x.dtype}, "
                                      f"got {tuple(d.value for d in t.shape)} {t.dtype}")
    if not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise fail(op_name, "epsilon", f"must be a non-negative number, got {epsilon!r}")
    cpg = c // groups
    plane = 1
    for d in shape[2:]:
        plane *= d
    inv = te.const(1.0 / (cpg * plane), x.dtype)

    def element(row: tuple, r: Any) -> Any:
        """x at (sample, channel) ``row`` and flat spatial offset ``r``."""
        coords, rest = [], r
        for d in reversed(shape[2:]):
            coords.insert(0, rest if d == plane else te.floormod(rest, d))
            rest = te.floordiv(rest, d)
        return x[tuple(row) + tuple(coords)]

    def group_stat(term: Callable[[tuple, Any], Any], name: str) -> Tensor:
        per_channel = lane_split_reduce(te.sum, (n, c), plane, lambda row, r: term(row, element(row, r)),
                                        f"{name}_channel")
        rc = te.reduce_axis((0, cpg), name="rc")
        total = te.compute((n, groups), lambda b, g: te.sum(per_channel[b, g * cpg + rc], axis=rc), name=f"{name}_sum")
        return te.compute((n, groups), lambda b, g: total[b, g] * inv, name=name)

    mean = group_stat(lambda row, v: v, "gn_mean")

    def centred(row: tuple, v: Any) -> Any:
        return v - mean[row[0], row[1] // cpg]

    var = group_stat(lambda row, v: centred(row, v) * centred(row, v), "gn_var")
    eps = te.const(float(epsilon), x.dtype)

    def fcompute(b: Any, ch: Any, *rest: Any) -> Any:
        g = ch // cpg
        return (x[(b, ch) + rest] - mean[b, g]) * te.rsqrt(var[b, g] + eps) * gamma[ch] + beta[ch]

    return te.compute(shape, fcompute, name=op_name)


def schedule_group_norm(outs: Any) -> Schedule:
    """Each statistics stage at the root, parallel over its rows (the lane partials vectorized);
    the output as an injective stage (fused, parallel, vectorized)."""
    def schedule_output(s: Schedule, out: Tensor) -> None:
        stages = producers_named(out, lambda name: name.startswith("gn_"))
        for t in stages:
            stage = s[t]
            if stage.op.reduce_axis or t.op.tag == PARTIAL_TAG:
                stage.parallel(stage.fuse(*stage.op.axis[:2]))
            else:
                stage.compute_inline()
        schedule_lane_partials(s, stages)
        schedule_injective_stage(s, out)

    return schedule_each_output(outs, schedule_output)


def batch_norm_inference(x: Tensor, gamma: Tensor, beta: Tensor, mean: Tensor, var: Tensor,
                         epsilon: float = 1e-5, axis: int = 1) -> Tensor:
    """ONNX BatchNormalization in inference mode: per channel ``c`` along ``axis``,
    ``out = (x - mean[c]) / sqrt(var[c] + epsilon) * gamma[c] + beta[c]``."""
    op_name = "batch_norm_inference"
    shape = _tensor(op_name, x, "x")
    if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
        raise fail(op_name, "axis", f"{axis!r} is out of range for a tensor of rank {len(shape)}")
    axis %= len(shape)
    for name, t in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        if _tensor(op_name, t, name) != (shape[axis],) or t.dtype != x.dtype:
            raise fail(op_name, name, f"expected shape ({shape[axis]},) and dtype {x.dtype}, "
                                      f"got {tuple(d.value for d in t.shape)} {t.dtype}")
    if not isinstance(epsilon, (int, float)) or epsilon < 0:
        raise fail(op_name, "epsilon", f"must be a non-negative number, got {epsilon!r}")
    eps = te.const(float(epsilon), x.dtype)

    def fcompute(*i: Any) -> Any:
        c = i[axis]
        return (x[i] - mean[c]) * te.rsqrt(var[c] + eps) * gamma[c] + beta[c]

    return te.compute(shape, fcompute, name=op_name)


schedule_batch_norm_inference = schedule_injective
