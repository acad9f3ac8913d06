"""``tvm.ir``: the IR-level names classic scripts import (structural equality, IRModule, Range,
``save_json``/``load_json``, ``register_op_attr``/``register_intrin_lowering``)."""

from typing import Any

from .error import TecompError
from .ir_json import load_json, save_json
from .te.tensor import Range
from .tir.functor import structural_equal
from .tir.intrin_rules import register_intrin_lowering, register_op_attr
from .tir.module import IRModule


def assert_structural_equal(lhs: Any, rhs: Any) -> None:
    """Raise a ``TecompError`` (a ``RuntimeError``) unless the trees are structurally equal."""
    if not structural_equal(lhs, rhs):
        raise TecompError(f"structurally different:\n{lhs}\n--- vs ---\n{rhs}")


__all__ = ["IRModule", "Range", "assert_structural_equal", "load_json", "register_intrin_lowering",
           "register_op_attr", "save_json", "structural_equal"]
