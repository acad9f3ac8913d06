"""Graph passes one by one (results preserved, the rewrite they promise), fusion rules and the
memory planner."""

from __future__ import annotations

import numpy as np
import pytest

import graph_models as models
import tecomp.graph
import tecomp.graph.passes
from tecomp.graph import Graph, Node, TensorType
from tecomp.graph.fuse import fuse
from tecomp.graph.memory import ALIGN, plan_memory
from tecomp.graph.passes import (absorb_epilogues, alter_conv_layout, eliminate_dead_nodes, fold_batch_norm,
                                 fold_constants, pack_dense_weights)
from tecomp.target import Target

LLVM = Target("llvm")


def _ops(graph: Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def _same_results(before: Graph, after: Graph, params_before, params_after):
    """Both graphs, built without further passes, give the same outputs."""
    a = tecomp.graph.build(before, "llvm", params_before, optimize=False, fuse_ops=False)
    b = tecomp.graph.build(after, "llvm", params_after, optimize=False)
    inputs = models.random_inputs(before, seed=7)
    for x, y in zip(a.run(**inputs), b.run(**inputs)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)

def _optimized_build_agrees(graph: Graph, values: dict, seed: int, atol: float = 1e-5) -> None:
    """The optimized, fused build of ``graph`` gives the plain build's output on input ``x``."""
    module = tecomp.graph.build(graph, "llvm", values)
    plain = tecomp.graph.build(graph, "llvm", values, optimize=False, fuse_ops=False)
    xv = models.random_inputs(graph, seed=seed)["x"]
    np.testing.assert_allclose(module.run(xv)[0], plain.run(xv)[0], rtol=1e-4, atol=atol)



def test_dead_nodes_and_unread_params_are_removed():
    t = TensorType((4,), "float32")
    graph = Graph({"x": t, "unused": t}, {"p": t, "q": t},
                  [Node("relu", ["x"], ["a"], name="live"), Node("add", ["a", "q"], ["dead"], name="dead"),
                   Node("exp", ["x"], ["dead2"], name="dead2")], ["a"],
                  {"x": t, "unused": t, "p": t, "q": t, "a": t, "dead": t, "dead2": t})
    pruned, params = eliminate_dead_nodes(graph, {"p": np.zeros(4), "q": np.zeros(4)})
    assert _ops(pruned) == ["relu"] and pruned.params == {} and params == {}
    assert list(pruned.inputs) == ["x", "unused"]  # inputs are the model's signature
    pruned.validate()


def test_batch_norm_folds_into_the_conv():
    graph, params, _ = models.cnn()
    absorbed, p1 = absorb_epilogues(graph, params)
    folded, p2 = fold_batch_norm(absorbed, p1)
    assert "batch_norm_inference" not in _ops(folded)
    convs = [n for n in folded.nodes if n.op == "conv2d_nchw"]
    assert len(convs) == 3 and all("bias" in c.kwinputs for c in convs)
    folded.validate()
    _same_results(graph, folded, params, p2)


def test_epilogues_become_conv_and_dense_arguments():
    graph, params, _ = models.cnn()
    graph, params = fold_batch_norm(*absorb_epilogues(graph, params))
    graph, params = absorb_epilogues(graph, params)
    convs = [n for n in graph.nodes if n.op == "conv2d_nchw"]
    assert [c.attrs.get("activation") for c in convs] == ["relu", "relu", None]  # the last relu follows an add
    dense = next(n for n in graph.nodes if n.op == "dense")
    assert dense.kwinputs == {"bias": "b4"}
    mlp, mlp_params, _ = models.mlp()
    absorbed, _ = absorb_epilogues(mlp, mlp_params)
    assert _ops(absorbed).count("add") == 0 and _ops(absorbed).count("matmul") == 0  # matmul+add -> dense(bias)
    _same_results(mlp, absorbed, mlp_params, mlp_params)


def test_clip_becomes_a_conv_activation_and_a_late_bias_is_left_alone():
    n = models.Net(5)
    x = n.input("x", (1, 4, 6, 6))
    y = n.op("conv2d_nchw", x, n.weight("w", (4, 4, 3, 3)), padding=1)
    y = n.op("clip", y, a_min=-0.5, a_max=0.5)
    y = n.op("add", y, n.weight("b", (1, 4, 1, 1)))  # after the activation: not a bias
    graph = n.graph(y)
    absorbed, _ = absorb_epilogues(graph, n.values)
    assert _ops(absorbed) == ["conv2d_nchw", "add"]
    assert absorbed.nodes[0].attrs["activation"] == ["clip", -0.5, 0.5]
    _same_results(graph, absorbed, n.values, n.values)


def test_constant_folding_evaluates_param_only_nodes_with_tecomp():
    n = models.Net(6)
    x = n.input("x", (3, 4))
    scale = n.op("exp", n.op("transpose", n.weight("s", (4, 3)), axes=[1, 0]))
    y = n.op("multiply", x, scale)
    graph = n.graph(y, scale)
    folded, values = fold_constants(graph, n.values, LLVM)
    assert _ops(folded) == ["multiply"]
    (const,) = [v for v in folded.params if v not in graph.params]
    np.testing.assert_allclose(values[const], np.exp(n.values["s"].T), rtol=1e-6)
    _same_results(graph, folded, n.values, values)
    typed_only, none = fold_constants(graph, None, LLVM)
    assert none is None and set(typed_only.params) == set(folded.params)


def test_layout_pass_keeps_conv_chains_blocked():
    graph, params, _ = models.cnn()
    graph, params = fold_batch_norm(*absorb_epilogues(graph, params))
    graph, params = absorb_epilogues(graph, params)
    blocked, _ = eliminate_dead_nodes(*alter_conv_layout(graph, params))
    ops = _ops(blocked)
    assert "conv2d_nchw" not in ops and ops.count("conv2d_nchwc") == 3
    assert ops.count("pack_conv2d_kernel") == 3
    # one pack (the input) and one unpack (after global pooling): pooling runs blocked too
    assert ops.count("layout_transform") == 2
    pools = [n for n in blocked.nodes if n.op in ("max_pool2d", "global_avg_pool2d")]
    assert len(pools) == 2 and all(len(blocked.types[p.outputs[0]].shape) == 5 for p in pools)
    relu = next(n for n in blocked.nodes if n.op == "relu")
    assert len(blocked.types[relu.outputs[0]].shape) == 5  # the residual add and relu run blocked
    _same_results(graph, blocked, params, params)


def test_dense_weights_are_packed_at_build_time():
    graph, params, _ = models.transformer()
    packed, _ = pack_dense_weights(graph, params)
    ops = _ops(packed)
    assert "dense" not in ops and "matmul" not in ops
    assert ops.count("dense_packed") == ops.count("pack_dense_weight") == 6
    assert ops.count("batch_matmul") == 2  # both operands computed at run time: left alone
    _same_results(graph, packed, params, params)


def test_passes_leave_the_callers_graph_alone():
    graph, params, _ = models.cnn()
    before = graph.to_json()
    tecomp.graph.build(graph, "llvm", params)
    assert graph.to_json() == before


# ---------------------------------------------------------------------------- fusion

def _chain_graph():
    """x -> exp -> (a) ; a -> relu -> b ; b + a -> c ; c -> sum -> d ; d -> negative -> e"""
    t, r = TensorType((4, 4), "float32"), TensorType((4,), "float32")
    nodes = [Node("exp", ["x"], ["a"], name="exp"), Node("relu", ["a"], ["b"], name="relu"),
             Node("add", ["b", "a"], ["c"], name="add"), Node("sum", ["c"], ["d"], {"axis": 1}, name="sum"),
             Node("negative", ["d"], ["e"], name="neg")]
    return Graph({"x": t}, {}, nodes, ["e"], {"x": t, "a": t, "b": t, "c": t, "d": r, "e": r})


def test_fusion_keeps_values_read_twice_visible_and_orders_kernels():
    t, r = TensorType((4, 4), "float32"), TensorType((4,), "float32")
    # "a" is read by relu and negative, whose paths never merge: it ends the first kernel
    nodes = [Node("exp", ["x"], ["a"], name="exp"), Node("relu", ["a"], ["b"], name="relu"),
             Node("sum", ["b"], ["d"], {"axis": 1}, name="sum"), Node("negative", ["a"], ["n"], name="neg")]
    graph = Graph({"x": t}, {}, nodes, ["d", "n"], {"x": t, "a": t, "b": t, "d": r, "n": t})
    kernels = fuse(graph)
    assert [k.label for k in kernels] == ["exp", "relu+sum", "negative"]
    assert kernels[0].outputs == ["a"] and kernels[1].inputs == ["a"] and kernels[2].inputs == ["a"]
    x = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    d, n = tecomp.graph.build(graph, "llvm", {}).run(x)
    np.testing.assert_allclose(d, np.maximum(np.exp(x), 0).sum(1), rtol=1e-5)
    np.testing.assert_allclose(n, -np.exp(x), rtol=1e-6)


def test_a_gate_joins_the_kernel_of_the_value_it_reads_twice():
    graph = _chain_graph()
    # relu(a) + a reads "a" twice and merges back (as SiLU's x * sigmoid(x)): one kernel in all
    assert [k.label for k in fuse(graph)] == ["exp+relu+add+sum+negative"]
    assert [k.label for k in fuse(graph, enabled=False)] == ["exp", "relu", "add", "sum", "negative"]
    x = np.random.default_rng(0).standard_normal((4, 4)).astype("float32")
    a = np.exp(x)
    np.testing.assert_allclose(tecomp.graph.build(graph, "llvm", {}).run(x)[0], -(np.maximum(a, 0) + a).sum(1),
                               rtol=1e-5)


def test_silu_and_hard_swish_fuse_into_the_conv_before_them():
    n = models.Net(8)
    x = n.input("x", (1, 8, 9, 9))
    y = n.op("conv2d_nchw", x, n.weight("w", (16, 8, 3, 3)), padding=1)
    y = n.op("multiply", y, n.op("sigmoid", y))                                      # SiLU
    y = n.op("multiply", y, n.op("clip", n.op("add", y, n.param("three", np.float32(3))), a_min=0.0, a_max=6.0))
    graph = n.graph(y)
    assert [k.label for k in fuse(graph)] == ["conv2d_nchw+sigmoid+multiply+add+clip+multiply"]
    xv = np.random.default_rng(1).standard_normal((1, 8, 9, 9)).astype("float32")
    c = models._conv(xv, n.values["w"], 1)
    silu = c / (1 + np.exp(-c))
    for optimize in (False, True):  # plain, and with the blocked-layout passes
        out = tecomp.graph.build(graph, "llvm", n.values, optimize=optimize).run(xv)[0]
        np.testing.assert_allclose(out, silu * np.clip(silu + 3, 0, 6), rtol=1e-4, atol=1e-4)


def test_opaque_operators_and_graph_outputs_end_kernels():
    t = TensorType((2, 8), "float32")
    nodes = [Node("softmax", ["x"], ["s"], name="sm"), Node("relu", ["s"], ["r"], name="r"),
             Node("exp", ["r"], ["e"], name="e"), Node("negative", ["e"], ["n"], name="n")]
    graph = Graph({"x": t}, {}, nodes, ["e", "n"], {v: t for v in "xsren"})
    assert [k.label for k in fuse(graph)] == ["softmax", "relu+exp", "negative"]


def test_an_epilogue_must_keep_the_anchor_shape():
    n = models.Net(8)
    x = n.input("x", (2, 8))
    y = n.op("dense", x, n.weight("w", (4, 8)))
    y = n.op("add", y, n.input("z", (3, 2, 4)))  # broadcasts to a bigger shape: not an epilogue
    assert [k.label for k in fuse(n.graph(y))] == ["dense", "add"]


# ---------------------------------------------------------------------------- memory planning

def test_memory_plan_reuses_dead_buffers():
    steps = [([], ["a"]), (["a"], ["b"]), (["b"], ["c"]), (["c"], ["d"])]
    plan = plan_memory(steps, {v: 1000 for v in "abcd"})
    assert plan.offsets["a"] == plan.offsets["c"] and plan.offsets["b"] == plan.offsets["d"]
    assert plan.arena_bytes == 2 * 1024 and plan.unplanned_bytes == 4 * 1024


@pytest.mark.parametrize("seed", range(20))
def test_memory_plan_never_overlaps_live_values(seed):
    rng = np.random.default_rng(seed)
    values = [f"v{k}" for k in range(30)]
    sizes = {v: int(rng.integers(1, 5000)) for v in values}
    steps = []
    for k, v in enumerate(values):
        reads = list(rng.choice(values[:k], size=min(k, int(rng.integers(0, 4))), replace=False)) if k else []
        steps.append((reads, [v]))
    plan = plan_memory(steps, sizes)
    last = {v: max([i for i, (r, w) in enumerate(steps) if v in r or v in w]) for v in values}
    first = {v: next(i for i, (_, w) in enumerate(steps) if v in w) for v in values}
    for a in values:
        assert plan.offsets[a] % ALIGN == 0 and plan.offsets[a] + sizes[a] <= plan.arena_bytes
        for b in values:
            live_together = a != b and first[a] <= last[b] and first[b] <= last[a]
            if live_together:
                disjoint = (plan.offsets[a] + sizes[a] <= plan.offsets[b]
                            or plan.offsets[b] + sizes[b] <= plan.offsets[a])
                assert disjoint, (a, b)
    assert plan.arena_bytes <= plan.unplanned_bytes


def test_depthwise_separable_block_runs_blocked_end_to_end():
    n = models.Net(10)
    x = n.input("x", (1, 8, 10, 10))
    y = n.op("conv2d_nchw", x, n.weight("pw1", (16, 8, 1, 1)))
    y = n.op("clip", n.op("add", y, n.weight("b1", (1, 16, 1, 1))), a_min=0.0, a_max=6.0)
    y = n.op("conv2d_nchw", y, n.weight("dw", (16, 1, 3, 3)), padding=1, groups=16)
    y = n.op("clip", y, a_min=0.0, a_max=6.0)
    y = n.op("conv2d_nchw", y, n.weight("pw2", (8, 16, 1, 1)))
    out = n.op("add", y, x)
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    ops = _ops(optimized)
    assert ops.count("conv2d_nchwc") == 2 and ops.count("depthwise_conv2d_nchwc") == 1
    assert ops.count("layout_transform") == 3  # pack x (for the conv, and for the residual add), unpack the result
    _optimized_build_agrees(graph, n.values, seed=12)


def test_grouped_convs_run_blocked_with_a_block_per_group():
    """RegNet's block: 1x1, grouped 3x3 (8 channels a group, stride 2), 1x1; all blocked."""
    n = models.Net(11)
    x = n.input("x", (1, 16, 13, 13))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("a", (48, 16, 1, 1))))
    y = n.op("relu", n.op("conv2d_nchw", y, n.weight("g", (48, 8, 3, 3)), padding=1, strides=2, groups=6))
    out = n.op("conv2d_nchw", y, n.weight("b", (24, 48, 1, 1)))
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    grouped = [node for node in optimized.nodes if node.op == "conv2d_nchwc" and node.attrs.get("groups") == 6]
    assert len(grouped) == 1 and _ops(optimized).count("conv2d_nchw") == 0
    assert optimized.types[grouped[0].inputs[0]].shape[-1] == 8  # an input block never straddles two groups
    _optimized_build_agrees(graph, n.values, seed=5)


def test_squeeze_excite_and_concatenated_branches_stay_blocked():
    """The SE block (spatial mean, two 1x1 convs, a per-channel scale) and a channel concat of two
    conv branches (SqueezeNet's fire module) run blocked: no unpack between the convs."""
    n = models.Net(12)
    x = n.input("x", (1, 8, 7, 7))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("c1", (16, 8, 3, 3)), padding=1))
    s = n.op("mean", y, axis=[2, 3], keepdims=True)
    s = n.op("sigmoid", n.op("conv2d_nchw", n.op("relu", n.op("conv2d_nchw", s, n.weight("se1", (8, 16, 1, 1)))),
                             n.weight("se2", (16, 8, 1, 1))))
    y = n.op("multiply", y, s)
    left = n.op("relu", n.op("conv2d_nchw", y, n.weight("l", (16, 16, 1, 1))))
    right = n.op("relu", n.op("conv2d_nchw", y, n.weight("r", (16, 16, 3, 3)), padding=1))
    out = n.op("conv2d_nchw", n.op("concatenate", left, right, axis=1), n.weight("o", (8, 32, 1, 1)))
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    to_nchw = [node for node in optimized.nodes
               if node.op == "layout_transform" and node.attrs["dst_layout"] == "NCHW"]
    assert [optimized.types[node.outputs[0]].shape for node in to_nchw] in (
        [(1, 16, 1, 1), (1, 8, 7, 7)], [(1, 8, 7, 7)])  # the squeezed vector at most, and the result
    ops = _ops(optimized)
    assert "concatenate" in ops and "mean" in ops
    _optimized_build_agrees(graph, n.values, seed=6)


def test_concatenated_branches_of_different_blocks_meet_in_their_common_block():
    n = models.Net(13)
    x = n.input("x", (1, 8, 7, 7))
    wide = n.op("relu", n.op("conv2d_nchw", x, n.weight("w", (32, 8, 1, 1))))     # block 32
    narrow = n.op("relu", n.op("conv2d_nchw", x, n.weight("v", (24, 8, 3, 3)), padding=1))  # block 24 or 8
    joined = n.op("concatenate", wide, narrow, axis=1)
    out = n.op("max_pool2d", joined, kernel=3, strides=1, padding=1)
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    (concat,) = [node for node in optimized.nodes if node.op == "concatenate"]
    assert len(optimized.types[concat.outputs[0]].shape) == 5  # blocked, and so is the pool after it
    assert [node.attrs.get("layout") for node in optimized.nodes if node.op == "max_pool2d"][0] != "NCHW"
    _optimized_build_agrees(graph, n.values, seed=8)


@pytest.mark.parametrize("width", [28, 7])
def test_channel_shuffles_and_splits_stay_blocked(width):
    """ShuffleNetV2's unit: the input split in two channel halves, one half through 1x1, depthwise
    3x3 and 1x1 convs, concatenated with the other, then shuffled (reshape, transpose, reshape)
    and split for the next unit. All of it runs blocked: the shuffle as ``channel_shuffle``, the
    splits at block multiples (the first repacks the stem's 48 channels to blocks of 24); the
    only unpack left is the result's."""
    n = models.Net(14)
    x = n.input("x", (1, 48, width, width))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("stem", (48, 48, 1, 1))))
    for unit in range(2):
        keep, branch = n.op("split", y, indices_or_sections=[24], axis=1, outputs=2)
        b = n.op("relu", n.op("conv2d_nchw", branch, n.weight(f"a{unit}", (24, 24, 1, 1))))
        b = n.op("conv2d_nchw", b, n.weight(f"d{unit}", (24, 1, 3, 3)), padding=1, groups=24)
        b = n.op("relu", n.op("conv2d_nchw", b, n.weight(f"c{unit}", (24, 24, 1, 1))))
        y = n.op("concatenate", keep, b, axis=1)
        y = n.op("reshape", y, newshape=[1, 2, 24, width, width])
        y = n.op("transpose", y, axes=[0, 2, 1, 3, 4])
        y = n.op("reshape", y, newshape=[1, 48, width, width])
    graph = n.graph(y)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    ops = _ops(optimized)
    assert ops.count("channel_shuffle") == 2 and "transpose" not in ops and "reshape" not in ops
    to_nchw = [node for node in optimized.nodes if node.op == "layout_transform" and node.attrs["dst_layout"] == "NCHW"]
    assert [optimized.types[node.outputs[0]].shape for node in to_nchw] == [(1, 48, width, width)]
    assert all(len(optimized.types[v].shape) == 5 for node in optimized.nodes if node.op == "split" for v in node.outputs)
    _optimized_build_agrees(graph, n.values, seed=9)


def test_a_split_off_the_block_boundaries_stays_plain():
    """A split at 20 of a value in blocks of 48 would need blocks of 4: it unpacks first."""
    n = models.Net(15)
    x = n.input("x", (1, 8, 9, 9))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("c", (48, 8, 1, 1))))
    left, right = n.op("split", y, indices_or_sections=[20], axis=1, outputs=2)
    out = n.op("add", n.op("conv2d_nchw", left, n.weight("l", (8, 20, 1, 1))),
               n.op("conv2d_nchw", right, n.weight("r", (8, 28, 1, 1))))
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    (split,) = [node for node in optimized.nodes if node.op == "split"]
    assert len(optimized.types[split.inputs[0]].shape) == 4
    _optimized_build_agrees(graph, n.values, seed=10)


def test_a_reduction_with_an_epilogue_keeps_its_vector_accumulator():
    """sum over a middle axis (the last kept: a vector write cache computed at the sum's loops),
    then sqrt as the epilogue: the sum's stage hosts its cache, so it is not inlined."""
    n = models.Net(3)
    x = n.input("x", (2, 5, 16))
    y = n.op("sqrt", n.op("sum", n.op("multiply", x, x), axis=(1,), keepdims=True))
    graph = n.graph(y)
    assert [k.label for k in fuse(graph)] == ["multiply+sum+sqrt"]
    xv = np.random.default_rng(2).standard_normal((2, 5, 16)).astype("float32")
    out = tecomp.graph.build(graph, "llvm", {}).run(xv)[0]
    np.testing.assert_allclose(out, np.sqrt((xv * xv).sum(1, keepdims=True)), rtol=1e-5)


def test_three_by_three_convs_run_by_winograd_unless_turned_off(monkeypatch):
    """A 3x3 conv at stride 1 becomes the Winograd conv (its kernel transformed once, folded), with
    the residual add and relu still in its kernel; the stride-2 conv stays direct; the numbers
    agree with the unoptimized build. ``tecomp.winograd: False`` keeps every conv direct."""
    from tecomp.schedules import conv2d_winograd
    monkeypatch.setattr(conv2d_winograd, "MIN_FLOP", 0)  # the small test convs are below the threshold
    n = models.Net(13)
    x = n.input("x", (1, 16, 13, 11))
    y = n.op("relu", n.op("conv2d_nchw", x, n.weight("a", (32, 16, 3, 3)), padding=1))
    y = n.op("conv2d_nchw", y, n.weight("b", (16, 32, 3, 3)), padding=1)
    y = n.op("relu", n.op("add", y, x))
    out = n.op("conv2d_nchw", y, n.weight("c", (16, 16, 3, 3)), padding=1, strides=2)
    graph = n.graph(out)
    optimized, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    ops = _ops(optimized)
    assert ops.count("conv2d_winograd_nchwc") == 2 and ops.count("conv2d_nchwc") == 1
    assert ops.count("pack_winograd_kernel") == 0  # folded into params
    # Winograd rounds differently: about 1e-5 of the values' magnitude, here up to 5
    _optimized_build_agrees(graph, n.values, seed=3, atol=1e-4)
    with tecomp.transform.PassContext(config={"tecomp.winograd": False}):
        direct, _ = tecomp.graph.passes.optimize(graph, None, LLVM)
    assert _ops(direct).count("conv2d_nchwc") == 3 and "conv2d_winograd_nchwc" not in _ops(direct)
