"""``lower(..., binds={tensor: buffer})``: the caller's buffer for an argument tensor.

TVM's ``binds`` gives an argument the buffer declared with ``tir.decl_buffer``: its strides
(constants, or variables bound from the array passed at each call), so the function reads
and writes a non-compact array such as a strided view of a larger one, and its
``elem_offset``. The array passed holds the buffer from its element 0: a call passes it as TVM
passes a DLTensor whose byte_offset is ``elem_offset * itemsize``, so a constant offset is
honoured and a variable one is 0 (a multiple of any ``offset_factor``); no access moves.
"""

from __future__ import annotations

from typing import Optional

from ..error import LoweringError
from ..te.tensor import Tensor
from ..tir import op as _op
from ..tir.buffer import Buffer
from ..tir.expr import PrimExpr
from ..tir.functor import collect_vars
from ..tir.simplify import Analyzer


def check_binds(binds: Optional[dict], tensors: list[Tensor]) -> dict:
    """``binds`` keyed by argument tensor (empty when None); LoweringError for a key that is not an
    argument or a value that is not a buffer."""
    if not binds:
        return {}
    if not isinstance(binds, dict):
        raise LoweringError(f"binds must be a dict from tensors to tir.decl_buffer buffers, got {type(binds).__name__}")
    for tensor, buf in binds.items():
        if not isinstance(tensor, Tensor):
            raise LoweringError(f"binds key {tensor!r} is not a tensor")
        if not any(tensor is t for t in tensors):
            raise LoweringError(f"binds: tensor {tensor.name} is not in the argument list; tecomp binds "
                                "buffers to arguments only (intermediate tensors get their own storage)")
        if not isinstance(buf, Buffer):
            raise LoweringError(f"binds[{tensor.name}] is {buf!r}, not a buffer from tir.decl_buffer")
    return binds


def param_buffer(tensor: Tensor, dtype: str, shape: tuple, binds: dict, analyzer: Analyzer) -> Buffer:
    """The parameter buffer of argument ``tensor``: compact row-major unless ``binds`` gives one."""
    declared = binds.get(tensor)
    if declared is None:
        return Buffer(tensor.name, dtype, shape)
    where = f"binds[{tensor.name}] (buffer {declared.name})"
    if declared.dtype != dtype:
        raise LoweringError(f"{where} has dtype {declared.dtype}; the tensor's is {dtype}")
    if declared.scope != "global":
        raise LoweringError(f"{where} has scope {declared.scope}; an argument's buffer is global")
    if len(declared.shape) != len(shape) or not all(
            analyzer.can_prove(_op.cmp("==", a, b)) for a, b in zip(declared.shape, shape)):
        raise LoweringError(f"{where} has shape {list(declared.shape)}; the tensor's is {list(shape)}")
    for s in declared.strides:
        _check_integer(s, where, "stride")
    if declared.elem_offset is not None:
        _check_integer(declared.elem_offset, where, "elem_offset")
    return Buffer(tensor.name, dtype, shape, strides=tuple(declared.strides), elem_offset=declared.elem_offset)


def _check_integer(e: PrimExpr, where: str, what: str) -> None:
    if not e.dtype.startswith("int") or any(v.dtype not in ("int32", "int64") for v in collect_vars(e)):
        raise LoweringError(f"{where}: {what} {e} must be an int32/int64 expression")


__all__ = ["check_binds", "param_buffer"]
