"""LSTM, GRU and RNN imported from ONNX graphs and compared with onnxruntime on odd sizes (7 steps,
batch 3, hidden 13): directions, initial states, sequence lengths, both layouts, activations with
alpha/beta, clip, input_forget, peepholes, linear_before_reset, every output; the recurrence is one
serial loop over the steps in the lowered kernel."""

from __future__ import annotations

import numpy as np
import pytest
import onnx_models
from conftest import assert_matches_onnxruntime, run_tecomp
from onnx import TensorProto, helper, numpy_helper

import tecomp.graph
from tecomp.error import GraphError
from tecomp.frontend import from_onnx
from tecomp.graph.fuse import fuse
from tecomp.graph.kernel import lower as lower_kernel
from tecomp.tir.functor import post_order_visit
from tecomp.tir.stmt import For, ForKind

F = TensorProto.FLOAT
STEPS, BATCH, INPUT, HIDDEN = 7, 3, 5, 13
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def randn(*shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype("float32")


def recurrent_model(op, direction="forward", layout=0, initial=False, seq_lens=None, peephole=False,
                    const_weights=True, outputs=None, opset=22, hidden=HIDDEN, **attrs):
    """An ``op`` node over X [7, 3, 5] (or [3, 7, 5] with layout 1) with ``hidden`` units, and its inputs."""
    dirs = 2 if direction == "bidirectional" else 1
    gh = GATES[op] * hidden
    x_shape = [BATCH, STEPS, INPUT] if layout else [STEPS, BATCH, INPUT]
    state_shape = [BATCH, dirs, hidden] if layout else [dirs, BATCH, hidden]
    feeds = {"X": randn(*x_shape, seed=1)}
    weights = {"W": randn(dirs, gh, INPUT, seed=2, scale=0.4), "R": randn(dirs, gh, hidden, seed=3, scale=0.3),
               "B": randn(dirs, 2 * gh, seed=4, scale=0.2)}
    names = ["X", "W", "R", "B", "", "", "", ""]
    if seq_lens is not None:
        names[4] = "sequence_lens"
        feeds["sequence_lens"] = np.asarray(seq_lens, np.int32)
    if initial:
        names[5] = "initial_h"
        feeds["initial_h"] = randn(*state_shape, seed=5)
        if op == "LSTM":
            names[6] = "initial_c"
            feeds["initial_c"] = randn(*state_shape, seed=6)
    if peephole:
        names[7] = "P"
        weights["P"] = randn(dirs, 3 * hidden, seed=7, scale=0.5)
    while names[-1] == "":
        names.pop()
    if not const_weights:
        feeds.update(weights)
        weights = {}
    y_shape = [BATCH, STEPS, dirs, hidden] if layout else [STEPS, dirs, BATCH, hidden]
    all_outputs = {"Y": y_shape, "Y_h": state_shape, "Y_c": state_shape}
    wanted = outputs or (["Y", "Y_h", "Y_c"] if op == "LSTM" else ["Y", "Y_h"])
    out_names = [name if name in wanted else "" for name in list(all_outputs)[:2 if op != "LSTM" else 3]]
    while out_names[-1] == "":
        out_names.pop()
    if layout:
        attrs["layout"] = 1
    node = helper.make_node(op, names, out_names, direction=direction, hidden_size=hidden, **attrs)

    def info(name, value):
        dtype = TensorProto.INT32 if value.dtype == np.int32 else F
        return helper.make_tensor_value_info(name, dtype, list(value.shape))

    graph = helper.make_graph([node], "rnn", [info(k, v) for k, v in feeds.items()],
                              [helper.make_tensor_value_info(k, F, all_outputs[k]) for k in out_names if k],
                              [numpy_helper.from_array(v, k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)
    return model, feeds


CASES = [
    ("LSTM", {}),
    ("LSTM", {"direction": "reverse", "initial": True}),
    ("LSTM", {"direction": "bidirectional", "initial": True, "peephole": True}),
    ("LSTM", {"seq_lens": [7, 0, 4], "initial": True, "direction": "bidirectional"}),  # 0: zero final states
    ("LSTM", {"layout": 1, "initial": True, "seq_lens": [2, 7, 5]}),
    ("LSTM", {"input_forget": 1, "clip": 0.7, "peephole": True}),
    ("LSTM", {"activations": ["HardSigmoid", "LeakyRelu", "Softsign"], "activation_alpha": [0.3, 0.05],
              "activation_beta": [0.4]}),
    ("LSTM", {"const_weights": False, "outputs": ["Y_c"], "opset": 13}),
    ("GRU", {}),
    ("GRU", {"linear_before_reset": 1, "direction": "bidirectional", "initial": True}),
    ("GRU", {"seq_lens": [3, 7, 6], "direction": "reverse", "initial": True, "clip": 0.9}),
    ("GRU", {"linear_before_reset": 1, "seq_lens": [5, 1, 7], "layout": 1}),
    ("GRU", {"activations": ["Affine", "ScaledTanh", "HardSigmoid", "Elu"], "activation_alpha": [0.5, 0.9, 0.3, 0.7],
             "activation_beta": [0.1, 1.1, 0.4], "direction": "bidirectional"}),
    ("GRU", {"const_weights": False, "outputs": ["Y_h"], "opset": 14}),
    ("RNN", {}),
    ("LSTM", {"hidden": 24, "direction": "bidirectional", "peephole": True}),  # vector tiles of accumulators
    ("GRU", {"hidden": 24, "seq_lens": [7, 2, 5], "initial": True}),
    ("RNN", {"direction": "bidirectional", "initial": True, "seq_lens": [6, 7, 2],
             "activations": ["Softplus", "Tanh"]}),
    ("RNN", {"activations": ["Relu"], "layout": 1, "initial": True}),
    ("RNN", {"activations": ["ThresholdedRelu"], "activation_alpha": [0.2], "clip": 1.5}),
]


def onnxruntime_batch_first(op, options, feeds):
    """onnxruntime's outputs for a ``layout=1`` model (it runs only ``layout=0``): the same node in
    layout 0 on transposed inputs, its outputs transposed back."""
    model, _ = recurrent_model(op, **{k: v for k, v in options.items() if k != "layout"})
    moved = {k: np.ascontiguousarray(np.swapaxes(v, 0, 1)) if k in ("X", "initial_h", "initial_c") else v
             for k, v in feeds.items()}
    outs = onnx_models.run_onnxruntime(model, moved)
    return [np.transpose(o, (2, 0, 1, 3)) if o.ndim == 4 else np.swapaxes(o, 0, 1) for o in outs]


# Each op's plain case and one in three of the others by default; every case with -m slow.
@pytest.mark.parametrize("op,options", [
    pytest.param(op, options, id=f"{op}-{k}", marks=() if not options or k % 3 == 0 else pytest.mark.slow)
    for k, (op, options) in enumerate(CASES)])
def test_matches_onnxruntime(op, options):
    model, feeds = recurrent_model(op, **options)
    if not options.get("layout"):
        assert_matches_onnxruntime(model, feeds)
        return
    want, got = onnxruntime_batch_first(op, options, feeds), run_tecomp(model, feeds)
    assert [g.shape for g in got] == [w.shape for w in want]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(np.abs(w).max()))


def test_recurrence_is_one_serial_loop_over_the_steps():
    model, feeds = recurrent_model("LSTM")
    graph, params = from_onnx(model, shape={k: v.shape for k, v in feeds.items()})
    kernels = [k for k in fuse(graph) if k.anchor is not None and k.anchor.op == "lstm"]
    assert len(kernels) == 1
    kernels[0].name = "lstm_kernel"
    func = lower_kernel(kernels[0], graph.types)
    loops = []
    post_order_visit(func.body, lambda n: loops.append(n) if isinstance(n, For) else None)
    steps = [f for f in loops if f.loop_var.name.endswith("scan.idx")]
    assert len(steps) == 1 and steps[0].kind is ForKind.SERIAL and steps[0].extent.value == STEPS
    assert "ramp" in str(func), "the per-step product is vectorized over the gates"


def test_unsupported_attribute_values_are_rejected():
    model, feeds = recurrent_model("LSTM", activations=["Sigmoid", "Gelu", "Tanh"])
    with pytest.raises(GraphError, match="Gelu"):
        from_onnx(model)
    model, feeds = recurrent_model("GRU", activation_alpha=[0.5])
    with pytest.raises(GraphError, match="activation_alpha"):
        from_onnx(model)


def test_built_model_reused_across_runs():
    model, feeds = recurrent_model("RNN", initial=True)
    graph, params = from_onnx(model)
    module = tecomp.graph.build(graph, "llvm", params)
    first = module.run(**feeds)
    again = module.run(**feeds)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_library_operators_reject_bad_arguments():
    from tecomp import te
    from tecomp.error import OperatorError
    from tecomp.schedules import recurrent

    xw, r_t = te.placeholder((7, 3, 52), name="xw"), te.placeholder((13, 52), name="r_t")
    with pytest.raises(OperatorError, match="h0: expected shape"):
        recurrent.lstm(xw, r_t, te.placeholder((3, 12)), te.placeholder((3, 13)))
    with pytest.raises(OperatorError, match="'gelu' is not one of"):
        recurrent.rnn(te.placeholder((7, 3, 13)), te.placeholder((13, 13)), te.placeholder((3, 13)),
                      activations=(("gelu", 0, 0),))
    with pytest.raises(OperatorError, match="rbh"):
        recurrent.gru(te.placeholder((7, 3, 39)), te.placeholder((13, 39)), te.placeholder((3, 13)),
                      rbh=te.placeholder((13,)))
