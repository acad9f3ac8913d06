"""``tecomp.build``: lower (if needed) and compile for a target.

Owns target resolution (argument, then the ``with Target(...)`` context,
then the host CPU) and dispatch to a code generator (LLVM for ``llvm``,
CUDA C + nvcc for ``cuda``, whose lowering adds the GPU passes). Code generators are
imported here, lazily, so ``import tecomp`` needs numpy only.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from .error import BuildError, TargetError
from .lower.driver import lower
from .target import Target
from .transform import current_options
from .te.schedule import Schedule
from .tir.intrin_rules import lower_intrinsics
from .tir.module import IRModule
from .tir.stmt import PrimFunc


def resolve_target(target: Union[str, Target, None]) -> Target:
    """The explicit target, else the one in the enclosing ``with Target``, else ``llvm``."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str):
        return Target(target)
    if target is not None:
        raise TargetError(f"target must be a string such as 'llvm' or a Target, got {target!r}")
    return Target.current(allow_none=True) or Target("llvm")


def build(inputs: Union[Schedule, IRModule, PrimFunc, Sequence[Any], dict], args: Optional[Sequence[Any]] = None,
          target: Union[str, Target, None] = None, name: str = "main",
          target_host: Union[str, Target, None] = None, bound_check: bool = False,
          binds: Optional[dict] = None) -> Any:
    """Compile a schedule (with its argument tensors), a lowered IRModule or PrimFunc, a list of
    those (one library holding every function), or TVM's ``{target: module}`` dict.

    Returns a runtime Module: call it with arrays, ``get_source("ll")``,
    ``time_evaluator``, ``export_library``. ``bound_check=True`` (llvm target), or
    ``tir.instrument_bound_checkers`` in the enclosing ``PassContext``: every buffer
    access checks its index, and one out of bounds raises
    ``tecomp.runtime.OutOfBoundsError`` naming the buffer, the index and the extent.
    ``binds`` gives argument tensors their buffers, as in ``lower``.
    """
    if isinstance(inputs, Schedule) and isinstance(args, (str, Target)):
        raise BuildError("build(schedule, args, target): the second argument must be the argument tensors")
    if isinstance(inputs, dict):
        if len(inputs) != 1:
            raise BuildError(f"build({{target: module}}) takes one target, got {len(inputs)}")
        (target, inputs), = inputs.items()
    if not isinstance(inputs, Schedule) and isinstance(args, (str, Target)) and target is None:
        args, target = None, args  # build(mod, "llvm"), as TVM allows
    bound_check = bound_check or current_options().bound_check
    tgt = resolve_target(target)
    if bound_check and tgt.kind != "llvm":
        raise BuildError(f"bound_check=True is supported for the llvm target only, not {tgt}")
    if binds and not isinstance(inputs, Schedule):
        raise BuildError("build: binds= applies when lowering a schedule; this input is already lowered")
    if isinstance(inputs, Schedule):
        if args is None:
            raise BuildError("build(schedule, args): give the argument tensors, e.g. [A, B, C]")
        funcs = list(lower(inputs, args, name=name, target=tgt, binds=binds))
    elif isinstance(inputs, IRModule):
        funcs = list(inputs)
    elif isinstance(inputs, PrimFunc):
        funcs = [inputs]
    elif isinstance(inputs, (list, tuple)) and all(isinstance(f, (IRModule, PrimFunc)) for f in inputs):
        funcs = [f for item in inputs for f in ([item] if isinstance(item, PrimFunc) else list(item))]
    else:
        raise BuildError(f"build expects a schedule, an IRModule, a PrimFunc or a list of lowered functions, "
                         f"got {type(inputs).__name__}")
    funcs = [lower_intrinsics(f, tgt.kind) for f in funcs]  # tvm.ir.register_intrin_lowering rules
    strided = [b.name for f in funcs for b in f.params if b.strides]
    if bound_check and strided:
        raise BuildError(f"bound_check=True does not support buffers with explicit strides (binds=): "
                         f"{', '.join(strided)}")
    if tgt.kind == "llvm":
        from .codegen import build_llvm
        return build_llvm(funcs, tgt, bound_check)
    if tgt.kind == "cuda":
        from .codegen import build_cuda
        return build_cuda(funcs, tgt)
    raise TargetError(f"target {tgt} is not supported by this version of tecomp (llvm and cuda build)")
