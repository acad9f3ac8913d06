"""TVM's intrinsic lowering rules: ``register_intrin_lowering`` and ``register_op_attr``.

A rule maps a call of an intrinsic (``tir.exp``, or a new one such as ``tir.mylog`` made with
``tir.call_intrin``) to the expression a target computes it with, typically a
``call_pure_extern`` of a math library function. ``build`` applies the rules registered for
its target kind to every function before code generation; a rule returning the call unchanged
leaves it to the code generator's own translation. As in TVM, a rule registered at a higher
``level`` replaces one at a lower level, the same level twice is an error.
"""

from __future__ import annotations

import enum
from typing import Any, Callable, Optional

from ..error import ExprError
from .expr import Call, PrimExpr
from .functor import Mutator
from .stmt import PrimFunc

_LOWERING_ATTR = "FLowerIntrinsic"
# op name without "tir." -> attribute key -> (value, level)
_OP_ATTRS: dict[str, dict[str, tuple[Any, int]]] = {}


class CallEffectKind(enum.IntEnum):
    """TVM's side-effect classes of a call (the ``TCallEffectKind`` attribute of an op)."""

    ExprAnnotation = 0
    Pure = 1
    ReadState = 2
    UpdateState = 3
    Opaque = UpdateState
    SpecialCallArg = 4
    Embedded = 5
    ControlJump = 6


def _op_key(op_name: str) -> str:
    if not isinstance(op_name, str) or not op_name:
        raise ExprError(f"an op name is a string such as 'tir.exp', got {op_name!r}")
    return op_name[len("tir."):] if op_name.startswith("tir.") else op_name


def register_op_attr(op_name: str, attr_key: str, value: Any = None, level: int = 10) -> Any:
    """Set attribute ``attr_key`` of op ``op_name`` (which registers the op); without ``value``,
    a decorator setting it to the decorated function."""
    def register(v: Any) -> Any:
        attrs = _OP_ATTRS.setdefault(_op_key(op_name), {})
        old = attrs.get(attr_key)
        if old is not None and old[1] == level:
            raise ExprError(f"attribute {attr_key} of {op_name} is already registered at level {level}")
        if old is None or old[1] < level:
            attrs[attr_key] = (v, level)
        return v

    return register if value is None else register(value)


def register_intrin_lowering(op_name: str, target: str, *, f: Optional[Callable] = None, level: int = 10) -> Any:
    """Register ``f(call) -> PrimExpr`` as the lowering of ``op_name`` for ``target`` (a target kind
    such as ``cuda`` or ``llvm``, or ``default`` for every target); a decorator without ``f``."""
    return register_op_attr(op_name, f"{target}.{_LOWERING_ATTR}", f, level)


class _Lower(Mutator):
    def __init__(self, target_kind: str) -> None:
        self.keys = (f"{target_kind}.{_LOWERING_ATTR}", f"default.{_LOWERING_ATTR}")

    def visit_Call(self, node: Call) -> Any:
        node = self.generic(node)
        attrs = _OP_ATTRS.get(node.op, {})
        rule = next((attrs[k][0] for k in self.keys if k in attrs), None)
        if rule is None:
            return node
        result = rule(node)
        if not isinstance(result, PrimExpr) or result.dtype != node.dtype:
            raise ExprError(f"the {self.keys[0].split('.')[0]} lowering rule of {node.op.name} returned "
                            f"{result!r}; it must return an expression of dtype {node.dtype}")
        return result


def lower_intrinsics(func: PrimFunc, target_kind: str) -> PrimFunc:
    """``func`` with the registered lowering rules of ``target_kind`` applied to its calls."""
    if not any(key.startswith((f"{target_kind}.", "default.")) for attrs in _OP_ATTRS.values() for key in attrs):
        return func
    body = _Lower(target_kind).visit(func.body)
    return func if body is func.body else func.with_body(body)


__all__ = ["CallEffectKind", "lower_intrinsics", "register_intrin_lowering", "register_op_attr"]
