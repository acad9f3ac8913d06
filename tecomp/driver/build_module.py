"""``tvm.driver.build_module``: the module path classic scripts import ``build``, ``lower`` and
``schedule_to_module`` from."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..build_module import build
from ..lower.driver import lower
from ..te.schedule import Schedule
from ..tir.module import IRModule


def schedule_to_module(sch: Schedule, args: Sequence[Any], name: str = "main",
                       binds: Optional[dict] = None) -> IRModule:
    """The schedule's loop IR as an IRModule holding one PrimFunc ``name``.

    TVM returns the form before its TIR passes; tecomp's passes are not separable from
    lowering, so this is ``lower(sch, args, name, binds)``.
    """
    return lower(sch, args, name=name, binds=binds)


__all__ = ["build", "lower", "schedule_to_module"]
