"""CUDA schedules and tuning templates of the operator library (TVM's ``topi.cuda``).

The compute definitions are the library's own (``tecomp.schedules.dense.dense``,
``conv2d.conv2d_nchw``, ``softmax.softmax``, ``reduction.sum``...); this package adds
only GPU *schedules*: ``schedule_injective``, ``schedule_reduce``, ``schedule_softmax``,
``schedule_dense`` (also for matmul and batch_matmul), ``schedule_conv2d_nchw`` (also
depthwise), ``schedule_layer_norm``, and ``schedule_fallback`` (a thread per output element:
any program, pooling in a model). Each picks its knobs from the best record of its ``schedules/cuda/...``
template under ``apply_history_best`` (for the cuda target in scope, plain ``cuda``
otherwise), else from shape-based defaults. ``schedule_for(kind, outs)`` picks the CUDA
or CPU schedule of an operator family by the target in scope. Importing this package
registers the templates.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from ...target import Target
from .conv2d import (ConvTiles, schedule_conv2d_nchw, schedule_depthwise_conv2d_nchw)
from .dense import GemmTiles, gpu_dense, schedule_batch_matmul, schedule_dense, schedule_matmul
from .fallback import schedule_fallback
from .injective import schedule_injective
from .norm import schedule_layer_norm
from .reduction import schedule_reduce
from .softmax import schedule_log_softmax, schedule_softmax

CUDA_SCHEDULES: dict[str, Callable[[Any], Any]] = {
    "injective": schedule_injective, "reduce": schedule_reduce, "softmax": schedule_softmax,
    "log_softmax": schedule_log_softmax, "dense": schedule_dense, "matmul": schedule_matmul,
    "batch_matmul": schedule_batch_matmul, "conv2d_nchw": schedule_conv2d_nchw, "layer_norm": schedule_layer_norm,
    "depthwise_conv2d_nchw": schedule_depthwise_conv2d_nchw,
}


def _cpu_schedules() -> dict[str, Callable[[Any], Any]]:
    from .. import common, conv2d, dense, norm, reduction, softmax
    return {"injective": common.schedule_injective, "reduce": reduction.schedule_reduce,
            "softmax": softmax.schedule_softmax, "log_softmax": softmax.schedule_log_softmax,
            "dense": dense.schedule_dense, "matmul": dense.schedule_dense,
            "batch_matmul": dense.schedule_dense, "conv2d_nchw": conv2d.schedule_conv2d_nchw,
            "depthwise_conv2d_nchw": conv2d.schedule_conv2d_nchw, "layer_norm": norm.schedule_layer_norm}


def schedule_for(kind: str, outs: Any, target: Optional[Target | str] = None) -> Any:
    """The schedule of operator family ``kind`` (a key of CUDA_SCHEDULES) for ``target``
    (default: the one in scope, else llvm): the CUDA schedule on cuda, the CPU one otherwise."""
    tgt = Target(target) if isinstance(target, str) else (target or Target.current(allow_none=True)
                                                          or Target("llvm"))
    table = CUDA_SCHEDULES if tgt.kind == "cuda" else _cpu_schedules()
    if kind not in table:
        from ...error import OperatorError
        raise OperatorError(f"schedule_for: no schedule for operator family {kind!r}; known: "
                            f"{', '.join(sorted(table))}")
    with tgt:
        return table[kind](outs)


__all__ = [
    "CUDA_SCHEDULES", "ConvTiles", "GemmTiles", "gpu_dense", "schedule_batch_matmul", "schedule_conv2d_nchw",
    "schedule_dense", "schedule_depthwise_conv2d_nchw", "schedule_fallback", "schedule_for", "schedule_injective",
    "schedule_layer_norm", "schedule_log_softmax", "schedule_matmul", "schedule_reduce", "schedule_softmax",
]
