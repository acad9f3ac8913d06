"""Buffers: named, typed, shaped regions of memory that loads and stores address.

A Buffer is identified by object identity. ``shape`` may hold symbolic
expressions; ``strides`` is empty for a compact row-major buffer. ``scope``
is ``global`` (function arguments and heap allocations), ``local`` or
``shared`` (GPU storage scopes; on CPUs both are stack allocations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .expr import PrimExpr, Var


@dataclass(frozen=True, eq=False)
class Buffer:
    name: str
    dtype: str
    shape: tuple
    scope: str = "global"
    data: Var = field(default=None)  # type: ignore[assignment]
    strides: tuple = ()
    # TVM's offset of element 0 from ``data``, in elements (a constant or a variable); None is 0.
    # tecomp passes arrays by the address of their element 0, so it never shifts an access:
    # a call is TVM's call with byte_offset = elem_offset * itemsize (see lower/binds.py).
    elem_offset: Any = None
    # TVM's guarantee that elem_offset is a multiple of this (0 or 1: none); tensorize checks it.
    offset_factor: int = 0

    def __post_init__(self):
        if self.data is None:
            object.__setattr__(self, "data", Var(self.name, "handle"))

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"Buffer({self.name}, {self.dtype}, {list(self.shape)}, scope={self.scope})"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def vload(self, begin: Any, dtype: Optional[str] = None) -> PrimExpr:
        """The element at ``begin`` (an index or a tuple of them); TVM's ``Buffer.vload``."""
        from .expr import BufferLoad
        from .op import cast, convert
        idx = tuple(convert(i) for i in (begin if isinstance(begin, (list, tuple)) else (begin,)))
        load = BufferLoad(self, idx)
        return load if dtype is None else cast(load, dtype)

    def vstore(self, begin: Any, value: Any) -> Any:
        """A store of ``value`` at ``begin``; TVM's ``Buffer.vstore``."""
        from .op import cast, convert
        from .stmt import BufferStore
        idx = tuple(convert(i) for i in (begin if isinstance(begin, (list, tuple)) else (begin,)))
        return BufferStore(self, cast(value, self.dtype), idx)

    def access_ptr(self, access_mask: Any = "rw", ptr_type: str = "handle", content_lanes: int = 1,
                   offset: Any = 0, extent: Any = None) -> PrimExpr:
        """The address of element ``offset`` (counted in elements from the buffer's start), TVM's
        ``Buffer.access_ptr``; ``access_mask``, ``ptr_type``, ``content_lanes`` and ``extent`` are
        accepted for compatibility (pointers are untyped here)."""
        from .expr import BufferLoad, Call
        from .ir_builder import flat_view
        from .op import convert
        return Call("handle", "address_of", (BufferLoad(flat_view(self), (convert(offset),)),))

    def row_major_strides(self) -> tuple:
        """Strides of a compact row-major layout of ``shape`` (as expressions)."""
        from .op import const, mul
        strides = []
        acc: PrimExpr = const(1, "int32")
        for extent in reversed(self.shape):
            strides.append(acc)
            acc = mul(acc, extent)
        return tuple(reversed(strides))


def decl_buffer(shape, dtype: str = "float32", name: str = "buffer", data: Optional[Var] = None,
                strides: Optional[Sequence] = None, elem_offset: Any = None, scope: str = "global",
                data_alignment: int = -1, offset_factor: int = 0) -> Buffer:
    """Declare a buffer (TVM's ``tir.decl_buffer``).

    ``strides`` gives a strided layout (constants or variables); ``elem_offset`` (an integer or
    an integer variable) is kept for ``lower(..., binds=)``; as in TVM, a nonzero ``offset_factor``
    without an ``elem_offset`` makes it the variable ``<name>_elem_offset`` (which ``tensorize``
    binds to the region's offset, checked to be a multiple of the factor); ``data_alignment`` up
    to 64 bytes is accepted because tecomp's buffers always start 64-byte aligned.
    """
    from ..error import ExprError
    from .op import convert
    if elem_offset is None and offset_factor:
        elem_offset = Var(f"{name}_elem_offset", "int32")
    if elem_offset is not None:
        elem_offset = convert(elem_offset)
        if not elem_offset.dtype.startswith("int"):
            raise ExprError(f"decl_buffer {name}: elem_offset={elem_offset!r} must be an integer or an "
                            "integer variable")
    if data_alignment > 64:
        raise ExprError(f"decl_buffer {name}: data_alignment={data_alignment} exceeds the 64 bytes tecomp "
                        "guarantees")
    shape = tuple(convert(s) for s in (shape if isinstance(shape, (list, tuple)) else (shape,)))
    stride_exprs = tuple(convert(s) for s in strides) if strides else ()
    if stride_exprs and len(stride_exprs) != len(shape):
        raise ExprError(f"decl_buffer {name}: {len(stride_exprs)} strides for {len(shape)} dimensions")
    return Buffer(name, dtype, shape, scope or "global", data, stride_exprs, elem_offset, int(offset_factor))
