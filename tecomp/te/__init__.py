"""The tensor-expression language: define tensors, then schedule them.

Names follow TVM's classic ``tvm.te`` so scripts port by changing imports.
"""

from ..tir import op as _op
from ..tir.expr import Var
from .operation import (ComputeOp, PlaceholderOp, ScanOp, comm_reducer, compute, max, min,  # noqa: A004
                        placeholder, reduce_axis, scan, size_var, sum, thread_axis, var)
from .schedule import Schedule, Stage, create_schedule
from .tensor import IterVar, Operation, Range, Tensor

const = _op.const
all = _op.all_of  # noqa: A001
any = _op.any_of  # noqa: A001
if_then_else = _op.if_then_else
select = _op.select
floordiv = _op.floordiv
floormod = _op.floormod
indexdiv = _op.floordiv
indexmod = _op.floormod
max_value = _op.max_value
min_value = _op.min_value
abs = _op.fabs  # noqa: A001


def _intrinsic(name: str):
    def f(x, *rest):
        return _op.call_intrin(name, x, *rest)
    f.__name__ = name
    f.__doc__ = f"Elementwise {name} (a math intrinsic; integers are cast to float32)."
    return f


exp = _intrinsic("exp")
log = _intrinsic("log")
sqrt = _intrinsic("sqrt")
rsqrt = _intrinsic("rsqrt")
tanh = _intrinsic("tanh")
sigmoid = _intrinsic("sigmoid")
erf = _intrinsic("erf")
floor = _intrinsic("floor")
ceil = _intrinsic("ceil")
power = _intrinsic("pow")
exp2 = _intrinsic("exp2")
log2 = _intrinsic("log2")
log10 = _intrinsic("log10")
sin = _intrinsic("sin")
cos = _intrinsic("cos")
trunc = _intrinsic("trunc")
round = _intrinsic("round")  # noqa: A001

__all__ = [
    "ComputeOp", "IterVar", "Operation", "PlaceholderOp", "Range", "ScanOp", "Schedule", "Stage", "Tensor", "Var",
    "abs", "all", "any", "ceil", "comm_reducer", "compute", "const", "cos", "create_schedule", "erf",
    "exp", "exp2", "floor", "floordiv", "floormod", "if_then_else", "indexdiv", "indexmod", "log",
    "log10", "log2", "max", "max_value", "min", "min_value", "placeholder", "power", "reduce_axis",
    "round", "rsqrt", "scan", "select", "sigmoid", "sin", "size_var", "sqrt", "sum", "tanh", "thread_axis",
    "trunc", "var",
]
