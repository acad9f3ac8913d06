"""Symbolic interval arithmetic over integer index expressions.

Owns the ``Interval`` value type and ``eval_interval``, which bounds an
expression while some of its variables range over intervals; bound inference
is built on it. Bounds are inclusive and may be symbolic expressions; ``None``
means unbounded on that side. Every bound is sound: a rule that cannot bound a
side answers ``None``, never a guess.

Must not: rewrite the expression being bounded, or know about schedules.
Simplifying the bound expressions is delegated to
:class:`tecomp.tir.simplify.Analyzer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional

from . import dtype as dt
from . import op
from .expr import Call, IntImm, PrimExpr, Var, is_const_int
from .functor import collect_vars, structural_equal

if TYPE_CHECKING:
    from .simplify import Analyzer

Bound = Optional[PrimExpr]


@dataclass(frozen=True, eq=False)
class Interval:
    """The inclusive range ``[min, max]``; a ``None`` side is unbounded."""

    min: Bound
    max: Bound

    @staticmethod
    def point(e: PrimExpr | int) -> "Interval":
        """The single value ``[e, e]``."""
        e = op.convert(e)
        return Interval(e, e)

    @staticmethod
    def everything() -> "Interval":
        return Interval(None, None)

    @staticmethod
    def from_range(min: PrimExpr | int, extent: PrimExpr | int,
                   analyzer: "Analyzer | None" = None) -> "Interval":
        """The values of a loop ``(min, extent)``: ``[min, min + extent - 1]``."""
        lo = op.convert(min)
        return Interval(lo, _analyzer(analyzer).simplify(op.sub(op.add(lo, extent), 1)))

    @property
    def is_point(self) -> bool:
        return self.min is not None and self.max is not None and structural_equal(self.min, self.max)

    @property
    def is_bounded(self) -> bool:
        return self.min is not None and self.max is not None

    def extent(self, analyzer: "Analyzer | None" = None) -> Bound:
        """``max - min + 1`` simplified, or None when a side is unbounded."""
        if not self.is_bounded:
            return None
        return _analyzer(analyzer).simplify(op.add(op.sub(self.max, self.min), 1))

    def union(self, other: "Interval", analyzer: "Analyzer | None" = None) -> "Interval":
        """The smallest interval (with min/max bounds) holding both, simplified."""
        az = _analyzer(analyzer)
        return Interval(_simplified(az, _both(op.min_expr, self.min, other.min)),
                        _simplified(az, _both(op.max_expr, self.max, other.max)))


def widens(src: str, dst: str) -> bool:
    """True when every value of the scalar integer (or bool) dtype ``src`` fits in ``dst``."""
    s, d = dt.parse(src), dt.parse(dst)
    if s.lanes != 1 or d.lanes != 1 or not s.is_integral or not d.is_integral or d.is_bool:
        return False
    if s.is_bool:
        return True
    if s.code == d.code:
        return d.bits >= s.bits
    return s.is_uint and d.is_int and d.bits > s.bits


def eval_interval(expr: PrimExpr, dom: dict[Var, Interval],
                  analyzer: "Analyzer | None" = None) -> Interval:
    """Bounds of ``expr`` while each Var of ``dom`` ranges over its interval.

    Vars not in ``dom`` are fixed symbols (the point ``[v, v]``). Exact for
    affine expressions; the returned bounds are simplified with ``analyzer``.
    """
    az = _analyzer(analyzer)
    iv = _Eval(dom, az).eval(op.convert(expr))
    return Interval(_simplified(az, iv.min), _simplified(az, iv.max))


def _analyzer(analyzer: "Analyzer | None") -> "Analyzer":
    if analyzer is not None:
        return analyzer
    from .simplify import Analyzer
    return Analyzer()


def _simplified(az: "Analyzer", e: Bound) -> Bound:
    return None if e is None else az.simplify(e)


def _number(b: Bound, unbounded: float) -> int | float | None:
    """A constant bound as a number (``unbounded`` for None); None when symbolic."""
    if b is None:
        return unbounded
    return b.value if isinstance(b, IntImm) else None


def _both(f: Callable, x: Bound, y: Bound) -> Bound:
    """f(x, y), unbounded when either side is."""
    return None if x is None or y is None else f(x, y)


def _either(f: Callable, x: Bound, y: Bound) -> Bound:
    """f(x, y) where an unbounded side does not constrain the result (min of maxes...)."""
    if x is None:
        return y
    return x if y is None else f(x, y)


class _Eval:
    """One evaluation: ``dom`` fixed, results memoized per node (the IR is a DAG)."""

    def __init__(self, dom: dict[Var, Interval], az: "Analyzer"):
        self.dom = dom
        self.az = az
        self.memo: dict[int, tuple[PrimExpr, Interval]] = {}

    def eval(self, e: PrimExpr) -> Interval:
        hit = self.memo.get(id(e))
        if hit is not None and hit[0] is e:
            return hit[1]
        result = self._eval(e)
        self.memo[id(e)] = (e, result)
        return result

    def _eval(self, e: PrimExpr) -> Interval:
        if isinstance(e, Var):
            return self.dom.get(e) or Interval.point(e)
        if isinstance(e, IntImm):
            return Interval.point(e)
        t = dt.parse(e.dtype)
        if t.lanes == 1 and t.code in ("int", "uint"):
            rule = getattr(self, "_eval_" + type(e).__name__, None)
            if rule is not None:
                return rule(e)
            if isinstance(e, Call) and e.op == "if_then_else":
                return self._union(self.eval(e.args[1]), self.eval(e.args[2]))
        return self._opaque(e)

    def _opaque(self, e: PrimExpr) -> Interval:
        """A node without a rule: exact if it does not vary, else only its type's range."""
        if not collect_vars(e) & self.dom.keys():
            return Interval.point(e)
        if dt.is_bool(e.dtype) and dt.lanes(e.dtype) == 1:
            return Interval(op.const(False), op.const(True))
        return Interval.everything()

    def _sign(self, k: PrimExpr, strict: bool) -> int:
        """1 if k >= 0 (k > 0 when strict), -1 if k <= 0 (k < 0), else 0."""
        lo, hi = self.az.const_int_bound(k)
        if lo is not None and lo >= int(strict):
            return 1
        if hi is not None and hi <= -int(strict):
            return -1
        return 0

    @staticmethod
    def _union(a: Interval, b: Interval) -> Interval:
        return Interval(_both(op.min_expr, a.min, b.min), _both(op.max_expr, a.max, b.max))

    def _eval_Add(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        return Interval(_both(op.add, a.min, b.min), _both(op.add, a.max, b.max))

    def _eval_Sub(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        return Interval(_both(op.sub, a.min, b.max), _both(op.sub, a.max, b.min))

    def _eval_Mul(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        if a.is_point and b.is_point:
            return Interval.point(op.mul(a.min, b.min))
        if b.is_point:
            return self._scale(a, b.min)
        if a.is_point:
            return self._scale(b, a.min)
        corners = [_number(a.min, -math.inf), _number(a.max, math.inf),
                   _number(b.min, -math.inf), _number(b.max, math.inf)]
        if None in corners:
            return Interval.everything()
        # Products of constant (or infinite) corners; 0 * inf is 0 as every value is finite.
        products = [0 if p == 0 or q == 0 else p * q for p in corners[:2] for q in corners[2:]]
        lo, hi = min(products), max(products)
        return Interval(None if lo == -math.inf else op.const(lo, e.dtype),
                        None if hi == math.inf else op.const(hi, e.dtype))

    def _scale(self, iv: Interval, k: PrimExpr) -> Interval:
        sign = self._sign(k, strict=False)
        lo, hi = _both(op.mul, iv.min, k), _both(op.mul, iv.max, k)
        if sign > 0:
            return Interval(lo, hi)
        return Interval(hi, lo) if sign < 0 else Interval.everything()

    def _eval_FloorDiv(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        if a.is_point and b.is_point:
            return Interval.point(op.floordiv(a.min, b.min))
        sign = self._sign(b.min, strict=True) if b.is_point else 0
        lo, hi = _both(op.floordiv, a.min, b.min), _both(op.floordiv, a.max, b.min)
        if sign > 0:
            return Interval(lo, hi)
        return Interval(hi, lo) if sign < 0 else Interval.everything()

    def _eval_FloorMod(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        if a.is_point and b.is_point:
            return Interval.point(op.floormod(a.min, b.min))
        sign = self._sign(b.min, strict=True) if b.is_point else 0
        if sign > 0:
            return self._mod_positive(a, b.min)
        if sign < 0:
            return Interval(op.add(b.min, 1), op.const(0, e.dtype))
        return Interval.everything()

    def _mod_positive(self, a: Interval, c: PrimExpr) -> Interval:
        """floormod over a by c > 0: a shifted when a lies within one period of c.

        That holds when both ends fall in the same period, or when a is an aligned tile: its
        length n divides both c and a.min, so a.min mod c <= c - n (a split of a fused loop
        whose factor divides the inner extent)."""
        if a.is_bounded:
            k = self.az.simplify(op.floordiv(a.min, c))
            if structural_equal(k, self.az.simplify(op.floordiv(a.max, c))):
                base = op.mul(k, c)
                return Interval(op.sub(a.min, base), op.sub(a.max, base))
            n = self.az.simplify(op.add(op.sub(a.max, a.min), 1))
            if self._sign(n, strict=True) > 0 and self._divides(n, c) and self._divides(n, a.min):
                low = op.floormod(a.min, c)
                return Interval(low, op.add(low, op.sub(n, 1)))
        return Interval(op.const(0, c.dtype), op.sub(c, 1))

    def _divides(self, n: PrimExpr, x: PrimExpr) -> bool:
        return is_const_int(self.az.simplify(op.floormod(x, n)), 0)

    def _eval_Min(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        return Interval(_both(op.min_expr, a.min, b.min), _either(op.min_expr, a.max, b.max))

    def _eval_Max(self, e) -> Interval:
        a, b = self.eval(e.a), self.eval(e.b)
        return Interval(_either(op.max_expr, a.min, b.min), _both(op.max_expr, a.max, b.max))

    def _eval_Select(self, e) -> Interval:
        return self._union(self.eval(e.true_value), self.eval(e.false_value))

    def _eval_Cast(self, e) -> Interval:
        v = self.eval(e.value)
        if v.is_point:
            return Interval.point(op.cast(v.min, e.dtype))
        if widens(e.value.dtype, e.dtype):
            return Interval(_both(op.cast, v.min, e.dtype), _both(op.cast, v.max, e.dtype))
        return Interval.everything()

    def _eval_Let(self, e) -> Interval:
        return _Eval({**self.dom, e.var: self.eval(e.value)}, self.az).eval(e.body)
