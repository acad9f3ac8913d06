"""Layout choice: conv2d_nchw chains run blocked (NCHW[x]c), dense weights are packed at build time.

``conv2d_nchw`` with a constant kernel (any groups) becomes
``layout_transform -> conv2d_nchwc -> layout_transform`` with the kernel
packed by a new ``pack_conv2d_kernel`` node (constant folded); a 3x3 conv at
stride 1 with enough channels becomes ``conv2d_winograd_nchwc`` instead, its
kernel transformed by ``pack_winograd_kernel`` (also folded). The blocks are
those of the dispatched config of the conv's layout-free workload (``conv2d_nchwc_blocks``:
the fallback's unless a lone conv was tuned with blocks as knobs); an untuned conv takes its
data in the block it arrives in. The blocked kernel's own task has these blocks fixed, so a
model's tuned build keeps its default layout and tunes each conv within it.
Then layouts propagate: an elementwise node whose tensor inputs are unpacked
from one blocked layout (or are per-channel ``[N, C, 1, 1]`` operands, packed to
it) runs blocked too, as do pooling, channel concatenation, a spatial mean, ShuffleNet's
channel shuffle (a reshape-transpose-reshape, rewritten to ``channel_shuffle``) and a split
of the channels at multiples of the block;
an unpack followed by a pack becomes one transform (or none), so a chain of
convs with residual adds, activations, squeeze-and-excite scales and
concatenated branches stays blocked end to end. ``dense``/``matmul`` with a constant
weight become ``pack_dense_weight`` (folded) + ``dense_packed``.

Both rewrites need operators the library may lack (``tecomp.schedules.conv2d_nchwc``,
``dense_packed``); without them the graph is returned unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import numpy as np

from ...transform import current_options
from ...tuner import dispatch
from ...tuner.dispatch import DispatchContext
from ...tuner.space import ConfigEntity, FallbackConfigEntity
from .. import ops
from ..ir import Graph, Node
from .rewrite import Rewriter, constant_values

NCHW = "NCHW"


def _emit(rw: Rewriter, op: str, inputs: list[str], hint: str, attrs: dict,
          kwinputs: Optional[dict] = None, output: Optional[str] = None) -> tuple[Node, str]:
    out_type = ops.output_types(op, [rw.types[v] for v in inputs], attrs,
                                {k: rw.types[v] for k, v in (kwinputs or {}).items()})[0]
    return rw.node(op, inputs, out_type, hint, attrs, kwinputs, output)


# ---------------------------------------------------------------------------- conv layout

class _Probe(DispatchContext):
    """Answers each task dispatched inside it from the contexts beneath, else with the fallback
    config without its notice (the layout-free workload a conv's blocks are read from has no
    record after a model's tuning, whose tasks have the blocks fixed: "no tuning record" would
    mislead), and remembers whether any answer came from a record."""

    def __init__(self) -> None:
        self.found_record = False

    def lookup(self, task: Any) -> ConfigEntity:
        config = dispatch.recorded(task, beneath=self)
        # task extraction's recorder answers every task, with the fallback where it has no record
        self.found_record |= config is not None and not isinstance(config, FallbackConfigEntity)
        return config if config is not None else FallbackConfigEntity(task.config_space)

    def tuned(self) -> bool:
        """Whether some outer context had a record for a task seen."""
        return self.found_record


def _block(layout: str) -> int:
    return int(layout[len(NCHW):-1])


def _blocked_conv(node: Node, rw: Rewriter, nchwc: Any, producers: dict[str, Node]) -> Optional[list[Node]]:
    data, kernel = node.inputs[:2]
    dt, kt = rw.types[data], rw.types[kernel]
    groups = node.attrs.get("groups", 1)
    depthwise = groups > 1 and groups == dt.shape[1] == kt.shape[0] and kt.shape[1] == 1
    if len(node.inputs) != 2 or dt.dtype != "float32":
        return None
    geometry = {k: node.attrs[k] for k in ("strides", "padding", "dilation") if k in node.attrs}
    probe = _Probe()
    with probe:
        ib, ob = nchwc.conv2d_nchwc_blocks(dt.shape, kt.shape, **geometry, dtype=dt.dtype)
    incoming = _unpacked_from(data, producers)
    if incoming is not None and not probe.tuned():
        # untuned: take the data in the block it arrives in, so no repacking runs between convs
        block = _block(incoming[1])
        group_channels = dt.shape[1] if depthwise else kt.shape[1]  # an input block must stay in one group
        if group_channels % block == 0:
            ib, ob = block, block if depthwise else ob
    hint = node.name or node.outputs[0]
    new = []
    pack_x, xb = _emit(rw, "layout_transform", [data], hint, {"src_layout": NCHW, "dst_layout": f"NCHW{ib}c"})
    tile = _winograd_tile(dt, kt, geometry, groups)
    if depthwise:
        pack_w, wb = _emit(rw, "pack_depthwise_kernel", [kernel], hint, {"block": ib})
        op = "depthwise_conv2d_nchwc"
    elif tile:
        pack_w, wb = _emit(rw, "pack_winograd_kernel", [kernel], hint, {"tile": tile, "oc_block": ob})
        op = "conv2d_winograd_nchwc"
    else:
        pack_w, wb = _emit(rw, "pack_conv2d_kernel", [kernel], hint, {"ic_block": ib, "oc_block": ob})
        op = "conv2d_nchwc"
    attrs = {**geometry, **{k: v for k, v in node.attrs.items() if k == "activation"}}
    if groups > 1 and not depthwise:
        attrs["groups"] = groups
    conv, yb = _emit(rw, op, [xb, wb], hint, attrs, node.kwinputs)
    conv.name = node.name
    unpack, _ = _emit(rw, "layout_transform", [yb], hint, {"src_layout": f"NCHW{ob}c", "dst_layout": NCHW},
                      output=node.outputs[0])
    new += [pack_x, pack_w, conv, unpack]
    return new


def _winograd_tile(dt: Any, kt: Any, geometry: dict, groups: int) -> Optional[int]:
    """The Winograd tile for this conv (``conv2d_winograd.winograd_tile``), or None: not applicable,
    or turned off with ``PassContext(config={"tecomp.winograd": False})``."""
    winograd = ops.library_module("conv2d_winograd")
    if winograd is None or not current_options().winograd:
        return None
    return winograd.winograd_tile(dt.shape, kt.shape, **geometry, groups=groups, dtype=dt.dtype)


def _unpacked_from(value: str, producers: dict[str, Node]) -> Optional[tuple[str, str]]:
    """(blocked source, its layout) when ``value`` is ``layout_transform(source, L, "NCHW")``."""
    node = producers.get(value)
    if node is None or node.op != "layout_transform" or node.attrs.get("dst_layout") != NCHW:
        return None
    return node.inputs[0], node.attrs["src_layout"]


def _channel_operand(shape: tuple[int, ...], out_shape: tuple[int, ...]) -> bool:
    """Whether an operand of ``shape`` broadcasts against ``out_shape`` (NCHW) along the channels
    only: ``[N or 1, C, 1, 1]``, a per-channel scale such as squeeze-and-excite's."""
    return len(shape) == 4 and shape[1] == out_shape[1] and shape[0] in (1, out_shape[0]) and shape[2:] == (1, 1)


def _propagate(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """An elementwise node reading a value unpacked from a blocked layout runs in that layout (its
    other operands, of the same shape or per channel, packed to it), then its result is unpacked."""
    if ops.pattern(node.op) not in (ops.ELEMWISE, ops.BROADCAST) or node.kwinputs or len(node.outputs) != 1:
        return None
    out_type = rw.types[node.outputs[0]]
    if node.op == "batch_norm_inference" or len(out_type.shape) != 4 or any(
            rw.types[v] != out_type and not _channel_operand(rw.types[v].shape, out_type.shape)
            for v in node.inputs):
        return None
    sources = [_unpacked_from(v, producers) if rw.types[v] == out_type else None for v in node.inputs]
    layout = next((s[1] for s in sources if s is not None), None)
    if layout is None:
        return None
    hint = node.name or node.outputs[0]
    new, blocked_inputs = [], []
    for value, source in zip(node.inputs, sources):
        if source is not None and source[1] == layout:
            blocked_inputs.append(source[0])
            continue
        pack, packed = _emit(rw, "layout_transform", [value], hint, {"src_layout": NCHW, "dst_layout": layout})
        pack = (_cancel(pack, rw, producers) or [pack])[0]
        producers[packed] = pack
        new.append(pack)
        blocked_inputs.append(packed)
    return new + _run_blocked(node, rw, blocked_inputs, layout, node.attrs)


def _run_blocked(node: Node, rw: Rewriter, blocked_inputs: list[str], layout: str, attrs: dict) -> list[Node]:
    """``node`` on blocked inputs, then its result unpacked under the node's output name."""
    hint = node.name or node.outputs[0]
    blocked, yb = _emit(rw, node.op, blocked_inputs, hint, attrs)
    blocked.name = node.name
    unpack, _ = _emit(rw, "layout_transform", [yb], hint, {"src_layout": layout, "dst_layout": NCHW},
                      output=node.outputs[0])
    return [blocked, unpack]


def _propagate_channels(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """A concatenation along the channels of values unpacked from blocked layouts (repacked to
    their common block where they differ), or a mean over the spatial axes (global pooling
    written as ReduceMean) of one, runs blocked."""
    if node.kwinputs or len(node.outputs) != 1 or len(rw.types[node.outputs[0]].shape) != 4:
        return None
    if node.op == "concatenate" and node.attrs.get("axis") in (1, -3):
        attrs = {**node.attrs, "axis": 1}
    elif node.op == "mean" and len(node.inputs) == 1 and node.attrs.get("keepdims") \
            and sorted(a % 4 for a in node.attrs.get("axis") or ()) == [2, 3]:
        attrs = {**node.attrs, "axis": [2, 3]}
    else:
        return None
    sources = [_unpacked_from(v, producers) for v in node.inputs]
    if any(s is None for s in sources):
        return None
    block = math.gcd(*(_block(layout) for _, layout in sources))  # branches blocked alike, or repacked
    layout = f"NCHW{block}c"
    new, blocked_inputs = [], []
    for value, (source, source_layout) in zip(node.inputs, sources):
        if source_layout != layout:
            repack, source = _emit(rw, "layout_transform", [source], node.name or node.outputs[0],
                                   {"src_layout": source_layout, "dst_layout": layout})
            new.append(repack)
        blocked_inputs.append(source)
    return new + _run_blocked(node, rw, blocked_inputs, layout, attrs)


_POOLS = ("max_pool2d", "avg_pool2d", "global_avg_pool2d")


def _propagate_pool(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """A pooling node reading a value unpacked from a blocked layout pools in that layout."""
    if node.op not in _POOLS or node.attrs.get("layout", NCHW) != NCHW or len(node.inputs) != 1 or node.kwinputs:
        return None
    source = _unpacked_from(node.inputs[0], producers)
    if source is None:
        return None
    return _run_blocked(node, rw, [source[0]], source[1], {**node.attrs, "layout": source[1]})


def _shuffled_groups(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[tuple[str, int]]:
    """(the NCHW value, groups) when ``node`` ends a channel shuffle written as
    ``reshape [N, g, C/g, H, W] -> transpose (0, 2, 1, 3, 4) -> reshape [N, C, H, W]``."""
    if node.op != "reshape" or node.kwinputs:
        return None
    transpose = producers.get(node.inputs[0])
    if transpose is None or transpose.op != "transpose" or list(transpose.attrs.get("axes") or ()) != [0, 2, 1, 3, 4]:
        return None
    split_channels = producers.get(transpose.inputs[0])
    if split_channels is None or split_channels.op != "reshape":
        return None
    value = split_channels.inputs[0]
    shape, grouped = rw.types[value].shape, rw.types[split_channels.outputs[0]].shape
    if len(shape) != 4 or rw.types[node.outputs[0]].shape != shape or len(grouped) != 5 \
            or grouped[0] != shape[0] or grouped[1] * grouped[2] != shape[1] or grouped[3:] != shape[2:]:
        return None
    return value, grouped[1]


def _propagate_shuffle(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """A channel shuffle (reshape, transpose, reshape) of a value unpacked from a blocked layout
    runs as ``channel_shuffle`` in that layout (the reshape and transpose before it go dead)."""
    found = _shuffled_groups(node, rw, producers)
    source = found and _unpacked_from(found[0], producers)
    if not source:
        return None
    shuffle = dataclasses.replace(node, op="channel_shuffle")
    return _run_blocked(shuffle, rw, [source[0]], source[1], {"groups": found[1], "layout": source[1]})


MIN_SPLIT_BLOCK = 8  # a split repacks to a smaller block that its cuts divide, down to this


def _propagate_split(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """A split along the channels of a value unpacked from a blocked layout runs blocked, in the
    largest block dividing the source's block and every cut (repacked when that is smaller, not
    below ``MIN_SPLIT_BLOCK``); each part is unpacked under its original name."""
    if node.op != "split" or node.kwinputs or len(rw.types[node.inputs[0]].shape) != 4 \
            or node.attrs.get("axis") not in (1, -3):
        return None
    source = _unpacked_from(node.inputs[0], producers)
    if source is None:
        return None
    channels = rw.types[node.inputs[0]].shape[1]
    sections = node.attrs.get("indices_or_sections")
    cuts = [channels // sections * k for k in range(1, sections)] if isinstance(sections, int) else list(sections)
    block = math.gcd(_block(source[1]), *cuts)
    if block < MIN_SPLIT_BLOCK:
        return None
    hint = node.name or node.outputs[0]
    layout, new = f"NCHW{block}c", []
    blocked_source = source[0]
    if layout != source[1]:
        repack, blocked_source = _emit(rw, "layout_transform", [source[0]], hint,
                                       {"src_layout": source[1], "dst_layout": layout})
        new.append(repack)
    attrs = {**node.attrs, "indices_or_sections": [c // block for c in cuts], "axis": 1}
    parts = ops.output_types("split", [rw.types[blocked_source]], attrs)
    names = [rw.fresh(hint) for _ in parts]
    rw.types.update(zip(names, parts))
    new.append(Node("split", [blocked_source], names, attrs, rw.fresh(f"{hint}/split")))
    return new + [_emit(rw, "layout_transform", [part], hint, {"src_layout": layout, "dst_layout": NCHW},
                        output=out)[0] for part, out in zip(names, node.outputs)]


def _cancel(node: Node, rw: Rewriter, producers: dict[str, Node]) -> Optional[list[Node]]:
    """``pack(unpack(x))`` -> one transform from x's layout (a copy when the layouts agree)."""
    if node.op != "layout_transform" or node.attrs.get("src_layout") != NCHW:
        return None
    source = _unpacked_from(node.inputs[0], producers)
    if source is None:
        return None
    new, _ = _emit(rw, "layout_transform", [source[0]], node.name,
                   {"src_layout": source[1], "dst_layout": node.attrs["dst_layout"]}, output=node.outputs[0])
    new.name = node.name
    return [new]


def alter_conv_layout(graph: Graph, params: Optional[dict[str, np.ndarray]]) -> tuple[Graph, Optional[dict]]:
    """Rewrite convs with constant kernels into the blocked layout and keep chains blocked."""
    nchwc = ops.library_module("conv2d_nchwc")
    if nchwc is None:
        return graph, params
    rw = Rewriter(graph)
    const = constant_values(graph)
    nodes: list[Node] = []
    producers: dict[str, Node] = {}
    for original in graph.nodes:
        pending = None
        if original.op == "conv2d_nchw" and original.inputs[1] in const and original.inputs[0] not in const:
            pending = _blocked_conv(original, rw, nchwc, producers)
        for node in pending or [original]:
            replacement = (_propagate(node, rw, producers) or _propagate_pool(node, rw, producers)
                           or _propagate_channels(node, rw, producers) or _propagate_shuffle(node, rw, producers)
                           or _propagate_split(node, rw, producers) or _cancel(node, rw, producers) or [node])
            for n in replacement:
                producers.update({v: n for v in n.outputs})
            nodes.extend(replacement)
    return _drop_identities(rw.graph_with(nodes)), params


def _drop_identities(graph: Graph) -> Graph:
    """Remove transforms between equal layouts, pointing their readers at the source value."""
    rename: dict[str, str] = {}
    kept = []
    for node in graph.nodes:
        if rename:
            node = dataclasses.replace(node, inputs=[rename.get(v, v) for v in node.inputs],
                                       kwinputs={k: rename.get(v, v) for k, v in node.kwinputs.items()})
        same = node.op == "layout_transform" and node.attrs.get("src_layout") == node.attrs.get("dst_layout")
        if same and node.outputs[0] not in graph.outputs:
            rename[node.outputs[0]] = node.inputs[0]
            continue
        kept.append(node)
    return Graph(graph.inputs, graph.params, kept, graph.outputs, graph.types)


# ---------------------------------------------------------------------------- dense weights

def pack_dense_weights(graph: Graph, params: Optional[dict[str, np.ndarray]]) -> tuple[Graph, Optional[dict]]:
    """``dense``/``matmul`` with a constant weight -> ``pack_dense_weight`` (folded) + ``dense_packed``."""
    dense = ops.library_module("dense")
    if dense is None or not hasattr(dense, "dense_packed") or not hasattr(dense, "pack_dense_weight"):
        return graph, params
    rw = Rewriter(graph)
    const = constant_values(graph)
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op not in ("dense", "matmul") or len(node.inputs) != 2 or node.inputs[1] not in const \
                or node.inputs[0] in const:
            nodes.append(node)
            continue
        data, weight = node.inputs
        transpose_a = bool(node.attrs.get("transpose_a", False))
        transpose_b = bool(node.attrs.get("transpose_b", node.op == "dense"))
        dt, wt = rw.types[data], rw.types[weight]
        m, k = (dt.shape[1], dt.shape[0]) if transpose_a else dt.shape
        n = wt.shape[0] if transpose_b else wt.shape[1]
        panel = dense.dense_panel_width(m, n, k, dt.dtype, transpose_a)
        hint = node.name or node.outputs[0]
        pack, packed = _emit(rw, "pack_dense_weight", [weight], hint, {"panel": panel, "transpose_b": transpose_b})
        product, _ = _emit(rw, "dense_packed", [data, packed], hint, {"units": n, "transpose_a": transpose_a},
                           node.kwinputs, output=node.outputs[0])
        product.name = node.name
        nodes += [pack, product]
    return rw.graph_with(nodes), params

