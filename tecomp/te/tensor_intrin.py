"""Tensor intrinsics: ``decl_tensor_intrin`` and what ``Stage.tensorize`` replaces loops with.

An intrinsic pairs a small compute (``c[i] = sum(a[k] * b[i, k])``) with the statement that
implements it on buffers (a ``tir.call_extern`` of a C or LLVM function, or loop IR). The
statement is built once, at declaration, from ``fcompute(ins, outs)`` on the intrinsic's
buffers (``binds``, else compact ones); for a reduction ``fcompute`` may return
``(body, reset, update)`` so a reduction split around the tensorized loops can start with
``reset`` and accumulate with ``update``. Lowering (``tecomp.lower.tensorize``) checks that a
stage's loops compute the same thing and binds the buffers to the stage's regions.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ..error import ScheduleError
from ..tir.buffer import Buffer, decl_buffer
from ..tir.expr import PrimExpr
from ..tir.stmt import Evaluate, Stmt
from .operation import ComputeOp, PlaceholderOp
from .tensor import Tensor


class TensorIntrin:
    """A declared intrinsic: its compute, its buffers (inputs then outputs) and its statements."""

    def __init__(self, name: str, op: ComputeOp, inputs: list[Tensor], buffers: list[Buffer],
                 body: Stmt, reduce_init: Optional[Stmt], reduce_update: Optional[Stmt]):
        self.name = name
        self.op = op
        self.inputs = inputs
        self.buffers = buffers
        self.body = body
        self.reduce_init = reduce_init
        self.reduce_update = reduce_update

    def __call__(self, *regions: Any, reduce_axis: Any = None) -> Any:
        """The intrinsic applied to tensor regions, as the body of a tensor compute
        (``te.compute((n, 16), lambda i: intrin(A[i, 0:16], B[i, 0:16]))``)."""
        from .tensor_compute import call_intrin
        return call_intrin(self, regions, reduce_axis)

    def __repr__(self) -> str:
        return f"TensorIntrin({self.name})"


def _as_stmt(value: Any, what: str, name: str) -> Optional[Stmt]:
    if value is None:
        return None
    if isinstance(value, PrimExpr):
        return Evaluate(value)
    if isinstance(value, Stmt):
        return value
    raise ScheduleError(f"decl_tensor_intrin {name}: fcompute's {what} must be a statement or an expression "
                        f"(e.g. tir.call_extern), got {value!r}")


def decl_tensor_intrin(op: Any, fcompute: Callable, name: str = "tensor_intrin", binds: Optional[dict] = None,
                       scalar_params: Any = None, default_buffer_params: Optional[dict] = None) -> TensorIntrin:
    """Declare a tensor intrinsic for ``op`` (TVM's ``te.decl_tensor_intrin``)."""
    if isinstance(op, Tensor):
        op = op.op
    if not isinstance(op, ComputeOp):
        raise ScheduleError(f"decl_tensor_intrin {name}: expected the intrinsic's compute operation, got {op!r}")
    if scalar_params:
        raise ScheduleError(f"decl_tensor_intrin {name}: scalar_params are not supported")
    inputs = op.input_tensors
    for t in inputs:
        if not isinstance(t.op, PlaceholderOp):
            raise ScheduleError(f"decl_tensor_intrin {name}: input {t.name} must be a te.placeholder")
    binds = binds or {}
    params = default_buffer_params or {}
    buffers = []
    for t in inputs + [op.output(k) for k in range(op.num_outputs)]:
        buf = binds.get(t)
        if buf is None:
            buf = decl_buffer(t.shape, t.dtype, t.name, **params)
        if not isinstance(buf, Buffer) or len(buf.shape) != len(t.shape):
            raise ScheduleError(f"decl_tensor_intrin {name}: the buffer bound to {t.name} must be a "
                                f"{len(t.shape)}-dimensional tir.decl_buffer, got {buf!r}")
        buffers.append(buf)
    result = fcompute(buffers[:len(inputs)], buffers[len(inputs):])
    parts = tuple(result) if isinstance(result, (list, tuple)) else (result, None, None)
    if len(parts) != 3:
        raise ScheduleError(f"decl_tensor_intrin {name}: fcompute must return a statement or "
                            f"(body, reduce_reset, reduce_update), got {len(parts)} values")
    body, init, update = (_as_stmt(p, what, name) for p, what in zip(parts, ("body", "reset", "update")))
    if body is None and update is None:
        raise ScheduleError(f"decl_tensor_intrin {name}: fcompute returned no body")
    return TensorIntrin(name, op, inputs, buffers, body, init, update)


def check_intrin(intrin: Any, where: str) -> TensorIntrin:
    if not isinstance(intrin, TensorIntrin):
        raise ScheduleError(f"{where}: expected a te.decl_tensor_intrin(...), got {intrin!r}")
    return intrin


__all__ = ["TensorIntrin", "check_intrin", "decl_tensor_intrin"]
