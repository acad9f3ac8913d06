"""Buffers: named, typed, shaped regions of memory that loads and stores address.

A Buffer is identified by object identity. ``shape`` may hold symbolic
expressions; ``strides`` is empty for a compact row-major buffer. ``scope``
is ``global`` (function arguments and heap allocations), ``local`` or
``shared`` (GPU storage scopes; on CPUs both are stack allocations).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .expr import PrimExpr, Var


@dataclass(frozen=True, eq=False)
class Buffer:
    name: str
    dtype: str
    shape: tuple
    scope: str = "global"
    data: Var = field(default=None)  # type: ignore[assignment]
    strides: tuple = ()

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

    def row_major_strides(self) -> tuple:
        """Strides of a compact row-major layout of ``shape`` (as expressions)."""
        from .op import const, mul
        strides = []
        acc: PrimExpr = const(1, "int32")
        for extent in reversed(self.shape):
            strides.append(acc)
            acc = mul(acc, extent)
        return tuple(reversed(strides))


def decl_buffer(shape, dtype: str = "float32", name: str = "buffer", scope: str = "global") -> Buffer:
    """Declare a buffer (TVM's ``tir.decl_buffer``)."""
    from .op import convert
    return Buffer(name, dtype, tuple(convert(s) for s in shape), scope)
