"""ONNX converters for the recurrent layers LSTM, GRU and RNN (every direction, sequence lengths,
both layouts, all outputs).

Each direction becomes a ``dense`` input projection of all time steps at once
(``X·Wᵀ`` plus the biases that do not depend on the state) and one library
recurrence (``lstm``/``gru``/``rnn`` of ``tecomp.schedules.recurrent``) that
runs the per-step product with ``R`` and the gates as one loop over time. The
directions are stacked into ONNX's output layout afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import reshape
from .importer import NodeContext, Value
from .registry import converter


@dataclass(frozen=True)
class _Cell:
    op: str                      # the library operator
    gates: int
    activations: tuple[str, ...]  # ONNX's defaults, one direction
    states: int                  # final-state outputs (Y_h, and Y_c for LSTM)


_CELLS = {"LSTM": _Cell("lstm", 4, ("Sigmoid", "Tanh", "Tanh"), 2),
          "GRU": _Cell("gru", 3, ("Sigmoid", "Tanh"), 1),
          "RNN": _Cell("rnn", 1, ("Tanh",), 1)}

# ONNX activation name -> (library name, default alpha or None when unused, default beta or None).
_ACTIVATIONS = {
    "Relu": ("relu", None, None), "Tanh": ("tanh", None, None), "Sigmoid": ("sigmoid", None, None),
    "Affine": ("affine", 1.0, 0.0), "LeakyRelu": ("leakyrelu", 0.01, None),
    "ThresholdedRelu": ("thresholdedrelu", 1.0, None), "ScaledTanh": ("scaledtanh", 1.0, 1.0),
    "HardSigmoid": ("hardsigmoid", 0.2, 0.5), "Elu": ("elu", 1.0, None), "Softsign": ("softsign", None, None),
    "Softplus": ("softplus", None, None),
}


def _activations(n: NodeContext, cell: _Cell, directions: int) -> list[list[tuple[str, float, float]]]:
    """Per direction, the (name, alpha, beta) of each activation; alphas and betas are consumed in
    order by the activations that take them."""
    names = n.attr("activations", None)
    names = list(cell.activations) * directions if names is None else list(names)
    if len(names) != len(cell.activations) * directions:
        raise n.error(f"activations={names} must name {len(cell.activations)} functions per direction "
                      f"({directions} direction(s))")
    alphas, betas = list(n.attr("activation_alpha", [])), list(n.attr("activation_beta", []))
    by_lower = {k.lower(): k for k in _ACTIVATIONS}
    specs = []
    for name in names:
        known = by_lower.get(name.lower())
        if known is None:
            raise n.error(f"activation {name!r} is not supported (supported: {', '.join(_ACTIVATIONS)})")
        lib, alpha, beta = _ACTIVATIONS[known]
        if alpha is not None and alphas:
            alpha = alphas.pop(0)
        if beta is not None and betas:
            beta = betas.pop(0)
        specs.append((lib, float(alpha or 0.0), float(beta or 0.0)))
    if alphas or betas:
        raise n.error(f"activation_alpha/activation_beta have {len(alphas)}/{len(betas)} value(s) more than the "
                      f"activations {names} take")
    per = len(cell.activations)
    return [specs[d * per:(d + 1) * per] for d in range(directions)]


def _direction(n: NodeContext, value: Value, d: int, rows: int) -> Value:
    """``value[d]`` of a ``[directions, ...]`` input, as ``rows`` x the rest."""
    if value.shape[0] > 1:
        value = n.emit("strided_slice", value, begin=[d], end=[d + 1], axes=[0])
    return reshape(n, value, (rows, int(np.prod(value.shape[1:])) // rows))


def _check_shape(n: NodeContext, value: Value | None, what: str, shape: tuple[int, ...]) -> None:
    if value is not None and value.shape != shape:
        raise n.error(f"input {what} has shape {list(value.shape)}, expected {list(shape)}")


@converter("LSTM", "GRU", "RNN", versions=(7, 14, 22))
def _recurrent(n: NodeContext) -> list[Value | None]:
    cell = _CELLS[n.op_type]
    x, w, r = n.input(0), n.input(1), n.input(2)
    bias, seq_lens, h0 = n.optional(3), n.optional(4), n.optional(5)
    c0 = n.optional(6) if n.op_type == "LSTM" else None
    peephole = n.optional(7) if n.op_type == "LSTM" else None
    layout = n.choice("layout", 0, (0, 1))
    direction = n.choice("direction", "forward", ("forward", "reverse", "bidirectional"))
    dirs = 2 if direction == "bidirectional" else 1
    if x.rank != 3:
        raise n.error(f"X has shape {list(x.shape)}; expected rank 3")
    if layout == 1:  # [batch, steps, input] and states [batch, directions, hidden]
        x = n.emit("transpose", x, axes=[1, 0, 2])
        h0, c0 = (None if v is None else n.emit("transpose", v, axes=[1, 0, 2]) for v in (h0, c0))
    steps, batch, inputs = x.shape
    gh = r.shape[1] if r.rank == 3 else 0
    hidden = gh // cell.gates
    if n.attr("hidden_size", hidden) != hidden or hidden == 0 or hidden * cell.gates != gh:
        raise n.error(f"hidden_size={n.attr('hidden_size', None)} does not match R of shape {list(r.shape)} "
                      f"({cell.gates} gates)")
    _check_shape(n, w, "W", (dirs, gh, inputs))
    _check_shape(n, r, "R", (dirs, gh, hidden))
    _check_shape(n, bias, "B", (dirs, 2 * gh))
    _check_shape(n, seq_lens, "sequence_lens", (batch,))
    for value, what in ((h0, "initial_h"), (c0, "initial_c")):
        _check_shape(n, value, what, (dirs, batch, hidden))
    _check_shape(n, peephole, "P", (dirs, 3 * hidden))
    activations = _activations(n, cell, dirs)
    clip = n.attr("clip", None)
    attrs: dict = {"clip": None if clip is None else float(clip)}
    if n.op_type == "LSTM":
        attrs["input_forget"] = bool(n.choice("input_forget", 0, (0, 1)))
    linear_before_reset = n.op_type == "GRU" and bool(n.choice("linear_before_reset", 0, (0, 1)))
    if n.op_type == "GRU":
        attrs["linear_before_reset"] = linear_before_reset
    if seq_lens is not None and seq_lens.dtype != "int32":
        raise n.error(f"sequence_lens is {seq_lens.dtype}; ONNX requires int32")
    x2 = reshape(n, x, (steps * batch, inputs))
    zeros = n.constant(np.zeros((batch, hidden), x.dtype))
    ys, finals = [], [[] for _ in range(cell.states)]
    for d in range(dirs):
        kw: dict = {}
        xbias = None
        if bias is not None:
            wb_rb = _direction(n, bias, d, 2)
            both = n.emit("strided_slice", wb_rb, begin=[0], end=[1], axes=[0])
            rb = n.emit("strided_slice", wb_rb, begin=[1], end=[2], axes=[0])
            if linear_before_reset:  # Rbh is scaled by the reset gate: kept out of the projection
                keep = n.constant(np.repeat([1, 1, 0], hidden).astype(x.dtype).reshape(1, gh))
                rb, kw["rbh"] = n.emit("multiply", rb, keep), reshape(
                    n, n.emit("strided_slice", rb, begin=[2 * hidden], end=[gh], axes=[1]), (hidden,))
            xbias = reshape(n, n.emit("add", both, rb), (gh,))
        xw = n.emit("dense", x2, _direction(n, w, d, gh), kw={"bias": xbias} if xbias is not None else None)
        xw = reshape(n, xw, (steps, batch, gh))
        r_t = n.emit("transpose", _direction(n, r, d, gh), axes=[1, 0])
        states = [_direction(n, v, d, batch) if v is not None else zeros for v in (h0, c0)[:cell.states]]
        if peephole is not None:
            kw["peephole"] = _direction(n, peephole, d, 3)
        if seq_lens is not None:
            kw["seq_lens"] = seq_lens
        reverse = direction == "reverse" or d == 1
        outs = n.importer.emit(n, cell.op, [xw, r_t, *states], {**attrs, "reverse": reverse,
                                                                "activations": activations[d]}, kw, 1 + cell.states)
        ys.append(reshape(n, outs[0], (steps, 1, batch, hidden)))
        for k in range(cell.states):
            finals[k].append(reshape(n, outs[1 + k], (1, batch, hidden)))
    y = ys[0] if dirs == 1 else n.emit("concatenate", *ys, axis=1)
    states_out = [f[0] if dirs == 1 else n.emit("concatenate", *f, axis=0) for f in finals]
    if layout == 1:
        y = n.emit("transpose", y, axes=[2, 0, 1, 3])
        states_out = [n.emit("transpose", s, axes=[1, 0, 2]) for s in states_out]
    return [y, *states_out]
