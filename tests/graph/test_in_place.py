"""Concatenations and splits whose parts are contiguous ranges run no kernel (graph/in_place.py):
the parts' producers write into the concatenation's buffer, a split's readers read its input.
Results against numpy; the kernels that must still run when a part is not a range of its own."""

from __future__ import annotations

import numpy as np
import pytest

import graph_models as models
import tecomp.graph
from tecomp.graph.builder import plan
from tecomp.target import Target

conv = models._conv


def _labels(graph, values) -> list[str]:
    return [k.label for k in plan(graph, values, Target("llvm")).kernels]


def _run(graph, values, x):
    return tecomp.graph.build(graph, "llvm", values).run(x)


def _fire(batch: int, channels: int = 16, size: int = 9):
    """SqueezeNet's fire module: squeeze 1x1, expand 1x1 and 3x3 side by side, concatenated."""
    n = models.Net(21)
    x = n.input("x", (batch, channels, size, size))
    s = n.op("relu", n.op("conv2d_nchw", x, n.weight("s", (8, channels, 1, 1))))
    e1 = n.op("relu", n.op("conv2d_nchw", s, n.weight("e1", (16, 8, 1, 1))))
    e3 = n.op("relu", n.op("conv2d_nchw", s, n.weight("e3", (16, 8, 3, 3)), padding=1))
    out = n.op("conv2d_nchw", n.op("concatenate", e1, e3, axis=1), n.weight("o", (8, 32, 1, 1)))

    def reference(xv):
        r = lambda v: np.maximum(v, 0)  # noqa: E731
        sv = r(conv(xv, n.values["s"], 0))
        cat = np.concatenate([r(conv(sv, n.values["e1"], 0)), r(conv(sv, n.values["e3"], 1))], axis=1)
        return conv(cat, n.values["o"], 0)

    return n.graph(out), n.values, reference


def test_a_batch_one_concatenation_is_written_in_place():
    graph, values, reference = _fire(batch=1)
    assert not any("concatenate" in label for label in _labels(graph, values))
    xv = models.random_inputs(graph, seed=1)["x"]
    np.testing.assert_allclose(_run(graph, values, xv)[0], reference(xv), rtol=1e-4, atol=1e-4)


def test_a_batched_concatenation_still_copies():
    graph, values, reference = _fire(batch=2)  # a part is two separate ranges: one per image
    assert any("concatenate" in label for label in _labels(graph, values))
    xv = models.random_inputs(graph, seed=2)["x"]
    np.testing.assert_allclose(_run(graph, values, xv)[0], reference(xv), rtol=1e-4, atol=1e-4)


def test_nested_concatenations_of_parts_read_while_others_are_written():
    """DenseNet's growth: each conv reads the concatenation so far and adds its channels to it."""
    n = models.Net(22)
    x = n.input("x", (1, 8, 7, 7))
    a = n.op("relu", n.op("conv2d_nchw", x, n.weight("a", (16, 8, 3, 3)), padding=1))
    b = n.op("relu", n.op("conv2d_nchw", a, n.weight("b", (16, 16, 3, 3)), padding=1))
    ab = n.op("concatenate", a, b, axis=1)
    c = n.op("relu", n.op("conv2d_nchw", ab, n.weight("c", (16, 32, 1, 1))))
    abc = n.op("concatenate", ab, c, axis=1)
    out = n.op("conv2d_nchw", abc, n.weight("o", (8, 48, 1, 1)))
    graph = n.graph(out)
    assert not any("concatenate" in label for label in _labels(graph, n.values))
    xv = models.random_inputs(graph, seed=3)["x"]
    r = lambda v: np.maximum(v, 0)  # noqa: E731
    av = r(conv(xv, n.values["a"], 1))
    abv = np.concatenate([av, r(conv(av, n.values["b"], 1))], axis=1)
    abcv = np.concatenate([abv, r(conv(abv, n.values["c"], 0))], axis=1)
    np.testing.assert_allclose(_run(graph, n.values, xv)[0], conv(abcv, n.values["o"], 0), rtol=1e-4, atol=1e-4)


def test_a_channel_split_reads_its_parts_in_place():
    n = models.Net(23)
    x = n.input("x", (1, 8, 11, 11))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("a", (32, 8, 1, 1))))
    left, right = n.op("split", y, indices_or_sections=2, axis=1, outputs=2)
    out = n.op("add", n.op("conv2d_nchw", left, n.weight("l", (8, 16, 1, 1))),
               n.op("conv2d_nchw", right, n.weight("r", (8, 16, 3, 3)), padding=1))
    graph = n.graph(out)
    assert not any("split" in label for label in _labels(graph, n.values))
    xv = models.random_inputs(graph, seed=4)["x"]
    yv = np.maximum(conv(xv, n.values["a"], 0), 0)
    want = conv(yv[:, :16], n.values["l"], 0) + conv(yv[:, 16:], n.values["r"], 1)
    np.testing.assert_allclose(_run(graph, n.values, xv)[0], want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["model input", "model output", "unaligned"])
def test_parts_that_are_not_own_aligned_buffers_are_copied(case):
    n = models.Net(24)
    channels = 1 if case == "unaligned" else 8  # one 3x3 channel: 36 bytes, the second part would start unaligned
    x = n.input("x", (1, channels, 3, 3))
    a = n.op("conv2d_nchw", x, n.weight("a", (channels, channels, 1, 1)))
    b = n.op("conv2d_nchw", x, n.weight("b", (channels, channels, 3, 3)), padding=1)
    cat = n.op("concatenate", x if case == "model input" else a, b, axis=1)
    graph = n.graph(cat if case == "model output" else n.op("negative", cat))
    assert any("concatenate" in label for label in _labels(graph, n.values))
    xv = models.random_inputs(graph, seed=5)["x"]
    want = np.concatenate([xv if case == "model input" else conv(xv, n.values["a"], 0),
                           conv(xv, n.values["b"], 1)], axis=1)
    got = _run(graph, n.values, xv)[0]
    np.testing.assert_allclose(got, want if case == "model output" else -want, rtol=1e-4, atol=1e-4)
