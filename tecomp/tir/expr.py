"""Expression nodes of the loop IR.

Every node is an immutable (frozen) dataclass. Nodes compare and hash by
identity, because ``a == b`` on an expression builds an ``EQ`` node the way
TVM's does; use :func:`tecomp.tir.functor.structural_equal` to compare trees.
Python operators on expressions are defined in ``ExprOp`` and build nodes
through :mod:`tecomp.tir.op`, which owns constant conversion and dtype
promotion. This module defines data only: no simplification, no printing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Optional

from ..error import ExprError

_ids = itertools.count()


class ExprOp:
    """Python operator overloading shared by expressions and iteration variables."""

    __slots__ = ()

    def __add__(self, other):
        return _op().add(self, other)

    def __radd__(self, other):
        return _op().add(other, self)

    def __sub__(self, other):
        return _op().sub(self, other)

    def __rsub__(self, other):
        return _op().sub(other, self)

    def __mul__(self, other):
        return _op().mul(self, other)

    def __rmul__(self, other):
        return _op().mul(other, self)

    def __truediv__(self, other):
        return _op().div(self, other)

    def __rtruediv__(self, other):
        return _op().div(other, self)

    def __floordiv__(self, other):
        return _op().floordiv(self, other)

    def __rfloordiv__(self, other):
        return _op().floordiv(other, self)

    def __mod__(self, other):
        return _op().floormod(self, other)

    def __rmod__(self, other):
        return _op().floormod(other, self)

    def __neg__(self):
        return _op().neg(self)

    def __lt__(self, other):
        return _op().cmp("<", self, other)

    def __le__(self, other):
        return _op().cmp("<=", self, other)

    def __gt__(self, other):
        return _op().cmp(">", self, other)

    def __ge__(self, other):
        return _op().cmp(">=", self, other)

    def __eq__(self, other):
        if other is None:
            return False
        return _op().cmp("==", self, other)

    def __ne__(self, other):
        if other is None:
            return True
        return _op().cmp("!=", self, other)

    def __and__(self, other):
        return _op().logical_and(self, other)

    def __or__(self, other):
        return _op().logical_or(self, other)

    def __invert__(self):
        return _op().logical_not(self)

    def __hash__(self):
        return id(self)

    def __bool__(self):
        raise ExprError(
            f"cannot use the symbolic expression {self} as a Python bool; "
            "use te.all/te.any/te.if_then_else to build conditions")

    def astype(self, dtype: str) -> "PrimExpr":
        return _op().cast(self, dtype)

    def equal(self, other) -> "PrimExpr":
        """TVM's ``a.equal(b)``: the expression ``a == b``."""
        return _op().cmp("==", self, other)


def _op():
    from . import op
    return op


@dataclass(frozen=True, eq=False, repr=False)
class PrimExpr(ExprOp):
    """Base of all scalar/vector expressions; ``dtype`` is a dtype string."""

    def __repr__(self) -> str:
        from .printer import expr_to_str
        return expr_to_str(self)

    __str__ = __repr__
    __hash__ = ExprOp.__hash__
    __eq__ = ExprOp.__eq__
    __ne__ = ExprOp.__ne__


# ---------------------------------------------------------------- leaves

@dataclass(frozen=True, eq=False, repr=False)
class IntImm(PrimExpr):
    dtype: str
    value: int

    def __int__(self) -> int:
        return self.value

    def __index__(self) -> int:
        return self.value


@dataclass(frozen=True, eq=False, repr=False)
class FloatImm(PrimExpr):
    dtype: str
    value: float

    def __float__(self) -> float:
        return self.value


@dataclass(frozen=True, eq=False, repr=False)
class StringImm(PrimExpr):
    value: str
    dtype: str = "handle"


@dataclass(frozen=True, eq=False, repr=False)
class Var(PrimExpr):
    """A symbolic variable; two Vars are the same only if they are the same object."""

    name: str
    dtype: str = "int32"
    uid: int = field(default_factory=lambda: next(_ids), compare=False)


@dataclass(frozen=True, eq=False, repr=False)
class SizeVar(Var):
    """A Var known to be non-negative (a shape dimension)."""


# ---------------------------------------------------------------- arithmetic

@dataclass(frozen=True, eq=False, repr=False)
class Cast(PrimExpr):
    dtype: str
    value: PrimExpr


@dataclass(frozen=True, eq=False, repr=False)
class BinaryOp(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.a.dtype


class Add(BinaryOp):
    pass


class Sub(BinaryOp):
    pass


class Mul(BinaryOp):
    pass


class Div(BinaryOp):
    """True division on floats (integer operands are rejected when built)."""


class FloorDiv(BinaryOp):
    pass


class FloorMod(BinaryOp):
    pass


class Min(BinaryOp):
    pass


class Max(BinaryOp):
    pass


@dataclass(frozen=True, eq=False, repr=False)
class CmpOp(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        from .dtype import lanes
        n = lanes(self.a.dtype)
        return "bool" if n == 1 else f"boolx{n}"


class EQ(CmpOp):
    def __bool__(self) -> bool:
        # Lets Python containers compare expressions by identity, as TVM does.
        return self.a is self.b


class NE(CmpOp):
    def __bool__(self) -> bool:
        return self.a is not self.b


class LT(CmpOp):
    pass


class LE(CmpOp):
    pass


class GT(CmpOp):
    pass


class GE(CmpOp):
    pass


@dataclass(frozen=True, eq=False, repr=False)
class And(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.a.dtype


@dataclass(frozen=True, eq=False, repr=False)
class Or(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.a.dtype


@dataclass(frozen=True, eq=False, repr=False)
class Not(PrimExpr):
    a: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.a.dtype


@dataclass(frozen=True, eq=False, repr=False)
class Select(PrimExpr):
    """Both branches are evaluated; see the ``if_then_else`` Call for a guarded choice."""

    condition: PrimExpr
    true_value: PrimExpr
    false_value: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.true_value.dtype


class Op(str):
    """A Call's operator: its tecomp name (``exp``, ``call_extern``), which it equals as a string;
    ``.name`` is TVM's (``tir.exp``), what an intrinsic lowering rule reads as ``call.op.name``."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return "tir." + self


@dataclass(frozen=True, eq=False, repr=False)
class Call(PrimExpr):
    """An intrinsic call by name.

    Names in use: the math intrinsics (exp, log, sqrt, rsqrt, tanh, sigmoid,
    erf, fabs, pow, floor, ceil), ``if_then_else`` (only the taken branch is
    evaluated, so it may guard an out-of-bounds load) and, in statements,
    ``tvm_storage_sync`` and the tensor core builtins of :mod:`.wmma`.
    """

    dtype: str
    op: str  # an Op: the name, ``.name`` TVM's
    args: tuple

    def __post_init__(self) -> None:
        """As TVM's ``tir.Call(dtype, "tir.name", [x, 0, 3])``: the ``tir.`` prefix dropped, a list
        of arguments a tuple, Python numbers constants."""
        if type(self.op) is not Op:
            object.__setattr__(self, "op", Op(self.op[len("tir."):] if self.op.startswith("tir.") else self.op))
        if not isinstance(self.args, tuple) or any(isinstance(a, (int, float)) for a in self.args):
            from .op import convert
            args = tuple(convert(a) if isinstance(a, (int, float)) else a for a in self.args)
            object.__setattr__(self, "args", args)


@dataclass(frozen=True, eq=False, repr=False)
class Let(PrimExpr):
    var: Var
    value: PrimExpr
    body: PrimExpr

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.body.dtype


# ---------------------------------------------------------------- vectors

@dataclass(frozen=True, eq=False, repr=False)
class Ramp(PrimExpr):
    """The vector (base, base+stride, ..., base+(lanes-1)*stride)."""

    base: PrimExpr
    stride: PrimExpr
    lanes: int

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return f"{self.base.dtype}x{self.lanes}"


@dataclass(frozen=True, eq=False, repr=False)
class Broadcast(PrimExpr):
    value: PrimExpr
    lanes: int

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return f"{self.value.dtype}x{self.lanes}"


@dataclass(frozen=True, eq=False, repr=False)
class Shuffle(PrimExpr):
    """TVM's ``tir.Shuffle(vectors, indices)``: the lanes of ``vectors`` (scalars count as one lane)
    concatenated, then lane ``indices[k]`` of that as lane ``k`` of the result."""

    vectors: tuple  # tuple[PrimExpr], one element dtype
    indices: tuple  # tuple[IntImm]

    def __post_init__(self) -> None:
        from .dtype import element_of, lanes
        from .op import convert
        vectors = tuple(convert(v) for v in self.vectors)
        indices = tuple(convert(i) for i in self.indices)
        if not vectors or len({element_of(v.dtype) for v in vectors}) != 1:
            raise ExprError(f"Shuffle: the vectors must be one or more, of one element type; got "
                            f"{[v.dtype for v in vectors]}")
        total = sum(lanes(v.dtype) for v in vectors)
        if not indices or not all(isinstance(i, IntImm) and 0 <= i.value < total for i in indices):
            raise ExprError(f"Shuffle: indices must be constants in [0, {total}), got {[str(i) for i in indices]}")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "indices", indices)

    @property
    def dtype(self) -> str:  # type: ignore[override]
        from .dtype import element_of, with_lanes
        elem = element_of(self.vectors[0].dtype)
        return with_lanes(elem, len(self.indices)) if len(self.indices) > 1 else elem


# ---------------------------------------------------------------- memory

@dataclass(frozen=True, eq=False, repr=False)
class BufferLoad(PrimExpr):
    """A load from a Buffer. After storage flatten ``indices`` has one entry;
    a Ramp index makes it a vector load."""

    buffer: Any  # tecomp.tir.buffer.Buffer
    indices: tuple

    @property
    def dtype(self) -> str:  # type: ignore[override]
        from .dtype import lanes
        n = max((lanes(i.dtype) for i in self.indices), default=1)
        return self.buffer.dtype if n == 1 else f"{self.buffer.dtype}x{n}"


@dataclass(frozen=True, eq=False, repr=False)
class ProducerLoad(PrimExpr):
    """``T[i, j]`` on a te Tensor, before lowering turns it into a BufferLoad."""

    producer: Any  # tecomp.te.tensor.Tensor
    indices: tuple

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.producer.dtype


# ---------------------------------------------------------------- reductions

@dataclass(frozen=True, eq=False, repr=False)
class CommReducer:
    """A commutative reducer: ``result = combine(lhs, rhs)`` with an identity."""

    lhs: tuple          # tuple[Var]
    rhs: tuple          # tuple[Var]
    result: tuple       # tuple[PrimExpr] over lhs and rhs
    identity: tuple     # tuple[PrimExpr]
    name: str = "reduce"
    # with ``init=``, ``identity`` holds the init values and this the reducer's own identity
    # (what a partial reduction, rfactor's, starts from); None otherwise
    plain_identity: Optional[tuple] = None

    def without_init(self) -> "CommReducer":
        """This reducer starting from its own identity rather than an ``init=`` value."""
        if self.plain_identity is None:
            return self
        return CommReducer(self.lhs, self.rhs, self.result, self.plain_identity, self.name)

    def combine(self, lhs_values, rhs_values) -> tuple:
        from .functor import substitute
        vmap = dict(zip(self.lhs, lhs_values))
        vmap.update(zip(self.rhs, rhs_values))
        return tuple(substitute(r, vmap) for r in self.result)


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(PrimExpr):
    combiner: CommReducer
    source: tuple       # tuple[PrimExpr], one per reducer value
    axis: tuple         # tuple[IterVar]
    condition: PrimExpr
    value_index: int = 0

    @property
    def dtype(self) -> str:  # type: ignore[override]
        return self.source[self.value_index].dtype


def is_const_int(e: Any, value: Optional[int] = None) -> bool:
    """True when ``e`` is an IntImm (with the given value, if any)."""
    return isinstance(e, IntImm) and (value is None or e.value == value)
