"""The loop IR (tir): expression and statement nodes, buffers, traversal,
printing, simplification and a reference interpreter."""

from .buffer import Buffer, decl_buffer
from .expr import (Add, And, Broadcast, BufferLoad, Call, Cast, CommReducer, Div, EQ, FloatImm,
                   FloorDiv, FloorMod, GE, GT, IntImm, LE, LT, Let, Max, Min, Mul, NE, Not, Or,
                   PrimExpr, ProducerLoad, Ramp, Reduce, Select, SizeVar, StringImm, Sub, Var)
from .functor import Mutator, Visitor, collect_vars, post_order_visit, structural_equal, substitute
from .op import const, floordiv, floormod, if_then_else
from .stmt import (Allocate, AttrStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt,
                   PrimFunc, SeqStmt, Stmt, seq)
