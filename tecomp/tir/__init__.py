"""The loop IR (tir): expression and statement nodes, buffers, traversal,
printing, simplification and a reference interpreter.

The names TVM's ``tvm.tir`` offers scripts (``truncdiv``, ``call_extern``,
``ir_builder``, the math intrinsics, ...) are exported here too.
"""

from . import functor as stmt_functor
from . import ir_builder
from .buffer import Buffer, decl_buffer
from .expr import (Add, And, Broadcast, BufferLoad, Call, Cast, CommReducer, Div, EQ, FloatImm,
                   FloorDiv, FloorMod, GE, GT, IntImm, LE, LT, Let, Max, Min, Mul, NE, Not, Or,
                   PrimExpr, ProducerLoad, Ramp, Reduce, Select, Shuffle, SizeVar, StringImm, Sub, Var)
from .functor import Mutator, Visitor, collect_vars, post_order_visit, structural_equal, substitute
from .intrin_rules import CallEffectKind
from .op import (call_extern, call_llvm_intrin, call_llvm_pure_intrin, call_packed, call_pure_extern, const,
                 floordiv, floormod, fmod, if_then_else, max_value, min_value, popcount, truncdiv, truncmod)
from .op import all_of as all  # noqa: A004
from .op import any_of as any  # noqa: A004
from .op import call_builtin as call_intrin
from .op import c_div as div
from .op import floordiv as indexdiv
from .op import floormod as indexmod
from .op import intrinsic as _intrinsic
from .stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt,
                   PrimFunc, SeqStmt, Stmt, seq)

exp, log, sqrt, rsqrt, tanh, sigmoid, erf = map(_intrinsic, ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf"))
floor, ceil, power, exp2, log2, log10 = map(_intrinsic, ("floor", "ceil", "pow", "exp2", "log2", "log10"))
sin, cos, trunc, round = map(_intrinsic, ("sin", "cos", "trunc", "round"))  # noqa: A001
