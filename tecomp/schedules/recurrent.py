"""Recurrent layers (ONNX LSTM, GRU, RNN semantics), one direction each, as ``te.scan`` recurrences.

The input projection ``X·Wᵀ + biases`` of every step is computed by the caller
(one large dense product) and passed as ``xw`` ``[T, batch, gates*hidden]``.
Each operator runs the per-step part, ``H·Rᵀ`` and the gates, inside one scan:
its states are ``[T + 1, batch, hidden]`` (row 0 the initial state, row
``s + 1`` the state after step ``s``). The recurrent weight comes transposed,
``r_t`` ``[hidden, gates*hidden]``, so the per-step product reads it along the
gate dimension it is vectorized over.

With ``seq_lens`` a batch entry takes its first ``seq_lens[b]`` time steps
(the last ones first when ``reverse``), keeps its state after them (so the
final state is the last valid step's) and has zeros in ``y`` beyond them; an
empty sequence has zero final states (onnxruntime's reading; the spec is silent).
Activations are ``(name, alpha, beta)`` triples naming the ONNX activation
functions (lower case), ``ACTIVATIONS`` lists them.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from .. import te
from ..te.operation import ComputeOp
from ..te.schedule import Schedule, create_schedule
from ..te.tensor import Tensor
from ..tir.expr import PrimExpr
from .common import as_list, check_dtype, const_shape, fail, schedule_injective_stage

Activation = Sequence[Any]  # (name, alpha, beta)


def _select(cond: PrimExpr, a: PrimExpr, b: Any) -> PrimExpr:
    return te.select(cond, a, te.const(b, a.dtype) if isinstance(b, (int, float)) else b)


def _affine(x: PrimExpr, alpha: float, beta: float) -> PrimExpr:
    return x * alpha + beta


ACTIVATIONS: dict[str, Callable[[PrimExpr, float, float], PrimExpr]] = {
    "relu": lambda x, a, b: te.max(x, te.const(0, x.dtype)),
    "tanh": lambda x, a, b: te.tanh(x),
    "sigmoid": lambda x, a, b: te.sigmoid(x),
    "affine": _affine,
    "leakyrelu": lambda x, a, b: _select(x >= 0, x, x * a),
    "thresholdedrelu": lambda x, a, b: _select(x > a, x, 0.0),
    "scaledtanh": lambda x, a, b: te.tanh(x * b) * a,
    "hardsigmoid": lambda x, a, b: te.max(te.const(0, x.dtype), te.min(te.const(1, x.dtype), _affine(x, a, b))),
    "elu": lambda x, a, b: _select(x >= 0, x, (te.exp(x) - 1.0) * a),
    "softsign": lambda x, a, b: x / (te.abs(x) + 1.0),
    "softplus": lambda x, a, b: te.log(te.exp(x) + 1.0),
}

def _activation_fns(op_name: str, activations: Sequence[Activation], count: int) -> list[Callable]:
    if len(activations) != count:
        raise fail(op_name, "activations", f"expected {count} (name, alpha, beta) entries, got {len(activations)}")
    fns = []
    for spec in activations:
        name, alpha, beta = spec
        fn = ACTIVATIONS.get(name)
        if fn is None:
            raise fail(op_name, "activations", f"{name!r} is not one of {', '.join(ACTIVATIONS)}")
        fns.append(lambda x, fn=fn, a=float(alpha), b=float(beta): fn(x, a, b))
    return fns


class _Recurrence:
    """Shapes, argument checks and the index helpers shared by the three cells."""

    def __init__(self, op_name: str, xw: Tensor, r_t: Tensor, h0: Tensor, gates: int,
                 seq_lens: Optional[Tensor], reverse: bool, clip: Optional[float]):
        self.op_name = op_name
        for t, arg in ((xw, "xw"), (r_t, "r_t"), (h0, "h0")):
            check_dtype(t, op_name, arg)
            if t.dtype != xw.dtype:
                raise fail(op_name, arg, f"dtype {t.dtype} differs from xw's {xw.dtype}")
        xs = const_shape(xw, op_name, "xw")
        if len(xs) != 3 or xs[2] % gates:
            raise fail(op_name, "xw", f"expected [steps, batch, {gates}*hidden], got {list(xs)}")
        self.steps, self.batch, self.hidden = xs[0], xs[1], xs[2] // gates
        self.expect(r_t, "r_t", (self.hidden, gates * self.hidden))
        self.expect(h0, "h0", (self.batch, self.hidden))
        if seq_lens is not None:
            check_dtype(seq_lens, op_name, "seq_lens", ("int32", "int64"))
            self.expect(seq_lens, "seq_lens", (self.batch,))
        if clip is not None and not clip > 0:
            raise fail(op_name, "clip", f"must be positive, got {clip}")
        self.xw, self.r_t, self.seq_lens, self.reverse, self.clip = xw, r_t, seq_lens, reverse, clip
        self.rows = (self.steps + 1, self.batch, self.hidden)
        self.dtype = xw.dtype

    def expect(self, t: Tensor, arg: str, shape: tuple) -> None:
        got = const_shape(t, self.op_name, arg)
        if got != shape:
            raise fail(self.op_name, arg, f"expected shape {list(shape)}, got {list(got)}")

    def length(self, b: Any) -> PrimExpr:
        if self.seq_lens is None:
            return te.const(self.steps, "int32")
        return te.min(self.seq_lens[b].astype("int32"), te.const(self.steps, "int32"))

    def valid(self, t: Any, b: Any) -> PrimExpr:
        """Whether scan row ``t`` (step ``t - 1``) is a real step of batch entry ``b``."""
        return t - 1 < self.length(b)

    def x_at(self, t: Any, b: Any, g: Any) -> PrimExpr:
        """The projected input step ``t - 1`` of batch entry ``b`` reads (clamped in bounds past its length)."""
        step = t - 1
        if self.reverse:
            step = te.max(self.length(b) - 1 - step, 0)
        return self.xw[step, b, g]

    def pre(self, value: PrimExpr) -> PrimExpr:
        """A gate's pre-activation, clipped to ``[-clip, clip]`` when asked."""
        if self.clip is None:
            return value
        return te.min(te.max(value, te.const(-self.clip, value.dtype)), te.const(self.clip, value.dtype))

    def init(self, h0: Tensor, name: str) -> Tensor:
        return te.compute((1, self.batch, self.hidden), lambda _, b, j: h0[b, j], name=f"{name}_init")

    def state(self, name: str) -> Tensor:
        return te.placeholder(self.rows, self.dtype, name=name)

    def product(self, h: Any, first_gate: int, gates: int, name: str) -> Tensor:
        """``Σ_k h(t, b, k) · r_t[k, first_gate·hidden + g]`` for ``g < gates·hidden`` (one row per step)."""
        k = te.reduce_axis((0, self.hidden), name="k")
        base = first_gate * self.hidden
        return te.compute(self.rows[:2] + (gates * self.hidden,),
                          lambda t, b, g: te.sum(h(t, b, k) * self.r_t[k, base + g], axis=k), name=name)

    def keep(self, t: Any, b: Any, new: PrimExpr, old: PrimExpr) -> PrimExpr:
        """``new`` on a valid step, the previous state past the sequence's end."""
        return new if self.seq_lens is None else te.select(self.valid(t, b), new, old)

    def outputs(self, h: Tensor, extra: Sequence[Tensor] = ()) -> list[Tensor]:
        """``y`` ``[steps, batch, hidden]`` in time order (zeros past each length) and the final states."""
        steps = self.steps

        def y_at(s: Any, b: Any, j: Any) -> PrimExpr:
            row = self.length(b) - s if self.reverse else s + 1
            if self.seq_lens is None:
                return h[row, b, j]
            inside = s < self.length(b)
            return te.if_then_else(inside, h[te.max(te.min(row, steps), 0), b, j], te.const(0, self.dtype))

        y = te.compute((steps, self.batch, self.hidden), y_at, name=f"{self.op_name}_y")
        return [y, *(self.final(state, k) for k, state in enumerate([h, *extra]))]

    def final(self, state: Tensor, k: int) -> Tensor:
        """The state after the last step; zeros for an empty sequence (as onnxruntime)."""
        def at(b: Any, j: Any) -> PrimExpr:
            last = state[self.steps, b, j]
            return last if self.seq_lens is None else _select(self.length(b) > 0, last, 0.0)

        return te.compute((self.batch, self.hidden), at, name=f"{self.op_name}_final_{k}")


def lstm(xw: Tensor, r_t: Tensor, h0: Tensor, c0: Tensor, peephole: Optional[Tensor] = None,
         seq_lens: Optional[Tensor] = None, reverse: bool = False,
         activations: Sequence[Activation] = (("sigmoid", 0, 0), ("tanh", 0, 0), ("tanh", 0, 0)),
         clip: Optional[float] = None, input_forget: bool = False) -> list[Tensor]:
    """One direction of an ONNX LSTM: ``[y, h_n, c_n]``; gates in ``xw``/``r_t`` ordered i, o, f, c.

    ``peephole`` ``[3, hidden]`` (i, o, f); ``activations`` are ONNX's f, g, h;
    ``input_forget`` couples the forget gate to ``1 - i``.
    """
    rec = _Recurrence("lstm", xw, r_t, h0, 4, seq_lens, reverse, clip)
    rec.expect(c0, "c0", (rec.batch, rec.hidden))
    if peephole is not None:
        rec.expect(peephole, "peephole", (3, rec.hidden))
    f, g, h_act = _activation_fns("lstm", activations, 3)
    hidden = rec.hidden
    h_state, c_state = rec.state("lstm_h"), rec.state("lstm_c")
    hr = rec.product(lambda t, b, k: h_state[t - 1, b, k], 0, 4, "lstm_hr")

    def gate(t: Any, b: Any, j: Any, which: int, peep: Optional[PrimExpr] = None) -> PrimExpr:
        value = rec.x_at(t, b, which * hidden + j) + hr[t, b, which * hidden + j]
        if peephole is not None and peep is not None:
            value = value + peephole[which, j] * peep
        return rec.pre(value)

    def cell(t: Any, b: Any, j: Any) -> PrimExpr:
        c_prev = c_state[t - 1, b, j]
        i = f(gate(t, b, j, 0, c_prev))
        forget = 1.0 - i if input_forget else f(gate(t, b, j, 2, c_prev))
        return rec.keep(t, b, forget * c_prev + i * g(gate(t, b, j, 3)), c_prev)

    c_upd = te.compute(rec.rows, cell, name="lstm_c_update")

    def hidden_state(t: Any, b: Any, j: Any) -> PrimExpr:
        c_new = c_upd[t, b, j]
        return rec.keep(t, b, f(gate(t, b, j, 1, c_new)) * h_act(c_new), h_state[t - 1, b, j])

    h_upd = te.compute(rec.rows, hidden_state, name="lstm_h_update")
    h, c = te.scan([rec.init(h0, "lstm_h"), rec.init(c0, "lstm_c")], [h_upd, c_upd], [h_state, c_state],
                   name="lstm_scan")
    return rec.outputs(h, [c])


def gru(xw: Tensor, r_t: Tensor, h0: Tensor, rbh: Optional[Tensor] = None, seq_lens: Optional[Tensor] = None,
        reverse: bool = False, activations: Sequence[Activation] = (("sigmoid", 0, 0), ("tanh", 0, 0)),
        clip: Optional[float] = None, linear_before_reset: bool = False) -> list[Tensor]:
    """One direction of an ONNX GRU: ``[y, h_n]``; gates ordered z, r, h.

    With ``linear_before_reset`` the reset gate scales ``H·Rhᵀ + rbh`` (``rbh``
    ``[hidden]``, left out of ``xw``); otherwise it scales ``H`` before the
    product (a second product per step) and ``rbh`` must be None (it is in ``xw``).
    """
    rec = _Recurrence("gru", xw, r_t, h0, 3, seq_lens, reverse, clip)
    if rbh is not None:
        if not linear_before_reset:
            raise fail("gru", "rbh", "is only taken with linear_before_reset (otherwise it belongs in xw)")
        rec.expect(rbh, "rbh", (rec.hidden,))
    f, g = _activation_fns("gru", activations, 2)
    hidden = rec.hidden
    h_state = rec.state("gru_h")
    hr = rec.product(lambda t, b, k: h_state[t - 1, b, k], 0, 3 if linear_before_reset else 2, "gru_hr")

    def gate(t: Any, b: Any, j: Any, which: int) -> PrimExpr:
        return f(rec.pre(rec.x_at(t, b, which * hidden + j) + hr[t, b, which * hidden + j]))

    if linear_before_reset:
        def candidate(t: Any, b: Any, j: Any) -> PrimExpr:
            linear = hr[t, b, 2 * hidden + j] + (rbh[j] if rbh is not None else 0.0)
            return g(rec.pre(rec.x_at(t, b, 2 * hidden + j) + gate(t, b, j, 1) * linear))
    else:
        reset_h = te.compute(rec.rows, lambda t, b, k: gate(t, b, k, 1) * h_state[t - 1, b, k], name="gru_reset_h")
        hr_h = rec.product(lambda t, b, k: reset_h[t, b, k], 2, 1, "gru_hr_h")

        def candidate(t: Any, b: Any, j: Any) -> PrimExpr:
            return g(rec.pre(rec.x_at(t, b, 2 * hidden + j) + hr_h[t, b, j]))

    def update(t: Any, b: Any, j: Any) -> PrimExpr:
        z, h_prev = gate(t, b, j, 0), h_state[t - 1, b, j]
        return rec.keep(t, b, (1.0 - z) * candidate(t, b, j) + z * h_prev, h_prev)

    h_upd = te.compute(rec.rows, update, name="gru_h_update")
    h = te.scan(rec.init(h0, "gru_h"), h_upd, h_state, name="gru_scan")
    return rec.outputs(h)


def rnn(xw: Tensor, r_t: Tensor, h0: Tensor, seq_lens: Optional[Tensor] = None, reverse: bool = False,
        activations: Sequence[Activation] = (("tanh", 0, 0),), clip: Optional[float] = None) -> list[Tensor]:
    """One direction of an ONNX RNN: ``[y, h_n]``, ``h_t = f(x_t·Wᵀ + h_{t-1}·Rᵀ + b)``."""
    rec = _Recurrence("rnn", xw, r_t, h0, 1, seq_lens, reverse, clip)
    (f,) = _activation_fns("rnn", activations, 1)
    h_state = rec.state("rnn_h")
    hr = rec.product(lambda t, b, k: h_state[t - 1, b, k], 0, 1, "rnn_hr")
    h_upd = te.compute(rec.rows, lambda t, b, j: rec.keep(t, b, f(rec.pre(rec.x_at(t, b, j) + hr[t, b, j])),
                                                          h_state[t - 1, b, j]), name="rnn_h_update")
    h = te.scan(rec.init(h0, "rnn_h"), h_upd, h_state, name="rnn_scan")
    return rec.outputs(h)


VECTOR_LANES = 16
ACCUMULATOR_VECTORS = (4, 2)  # vectors of accumulators per step of a product's reduction, largest dividing


def _vectorize_last(s: Schedule, t: Tensor) -> None:
    """Split the last data-parallel axis by the vector width and vectorize the lanes. A per-step
    product keeps its reduction outside the lanes and a few vectors of accumulators (unrolled)
    inside it, so each ``h`` element loaded feeds several independent vector multiply-adds."""
    stage = s[t]
    extent = t.shape[-1].value
    if extent < VECTOR_LANES:
        return
    outer, inner = stage.split(stage.op.axis[-1], factor=VECTOR_LANES)
    if stage.op.reduce_axis:
        tile = next((v for v in ACCUMULATOR_VECTORS if extent % (v * VECTOR_LANES) == 0), 1)
        middle = []
        if tile > 1:
            outer, tiled = stage.split(outer, factor=tile)
            stage.unroll(tiled)
            middle = [tiled]
        stage.reorder(outer, *stage.op.reduce_axis, *middle, inner)
        # a parallel loop inside the scan's serial loop: the scan runs on one thread team
        # (codegen/llvm_team.py), each member keeping its columns of the weight in its cache
        stage.parallel(stage.fuse(*stage.op.axis[1:-1], outer))
    stage.vectorize(inner)


def schedule_recurrent(outs: Any) -> Schedule:
    """The scan's body stages (per-step products, gates) vectorized over the gate/hidden dimension;
    the outputs as injective stages."""
    outs = as_list(outs)
    s = create_schedule([o.op for o in outs])
    for stage in s.stages:
        if not isinstance(stage.op, ComputeOp):
            continue
        if stage.is_output:
            schedule_injective_stage(s, stage.op.output(0))
        elif stage.attach_type == "scope":
            _vectorize_last(s, stage.op.output(0))
    return s

