"""ONNX converters for tensor rearrangements and scans: Tile, DepthToSpace, SpaceToDepth, Trilu,
CumSum, TopK, OneHot and Einsum.

Tile and the depth/space moves are reshapes, an expand or a transpose of the library (one fused
injective kernel); Einsum is lowered onto transpose, reshape, sum, multiply, batch_matmul and a
strided slice for repeated letters (diagonals). Operands that fix an output's shape (Tile's
repeats, TopK's k, OneHot's depth, Trilu's k) must be known at import.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .common import axis as norm_axis
from .common import prod, reshape
from .importer import NodeContext, Value
from .registry import converter


def _scalar_int(n: NodeContext, k: int, what: str) -> int:
    values = n.ints(k, what)
    if len(values) != 1:
        raise n.error(f"input {k} ({what}) must hold one integer, got {len(values)}")
    return values[0]


@converter("Tile", versions=(13,))
def _tile(n: NodeContext) -> Value:
    x = n.input(0)
    repeats = n.ints(1, "repeats")
    if len(repeats) != x.rank or min(repeats, default=0) < 0:
        raise n.error(f"repeats {repeats} must be {x.rank} non-negative ints (one per axis of {x.shape})")
    if all(r == 1 for r in repeats):
        return x
    # [d0, d1] -> [1, d0, 1, d1] -> expand to [r0, d0, r1, d1] -> [r0 * d0, r1 * d1]
    spread = reshape(n, x, [d for dim in x.shape for d in (1, dim)])
    wide = [d for r, dim in zip(repeats, x.shape) for d in (r, dim)]
    if prod(wide) == 0:
        return n.constant(np.zeros([r * d for r, d in zip(repeats, x.shape)], x.dtype))
    expanded = n.emit("expand", spread, shape=wide)
    return reshape(n, expanded, [r * d for r, d in zip(repeats, x.shape)])


def _blocks(n: NodeContext) -> tuple[Value, int, str]:
    x = n.input(0)
    if x.rank != 4:
        raise n.error(f"input must be 4-D (N, C, H, W), got shape {x.shape}")
    size = n.attr("blocksize")
    if size < 1:
        raise n.error(f"blocksize={size} must be positive")
    mode = n.choice("mode", "DCR", ("DCR", "CRD")) if n.op_type == "DepthToSpace" or n.version >= 28 else "DCR"
    return x, size, mode


def _rearrange(n: NodeContext, x: Value, split: Sequence[int], perm: Sequence[int], out: Sequence[int]) -> Value:
    moved = reshape(n, x, split)
    if list(perm) != list(range(len(perm))):
        moved = n.emit("transpose", moved, axes=list(perm))
    return reshape(n, moved, out)


@converter("DepthToSpace", versions=(13, 28))
def _depth_to_space(n: NodeContext) -> Value:
    x, bs, mode = _blocks(n)
    b, c, h, w = x.shape
    if c % (bs * bs):
        raise n.error(f"channels {c} are not a multiple of blocksize^2 = {bs * bs}")
    depth = c // (bs * bs)
    if mode == "DCR":
        return _rearrange(n, x, [b, bs, bs, depth, h, w], [0, 3, 4, 1, 5, 2], [b, depth, h * bs, w * bs])
    return _rearrange(n, x, [b, depth, bs, bs, h, w], [0, 1, 4, 2, 5, 3], [b, depth, h * bs, w * bs])


@converter("SpaceToDepth", versions=(13, 28))
def _space_to_depth(n: NodeContext) -> Value:
    x, bs, mode = _blocks(n)
    b, c, h, w = x.shape
    if h % bs or w % bs:
        raise n.error(f"height {h} and width {w} must be multiples of blocksize {bs}")
    split = [b, c, h // bs, bs, w // bs, bs]
    perm = [0, 3, 5, 1, 2, 4] if mode == "DCR" else [0, 1, 3, 5, 2, 4]
    return _rearrange(n, x, split, perm, [b, c * bs * bs, h // bs, w // bs])


@converter("Trilu", versions=(14,))
def _trilu(n: NodeContext) -> Value:
    x = n.input(0)
    if x.rank < 2:
        raise n.error(f"input must have rank 2 or more, got shape {x.shape}")
    k = _scalar_int(n, 1, "k") if n.has_input(1) else 0
    return n.emit("trilu", x, k=k, upper=bool(n.choice("upper", 1, (0, 1))))


@converter("CumSum", versions=(11, 14))
def _cumsum(n: NodeContext) -> Value:
    x = n.input(0)
    ax = norm_axis(n, _scalar_int(n, 1, "axis"), x.rank)
    return n.emit("cumsum", x, axis=ax, exclusive=bool(n.choice("exclusive", 0, (0, 1))),
                  reverse=bool(n.choice("reverse", 0, (0, 1))))


@converter("TopK", versions=(11, 24))
def _topk(n: NodeContext) -> list[Value]:
    x = n.input(0)
    ax = norm_axis(n, n.attr("axis", -1), x.rank)
    k = _scalar_int(n, 1, "K")
    if not 0 <= k <= x.shape[ax]:
        raise n.error(f"K={k} must be in [0, {x.shape[ax]}] (the size of axis {ax})")
    largest = bool(n.choice("largest", 1, (0, 1)))
    n.choice("sorted", 1, (0, 1))  # sorted=0 allows any order; the library always sorts
    return n.emit_multi("topk", [x], 2, k=k, axis=ax, largest=largest)


@converter("OneHot", versions=(11, 28))
def _one_hot(n: NodeContext) -> Value:
    indices, values = n.input(0), n.input(2)
    depth = n.const(1, "depth").reshape(-1)
    if depth.size != 1:
        raise n.error(f"depth must hold one value, got {depth.size}")
    depth = int(depth[0])  # a float depth is truncated, as ONNX's reference does
    if depth < 1:
        raise n.error(f"depth={depth} must be positive")
    if values.shape != (2,):
        raise n.error(f"values must have shape (2,) (off value, on value), got {values.shape}")
    ax = norm_axis(n, n.attr("axis", -1), indices.rank + 1)
    return n.emit("one_hot", indices, values, depth=depth, axis=ax)


# ------------------------------------------------------------------ Einsum


@dataclass
class _Term:
    """One einsum operand: a value and the letter of each of its axes."""

    value: Value
    letters: str


def _parse_einsum(n: NodeContext, equation: str, ranks: Sequence[int]) -> tuple[list[str], str]:
    """Each input's letters and the output's, with ``...`` spelled as letters unused elsewhere."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    specs = lhs.split(",")
    if len(specs) != len(ranks):
        raise n.error(f"equation {equation!r} names {len(specs)} operands, the node has {len(ranks)}")
    used = set(eq) - set(".,->")
    if not used <= set(string.ascii_letters):
        raise n.error(f"equation {equation!r} has characters other than letters, ',', '->' and '...'")
    spare = [c for c in string.ascii_letters if c not in used]
    widest = max((rank - len(spec.replace("...", "")) for spec, rank in zip(specs, ranks) if "..." in spec),
                 default=0)
    ellipsis = "".join(spare[:widest])
    terms = []
    for spec, rank in zip(specs, ranks):
        if "..." in spec:
            count = rank - len(spec.replace("...", ""))
            if count < 0 or spec.count("...") > 1:
                raise n.error(f"operand spec {spec!r} does not fit a tensor of rank {rank}")
            spec = spec.replace("...", ellipsis[widest - count:])
        if len(spec) != rank:
            raise n.error(f"operand spec {spec!r} has {len(spec)} letters for a tensor of rank {rank}")
        terms.append(spec)
    if arrow:
        out = rhs.replace("...", ellipsis)
    else:  # implicit output: the ellipsis, then the letters used once, in alphabetical order
        counts = "".join(terms)
        out = ellipsis + "".join(sorted(c for c in set(counts) if counts.count(c) == 1 and c not in ellipsis))
    if len(set(out)) != len(out) or not set(out) <= set("".join(terms)):
        raise n.error(f"output {out!r} of equation {equation!r} repeats a letter or names one no operand has")
    return terms, out


def _diagonal(n: NodeContext, term: _Term) -> _Term:
    """Take the diagonal of each letter an operand repeats (``ii -> i``): the repeated axes moved last
    and flattened, then a strided slice with step ``1 + d + d^2 + ...``."""
    letters, x = term.letters, term.value
    for c in dict.fromkeys(letters):
        where = [k for k, l in enumerate(letters) if l == c]
        if len(where) == 1:
            continue
        d = x.shape[where[0]]
        rest = [k for k in range(len(letters)) if k not in where]
        x = n.emit("transpose", x, axes=rest + where) if rest + where != list(range(len(letters))) else x
        x = reshape(n, x, [x.shape[k] for k in range(len(rest))] + [d ** len(where)])
        step = sum(d ** p for p in range(len(where)))
        x = n.emit("strided_slice", x, begin=[0], end=[d ** len(where)], strides=[step], axes=[len(rest)])
        letters = "".join(letters[k] for k in rest) + c
    return _Term(x, letters)


def _sum_out(n: NodeContext, term: _Term, keep: str) -> _Term:
    """Sum the axes whose letters are not in ``keep``."""
    gone = [k for k, c in enumerate(term.letters) if c not in keep]
    if not gone:
        return term
    value = n.emit("sum", term.value, axis=gone, keepdims=False)
    return _Term(value, "".join(c for c in term.letters if c in keep))


def _permute(n: NodeContext, term: _Term, order: str) -> Value:
    perm = [term.letters.index(c) for c in order]
    return term.value if perm == list(range(len(perm))) else n.emit("transpose", term.value, axes=perm)


def _sizes(terms: Sequence[_Term]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for t in terms:
        for c, d in zip(t.letters, t.value.shape):
            sizes[c] = d if sizes.get(c, 1) == 1 else sizes[c]
    return sizes


def _contract(n: NodeContext, a: _Term, b: _Term, keep: str) -> _Term:
    """``a`` times ``b`` summed over the letters both have and ``keep`` lacks: a (batched) matrix
    product ``[batch, a-only, shared] x [batch, shared, b-only]`` (an elementwise product and a sum
    for integers, which the matrix products do not take, and for outer products)."""
    sizes = _sizes([a, b])
    batch = "".join(c for c in a.letters if c in b.letters and c in keep)
    shared = "".join(c for c in a.letters if c in b.letters and c not in keep)
    a_only = "".join(c for c in a.letters if c not in b.letters)
    b_only = "".join(c for c in b.letters if c not in a.letters)
    out_letters = batch + a_only + b_only
    if np.dtype(a.value.dtype).kind != "f" or not shared:
        # broadcast both to the union of letters, multiply, sum the shared ones
        union = out_letters + shared
        lhs = reshape(n, _permute(n, a, "".join(c for c in union if c in a.letters)),
                      [a.value.shape[a.letters.index(c)] if c in a.letters else 1 for c in union])
        rhs = reshape(n, _permute(n, b, "".join(c for c in union if c in b.letters)),
                      [b.value.shape[b.letters.index(c)] if c in b.letters else 1 for c in union])
        product = n.emit("multiply", lhs, rhs)
        return _sum_out(n, _Term(product, union), out_letters)
    dims = [sizes[c] for c in batch]
    lhs = _broadcast(n, _permute(n, a, batch + a_only + shared), dims)
    rhs = _broadcast(n, _permute(n, b, batch + shared + b_only), dims)
    m, k, cols = (prod([sizes[c] for c in part]) for part in (a_only, shared, b_only))
    if batch:
        product = n.emit("batch_matmul", reshape(n, lhs, [prod(dims), m, k]), reshape(n, rhs, [prod(dims), k, cols]))
    else:  # a plain matrix product (a constant right operand gets packed like a dense layer's weight)
        product = n.emit("matmul", reshape(n, lhs, [m, k]), reshape(n, rhs, [k, cols]))
    return _Term(reshape(n, product, dims + [sizes[c] for c in a_only + b_only]), out_letters)


def _broadcast(n: NodeContext, x: Value, batch: list[int]) -> Value:
    """``x`` with its leading batch axes expanded to ``batch`` (einsum broadcasts size-1 axes)."""
    target = list(batch) + list(x.shape[len(batch):])
    return x if list(x.shape) == target else n.emit("expand", x, shape=target)


@converter("Einsum", versions=(12, 28))
def _einsum(n: NodeContext) -> Value:
    values = n.inputs()
    specs, out = _parse_einsum(n, n.attr("equation"), [v.rank for v in values])
    terms = [_diagonal(n, _Term(v, spec)) for v, spec in zip(values, specs)]
    dtypes = sorted({t.value.dtype for t in terms})
    if len(dtypes) > 1:
        raise n.error(f"operands have different dtypes {dtypes}")
    for k, t in enumerate(terms):  # letters no other operand and not the output have are summed at once
        others = out + "".join(o.letters for j, o in enumerate(terms) if j != k)
        terms[k] = _sum_out(n, t, others)
    result = terms[0]
    for k in range(1, len(terms)):
        later = out + "".join(t.letters for t in terms[k + 1:])
        result = _contract(n, result, terms[k], later)
    return _permute(n, _sum_out(n, result, out), out)
