"""Property-based tests: random tensor programs under random valid schedules.

Hypothesis draws a *recipe* -- a small plain-data description of a tensor
program (placeholders, one to three compute stages, an expression tree per
stage) -- and a random schedule for it. From the recipe we produce

* the Python source of the ``te`` program and its schedule (executed with
  ``exec``; it is also the reproducer that hypothesis prints on failure), and
* the numpy value of every stage, computed from the same recipe with the
  interpreter's documented semantics (math intrinsics in float64, rounded).

Each example is lowered once, run through the reference interpreter and the
LLVM backend, and the three results are compared.

Schedules are valid *by construction*: a small simulation of every stage's
leaf loops (name, data-parallel or reduction, extent) decides which splits,
tiles, fuses, reorders, attachments and annotations make sense. A separate
property builds one deliberately invalid request on top of a valid schedule
and checks that it raises ``tecomp.TecompError``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st

import tecomp
from tecomp import te
from tecomp.tir import interpreter

FLOAT_LIMIT = 16.0      # |value| bound kept on every float intermediate (keeps rounding tame)
INT_LIMIT = 1000        # the same for int32 (sums of up to 256 terms stay far from overflow)
MAX_EW_ELEMS = 1024     # elements of an elementwise stage
MAX_RED_WORK = 2048     # output elements x reduction extent of a reduction stage

WIDE = {"float32": "float64", "float64": "float32", "int32": "int64"}
NP_MIN = {"float32": np.finfo(np.float32).min, "float64": np.finfo(np.float64).min,
          "int32": np.iinfo(np.int32).min}
NP_MAX = {"float32": np.finfo(np.float32).max, "float64": np.finfo(np.float64).max,
          "int32": np.iinfo(np.int32).max}


# ============================================================== recipes
#
# Index expressions:   ("var", name, offset, clamp_lo, clamp_hi_or_None) | ("const", c)
# Value expressions:   ("load", tensor, (index, ...))   ("num", value)
#                      ("bin", op, a, b)                op in add sub mul max min
#                      ("un", fn, a)                    fn in exp abs sqrtabs tanh sigmoid neg
#                      ("widen", op, a, b)              a op b computed in a wider/narrower type
#                      ("trunc", load)                  float -> int32 -> float (on input values)
#                      ("halve", a)                     int -> float32 * 0.5 -> int32
#                      ("ite", cond, a, b)              te.if_then_else on an index condition
# Conditions:          ("cmp", op, var, c) | ("parity", v1, v2, m, r) | ("lin", v1, v2, c)
#                      ("and", c1, c2) | ("or", c1, c2)


@dataclass
class TensorInfo:
    name: str
    shape: tuple
    bound: float
    is_input: bool


@dataclass
class StageRecipe:
    name: str
    shape: tuple
    body: Any
    bound: float
    reduce_extents: tuple = ()
    reducer: Optional[str] = None
    where: Any = None
    reads: set = field(default_factory=set)

    @property
    def is_reduce(self) -> bool:
        return self.reducer is not None

    def var_extents(self) -> list:
        dims = [(f"i{d}", n) for d, n in enumerate(self.shape)]
        return dims + [(self.kname(r), n) for r, n in enumerate(self.reduce_extents)]

    def kname(self, r: int) -> str:
        return f"{self.name}_k{r}"


@dataclass
class Program:
    dtype: str
    tensors: dict
    inputs: list
    stages: list


class ProgramGen:
    """Draws a random program recipe (with magnitude bounds that rule out overflow)."""

    def __init__(self, draw, dtype: str):
        self.draw = draw
        self.dtype = dtype
        self.is_int = dtype == "int32"
        self.limit = INT_LIMIT if self.is_int else FLOAT_LIMIT
        self.tensors: dict = {}
        self.inputs: list = []
        self.stages: list = []

    # -------------------------------------------------------- shapes
    def draw_shape(self, max_elems: int, max_ndim: int = 3) -> tuple:
        ndim = self.draw(st.integers(1, max_ndim))
        dims = []
        budget = max_elems
        for _ in range(ndim):
            n = self.draw(st.integers(1, max(1, min(17, budget))))
            dims.append(n)
            budget //= n
        return tuple(dims)

    def derived_shape(self, var_ext: list, max_elems: int = 2048) -> tuple:
        """A tensor shape related to an iteration space: identity, a subset or permutation of
        its extents (broadcast / transposed access), size-1 dims, slightly larger dims."""
        draw = self.draw
        kind = draw(st.sampled_from(["identity", "derived", "derived", "random"]))
        if kind == "identity":
            shape = tuple(n for name, n in var_ext if name.startswith("i"))
            if shape and math.prod(shape) <= max_elems:
                return shape
        if kind == "random":
            return self.draw_shape(max_elems)
        ndim = draw(st.integers(1, 3))
        dims = []
        for _ in range(ndim):
            how = draw(st.sampled_from(["var", "var", "var", "one", "grow", "any"]))
            if how == "var":
                n = draw(st.sampled_from(var_ext))[1]
            elif how == "one":
                n = 1
            elif how == "grow":
                n = draw(st.sampled_from(var_ext))[1] + draw(st.integers(1, 2))
            else:
                n = draw(st.integers(1, 17))
            if math.prod(dims) * n > max_elems:
                n = 1
            dims.append(n)
        return tuple(dims)

    def new_input(self, var_ext: list) -> str:
        name = f"X{len(self.inputs)}"
        shape = self.derived_shape(var_ext)
        self.tensors[name] = TensorInfo(name, shape, 4.0 if self.is_int else 2.0, True)
        self.inputs.append(name)
        return name

    # -------------------------------------------------------- expressions
    def access(self, tname: str, var_ext: list) -> tuple:
        draw = self.draw
        shape = self.tensors[tname].shape
        ext = dict(var_ext)
        used: set = set()
        idx = []
        for n in shape:
            aligned = [v for v, e in var_ext if e == n and v not in used]
            modes = (["aligned"] * 4 if aligned else []) + ["any", "const"]
            if n == 1:
                modes = ["const"] + modes
            mode = draw(st.sampled_from(modes))
            if mode == "const":
                idx.append(("const", draw(st.integers(0, n - 1))))
                continue
            v = draw(st.sampled_from(aligned)) if mode == "aligned" else draw(st.sampled_from(list(ext)))
            used.add(v)
            off = draw(st.sampled_from([0, 0, 0, 1, -1, 2, -2]))
            lo = off < 0
            hi = n - 1 if ext[v] - 1 + off > n - 1 else None
            idx.append(("var", v, off, lo, hi))
        return ("load", tname, tuple(idx))

    def index_vars(self, var_ext: list) -> list:
        return [v for v, _ in var_ext]

    def cond(self, var_ext: list, depth: int = 0) -> tuple:
        draw = self.draw
        names = self.index_vars(var_ext)
        ext = dict(var_ext)
        kinds = ["cmp", "cmp", "parity", "lin"] + (["and", "or"] if depth == 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "cmp":
            v = draw(st.sampled_from(names))
            return ("cmp", draw(st.sampled_from(["<", ">=", "<=", "!="])), v, draw(st.integers(0, ext[v])))
        if kind == "parity":
            m = draw(st.integers(2, 3))
            return ("parity", draw(st.sampled_from(names)), draw(st.sampled_from(names)), m,
                    draw(st.integers(0, m - 1)))
        if kind == "lin":
            return ("lin", draw(st.sampled_from(names)), draw(st.sampled_from(names)),
                    draw(st.integers(-3, 5)))
        return (kind, self.cond(var_ext, depth + 1), self.cond(var_ext, depth + 1))

    def where_cond(self, stage: StageRecipe) -> tuple:
        """A reduction condition that always holds at k = 0 (so max/min never see only the identity)."""
        draw = self.draw
        ks = [stage.kname(r) for r in range(len(stage.reduce_extents))]
        ivs = [f"i{d}" for d in range(len(stage.shape))]
        k = draw(st.sampled_from(ks))
        kind = draw(st.sampled_from(["le_i", "even", "ne", "sum_lt", "any"]))
        if kind == "le_i":
            return ("lin1", k, draw(st.sampled_from(ivs)))  # k <= i
        if kind == "even":
            return ("parity", k, k, 2, 0)                   # (k + k) % 2 == 0 -- always true
        if kind == "ne":
            return ("cmp", "!=", k, draw(st.integers(1, 16)))
        if kind == "sum_lt":
            k2 = draw(st.sampled_from(ks))
            return ("lin0", k, k2, draw(st.integers(1, 20)))  # k + k2 < c
        return ("or", ("cmp", "<", k, 1), self.cond(stage.var_extents(), 1))

    def leaf(self, var_ext: list, readable: list) -> tuple:
        draw = self.draw
        choices = list(readable)
        if len(self.inputs) < 3:
            choices.append("<new>")
        if not choices or draw(st.integers(0, 9)) == 0:
            c = draw(st.sampled_from([1, 2, 3] if self.is_int else [0.5, 1.5, 2.0, -1.0]))
            return ("num", c), float(abs(c))
        t = draw(st.sampled_from(choices))
        if t == "<new>":
            t = self.new_input(var_ext)
        return self.access(t, var_ext), self.tensors[t].bound

    def expr(self, var_ext: list, readable: list, depth: int) -> tuple:
        """(node, bound): a random expression with |value| <= bound."""
        draw = self.draw
        kinds = ["leaf"]
        if depth > 0:
            kinds += ["bin", "bin", "bin", "un", "un", "ite", "widen", "cast"]
        kind = draw(st.sampled_from(kinds))
        if kind == "leaf":
            return self.leaf(var_ext, readable)
        if kind == "cast":
            if self.is_int:
                a, ba = self.expr(var_ext, readable, depth - 1)
                return ("halve", a), ba
            node, b = self.leaf(var_ext, readable)
            return (("trunc", node), b) if node[0] == "load" else (node, b)
        if kind == "un":
            a, ba = self.expr(var_ext, readable, depth - 1)
            fns = ["abs", "neg"] if self.is_int else ["exp", "abs", "sqrtabs", "tanh", "sigmoid", "neg"]
            fn = draw(st.sampled_from(fns))
            bound = {"exp": math.exp(2.0), "sqrtabs": math.sqrt(ba), "tanh": 1.0, "sigmoid": 1.0}.get(fn, ba)
            return ("un", fn, a), bound
        if kind == "ite":
            c = self.cond(var_ext)
            a, ba = self.expr(var_ext, readable, depth - 1)
            b, bb = self.expr(var_ext, readable, depth - 1)
            return ("ite", c, a, b), max(ba, bb)
        a, ba = self.expr(var_ext, readable, depth - 1)
        b, bb = self.expr(var_ext, readable, depth - 1)
        op = draw(st.sampled_from(["add", "sub", "mul", "max", "min"]))
        if op == "mul" and ba * bb > self.limit:
            op = "add"
        if op in ("add", "sub") and ba + bb > self.limit:
            op = "max"
        bound = {"add": ba + bb, "sub": ba + bb, "mul": ba * bb}.get(op, max(ba, bb))
        if kind == "widen" and op in ("add", "sub", "mul"):
            return ("widen", op, a, b), bound
        return ("bin", op, a, b), bound

    def must_read(self, node: tuple, bound: float, tname: str, var_ext: list) -> tuple:
        """Make sure the expression reads ``tname`` (chains stay connected)."""
        if tname in reads_of(node):
            return node, bound
        ld = self.access(tname, var_ext)
        tb = self.tensors[tname].bound
        op = "add" if bound + tb <= self.limit else "max"
        return ("bin", op, ld, node), (bound + tb if op == "add" else max(bound, tb))

    def add_stage(self, stage: StageRecipe) -> None:
        stage.reads = reads_of(stage.body) | (reads_of(stage.where) if stage.where else set())
        self.stages.append(stage)
        self.tensors[stage.name] = TensorInfo(stage.name, stage.shape, stage.bound, False)

    def elementwise_stage(self, name: str, shape: tuple, readable: list, must: Optional[str]) -> None:
        var_ext = [(f"i{d}", n) for d, n in enumerate(shape)]
        depth = self.draw(st.integers(0, 3))
        body, bound = self.expr(var_ext, readable, depth)
        if must is not None:
            body, bound = self.must_read(body, bound, must, var_ext)
        elif not reads_of(body):
            body, bound = self.must_read(body, bound, self.new_input(var_ext) if len(self.inputs) < 3
                                         else self.inputs[0], var_ext)
        self.add_stage(StageRecipe(name, shape, body, bound))

    def program(self) -> Program:
        return Program(self.dtype, self.tensors, self.inputs, self.stages)


def reads_of(node: Any) -> set:
    if not isinstance(node, tuple):
        return set()
    found = {node[1]} if node[0] == "load" else set()
    for child in node[1:]:
        found |= reads_of(child)
    return found


@st.composite
def dtypes(draw):
    return draw(st.sampled_from(["float32"] * 6 + ["int32", "float64"]))


@st.composite
def elementwise_programs(draw) -> Program:
    g = ProgramGen(draw, draw(dtypes()))
    n_stages = draw(st.integers(1, 3))
    out_shape = g.draw_shape(MAX_EW_ELEMS)
    out_vars = [(f"i{d}", n) for d, n in enumerate(out_shape)]
    prev = None
    for j in range(n_stages):
        last = j == n_stages - 1
        shape = out_shape if last or draw(st.booleans()) else g.derived_shape(out_vars, MAX_EW_ELEMS)
        readable = list(g.inputs) + [s.name for s in g.stages]
        g.elementwise_stage(f"T{j}", shape, readable, prev)
        prev = f"T{j}"
    return g.program()


@st.composite
def reduction_programs(draw) -> Program:
    g = ProgramGen(draw, draw(dtypes()))
    n_red = draw(st.integers(1, 2))
    red = tuple(draw(st.integers(1, 16)) for _ in range(n_red))
    out_shape = g.draw_shape(max(1, MAX_RED_WORK // math.prod(red)), max_ndim=2)
    name = "T1"
    probe = StageRecipe(name, out_shape, None, 0.0, red, "sum")
    var_ext = probe.var_extents()
    prev = None
    if draw(st.booleans()):  # an elementwise prologue, shaped after the reduction's iteration space
        shape = g.derived_shape(var_ext, MAX_EW_ELEMS)
        g.elementwise_stage("T0", shape, [], None)
        prev = "T0"
    readable = list(g.inputs) + ([prev] if prev else [])
    body, bound = g.expr(var_ext, readable, draw(st.integers(0, 2)))
    if prev is not None:
        body, bound = g.must_read(body, bound, prev, var_ext)
    elif not reads_of(body):
        body, bound = g.must_read(body, bound, g.new_input(var_ext), var_ext)
    reducer = draw(st.sampled_from(["sum", "sum", "max", "min"]))
    stage = StageRecipe(name, out_shape, body, bound, red, reducer)
    if draw(st.integers(0, 2)) == 0:
        stage.where = g.where_cond(stage)
    if reducer == "sum":
        stage.bound = bound * math.prod(red)
    g.add_stage(stage)
    if draw(st.booleans()):  # an elementwise epilogue
        g.elementwise_stage("T2", out_shape, list(g.inputs) + [name], name)
    return g.program()


# ============================================================== rendering to te source

def r_index(ix: tuple, kmap: dict) -> str:
    if ix[0] == "const":
        return str(ix[1])
    _, v, off, lo, hi = ix
    e = kmap.get(v, v)
    if off > 0:
        e = f"{e} + {off}"
    elif off < 0:
        e = f"{e} - {-off}"
    if hi is not None:
        e = f"te.min({e}, {hi})"
    if lo:
        e = f"te.max({e}, 0)"
    return e


def r_cond(c: tuple, kmap: dict) -> str:
    v = lambda name: kmap.get(name, name)  # noqa: E731
    if c[0] == "cmp":
        return f"({v(c[2])} {c[1]} {c[3]})"
    if c[0] == "parity":
        return f"(({v(c[1])} + {v(c[2])}) % {c[3]} == {c[4]})"
    if c[0] == "lin":
        return f"({v(c[1])} * 2 < {v(c[2])} + {c[3]})"
    if c[0] == "lin1":
        return f"({v(c[1])} <= {v(c[2])})"
    if c[0] == "lin0":
        return f"({v(c[1])} + {v(c[2])} < {c[3]})"
    fn = "te.all" if c[0] == "and" else "te.any"
    return f"{fn}({r_cond(c[1], kmap)}, {r_cond(c[2], kmap)})"


def r_expr(n: tuple, dtype: str, kmap: dict) -> str:
    kind = n[0]
    if kind == "load":
        return f"{n[1]}[{', '.join(r_index(i, kmap) for i in n[2])}]"
    if kind == "num":
        return f"te.const({n[1]!r}, '{dtype}')"
    if kind == "bin":
        a, b = r_expr(n[2], dtype, kmap), r_expr(n[3], dtype, kmap)
        sym = {"add": "+", "sub": "-", "mul": "*"}.get(n[1])
        return f"({a} {sym} {b})" if sym else f"te.{n[1]}({a}, {b})"
    if kind == "un":
        a = r_expr(n[2], dtype, kmap)
        return {"exp": f"te.exp(te.min({a}, te.const(2.0, '{dtype}')))", "abs": f"te.abs({a})",
                "sqrtabs": f"te.sqrt(te.abs({a}))", "tanh": f"te.tanh({a})",
                "sigmoid": f"te.sigmoid({a})", "neg": f"(-{a})"}[n[1]]
    if kind == "widen":
        w = WIDE[dtype]
        sym = {"add": "+", "sub": "-", "mul": "*"}[n[1]]
        a, b = r_expr(n[2], dtype, kmap), r_expr(n[3], dtype, kmap)
        return f"({a}.astype('{w}') {sym} {b}.astype('{w}')).astype('{dtype}')"
    if kind == "trunc":
        return f"{r_expr(n[1], dtype, kmap)}.astype('int32').astype('{dtype}')"
    if kind == "halve":
        return f"({r_expr(n[1], dtype, kmap)}.astype('float32') * 0.5).astype('int32')"
    if kind == "ite":
        return (f"te.if_then_else({r_cond(n[1], kmap)}, {r_expr(n[2], dtype, kmap)}, "
                f"{r_expr(n[3], dtype, kmap)})")
    raise AssertionError(n)


def render_program(p: Program) -> list:
    lines = []
    for name in p.inputs:
        lines.append(f"{name} = te.placeholder({p.tensors[name].shape}, name='{name}', dtype='{p.dtype}')")
    for stg in p.stages:
        params = ", ".join(f"i{d}" for d in range(len(stg.shape)))
        body = r_expr(stg.body, p.dtype, {})
        if stg.is_reduce:
            ks = [stg.kname(r) for r in range(len(stg.reduce_extents))]
            for k, n in zip(ks, stg.reduce_extents):
                lines.append(f"{k} = te.reduce_axis((0, {n}), name='{k}')")
            where = f", where={r_cond(stg.where, {})}" if stg.where is not None else ""
            body = f"te.{stg.reducer}({body}, axis=[{', '.join(ks)}]{where})"
        lines.append(f"{stg.name} = te.compute({stg.shape}, lambda {params}: {body}, name='{stg.name}')")
    return lines


# ============================================================== numpy reference

def np_index(ix: tuple, env: dict):
    if ix[0] == "const":
        return ix[1]
    _, v, off, lo, hi = ix
    e = env[v] + off
    if hi is not None:
        e = np.minimum(e, hi)
    if lo:
        e = np.maximum(e, 0)
    return e


def np_cond(c: tuple, env: dict):
    if c[0] == "cmp":
        a, b = env[c[2]], c[3]
        return {"<": a < b, ">=": a >= b, "<=": a <= b, "!=": a != b}[c[1]]
    if c[0] == "parity":
        return (env[c[1]] + env[c[2]]) % c[3] == c[4]
    if c[0] == "lin":
        return env[c[1]] * 2 < env[c[2]] + c[3]
    if c[0] == "lin1":
        return env[c[1]] <= env[c[2]]
    if c[0] == "lin0":
        return env[c[1]] + env[c[2]] < c[3]
    a, b = np_cond(c[1], env), np_cond(c[2], env)
    return (a & b) if c[0] == "and" else (a | b)


def _math(fn, x, dtype):
    """A math intrinsic as the interpreter defines it: in float64, rounded to the dtype."""
    with np.errstate(over="ignore"):
        return np.asarray(fn(np.asarray(x, dtype).astype(np.float64))).astype(dtype)


def np_expr(n: tuple, dtype: str, env: dict, values: dict):
    kind = n[0]
    if kind == "load":
        arr = values[n[1]]
        return arr[tuple(np_index(i, env) for i in n[2])]
    if kind == "num":
        return np.asarray(n[1], dtype)
    if kind == "bin":
        a, b = np_expr(n[2], dtype, env, values), np_expr(n[3], dtype, env, values)
        f = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
        return np.asarray(f[n[1]](a, b)).astype(dtype)
    if kind == "un":
        a = np_expr(n[2], dtype, env, values)
        if n[1] == "exp":
            return _math(np.exp, np.minimum(a, np.asarray(2.0, dtype)), dtype)
        if n[1] == "abs":
            return np.abs(a).astype(dtype)
        if n[1] == "neg":
            return np.negative(a).astype(dtype)
        if n[1] == "sqrtabs":
            return _math(np.sqrt, np.abs(a), dtype)
        if n[1] == "tanh":
            return _math(np.tanh, a, dtype)
        return _math(lambda x: 1.0 / (1.0 + np.exp(-x)), a, dtype)
    if kind == "widen":
        w = WIDE[dtype]
        a = np.asarray(np_expr(n[2], dtype, env, values)).astype(w)
        b = np.asarray(np_expr(n[3], dtype, env, values)).astype(w)
        f = {"add": np.add, "sub": np.subtract, "mul": np.multiply}[n[1]]
        return np.asarray(f(a, b)).astype(dtype)
    if kind == "trunc":
        return np.asarray(np_expr(n[1], dtype, env, values)).astype(np.int32).astype(dtype)
    if kind == "halve":
        a = np.asarray(np_expr(n[1], dtype, env, values)).astype(np.float32)
        return (a * np.float32(0.5)).astype(np.int32)
    if kind == "ite":
        c = np_cond(n[1], env)
        return np.where(c, np_expr(n[2], dtype, env, values), np_expr(n[3], dtype, env, values)).astype(dtype)
    raise AssertionError(n)


def np_stage(stg: StageRecipe, dtype: str, values: dict) -> np.ndarray:
    full = tuple(stg.shape) + tuple(stg.reduce_extents)
    grid = np.indices(full, dtype=np.int64)
    env = {name: grid[pos] for pos, (name, _) in enumerate(stg.var_extents())}
    body = np.broadcast_to(np_expr(stg.body, dtype, env, values), full)
    if not stg.is_reduce:
        return np.ascontiguousarray(body.astype(dtype))
    axes = tuple(range(len(stg.shape), len(full)))
    mask = np.broadcast_to(np_cond(stg.where, env), full) if stg.where is not None else np.ones(full, bool)
    if stg.reducer == "sum":
        acc = np.int64 if dtype == "int32" else np.float64
        return np.where(mask, body, 0).astype(acc).sum(axis=axes).astype(dtype)
    if stg.reducer == "max":
        return np.where(mask, body, NP_MIN[dtype]).max(axis=axes).astype(dtype)
    return np.where(mask, body, NP_MAX[dtype]).min(axis=axes).astype(dtype)


def make_inputs(p: Program, seed: int) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for name in p.inputs:
        shape = p.tensors[name].shape
        if p.dtype == "int32":
            out.append(rng.integers(-4, 5, size=shape).astype("int32"))
        else:
            out.append(rng.uniform(-2, 2, size=shape).astype(p.dtype))
    return out


def reference(p: Program, inputs: list) -> dict:
    values = dict(zip(p.inputs, inputs))
    for stg in p.stages:
        values[stg.name] = np_stage(stg, p.dtype, values)
    return values


# ============================================================== schedules (simulated, then rendered)

@dataclass
class Leaf:
    var: str        # Python variable holding the IterVar in the generated code
    ivname: str     # the IterVar's own name
    red: bool
    ext: int


@dataclass
class SimStage:
    var: str                      # Python variable of the tensor (s[var])
    opname: str                   # the stage's op name (error messages name it)
    dp: list                      # (ivname, extent) of data-parallel axes
    red: list                     # (ivname, extent) of reduce axes
    is_output: bool
    reads: set                    # vars of the SimStages it reads
    is_cache: bool = False
    leaves: Optional[list] = None
    dead: list = field(default_factory=list)   # split / fused ivars (no longer leaves)
    attach: Any = "root"          # "root" | "inline" | (SimStage, Leaf)
    ann: dict = field(default_factory=dict)    # leaf var -> vectorize | unroll | parallel
    counter: int = 0
    relations: int = 0

    @property
    def is_reduce(self) -> bool:
        return bool(self.red)


class ScheduleGen:
    def __init__(self, draw, program: Program):
        self.draw = draw
        self.p = program
        self.lines: list = []
        out = program.stages[-1].name
        self.stages: list = []
        for stg in program.stages:
            self.stages.append(SimStage(
                stg.name, stg.name, [(f"i{d}", n) for d, n in enumerate(stg.shape)],
                [(stg.kname(r), n) for r, n in enumerate(stg.reduce_extents)],
                stg.name == out, {r for r in stg.reads if r not in program.inputs}))
        self.by_var = {s.var: s for s in self.stages}
        self.lines.append(f"s = te.create_schedule({out}.op)")

    # -------------------------------------------------------- helpers
    def emit(self, line: str) -> None:
        self.lines.append(line)

    def new_var(self, stage: SimStage) -> str:
        stage.counter += 1
        return f"{stage.var}_{stage.counter}"

    def ensure_axes(self, stage: SimStage) -> None:
        if stage.leaves is not None:
            return
        stage.leaves = []
        for kind, axes in (("axis", stage.dp), ("reduce_axis", stage.red)):
            if not axes:
                continue
            leaves = [Leaf(self.new_var(stage), name, kind == "reduce_axis", n) for name, n in axes]
            names = ", ".join(lf.var for lf in leaves)
            self.emit(f"{names}, = s[{stage.var}].op.{kind}")
            stage.leaves += leaves

    def consumers(self, stage: SimStage) -> list:
        return [s for s in self.stages if stage.var in s.reads]

    def effective_consumers(self, stage: SimStage) -> list:
        found = []
        for c in self.consumers(stage):
            for e in ([c] if c.attach != "inline" else self.effective_consumers(c)):
                if e not in found:
                    found.append(e)
        return found

    def attached_at(self, stage: SimStage) -> set:
        return {id(s.attach[1]) for s in self.stages if isinstance(s.attach, tuple) and s.attach[0] is stage}

    # -------------------------------------------------------- primitives
    def cache_write(self, stage: SimStage) -> None:
        scope = self.draw(st.sampled_from(["local", "global"]))
        cvar = f"{stage.var}_c"
        self.emit(f"{cvar} = s.cache_write({stage.var}, '{scope}')")
        cache = SimStage(cvar, f"{stage.opname}.{scope}", [(n + ".c", e) for n, e in stage.dp],
                         stage.red, False, stage.reads, is_cache=True)
        stage.red = []
        stage.reads = {cvar}
        self.stages.insert(self.stages.index(stage), cache)
        self.by_var[cvar] = cache

    def split(self, stage: SimStage, pos: int) -> tuple:
        leaf = stage.leaves[pos]
        by_factor = self.draw(st.booleans())
        amount = self.draw(st.integers(1, leaf.ext + 2))
        o = Leaf(self.new_var(stage), leaf.ivname + ".outer", leaf.red, 0)
        i = Leaf(self.new_var(stage), leaf.ivname + ".inner", leaf.red, 0)
        if by_factor:
            o.ext, i.ext = -(-leaf.ext // amount), amount
            self.emit(f"{o.var}, {i.var} = s[{stage.var}].split({leaf.var}, factor={amount})")
        else:
            o.ext, i.ext = amount, -(-leaf.ext // amount)
            self.emit(f"{o.var}, {i.var} = s[{stage.var}].split({leaf.var}, nparts={amount})")
        stage.leaves[pos:pos + 1] = [o, i]
        stage.dead.append(leaf)
        stage.relations += 1
        return o, i

    def shape_ops(self, stage: SimStage) -> None:
        draw = self.draw
        self.ensure_axes(stage)
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(["split", "split", "tile", "fuse", "reorder"]))
            leaves = stage.leaves
            if kind == "split":
                self.split(stage, draw(st.integers(0, len(leaves) - 1)))
            elif kind == "tile" and len(leaves) >= 2:
                px = draw(st.integers(0, len(leaves) - 1))
                py = draw(st.sampled_from([p for p in range(len(leaves)) if p != px]))
                x, y = leaves[px], leaves[py]
                fx, fy = draw(st.integers(1, x.ext + 1)), draw(st.integers(1, y.ext + 1))
                xo = Leaf(self.new_var(stage), x.ivname + ".outer", x.red, -(-x.ext // fx))
                xi = Leaf(self.new_var(stage), x.ivname + ".inner", x.red, fx)
                yo = Leaf(self.new_var(stage), y.ivname + ".outer", y.red, -(-y.ext // fy))
                yi = Leaf(self.new_var(stage), y.ivname + ".inner", y.red, fy)
                self.emit(f"{xo.var}, {yo.var}, {xi.var}, {yi.var} = s[{stage.var}].tile("
                          f"{x.var}, {y.var}, x_factor={fx}, y_factor={fy})")
                leaves[leaves.index(x):leaves.index(x) + 1] = [xo, xi]
                leaves[leaves.index(y):leaves.index(y) + 1] = [yo, yi]
                reorder_subset(leaves, [xo, yo, xi, yi])
                stage.dead += [x, y]
                stage.relations += 2
            elif kind == "fuse":
                cands = [p for p in range(len(leaves) - 1) if leaves[p].red == leaves[p + 1].red]
                if not cands:
                    continue
                p = draw(st.sampled_from(cands))
                group = [leaves[p], leaves[p + 1]]
                if p + 2 < len(leaves) and leaves[p + 2].red == leaves[p].red and draw(st.booleans()):
                    group.append(leaves[p + 2])
                name = group[0].ivname
                for g in group[1:]:
                    name = f"{name}.{g.ivname}.fused"
                f = Leaf(self.new_var(stage), name, group[0].red, math.prod(g.ext for g in group))
                self.emit(f"{f.var} = s[{stage.var}].fuse({', '.join(g.var for g in group)})")
                leaves[p:p + len(group)] = [f]
                stage.dead += group
                stage.relations += 1
            elif kind == "reorder" and len(leaves) >= 2:
                perm = draw(st.permutations(leaves))
                if draw(st.booleans()):   # a subset, in a new relative order
                    size = draw(st.integers(2, len(perm)))
                    perm = perm[:size]
                reorder_subset(leaves, list(perm))
                self.emit(f"s[{stage.var}].reorder({', '.join(lf.var for lf in perm)})")

    def place(self, stage: SimStage) -> None:
        """Root, inline or compute_at (its consumers' loops are final by now)."""
        draw = self.draw
        if stage.is_output:
            return
        options = ["root"]
        if not stage.is_reduce:
            options.append("inline")
        eff = self.effective_consumers(stage)
        if len(eff) == 1:
            options += ["at", "at"] + (["at"] * 3 if stage.is_cache else [])
        choice = draw(st.sampled_from(options))
        if choice == "inline":
            self.emit(f"s[{stage.var}].compute_inline()")
            stage.attach = "inline"
        elif choice == "at":
            target = eff[0]
            self.ensure_axes(target)
            cands = [lf for lf in target.leaves if not (stage.is_cache and lf.red)]
            if not cands:
                return
            leaf = draw(st.sampled_from(cands))
            self.emit(f"s[{stage.var}].compute_at(s[{target.var}], {leaf.var})")
            stage.attach = (target, leaf)
            if draw(st.integers(0, 9)) == 0:
                self.emit(f"s[{stage.var}].compute_root()")
                stage.attach = "root"

    def annotate(self, stage: SimStage) -> None:
        draw = self.draw
        if stage.attach == "inline":
            return
        self.ensure_axes(stage)
        leaves = stage.leaves
        hosts = self.attached_at(stage)
        if draw(st.booleans()):
            dp = [p for p, lf in enumerate(leaves) if not lf.red]
            if dp:
                p = dp[-1]
                if leaves[p].ext <= 32 and not any(id(lf) in hosts for lf in leaves[p:]):
                    self.emit(f"s[{stage.var}].vectorize({leaves[p].var})")
                    stage.ann[leaves[p].var] = "vectorize"
        if draw(st.booleans()):
            cands = [lf for lf in leaves if lf.ext <= 8 and lf.var not in stage.ann]
            if cands:
                lf = draw(st.sampled_from(cands))
                self.emit(f"s[{stage.var}].unroll({lf.var})")
                stage.ann[lf.var] = "unroll"
        if draw(st.booleans()) and stage.attach == "root" and not leaves[0].red \
                and leaves[0].var not in stage.ann:
            self.emit(f"s[{stage.var}].parallel({leaves[0].var})")
            stage.ann[leaves[0].var] = "parallel"

    def run(self) -> None:
        draw = self.draw
        for stage in list(self.stages):
            if stage.is_reduce and draw(st.integers(0, 2)) == 0:
                self.cache_write(stage)
        for stage in reversed(list(self.stages)):
            self.place(stage)
            if stage.attach != "inline":
                self.shape_ops(stage)
        for stage in self.stages:
            self.annotate(stage)
        self.emit(f"args = [{', '.join(self.p.inputs + [self.p.stages[-1].name])}]")


def reorder_subset(leaves: list, order: list) -> None:
    """TVM's reorder: the given leaves take their own (sorted) positions in the given order."""
    positions = sorted(leaves.index(lf) for lf in order)
    for pos, lf in zip(positions, order):
        leaves[pos] = lf


# ============================================================== cases

class Case:
    def __init__(self, program: Program, sched: ScheduleGen):
        self.program = program
        self.sched = sched
        self.code = "\n".join(render_program(program) + sched.lines)

    def __repr__(self) -> str:
        return "Case(<<<\n" + self.code + "\n>>>)"


@st.composite
def cases(draw, programs):
    program = draw(programs)
    sched = ScheduleGen(draw, program)
    sched.run()
    return Case(program, sched)


def build_case(case: Case) -> dict:
    ns: dict = {"te": te, "tecomp": tecomp}
    exec(compile(case.code, "<random program>", "exec"), ns)
    return ns


def run_and_compare(case: Case, ns: dict, seed: int) -> None:
    p = case.program
    inputs = make_inputs(p, seed)
    values = reference(p, inputs)
    out = p.stages[-1]
    want = values[out.name]
    func = tecomp.lower(ns["s"], ns["args"], name="main")["main"]
    note(f"lowered IR:\n{func}")
    ref_args = [x.copy() for x in inputs] + [np.zeros(out.shape, p.dtype)]
    interpreter.run(func, ref_args)
    mod = tecomp.build(func, target="llvm")
    llvm_args = [x.copy() for x in inputs] + [np.zeros(out.shape, p.dtype)]
    mod(*llvm_args)
    got_ref, got_llvm = ref_args[-1], llvm_args[-1]
    if p.dtype == "int32":
        np.testing.assert_array_equal(got_ref, want, err_msg="interpreter vs numpy")
        np.testing.assert_array_equal(got_llvm, got_ref, err_msg="llvm vs interpreter")
        return
    if any(s.is_reduce for s in p.stages):
        scale = max([1.0] + [float(np.max(np.abs(values[s.name]))) for s in p.stages])
        np.testing.assert_allclose(got_ref, want, rtol=1e-4, atol=1e-4 * scale, err_msg="interpreter vs numpy")
        np.testing.assert_allclose(got_llvm, got_ref, rtol=1e-5, atol=1e-5 * scale,
                                   err_msg="llvm vs interpreter")
    else:
        np.testing.assert_allclose(got_ref, want, rtol=1e-5, atol=1e-5, err_msg="interpreter vs numpy")
        np.testing.assert_allclose(got_llvm, got_ref, rtol=1e-5, atol=1e-5, err_msg="llvm vs interpreter")


def check_case(case: Case, seed: int) -> None:
    ns = build_case(case)
    run_and_compare(case, ns, seed)


# ============================================================== deliberately invalid requests

class InvalidGen:
    """One invalid schedule request on top of a valid schedule (drawn from those that apply).

    ``snippet`` is code that must raise TecompError; ``names`` are the stage and axis names the
    message should mention; ``lower_args`` is set for requests made at lowering time.
    """

    def __init__(self, draw, sched: ScheduleGen):
        self.draw = draw
        self.sched = sched
        self.p = sched.p

    def live(self) -> list:
        return [s for s in self.sched.stages if s.attach != "inline" and s.leaves]

    def options(self) -> list:
        live = self.live()
        opts = ["split_zero", "split_both", "cache_write_scope", "not_in_schedule",
                "inline_output", "lower_missing_input", "placeholder_primitive"]
        if any(s.dead for s in live):
            opts.append("split_dead")
        if any(len(s.leaves) >= 3 for s in live):
            opts.append("fuse_gap")
        if any(len(s.leaves) >= 2 for s in live):
            opts += ["fuse_reversed", "reorder_dup"]
        if any(lf.red for s in live for lf in s.leaves):
            opts += ["vectorize_reduce", "parallel_reduce"]
        if len(live) >= 2:
            opts += ["reorder_foreign", "split_foreign", "compute_at_nonreader"]
        opts.append("compute_at_self")
        if any(s.is_reduce for s in self.sched.stages):
            opts.append("inline_reduce")
        if any(s.ann for s in live):
            opts.append("annotate_twice")
        if any(not s.is_reduce and not s.is_output and self.sched.attached_at(s) for s in live):
            opts.append("inline_host")
        return opts

    def pick(self, stages: list) -> SimStage:
        return self.draw(st.sampled_from(stages))

    def make(self) -> tuple:
        """(kind, snippet, names, lower_args)."""
        draw = self.draw
        kind = draw(st.sampled_from(self.options()))
        live = self.live()
        out = self.sched.stages[-1]
        args = self.p.inputs + [self.p.stages[-1].name]
        if kind == "split_zero":
            s = self.pick(live)
            lf = draw(st.sampled_from(s.leaves))
            how = draw(st.sampled_from(["factor=0", "nparts=0", "factor=-2"]))
            return kind, f"s[{s.var}].split({lf.var}, {how})", [s.opname, lf.ivname], None
        if kind == "split_both":
            s = self.pick(live)
            lf = draw(st.sampled_from(s.leaves))
            how = draw(st.sampled_from(["factor=2, nparts=2", ""]))
            return kind, f"s[{s.var}].split({lf.var}{', ' if how else ''}{how})", [s.opname, lf.ivname], None
        if kind == "split_dead":
            s = self.pick([s for s in live if s.dead])
            lf = draw(st.sampled_from(s.dead))
            return kind, f"s[{s.var}].split({lf.var}, factor=2)", [s.opname, lf.ivname], None
        if kind == "fuse_gap":
            s = self.pick([s for s in live if len(s.leaves) >= 3])
            p = draw(st.integers(0, len(s.leaves) - 3))
            q = draw(st.integers(p + 2, len(s.leaves) - 1))
            a, b = s.leaves[p], s.leaves[q]
            return kind, f"s[{s.var}].fuse({a.var}, {b.var})", [s.opname], None
        if kind == "fuse_reversed":
            s = self.pick([s for s in live if len(s.leaves) >= 2])
            p = draw(st.integers(0, len(s.leaves) - 2))
            a, b = s.leaves[p], s.leaves[p + 1]
            return kind, f"s[{s.var}].fuse({b.var}, {a.var})", [s.opname], None
        if kind in ("vectorize_reduce", "parallel_reduce"):
            s, lf = draw(st.sampled_from([(s, lf) for s in live for lf in s.leaves if lf.red]))
            prim = kind.split("_")[0]
            return kind, f"s[{s.var}].{prim}({lf.var})", [s.opname, lf.ivname], None
        if kind == "reorder_dup":
            s = self.pick([s for s in live if len(s.leaves) >= 2])
            lf = draw(st.sampled_from(s.leaves))
            others = [o.var for o in s.leaves if o is not lf]
            return kind, f"s[{s.var}].reorder({lf.var}, {others[0]}, {lf.var})", [s.opname], None
        if kind in ("reorder_foreign", "split_foreign"):
            s = self.pick(live)
            t = self.pick([t for t in live if t is not s])
            lf, alien = draw(st.sampled_from(s.leaves)), draw(st.sampled_from(t.leaves))
            if kind == "split_foreign":
                return kind, f"s[{s.var}].split({alien.var}, factor=2)", [s.opname, alien.ivname], None
            return kind, f"s[{s.var}].reorder({alien.var}, {lf.var})", [s.opname, alien.ivname], None
        if kind == "compute_at_nonreader":
            # nothing reads the output, so no loop of another stage can host it
            t = self.pick([t for t in live if t is not out])
            lf = draw(st.sampled_from(t.leaves))
            return kind, f"s[{out.var}].compute_at(s[{t.var}], {lf.var})\n{_LOWER}", [out.opname, t.opname], None
        if kind == "compute_at_self":
            s = self.pick(live)
            lf = draw(st.sampled_from(s.leaves))
            return kind, f"s[{s.var}].compute_at(s[{s.var}], {lf.var})\n{_LOWER}", [s.opname], None
        if kind == "inline_reduce":
            s = self.pick([s for s in self.sched.stages if s.is_reduce])
            return kind, f"s[{s.var}].compute_inline()", [s.opname], None
        if kind == "inline_output":
            return kind, f"s[{out.var}].compute_inline()", [out.opname], None
        if kind == "inline_host":
            s = self.pick([s for s in live if not s.is_reduce and not s.is_output and self.sched.attached_at(s)])
            return kind, f"s[{s.var}].compute_inline()", [s.opname], None
        if kind == "cache_write_scope":
            s = self.pick(live)
            return kind, f"s.cache_write({s.var}, 'texture')", [], None
        if kind == "annotate_twice":
            s = self.pick([s for s in live if s.ann])
            var = draw(st.sampled_from(sorted(s.ann)))
            lf = next(x for x in s.leaves if x.var == var)
            prim = draw(st.sampled_from([k for k in ("vectorize", "unroll", "parallel") if k != s.ann[var]]))
            return kind, f"s[{s.var}].{prim}({var})", [s.opname, lf.ivname], None
        if kind == "not_in_schedule":
            code = ("s[te.compute((3,), lambda i: te.const(1.0, 'float32'), name='Stranger')]"
                    ".split(0, factor=2)")
            return kind, code, ["Stranger"], None
        if kind == "placeholder_primitive":
            x = draw(st.sampled_from(self.p.inputs))
            prim = draw(st.sampled_from(["compute_inline()", f"compute_at(s[{out.var}], "
                                         f"s[{out.var}].op.axis[0])"]))
            return kind, f"s[{x}].{prim}", [x], None
        if kind == "lower_missing_input":
            x = draw(st.sampled_from(self.p.inputs))
            return kind, None, [x], [a for a in args if a != x]
        raise AssertionError(kind)


# compute_at records the placement; lowering checks it (as in TVM)
_CHECKED_WHEN_LOWERED = ("compute_at_nonreader", "compute_at_self")
_LOWER = "tecomp.lower(s, args)"


class InvalidCase(Case):
    def __init__(self, program: Program, sched: ScheduleGen, invalid: tuple):
        super().__init__(program, sched)
        self.kind, self.snippet, self.names, self.lower_args = invalid

    def __repr__(self) -> str:
        bad = self.snippet if self.snippet else f"tecomp.lower(s, [{', '.join(self.lower_args)}])"
        return f"InvalidCase({self.kind}, <<<\n{self.code}\n# must raise TecompError:\n{bad}\n>>>)"


@st.composite
def invalid_cases(draw):
    program = draw(st.one_of(elementwise_programs(), reduction_programs()))
    sched = ScheduleGen(draw, program)
    sched.run()
    return InvalidCase(program, sched, InvalidGen(draw, sched).make())


# No "explain" phase: it re-runs failing examples many times and the reproducer is already printed.
PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
FAST = settings(max_examples=60, deadline=None, derandomize=True, phases=PHASES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SLOW = settings(max_examples=400, deadline=None, phases=PHASES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SEEDS = st.integers(0, 2**31 - 1)


@FAST
@given(case=cases(elementwise_programs()), seed=SEEDS)
def test_random_elementwise_programs(case, seed):
    check_case(case, seed)


@FAST
@given(case=cases(reduction_programs()), seed=SEEDS)
def test_random_reduction_programs(case, seed):
    check_case(case, seed)


@pytest.mark.slow
@SLOW
@given(case=cases(st.one_of(elementwise_programs(), reduction_programs())), seed=SEEDS)
def test_random_programs_slow(case, seed):
    check_case(case, seed)


def check_invalid(case: InvalidCase, seed: int) -> None:
    ns = build_case(case)
    with pytest.raises(tecomp.TecompError) as info:
        if case.snippet is not None:
            exec(compile(case.snippet, "<invalid request>", "exec"), ns)
        else:
            tecomp.lower(ns["s"], [ns[a] for a in case.lower_args])
    message = str(info.value)
    for name in case.names:
        assert name in message, f"the message should name {name!r}: {message}"
    # A rejected request leaves a schedule that still computes the right thing (a placement,
    # checked when lowered as in TVM, stays recorded).
    if case.kind not in _CHECKED_WHEN_LOWERED:
        run_and_compare(case, ns, seed)


@FAST
@given(case=invalid_cases(), seed=SEEDS)
def test_invalid_requests_raise_tecomp_error(case, seed):
    check_invalid(case, seed)


@pytest.mark.slow
@SLOW
@given(case=invalid_cases(), seed=SEEDS)
def test_invalid_requests_raise_tecomp_error_slow(case, seed):
    check_invalid(case, seed)
