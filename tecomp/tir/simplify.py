"""Arithmetic simplification and proofs over the loop IR.

Owns the ``Analyzer`` (known variable ranges; simplification, proofs and
constant bounds that use them) and ``simplify_stmt``, which cleans a loop
nest with the ranges of its loops. Integer scalar expressions are put in a
canonical linear form Σ cᵢ·termᵢ + c whose terms are variables or simplified
non-linear sub-expressions (floordiv/floormod by constants, min, max,
products, loads...); terms are emitted by decreasing coefficient, then in
order of first appearance, with the constant last.

Integer arithmetic is mathematical (no overflow is assumed) and division and
modulo floor, as Python's ``//`` and ``%``. Must not: reassociate or otherwise
change float arithmetic (floats are only constant folded), change what a load
reads (only its indices are simplified), or assume anything about a variable
that was never bound.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from . import dtype as dt
from . import op
from .buffer import Buffer
from .expr import (EQ, GE, GT, LE, LT, NE, Add, And, Broadcast, BufferLoad, Call, Cast, CmpOp,
                   Div, FloatImm, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Not, Or, PrimExpr,
                   Ramp, Select, SizeVar, StringImm, Sub, Var)
from .functor import Mutator, collect_vars, structural_equal, structural_hash, substitute
from .interval import Interval, eval_interval, widens
from .stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, IfThenElse, LetStmt, SeqStmt,
                   Stmt, seq)

INF = math.inf
NumBound = tuple  # (lo, hi): ints, or -INF / INF where unbounded

_IMM = (IntImm, FloatImm)
_LINEAR = (Add, Sub, Mul, FloorDiv, FloorMod, Min, Max)
_CMP_FN = {LT: operator.lt, LE: operator.le, GT: operator.gt, GE: operator.ge,
           EQ: operator.eq, NE: operator.ne}
_NEGATED = {LT: lambda a, b: LE(b, a), LE: lambda a, b: LT(b, a), GT: LE, GE: LT, EQ: NE, NE: EQ}
_FLOAT_FN = {Add: operator.add, Sub: operator.sub, Mul: operator.mul, Min: min, Max: max}
_VECTOR_FN = {Add: op.add, Sub: op.sub, Mul: op.mul}


def _cached(table: dict, e: PrimExpr, compute):
    """compute(e), memoized by node identity (entries pin their node so ids stay unique)."""
    hit = table.get(id(e))
    if hit is not None and hit[0] is e:
        return hit[1]
    result = compute(e)
    table[id(e)] = (e, result)
    return result


def _is_index(dtype: str) -> bool:
    t = dt.parse(dtype)
    return t.lanes == 1 and t.code in ("int", "uint")


class _Key:
    """A dict key comparing expressions structurally (to collect like terms)."""

    __slots__ = ("e", "h")

    def __init__(self, e: PrimExpr):
        self.e = e
        self.h = structural_hash(e)

    def __hash__(self) -> int:
        return self.h

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Key) and (self.e is other.e or structural_equal(self.e, other.e))


class _Sum:
    """Σ coeff·term + const; ``terms`` maps _Key -> (term, coeff), in first-appearance order."""

    __slots__ = ("terms", "const", "dtype")

    def __init__(self, terms: dict, const: int, dtype: str):
        self.terms = terms
        self.const = const
        self.dtype = dtype

    @staticmethod
    def of(e: PrimExpr) -> "_Sum":
        if isinstance(e, IntImm):
            return _Sum({}, e.value, e.dtype)
        return _Sum({_Key(e): (e, 1)}, 0, e.dtype)

    def constant(self, value: int) -> "_Sum":
        return _Sum({}, value, self.dtype)

    def is_const(self) -> bool:
        return not self.terms

    def plus(self, other: "_Sum", sign: int = 1) -> "_Sum":
        terms = dict(self.terms)
        for key, (t, c) in other.terms.items():
            old = terms.get(key)
            total = sign * c + (old[1] if old else 0)
            if total:
                terms[key] = (old[0] if old else t, total)
            else:
                terms.pop(key, None)
        return _Sum(terms, self.const + sign * other.const, self.dtype)

    def scale(self, k: int) -> "_Sum":
        if k == 0:
            return self.constant(0)
        return _Sum({key: (t, c * k) for key, (t, c) in self.terms.items()}, self.const * k, self.dtype)

    def exact_div(self, k: int) -> "_Sum":
        return _Sum({key: (t, c // k) for key, (t, c) in self.terms.items()}, self.const // k, self.dtype)

    def gcd(self) -> int:
        return math.gcd(self.const, *(c for _, c in self.terms.values()))

    def single_term(self) -> PrimExpr | None:
        """The term when the sum is ``1·term + const``."""
        if len(self.terms) == 1:
            t, c = next(iter(self.terms.values()))
            if c == 1:
                return t
        return None


class Analyzer:
    """Known ranges of variables, and the simplifier and prover that use them."""

    def __init__(self) -> None:
        self._ranges: dict[Var, Interval] = {}
        self._var_bounds: dict[Var, NumBound] = {}
        self._symbolic: set = set()  # bound vars whose range is not constant
        self._depth = 0  # nesting of symbolic proofs, kept shallow
        self._children = _ChildRewriter(self)
        self._reset_memo()

    def _reset_memo(self) -> None:
        # Results depend on the bindings, so any change of binding starts afresh.
        self._memo: dict[int, tuple] = {}
        self._sums: dict[int, tuple] = {}
        self._bounds: dict[int, tuple] = {}

    # ------------------------------------------------------------ bindings
    def bind(self, var: Var, rng: tuple[PrimExpr, PrimExpr] | Interval) -> None:
        """Record var's range: ``(min, extent)`` is ``[min, min + extent)``; an Interval is inclusive."""
        if not isinstance(rng, Interval):
            rng = Interval.from_range(rng[0], rng[1], self)
        iv = Interval(*(None if b is None else self.simplify(b) for b in (rng.min, rng.max)))
        bounds = (-INF if iv.min is None else self._expr_bound(iv.min)[0],
                  INF if iv.max is None else self._expr_bound(iv.max)[1])
        self._set(var, iv, bounds)

    def _set(self, var: Var, iv: Interval | None, bounds: NumBound | None) -> None:
        self._reset_memo()
        self._symbolic.discard(var)
        if iv is None:
            self._ranges.pop(var, None)
            self._var_bounds.pop(var, None)
            return
        self._ranges[var] = iv
        self._var_bounds[var] = bounds
        if not all(b is None or isinstance(b, IntImm) for b in (iv.min, iv.max)):
            self._symbolic.add(var)

    @contextmanager
    def _scope(self, var: Var, rng: tuple[PrimExpr, PrimExpr] | Interval) -> Iterator[None]:
        """Bind var for the duration of a block, then restore what was known before."""
        saved = (self._ranges.get(var), self._var_bounds.get(var))
        self.bind(var, rng)
        try:
            yield
        finally:
            self._set(var, *saved)

    # ------------------------------------------------------------ public queries
    def simplify(self, e: PrimExpr) -> PrimExpr:
        """An expression equal to ``e`` wherever the bound variables lie in their ranges."""
        return _cached(self._memo, op.convert(e), self._rewrite)

    def can_prove(self, cond: PrimExpr) -> bool:
        """True only when ``cond`` provably holds for every value of the bound variables."""
        r = self.simplify(cond)
        return isinstance(r, IntImm) and r.value != 0

    def const_int_bound(self, e: PrimExpr) -> tuple[int | None, int | None]:
        """Inclusive numeric bounds of ``e``; None where no bound is known."""
        lo, hi = self._expr_bound(op.convert(e))
        return (None if lo == -INF else int(lo), None if hi == INF else int(hi))

    # ------------------------------------------------------------ rewriting
    def _rewrite(self, e: PrimExpr) -> PrimExpr:
        if isinstance(e, (IntImm, FloatImm, StringImm)):
            return e
        if _is_index(e.dtype):
            return self._to_expr(self._sum(e))
        if isinstance(e, CmpOp) and _is_index(e.a.dtype):
            return self._compare(e)
        if isinstance(e, Not) and isinstance(e.a, CmpOp) and _is_index(e.a.a.dtype):
            return self.simplify(_NEGATED[type(e.a)](e.a.a, e.a.b))
        return self._fold(self._children.generic(e))

    def _fold(self, e: PrimExpr) -> PrimExpr:
        """Local rules for a node whose children are already simplified."""
        if isinstance(e, Select):
            cond = e.condition.value if isinstance(e.condition, Broadcast) else e.condition
            if isinstance(cond, IntImm):
                return e.true_value if cond.value else e.false_value
            return e.true_value if structural_equal(e.true_value, e.false_value) else e
        if isinstance(e, Call) and e.op == "if_then_else" and isinstance(e.args[0], IntImm):
            return e.args[1] if e.args[0].value else e.args[2]
        if isinstance(e, Cast) and (e.value.dtype == e.dtype or isinstance(e.value, _IMM)):
            return op.cast(e.value, e.dtype)
        if isinstance(e, And):
            return op.logical_and(e.a, e.b)
        if isinstance(e, Or):
            return op.logical_or(e.a, e.b)
        if isinstance(e, Not):
            return op.logical_not(e.a)
        if isinstance(e, CmpOp) and isinstance(e.a, _IMM) and isinstance(e.b, _IMM):
            return op.const(_CMP_FN[type(e)](e.a.value, e.b.value), "bool")
        if isinstance(e, (Add, Sub, Mul, Div, Min, Max)):
            if isinstance(e.a, FloatImm) and isinstance(e.b, FloatImm):
                return _fold_float(e)
            if dt.lanes(e.dtype) > 1 and type(e) in _VECTOR_FN:
                return self._vector(e)
        return e

    def _vector(self, e: PrimExpr) -> PrimExpr:
        """Keep ramps and broadcasts outermost: ramp(b, s, n) + broadcast(x, n) -> ramp(b + x, s, n)."""
        a, b, build = e.a, e.b, _VECTOR_FN[type(e)]
        if isinstance(a, Broadcast) and isinstance(b, Broadcast):
            return Broadcast(self.simplify(build(a.value, b.value)), a.lanes)
        if isinstance(e, Mul):
            ramp, k = (a, b) if isinstance(a, Ramp) else (b, a)
            if isinstance(ramp, Ramp) and isinstance(k, Broadcast):
                return Ramp(self.simplify(op.mul(ramp.base, k.value)),
                            self.simplify(op.mul(ramp.stride, k.value)), ramp.lanes)
            return e
        parts = [(x.base, x.stride) if isinstance(x, Ramp) else
                 (x.value, op.const(0, x.value.dtype)) if isinstance(x, Broadcast) else None
                 for x in (a, b)]
        if None in parts:
            return e
        (ba, sa), (bb, sb) = parts
        return Ramp(self.simplify(build(ba, bb)), self.simplify(build(sa, sb)), dt.lanes(e.dtype))

    # ------------------------------------------------------------ linear form
    def _sum(self, e: PrimExpr) -> _Sum:
        return _cached(self._sums, e, self._make_sum)

    def _make_sum(self, e: PrimExpr) -> _Sum:
        t = type(e)
        if t is Add or t is Sub:
            return self._merge_divmod(self._sum(e.a).plus(self._sum(e.b), 1 if t is Add else -1))
        if t is Mul:
            a, b = self._sum(e.a), self._sum(e.b)
            if b.is_const():
                return a.scale(b.const)
            if a.is_const():
                return b.scale(a.const)
            return _Sum.of(Mul(self._to_expr(a), self._to_expr(b)))
        if t is FloorDiv or t is FloorMod:
            return self._divmod(e)
        if t is Min or t is Max:
            return self._minmax(e)
        if isinstance(e, Var):
            lo, hi = self._var_bounds.get(e, (-INF, INF))
            return _Sum({}, lo, e.dtype) if lo == hi else _Sum.of(e)
        r = self._fold(self._children.generic(e))
        # A Select with a known condition may have become an arithmetic node.
        return self._sum(r) if isinstance(r, _LINEAR) else _Sum.of(r)

    def _to_expr(self, s: _Sum) -> PrimExpr:
        items = sorted(s.terms.values(), key=lambda tc: (tc[1] < 0, -abs(tc[1])))
        lead_const = s.const > 0 and (not items or items[0][1] < 0)
        out = op.const(s.const, s.dtype) if lead_const else None
        for t, c in items:
            if out is None:
                out = self._times(t, c, s.dtype)
            elif c > 0:
                out = Add(out, self._times(t, c, s.dtype))
            else:
                out = Sub(out, self._times(t, -c, s.dtype))
        if out is None:
            return op.const(s.const, s.dtype)
        if s.const and not lead_const:
            c = op.const(abs(s.const), s.dtype)
            out = Add(out, c) if s.const > 0 else Sub(out, c)
        return out

    @staticmethod
    def _times(t: PrimExpr, c: int, dtype: str) -> PrimExpr:
        return t if c == 1 else Mul(t, op.const(c, dtype))

    def _merge_divmod(self, s: _Sum) -> _Sum:
        """floordiv(x, c)*c*k + floormod(x, c)*k -> x*k (``s`` is fresh, so edited in place)."""
        for key, (t, k) in list(s.terms.items()):
            if type(t) is FloorMod and isinstance(t.b, IntImm) and key in s.terms:
                div_key = _Key(FloorDiv(t.a, t.b))
                hit = s.terms.get(div_key)
                if hit is not None and hit[1] == k * t.b.value:
                    del s.terms[key], s.terms[div_key]
                    s = s.plus(self._sum(t.a).scale(k))
        return s

    # ------------------------------------------------------------ division
    def _divmod(self, e: PrimExpr) -> _Sum:
        a, b = self._sum(e.a), self.simplify(e.b)
        is_div = isinstance(e, FloorDiv)
        if isinstance(b, IntImm) and b.value > 0:
            return self._div_const(a, b.value) if is_div else self._mod_const(a, b.value)
        if not isinstance(b, IntImm) and self._in_first_period(a, b):
            return a.constant(0) if is_div else a
        x = self._to_expr(a)
        return _Sum.of(op.floordiv(x, b) if is_div else op.floormod(x, b))

    def _in_first_period(self, a: _Sum, b: PrimExpr) -> bool:
        """0 <= a < b, so that floordiv(a, b) = 0 and floormod(a, b) = a."""
        return self._sum_bound(a)[0] >= 0 and self._sum_bound(a.plus(self._sum(b), -1))[1] < 0

    @staticmethod
    def _split(s: _Sum, c: int) -> tuple[_Sum, _Sum, int]:
        """s = c·q + r; r keeps the terms whose coefficient c does not divide and 0 <= r.const < c.

        Also returns g = gcd(c, r): floordiv(r, c) = floordiv(r/g, c/g), floormod(r, c) = g·floormod(r/g, c/g).
        """
        q_terms, r_terms = {}, {}
        for key, (t, k) in s.terms.items():
            if k % c == 0:
                q_terms[key] = (t, k // c)
            else:
                r_terms[key] = (t, k)
        q_const, r_const = divmod(s.const, c)
        r = _Sum(r_terms, r_const, s.dtype)
        return _Sum(q_terms, q_const, s.dtype), r, math.gcd(c, r.gcd())

    def _div_const(self, s: _Sum, c: int) -> _Sum:
        q, r, g = self._split(s, c)
        r, c = r.exact_div(g), c // g
        period = self._same_period(r, c)
        if period is not None:
            return q.plus(r.constant(period))
        inner = r.single_term()
        if type(inner) is FloorDiv and isinstance(inner.b, IntImm) and inner.b.value > 0:
            # floordiv(floordiv(x, c1) + k, c) = floordiv(x + k·c1, c1·c)
            c1 = inner.b.value
            return q.plus(self._div_const(self._sum(inner.a).plus(r.constant(r.const * c1)), c1 * c))
        return q.plus(_Sum.of(FloorDiv(self._to_expr(r), op.const(c, s.dtype))))

    def _mod_const(self, s: _Sum, c: int) -> _Sum:
        _, r, g = self._split(s, c)
        r, c = r.exact_div(g), c // g
        period = self._same_period(r, c)
        if period is not None:
            return r.plus(r.constant(-period * c)).scale(g)
        inner = r.single_term()
        if type(inner) is FloorMod and isinstance(inner.b, IntImm) and inner.b.value % c == 0:
            # floormod(floormod(x, c1) + k, c) = floormod(x + k, c) when c divides c1
            return self._mod_const(self._sum(inner.a).plus(r.constant(r.const)), c).scale(g)
        return _Sum.of(FloorMod(self._to_expr(r), op.const(c, s.dtype))).scale(g)

    def _same_period(self, r: _Sum, c: int) -> int | None:
        """floordiv(r, c) when it is the same for every value of r."""
        lo, hi = self._sum_bound(r)
        if lo != -INF and hi != INF and lo // c == hi // c:
            return lo // c
        return None

    # ------------------------------------------------------------ comparisons
    def _minmax(self, e: PrimExpr) -> _Sum:
        a, b = self._sum(e.a), self._sum(e.b)
        lo, hi = self._sum_bound(a.plus(b, -1))
        if hi <= 0:
            return a if isinstance(e, Min) else b
        if lo >= 0:
            return b if isinstance(e, Min) else a
        if a.is_const():
            a, b = b, a  # constants last: max(x, 3)
        return _Sum.of(type(e)(self._to_expr(a), self._to_expr(b)))

    def _compare(self, e: CmpOp) -> PrimExpr:
        cls, a, b = type(e), e.a, e.b
        if cls is GT or cls is GE:
            cls, a, b = (LT if cls is GT else LE), b, a
        diff = self._sum(a).plus(self._sum(b), -1)
        known = self._decide(cls, diff)
        if known is not None:
            return op.const(known, "bool")
        # Positive terms on the left, negated negative terms on the right.
        pos = {k: (t, c) for k, (t, c) in diff.terms.items() if c > 0}
        neg = {k: (t, -c) for k, (t, c) in diff.terms.items() if c < 0}
        if pos:
            lhs, rhs = _Sum(pos, 0, diff.dtype), _Sum(neg, -diff.const, diff.dtype)
        else:
            lhs, rhs = diff.constant(diff.const), _Sum(neg, 0, diff.dtype)
        return cls(self._to_expr(lhs), self._to_expr(rhs))

    def _decide(self, cls: type, diff: _Sum) -> bool | None:
        """The value of ``diff <cls> 0`` when the bounds decide it."""
        lo, hi = self._sum_bound(diff)
        if cls is LT:
            return True if hi < 0 else False if lo >= 0 else None
        if cls is LE:
            return True if hi <= 0 else False if lo > 0 else None
        g = math.gcd(*(c for _, c in diff.terms.values()))
        if lo > 0 or hi < 0 or (g > 1 and diff.const % g):
            equal = False
        elif lo == hi == 0:
            equal = True
        else:
            return None
        return equal if cls is EQ else not equal

    # ------------------------------------------------------------ bounds
    def _expr_bound(self, e: PrimExpr) -> NumBound:
        return self._sum_bound(self._sum(e)) if _is_index(e.dtype) else self._cib(e)

    def _sum_bound(self, s: _Sum) -> NumBound:
        lo = hi = s.const
        for t, c in s.terms.values():
            t_lo, t_hi = self._cib(t)
            lo, hi = (lo + c * t_lo, hi + c * t_hi) if c > 0 else (lo + c * t_hi, hi + c * t_lo)
        if self._symbolic and self._depth < 2 and s.terms:
            s_lo, s_hi = self._symbolic_bound(s)
            lo, hi = max(lo, s_lo), min(hi, s_hi)
        return lo, hi

    def _symbolic_bound(self, s: _Sum) -> NumBound:
        """Bounds through symbolic ranges: i - n < 0 when i ranges over [0, n - 1]."""
        e = self._to_expr(s)
        dom = {v: self._ranges[v] for v in collect_vars(e) & self._symbolic}
        if not dom:
            return -INF, INF
        self._depth += 1
        try:
            iv = eval_interval(e, dom, self)
            return (-INF if iv.min is None else self._expr_bound(iv.min)[0],
                    INF if iv.max is None else self._expr_bound(iv.max)[1])
        finally:
            self._depth -= 1

    def _cib(self, e: PrimExpr) -> NumBound:
        """Numeric bounds of a node from its structure."""
        return _cached(self._bounds, e, self._cib_node)

    def _cib_node(self, e: PrimExpr) -> NumBound:
        if isinstance(e, IntImm):
            return e.value, e.value
        if isinstance(e, Var):
            return self._var_bounds.get(e) or _type_bound(e.dtype, isinstance(e, SizeVar))
        rule = _NUMERIC.get(type(e))
        if rule is not None:
            return rule(self._cib(e.a), self._cib(e.b))
        if isinstance(e, Select):
            return _union(self._cib(e.true_value), self._cib(e.false_value))
        if isinstance(e, Call) and e.op == "if_then_else":
            return _union(self._cib(e.args[1]), self._cib(e.args[2]))
        if isinstance(e, Cast) and widens(e.value.dtype, e.dtype):
            return self._cib(e.value)
        return _type_bound(e.dtype, False)


class _ChildRewriter(Mutator):
    """Rebuilds a node from simplified children; the Analyzer then rewrites the node itself."""

    def __init__(self, analyzer: Analyzer):
        self.analyzer = analyzer

    def visit(self, node):
        return self.analyzer.simplify(node) if isinstance(node, PrimExpr) else node


def _fold_float(e: PrimExpr) -> PrimExpr:
    """Fold float constants in the precision of their dtype (division by zero is left alone)."""
    if isinstance(e, Div) and e.b.value == 0:
        return e
    cast = np.dtype(dt.numpy_name(e.dtype)).type
    fn = operator.truediv if isinstance(e, Div) else _FLOAT_FN[type(e)]
    with np.errstate(all="ignore"):
        return op.const(float(fn(cast(e.a.value), cast(e.b.value))), e.dtype)


# ------------------------------------------------------------ numeric intervals
def _type_bound(dtype: str, non_negative: bool) -> NumBound:
    t = dt.parse(dtype)
    if t.is_bool:
        return 0, 1
    return (0 if non_negative or t.is_uint else -INF), INF


def _union(a: NumBound, b: NumBound) -> NumBound:
    return min(a[0], b[0]), max(a[1], b[1])


def _times(x, y):
    return 0 if x == 0 or y == 0 else x * y  # 0 · inf counts as 0


def _num_mul(a: NumBound, b: NumBound) -> NumBound:
    products = [_times(x, y) for x in a for y in b]
    return min(products), max(products)


def _fdiv(x, y: int):
    if x in (INF, -INF):
        return x if y > 0 else -x
    return x // y


def _num_floordiv(a: NumBound, b: NumBound) -> NumBound:
    if -INF < b[0] and b[1] < INF and (b[0] > 0 or b[1] < 0):
        quotients = [_fdiv(x, y) for x in a for y in b]
        return min(quotients), max(quotients)
    return -INF, INF


def _num_floormod(a: NumBound, b: NumBound) -> NumBound:
    if b[0] == b[1] and b[0] > 0 and -INF < a[0] and a[1] < INF and a[0] // b[0] == a[1] // b[0]:
        return a[0] % b[0], a[1] % b[0]
    if b[0] > 0 and b[1] < INF:
        return 0, b[1] - 1
    if b[1] < 0 and b[0] > -INF:
        return b[0] + 1, 0
    return -INF, INF


_NUMERIC = {
    Add: lambda a, b: (a[0] + b[0], a[1] + b[1]),
    Sub: lambda a, b: (a[0] - b[1], a[1] - b[0]),
    Mul: _num_mul,
    FloorDiv: _num_floordiv,
    FloorMod: _num_floormod,
    Min: lambda a, b: (min(a[0], b[0]), min(a[1], b[1])),
    Max: lambda a, b: (max(a[0], b[0]), max(a[1], b[1])),
}


# ------------------------------------------------------------ entry points
def simplify(e: PrimExpr, ranges: dict[Var, tuple[PrimExpr, PrimExpr]] | None = None) -> PrimExpr:
    """Simplify ``e`` knowing ``ranges`` (var -> (min, extent), i.e. min <= var < min + extent)."""
    analyzer = Analyzer()
    for var, rng in (ranges or {}).items():
        analyzer.bind(var, rng)
    return analyzer.simplify(e)


def simplify_stmt(s: Stmt, analyzer: Analyzer | None = None) -> Stmt:
    """Simplify every expression of ``s`` with loop ranges known inside loops; drop dead code.

    Conditions proven true or false keep only their taken branch, loops of
    extent <= 0 vanish, loops of extent 1 become their body with the loop var
    replaced by the loop min, nested sequences are flattened.
    """
    result = _StmtSimplifier(analyzer or Analyzer()).visit(s)
    return result if result is not None else Evaluate(op.const(0))


def _replace(node, **fields):
    """``node`` with some fields replaced; ``node`` itself when nothing changed."""
    if all(getattr(node, k) is v for k, v in fields.items()):
        return node
    return dataclasses.replace(node, **fields)


class _StmtSimplifier(Mutator):
    """Statement walk; ``visit`` returns None for a statement that does nothing."""

    def __init__(self, analyzer: Analyzer):
        self.az = analyzer

    def visit(self, node):
        if node is None:
            return None
        if isinstance(node, PrimExpr):
            return self.az.simplify(node)
        return super().visit(node)

    def visit_For(self, s: For) -> Stmt | None:
        lo, extent = self.visit(s.min), self.visit(s.extent)
        if self.az.can_prove(op.cmp("<=", extent, 0)):
            return None
        if isinstance(extent, IntImm) and extent.value == 1 and not s.thread_tag:  # a bound loop marks a kernel
            return self.visit(substitute(s.body, {s.loop_var: lo}))
        with self.az._scope(s.loop_var, (lo, extent)):
            body = self.visit(s.body)
        return None if body is None else _replace(s, min=lo, extent=extent, body=body)

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt | None:
        cond = self.visit(s.condition)
        if isinstance(cond, IntImm):
            return self.visit(s.then_case if cond.value else s.else_case)
        then_case, else_case = self.visit(s.then_case), self.visit(s.else_case)
        if then_case is None:
            if else_case is None:
                return None
            return IfThenElse(self.az.simplify(op.logical_not(cond)), else_case)
        return _replace(s, condition=cond, then_case=then_case, else_case=else_case)

    def visit_SeqStmt(self, s: SeqStmt) -> Stmt | None:
        parts = [p for p in (self.visit(x) for x in s.seq) if p is not None]
        if not parts:
            return None
        unchanged = len(parts) == len(s.seq) and all(p is x for p, x in zip(parts, s.seq))
        return s if unchanged and not any(isinstance(p, SeqStmt) for p in parts) else seq(*parts)

    def visit_LetStmt(self, s: LetStmt) -> Stmt | None:
        value = self.visit(s.value)
        if _is_index(value.dtype):
            with self.az._scope(s.var, Interval.point(value)):
                body = self.visit(s.body)
        else:
            body = self.visit(s.body)
        return None if body is None else _replace(s, value=value, body=body)

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt | None:
        value = self.visit(s.value)
        var = getattr(s.node, "var", s.node)
        if s.attr_key == "thread_extent" and isinstance(var, Var):
            with self.az._scope(var, (op.const(0, value.dtype), value)):
                body = self.visit(s.body)
        else:
            body = self.visit(s.body)
        return None if body is None else _replace(s, value=value, body=body)

    def visit_Allocate(self, s: Allocate) -> Stmt | None:
        body = self.visit(s.body)
        if body is None:
            return None
        buf = s.buffer
        shape = tuple(self.visit(x) for x in buf.shape)
        strides = tuple(self.visit(x) for x in buf.strides)
        if any(a is not b for a, b in zip(shape + strides, buf.shape + buf.strides)):
            # Buffers compare by identity: the rebuilt one must replace the old one in the body.
            new_buf = dataclasses.replace(buf, shape=shape, strides=strides)
            return Allocate(new_buf, _BufferRemap(buf, new_buf).visit(body))
        return _replace(s, body=body)


class _BufferRemap(Mutator):
    """Points the loads and stores of an allocation at its rebuilt (simplified-shape) Buffer."""

    def __init__(self, old: Buffer, new: Buffer):
        self.old, self.new = old, new

    def visit_BufferLoad(self, e: BufferLoad) -> BufferLoad:
        e = self.generic(e)
        return _replace(e, buffer=self.new) if e.buffer is self.old else e

    def visit_BufferStore(self, s: BufferStore) -> BufferStore:
        s = self.generic(s)
        return _replace(s, buffer=self.new) if s.buffer is self.old else s
