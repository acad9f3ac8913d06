"""Storage flatten: multi-dimensional accesses become one flat element offset.

Parameter buffers keep their (possibly symbolic) shapes and are addressed
row-major; an allocated buffer with explicit strides (``storage_align``) uses them. Each allocated buffer is replaced by a one-dimensional buffer of
its total size, so code generators see a single index per access.
"""

from __future__ import annotations

import math
from typing import Any

from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import BufferLoad, IntImm, PrimExpr
from ..tir.functor import Mutator
from ..tir.stmt import Allocate, BufferStore, Stmt


def flat_index(buf: Buffer, indices: tuple) -> PrimExpr:
    """Row-major element offset of ``indices`` in ``buf``."""
    if not indices:
        return _op.const(0, "int32")
    strides = buf.strides or buf.row_major_strides()
    result: PrimExpr = _op.const(0, indices[0].dtype)
    for idx, stride in zip(indices, strides):
        result = _op.add(result, _op.mul(idx, stride))
    return result


class _Flatten(Mutator):
    def __init__(self) -> None:
        self.flat: dict[Buffer, Buffer] = {}

    def _target(self, buf: Buffer) -> Buffer:
        return self.flat.get(buf, buf)

    def visit_Allocate(self, node: Allocate) -> Any:
        size: PrimExpr = _op.const(1, "int32")
        extents = [int(e) for e in node.buffer.shape if isinstance(e, IntImm)]
        if not node.buffer.strides and len(extents) == len(node.buffer.shape):
            count = math.prod(extents)  # in Python: an int32 product would wrap for a huge buffer
            size = _op.const(count, "int32" if count < 2**31 else "int64")
        elif node.buffer.strides:
            size = _op.mul(node.buffer.strides[0], node.buffer.shape[0])
        else:
            for extent in node.buffer.shape:
                size = _op.mul(size, extent)
        # The same data variable: a te.extern body may address the buffer through a flat view of it.
        flat = Buffer(node.buffer.name, node.buffer.dtype, (size,), node.buffer.scope, node.buffer.data)
        self.flat[node.buffer] = flat
        return Allocate(flat, self.visit(node.body))

    def visit_BufferLoad(self, node: BufferLoad) -> Any:
        indices = tuple(self.visit(i) for i in node.indices)
        return BufferLoad(self._target(node.buffer), (flat_index(node.buffer, indices),))

    def visit_BufferStore(self, node: BufferStore) -> Any:
        indices = tuple(self.visit(i) for i in node.indices)
        value = self.visit(node.value)
        return BufferStore(self._target(node.buffer), value, (flat_index(node.buffer, indices),))


def flatten_storage(stmt: Stmt) -> Stmt:
    """The statement with every access flattened (see the module docstring)."""
    return _Flatten().visit(stmt)
