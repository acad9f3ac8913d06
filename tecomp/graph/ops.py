"""The graph compiler's view of the operator library: each node's compute, schedule and pattern.

A graph node names a function of ``tecomp.schedules`` (``Node.op``). This
module finds that function, the default schedule that goes with it, and the
operator's *pattern*, which decides what operator fusion may do with it:

- ``elemwise``: output index i reads its inputs at index i (same shape);
- ``broadcast``: like elemwise, with numpy broadcasting of the inputs;
- ``injective``: each output element is a copy of one input element
  (transpose, reshape, slicing, padding, ...);
- ``reduce``: a reduction whose default schedule also inlines elementwise stages;
- ``anchor``: a compute-heavy operator (conv, dense, pooling) whose schedule
  accepts an elementwise epilogue ending the kernel;
- ``opaque``: everything else, always a kernel of its own.

An operator missing from the tables (one the library gains later) is found
by name in the library's modules, scheduled by ``schedule_<op>`` when that
exists, and treated as ``opaque``. This module imports the compiler (it
builds te programs); nothing on the runtime side may import it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..error import GraphError

MODULES = ("elementwise", "transform", "reduction", "dense", "conv2d", "conv2d_nchwc", "conv2d_winograd", "pooling",
           "softmax", "norm", "conv_transpose", "scan_ops", "rearrange", "gather", "resize", "recurrent")

ELEMWISE = "elemwise"
BROADCAST = "broadcast"
INJECTIVE = "injective"
REDUCE = "reduce"
ANCHOR = "anchor"
OPAQUE = "opaque"

_PATTERNS = {
    ELEMWISE: ("relu", "clip", "sigmoid", "tanh", "exp", "log", "sqrt", "erf", "gelu", "cast", "negative",
               "abs", "leaky_relu", "logical_not", "isnan", "isinf", "floor", "ceil", "round", "sign",
               "softplus", "mish", "trilu"),
    BROADCAST: ("add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where",
                "batch_norm_inference", "equal", "less", "less_equal", "greater", "greater_equal",
                "logical_and", "logical_or", "logical_xor", "mod"),
    INJECTIVE: ("transpose", "reshape", "flatten", "concatenate", "split", "strided_slice", "pad", "take",
                "expand", "layout_transform", "pack_conv2d_kernel", "pack_depthwise_kernel", "pack_dense_weight",
                "pack_winograd_kernel",
                "dilate_pad", "conv_transpose_kernel",
                "one_hot", "pad_mode", "channel_shuffle", "gather_nd", "gather_elements", "scatter_from_sources", "resize"),
    REDUCE: ("sum", "max", "min", "mean", "prod", "logsumexp", "argmax", "argmin"),
    ANCHOR: ("conv2d_nchw", "dense", "dense_packed", "matmul", "batch_matmul", "conv2d_nchwc", "conv2d_winograd_nchwc",
             "depthwise_conv2d_nchwc", "max_pool2d", "avg_pool2d", "global_avg_pool2d",
             "conv3d_ncdhw", "max_pool_nd", "avg_pool_nd", "lp_pool"),
    OPAQUE: ("softmax", "log_softmax", "layer_norm", "lstm", "gru", "rnn", "group_norm", "max_pool_argmax",
             "cumsum", "topk", "scatter_nd", "scatter_elements"),
}
PATTERN_OF = {op: pattern for pattern, ops in _PATTERNS.items() for op in ops}

# Default schedules not called schedule_<op> in the operator's own module.
_SCHEDULE_NAMES = {"lstm": "schedule_recurrent", "gru": "schedule_recurrent", "rnn": "schedule_recurrent",
                   "max_pool2d": "schedule_pool", "avg_pool2d": "schedule_pool",
                   "global_avg_pool2d": "schedule_pool", "max_pool_nd": "schedule_pool",
                   "avg_pool_nd": "schedule_pool", "lp_pool": "schedule_pool", "max_pool_argmax": "schedule_pool",
                   "sum": "schedule_reduce", "max": "schedule_reduce",
                   "min": "schedule_reduce", "mean": "schedule_reduce", "dense_packed": "schedule_dense",
                   "prod": "schedule_reduce", "logsumexp": "schedule_reduce", "argmax": "schedule_reduce",
                   "argmin": "schedule_reduce", "scatter_nd": "schedule_scatter",
                   "scatter_elements": "schedule_scatter"}

# The CUDA schedule family (a key of ``tecomp.schedules.cuda.CUDA_SCHEDULES``) of each operator that
# is not injective; an operator missing here (pooling, ...) gets the CUDA fallback schedule
# (a thread per output element).
_CUDA_FAMILIES = {"conv2d_nchw": "conv2d_nchw", "dense": "dense", "dense_packed": "dense", "matmul": "matmul",
                  "batch_matmul": "batch_matmul", "softmax": "softmax", "log_softmax": "log_softmax",
                  "sum": "reduce", "max": "reduce", "min": "reduce", "mean": "reduce", "layer_norm": "layer_norm"}

# Anchors whose schedule also schedules a producer of their first input (run as a root stage of the kernel).
PRODUCERS_FUSED = {"conv2d_nchwc": ("layout_transform",), "depthwise_conv2d_nchwc": ("layout_transform",),
                   "conv2d_winograd_nchwc": ("layout_transform",)}

# Operators whose first argument is a list of tensors: they get all of a node's inputs as that list.
LIST_INPUT_OPS = ("concatenate",)


@dataclass(frozen=True)
class OpDef:
    """One library operator: its compute function, default schedule and fusion pattern."""

    name: str
    compute: Callable[..., Any]
    schedule: Callable[[Any], Any]
    pattern: str


def library_module(name: str) -> Optional[Any]:
    """``tecomp.schedules.<name>``, or None when this version of the library has no such module."""
    try:
        return importlib.import_module(f"tecomp.schedules.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"tecomp.schedules.{name}":
            raise
        return None


def _library_modules() -> list[Any]:
    return [m for m in map(library_module, MODULES) if m is not None]


_cache: dict[str, OpDef] = {}


def lookup(op: str) -> OpDef:
    """The library operator called ``op``; GraphError if the library has none."""
    found = _cache.get(op)
    if found is not None:
        return found
    if not isinstance(op, str) or op.startswith("_") or op.startswith("schedule_"):
        raise GraphError(f"{op!r} is not an operator name")
    modules = _library_modules()
    owner = next((m for m in modules if callable(getattr(m, op, None))), None)
    if owner is None:
        raise GraphError(f"operator {op!r} is not in the operator library (tecomp.schedules)")
    pattern = PATTERN_OF.get(op, OPAQUE)
    if pattern in (ELEMWISE, BROADCAST, INJECTIVE):
        from ..schedules.common import schedule_injective
        schedule = schedule_injective
    else:
        schedule_name = _SCHEDULE_NAMES.get(op, f"schedule_{op}")
        schedule = getattr(owner, schedule_name, None)
        if schedule is None:
            raise GraphError(f"operator {op!r} has no default schedule ({owner.__name__}.{schedule_name})")
    found = _cache[op] = OpDef(op, getattr(owner, op), schedule, pattern)
    return found


def cuda_schedule(op: str) -> Callable[[Any], Any]:
    """The CUDA schedule of a kernel anchored by ``op`` (injective ops: the injective one)."""
    from ..schedules import cuda
    if pattern(op) in (ELEMWISE, BROADCAST, INJECTIVE):
        return cuda.schedule_injective
    family = _CUDA_FAMILIES.get(op)
    return cuda.CUDA_SCHEDULES[family] if family else cuda.schedule_fallback


def pattern(op: str) -> str:
    """The fusion pattern of ``op`` without importing the library (``opaque`` when unknown)."""
    return PATTERN_OF.get(op, OPAQUE)


def call(node_op: str, inputs: list[Any], kwinputs: dict[str, Any], attrs: dict[str, Any]) -> list[Any]:
    """Apply the operator to te tensors: returns its output tensors as a list."""
    opdef = lookup(node_op)
    args = [list(inputs)] if node_op in LIST_INPUT_OPS else list(inputs)
    result = opdef.compute(*args, **kwinputs, **{k: _as_call_value(v) for k, v in attrs.items()})
    return list(result) if isinstance(result, (list, tuple)) else [result]


def _as_call_value(value: Any) -> Any:
    # JSON gives lists; operators take tuples where a Python caller would (conv's ("clip", lo, hi)).
    if isinstance(value, list):
        return tuple(_as_call_value(v) for v in value)
    return value


def output_types(op: str, inputs: list[Any], attrs: dict[str, Any] | None = None,
                 kwinputs: dict[str, Any] | None = None) -> list[Any]:
    """The ``TensorType`` of each output of ``op`` applied to values of the given ``TensorType``s.

    Builds the operator's te program on placeholders (no code is generated);
    an operator rejecting its arguments raises GraphError with its message.
    """
    from .. import te
    from ..error import TecompError
    from .ir import TensorType

    def placeholder(t: Any, name: str) -> Any:
        return te.placeholder(tuple(t.shape), t.dtype, name=name)

    try:
        with untuned():
            outs = call(op, [placeholder(t, f"in{k}") for k, t in enumerate(inputs)],
                        {k: placeholder(t, k) for k, t in (kwinputs or {}).items()}, attrs or {})
    except GraphError:
        raise
    except (TecompError, TypeError) as exc:
        raise GraphError(f"{op}: {exc}") from None
    return [TensorType(tuple(int(d.value) for d in o.shape), o.dtype) for o in outs]


def untuned() -> Any:
    """A dispatch context answering every workload with its fallback config, silently.

    For building te programs whose configs do not matter (types, task extraction):
    the library's computes may ask for a config (dense's panel width).
    """
    from ..tuner.dispatch import DispatchContext
    from ..tuner.space import FallbackConfigEntity

    class Untuned(DispatchContext):
        def lookup(self, task: Any) -> FallbackConfigEntity:
            return FallbackConfigEntity(task.config_space)

    return Untuned()
