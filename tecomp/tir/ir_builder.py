"""TVM's ``tir.ir_builder``: write loop IR imperatively (the body of a ``te.extern``).

::

    ib = tir.ir_builder.create()
    a, c = ib.buffer_ptr(A), ib.buffer_ptr(C)
    with ib.for_range(0, n, name="i") as i:
        with ib.if_scope(a[i] > 0):
            c[i] = a[i]
        with ib.else_scope():
            c[i] = 0.0
    stmt = ib.get()

A ``buffer_ptr`` is indexed by one flat element offset, as TVM's pointers
are: it is a one-dimensional view sharing the buffer's data. This module
builds statements only; lowering places them (``tecomp.lower.extern``).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Optional, Union

from ..error import ExprError
from . import dtype as dt
from . import op as _op
from .buffer import Buffer
from .expr import BufferLoad, IntImm, PrimExpr, SizeVar, Var
from .stmt import Allocate, AttrStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt, Stmt, seq

_KINDS = {"serial": ForKind.SERIAL, "parallel": ForKind.PARALLEL, "vectorize": ForKind.VECTORIZED,
          "unroll": ForKind.UNROLLED}


class BufferVar:
    """A flat pointer view of a buffer: ``p[i]`` loads, ``p[i] = v`` stores at element ``i``."""

    def __init__(self, builder: "IRBuilder", buffer: Buffer):
        self._builder = builder
        self.buffer = buffer

    @property
    def dtype(self) -> str:
        return self.buffer.dtype

    def asobject(self) -> Buffer:
        return self.buffer

    def __getitem__(self, index: Any) -> PrimExpr:
        return BufferLoad(self.buffer, (_index(index, self.buffer.name),))

    def __setitem__(self, index: Any, value: Any) -> None:
        value = _op.convert(value)
        lanes = dt.lanes(value.dtype)
        value = _op.cast(value, dt.with_lanes(self.buffer.dtype, lanes) if lanes > 1 else self.buffer.dtype)
        self._builder.emit(BufferStore(self.buffer, value, (_index(index, self.buffer.name),)))


def _index(index: Any, name: str) -> PrimExpr:
    e = _op.convert(index)
    if not e.dtype.startswith(("int", "uint")):
        raise ExprError(f"ir_builder: index of {name} must be an integer expression, got {e} ({e.dtype})")
    return e


def flat_view(buf: Buffer) -> Buffer:
    """A one-dimensional buffer over ``buf``'s data (same data variable, its element count long)."""
    if len(buf.shape) == 1 and not buf.strides:
        return buf
    size: Any = math.prod(int(d) for d in buf.shape) if all(isinstance(d, IntImm) for d in buf.shape) else None
    if size is None:
        size = _op.const(1, "int32")
        for d in buf.shape:
            size = _op.mul(size, d)
    elif buf.strides:
        size = _op.mul(buf.strides[0], buf.shape[0])
    return Buffer(buf.name, buf.dtype, (_op.convert(size),), buf.scope, buf.data)


class IRBuilder:
    """Collects statements; ``with`` scopes nest them (see the module docstring)."""

    def __init__(self) -> None:
        self._seqs: list[list] = [[]]

    def emit(self, stmt: Union[Stmt, PrimExpr, Callable[[Stmt], Stmt]]) -> None:
        """Append a statement (an expression becomes an ``Evaluate``)."""
        if isinstance(stmt, PrimExpr):
            stmt = Evaluate(stmt)
        if not isinstance(stmt, Stmt) and not callable(stmt):
            raise ExprError(f"ir_builder.emit expects a statement or an expression, got {stmt!r}")
        self._seqs[-1].append(stmt)

    def _pop_seq(self) -> Stmt:
        """The innermost sequence as one statement; a wrapper entry wraps everything after it."""
        body: Optional[Stmt] = None
        for item in reversed(self._seqs.pop()):
            body = item(body if body is not None else Evaluate(_op.const(0))) if callable(item) else seq(item, body)
        return body if body is not None else Evaluate(_op.const(0))

    @contextlib.contextmanager
    def for_range(self, begin: Any, end: Any, name: str = "i", dtype: str = "int32",
                  kind: str = "serial") -> Iterator[Var]:
        """A loop ``for name in [begin, end)``; ``kind``: serial, parallel, vectorize or unroll."""
        if kind not in _KINDS:
            raise ExprError(f"ir_builder.for_range: kind {kind!r} is not one of {', '.join(_KINDS)}")
        loop_var = Var(name, dtype)
        lo, hi = _op.cast(begin, dtype), _op.cast(end, dtype)
        self._seqs.append([])
        yield loop_var
        body = self._pop_seq()
        self.emit(For(loop_var, lo, _op.sub(hi, lo), _KINDS[kind], body))

    @contextlib.contextmanager
    def if_scope(self, cond: Any) -> Iterator[None]:
        """Statements run only when ``cond`` holds."""
        cond = _op.convert(cond)
        self._seqs.append([])
        yield
        self.emit(IfThenElse(cond, self._pop_seq()))

    @contextlib.contextmanager
    def else_scope(self) -> Iterator[None]:
        """The else branch of the ``if_scope`` just closed."""
        prev = self._seqs[-1][-1] if self._seqs[-1] else None
        if not isinstance(prev, IfThenElse) or prev.else_case is not None:
            raise ExprError("ir_builder.else_scope must directly follow an if_scope")
        self._seqs[-1].pop()
        self._seqs.append([])
        yield
        self.emit(IfThenElse(prev.condition, prev.then_case, self._pop_seq()))

    @contextlib.contextmanager
    def new_scope(self) -> Iterator[None]:
        """A nested sequence (allocations and attributes inside stay inside)."""
        self._seqs.append([])
        yield
        self.emit(self._pop_seq())

    def scope_attr(self, node: Any, attr_key: str, value: Any) -> None:
        """An ``AttrStmt`` over the rest of the current scope."""
        value = _op.convert(value) if not isinstance(value, str) else value
        self.emit(lambda body: AttrStmt(node, attr_key, value, body))

    def let(self, name: str, value: Any) -> Var:
        """A variable bound to ``value`` for the rest of the current scope."""
        value = _op.convert(value)
        v = Var(name, value.dtype)
        self.emit(lambda body: LetStmt(v, value, body))
        return v

    def allocate(self, dtype: str, shape: Any, name: str = "buf", scope: str = "global") -> BufferVar:
        """Storage for the rest of the current scope, indexed flat."""
        dims = shape if isinstance(shape, (list, tuple)) else (shape,)
        buf = flat_view(Buffer(name, dtype, tuple(_op.convert(d) for d in dims), scope or "global"))
        self.emit(lambda body: Allocate(buf, body))
        return BufferVar(self, buf)

    def pointer(self, content_type: str, name: str = "ptr", scope: str = "global") -> BufferVar:
        """A pointer parameter of a hand-built ``PrimFunc([ptr], body)``: a flat buffer of
        ``content_type`` whose length (``<name>_len``) is the argument array's."""
        length = SizeVar(f"{name}_len", "int32")
        return BufferVar(self, Buffer(name, str(dt.parse(content_type)), (length,), scope or "global"))

    def buffer_ptr(self, buf: Buffer, shape: Any = None) -> BufferVar:
        """A flat pointer view of ``buf`` (a ``te.extern`` input or output buffer)."""
        if not isinstance(buf, Buffer):
            raise ExprError(f"ir_builder.buffer_ptr expects a Buffer (from decl_buffer or te.extern), got {buf!r}")
        return BufferVar(self, flat_view(buf))

    def get(self) -> Stmt:
        """The statement built so far."""
        if len(self._seqs) != 1:
            raise ExprError("ir_builder.get called inside an open scope")
        stmt = self._pop_seq()
        self._seqs.append([])
        return stmt


def create() -> IRBuilder:
    """A new IR builder."""
    return IRBuilder()
