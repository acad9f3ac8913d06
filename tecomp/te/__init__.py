"""The tensor-expression language: define tensors, then schedule them.

Names follow TVM's classic ``tvm.te`` so scripts port by changing imports.
"""

from ..tir import op as _op
from ..tir.expr import Var
from .operation import (ComputeOp, ExternOp, PlaceholderOp, ScanOp, comm_reducer, compute, extern, max, min,  # noqa: A004
                        placeholder, reduce_axis, scan, size_var, sum, tag_scope, thread_axis, var)
from .schedule import Schedule, Stage, create_schedule
from .tensor import IterVar, Operation, Range, Tensor
from .tensor_intrin import TensorIntrin, decl_tensor_intrin

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
div = _op.c_div
truncdiv = _op.truncdiv
truncmod = _op.truncmod
fmod = _op.fmod


from ..tir import (ceil, cos, erf, exp, exp2, floor, log, log2, log10, power, round, rsqrt,  # noqa: A004,E402
                   sigmoid, sin, sqrt, tanh, trunc)

__all__ = [
    "ComputeOp", "ExternOp", "IterVar", "TensorIntrin", "decl_tensor_intrin", "Operation", "PlaceholderOp", "Range", "ScanOp", "Schedule", "Stage", "Tensor", "Var",
    "abs", "all", "any", "ceil", "comm_reducer", "compute", "const", "cos", "create_schedule", "erf",
    "exp", "exp2", "floor", "floordiv", "floormod", "if_then_else", "indexdiv", "indexmod", "log",
    "log10", "log2", "max", "max_value", "min", "min_value", "placeholder", "power", "reduce_axis",
    "round", "rsqrt", "scan", "select", "sigmoid", "sin", "size_var", "sqrt", "sum", "tanh", "thread_axis",
    "trunc", "var", "extern", "tag_scope", "div", "truncdiv", "truncmod",
]
