"""Statement nodes of the loop IR and the function that wraps a body.

Immutable dataclasses, like the expressions. A lowered operator is a
``PrimFunc``: its parameters are Buffers (one per tensor argument) whose
shapes may mention symbolic Vars, and its body is a statement tree.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Optional

from ..error import ExprError
from .buffer import Buffer
from .expr import PrimExpr, Var


class Stmt:
    """Base of all statements."""

    __slots__ = ()

    def __repr__(self) -> str:
        from .printer import stmt_to_str
        return stmt_to_str(self)

    __str__ = __repr__


class ForKind(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    VECTORIZED = "vectorized"
    UNROLLED = "unrolled"
    THREAD_BINDING = "thread_binding"


@dataclass(frozen=True, eq=False, repr=False)
class For(Stmt):
    """``for (loop_var = min; loop_var < min + extent; ++loop_var) body``.

    ``thread_tag`` is set for THREAD_BINDING loops (``blockIdx.x``,
    ``threadIdx.y``, ``vthread``...). ``annotations`` carries pragmas.
    """

    loop_var: Var
    min: PrimExpr
    extent: PrimExpr
    kind: ForKind
    body: Stmt
    thread_tag: str = ""
    annotations: tuple = ()  # tuple of (key, value) pairs


@dataclass(frozen=True, eq=False, repr=False)
class BufferStore(Stmt):
    buffer: Buffer
    value: PrimExpr
    indices: tuple


@dataclass(frozen=True, eq=False, repr=False)
class IfThenElse(Stmt):
    condition: PrimExpr
    then_case: Stmt
    else_case: Optional[Stmt] = None


@dataclass(frozen=True, eq=False, repr=False)
class SeqStmt(Stmt):
    seq: tuple  # tuple[Stmt]

    # TVM's SeqStmt is a sequence: ``stmt[0]``, ``len(stmt)``.
    def __getitem__(self, index: int) -> Stmt:
        return self.seq[index]

    def __len__(self) -> int:
        return len(self.seq)

    def __bool__(self) -> bool:  # a statement, even an empty sequence, is not a false value
        return True


@dataclass(frozen=True, eq=False, repr=False)
class Allocate(Stmt):
    """Storage for ``buffer`` (of its scope) that lives for ``body``."""

    buffer: Buffer
    body: Stmt

    # TVM's field names, for scripts that read them.
    @property
    def buffer_var(self) -> Var:
        return self.buffer.data

    @property
    def extents(self) -> tuple:
        return self.buffer.shape

    @property
    def dtype(self) -> str:
        return self.buffer.dtype


@dataclass(frozen=True, eq=False, repr=False)
class AttrStmt(Stmt):
    """An annotation over ``body`` (e.g. ``thread_extent``, ``pragma_*``)."""

    node: Any
    attr_key: str
    value: PrimExpr
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class LetStmt(Stmt):
    var: Var
    value: PrimExpr
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class Evaluate(Stmt):
    value: PrimExpr


def seq(*stmts: Optional[Stmt]) -> Stmt:
    """A SeqStmt of the given statements, flattening nested sequences and dropping None."""
    flat: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            flat.extend(s.seq)
        else:
            flat.append(s)
    if len(flat) == 1:
        return flat[0]
    return SeqStmt(tuple(flat))


@dataclass(frozen=True, eq=False, repr=False)
class PrimFunc:
    """A lowered function.

    ``params`` are the tensor arguments, in call order; ``size_vars`` are the
    symbolic shape variables their shapes mention, in the order the compiled
    function receives their values.
    """

    name: Any  # str; TVM's ``PrimFunc(params, body)`` puts the parameter list here (see __post_init__)
    params: Any  # tuple[Buffer]
    body: Any = None  # Stmt
    size_vars: tuple = ()  # tuple[Var]
    attrs: tuple = field(default=())  # tuple of (key, value)

    def __post_init__(self) -> None:
        """TVM's argument order, ``PrimFunc([A, x, B], body)`` of buffers, ``ir_builder.pointer``s
        and scalar variables (int32/int64/float32/float64, passed by the caller at their positions):
        the function is called "main" (``with_attr("global_symbol", name)`` renames it) and its size
        variables are those of the buffers' shapes, then the scalar parameters."""
        if not isinstance(self.name, (list, tuple)):
            return
        scalars = tuple((pos, p) for pos, p in enumerate(self.name) if isinstance(p, Var) and p.dtype in _SCALARS)
        params = tuple(_param_buffer(p) for p in self.name if not any(p is v for _, v in scalars))
        sizes = [v for b in params for d in b.shape for v in _vars_of(d)] + [v for _, v in scalars]
        attrs = self.attrs + ((("scalar_args", scalars),) if scalars else ())
        for key, value in (("name", "main"), ("params", params), ("body", self.params),
                           ("size_vars", tuple(dict.fromkeys(sizes))), ("attrs", attrs)):
            object.__setattr__(self, key, value)

    def __repr__(self) -> str:
        from .printer import func_to_str
        return func_to_str(self)

    __str__ = __repr__

    def with_body(self, body: Stmt) -> "PrimFunc":
        return PrimFunc(self.name, self.params, body, self.size_vars, self.attrs)

    def with_attr(self, key: str, value: Any) -> "PrimFunc":
        """This function with attribute ``key`` set; ``"global_symbol"`` is its name."""
        attrs = tuple((k, v) for k, v in self.attrs if k != key) + ((key, value),)
        name = str(value) if key == "global_symbol" else self.name
        return PrimFunc(name, self.params, self.body, self.size_vars, attrs)

    def script(self) -> str:
        return str(self)


_SCALARS = ("int32", "int64", "float32", "float64")


def _param_buffer(param: Any) -> Buffer:
    buf = param.asobject() if hasattr(param, "asobject") else param
    if not isinstance(buf, Buffer):
        raise ExprError(f"PrimFunc parameter {param!r}: tecomp functions take buffers (tir.decl_buffer, "
                        "ir_builder.pointer) and int32/int64/float32/float64 scalars, not other scalars")
    return buf


def _vars_of(e: Any) -> list:
    from .functor import collect_vars
    return sorted(collect_vars(e), key=lambda v: v.name)
