"""Tensors, operations and iteration variables of the tensor-expression language.

An ``Operation`` produces one or more ``Tensor``s: a ``PlaceholderOp`` is an
input, a ``ComputeOp`` defines every element by an expression over its axes
(``IterVar``s). Indexing a tensor (``A[i, j]``) builds a ``ProducerLoad``.
Operations are immutable and compared by identity; schedules rewrite the
dataflow by creating new operations, never by editing these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..error import ExprError
from ..tir import op as _op
from ..tir.expr import ExprOp, IntImm, PrimExpr, ProducerLoad, Var
from ..tir.functor import post_order_visit


@dataclass(frozen=True, eq=False)
class Range:
    """The half-open integer interval [min, min + extent)."""

    min: PrimExpr
    extent: PrimExpr

    @staticmethod
    def from_min_extent(min_value: Any, extent: Any) -> "Range":
        return Range(_op.convert(min_value), _op.convert(extent))

    def __repr__(self) -> str:
        return f"Range(min={self.min}, extent={self.extent})"


class IterVar(ExprOp):
    """An iteration variable: a Var with a domain and a kind.

    Arithmetic on an IterVar uses its ``var``, so ``A[i, k]`` and ``k + 1``
    work with IterVars as in TVM.
    """

    DataPar = 0
    ThreadIndex = 1
    CommReduce = 2
    Ordered = 3
    # TVM's kinds of a scheduled loop, reported by ``stage.iter_var_attrs[iv].iter_type``
    DimInfo = 4
    Unrolled = 5
    Vectorized = 6
    Parallelized = 7
    Tensorized = 8

    __slots__ = ("dom", "var", "iter_type", "thread_tag")

    def __init__(self, dom: Optional[Range], var: Var, iter_type: int, thread_tag: str = ""):
        self.dom = dom
        self.var = var
        self.iter_type = iter_type
        self.thread_tag = thread_tag

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def is_reduce(self) -> bool:
        return self.iter_type == IterVar.CommReduce

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        kind = {1: "thread ", 2: "reduce ", 3: "ordered "}.get(self.iter_type, "")
        dom = f", {self.dom.min}..{self.dom.min}+{self.dom.extent}" if self.dom is not None else ""
        return f"IterVar({kind}{self.var.name}{dom})"


class Operation:
    """Base of operations; ``name`` and ``num_outputs`` are set by subclasses."""

    name: str
    num_outputs: int = 1

    def output(self, index: int) -> "Tensor":
        outs = self._outputs
        if not 0 <= index < len(outs):
            raise ExprError(f"operation {self.name} has {len(outs)} outputs, asked for output {index}")
        return outs[index]

    @property
    def input_tensors(self) -> list["Tensor"]:
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class Tensor:
    """The ``value_index``-th output of ``op``, with a shape and a dtype."""

    __slots__ = ("op", "value_index", "shape", "dtype")

    def __init__(self, op: Operation, value_index: int, shape: tuple, dtype: str):
        self.op = op
        self.value_index = value_index
        self.shape = shape
        self.dtype = dtype

    @property
    def name(self) -> str:
        if self.op.num_outputs == 1:
            return self.op.name
        return f"{self.op.name}.v{self.value_index}"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, indices: Any) -> Any:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if any(isinstance(i, slice) for i in indices):  # A[i, 0:16]: a region, for a tensor intrinsic
            from .tensor_compute import region_of
            return region_of(self, indices)
        if len(indices) < len(self.shape):  # A[i][j], as TVM's TensorSlice
            return TensorSlice(self, indices)
        if len(indices) != len(self.shape):
            raise ExprError(
                f"tensor {self.name} has {len(self.shape)} dimensions but was indexed with "
                f"{len(indices)} indices")
        conv = []
        for pos, idx in enumerate(indices):
            e = _op.convert(idx)
            if not e.dtype.startswith(("int", "uint")):
                raise ExprError(f"index {pos} of tensor {self.name} must be an integer expression, "
                                f"got {e} of dtype {e.dtype}")
            conv.append(e)
        return ProducerLoad(self, tuple(conv))

    def __call__(self, *indices: Any) -> PrimExpr:
        """``A(i, j)``: the same as ``A[i, j]`` (TVM's call syntax)."""
        if len(indices) != len(self.shape):
            raise ExprError(f"tensor {self.name} has {len(self.shape)} dimensions but was called with "
                            f"{len(indices)} indices")
        return self[tuple(indices)]

    def equal(self, other: Any) -> bool:
        """TVM's ``Tensor.equal``: the same output of the same operation."""
        return isinstance(other, Tensor) and other.op is self.op and other.value_index == self.value_index

    # Elementwise arithmetic with broadcasting builds a new compute (TVM's topi operator overloads).
    def __add__(self, other: Any) -> "Tensor":
        return broadcast_op("add", self, other)

    def __radd__(self, other: Any) -> "Tensor":
        return broadcast_op("add", other, self)

    def __sub__(self, other: Any) -> "Tensor":
        return broadcast_op("subtract", self, other)

    def __rsub__(self, other: Any) -> "Tensor":
        return broadcast_op("subtract", other, self)

    def __mul__(self, other: Any) -> "Tensor":
        return broadcast_op("multiply", self, other)

    def __rmul__(self, other: Any) -> "Tensor":
        return broadcast_op("multiply", other, self)

    def __truediv__(self, other: Any) -> "Tensor":
        return broadcast_op("divide", self, other)

    def __rtruediv__(self, other: Any) -> "Tensor":
        return broadcast_op("divide", other, self)

    def __neg__(self) -> "Tensor":
        return broadcast_op("subtract", 0, self)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"Tensor(name={self.name}, shape={list(self.shape)}, dtype={self.dtype})"


class TensorSlice:
    """A tensor indexed in its leading dimensions only (``A[i]`` of a matrix); index it further."""

    __slots__ = ("tensor", "indices")

    def __init__(self, tensor: Tensor, indices: tuple):
        self.tensor = tensor
        self.indices = indices

    @property
    def dtype(self) -> str:
        return self.tensor.dtype

    def __getitem__(self, indices: Any) -> Any:
        more = indices if isinstance(indices, tuple) else (indices,)
        return self.tensor[self.indices + more]

    def asobject(self) -> Any:
        return self.tensor[self.indices]

    def __repr__(self) -> str:  # shows in the error when a partial index is used as a value
        return (f"{self.tensor.name}[{', '.join(map(str, self.indices))}] (tensor {self.tensor.name} has "
                f"{len(self.tensor.shape)} dimensions but was indexed with {len(self.indices)} indices)")


_ARITH = {"add": _op.add, "subtract": _op.sub, "multiply": _op.mul, "divide": _op.div}


def broadcast_op(kind: str, lhs: Any, rhs: Any) -> Tensor:
    """``lhs <kind> rhs`` elementwise, numpy broadcasting; either side may be a scalar."""
    from .operation import compute
    shapes = [t.shape for t in (lhs, rhs) if isinstance(t, Tensor)]
    out_shape = _broadcast_shape(shapes, kind)
    ndim = len(out_shape)

    def value(x: Any, idx: tuple) -> Any:
        if not isinstance(x, Tensor):
            return x
        own = idx[ndim - len(x.shape):]
        return x[tuple(_op.const(0, i.dtype) if _is_one(d) and not _is_one(o) else i
                       for i, d, o in zip(own, x.shape, out_shape[ndim - len(x.shape):]))]

    return compute(out_shape, lambda *idx: _ARITH[kind](value(lhs, idx), value(rhs, idx)), name=f"T_{kind}",
                   tag="broadcast")


def _is_one(d: Any) -> bool:
    return isinstance(d, IntImm) and d.value == 1


def _broadcast_shape(shapes: list, kind: str) -> tuple:
    ndim = max(len(s) for s in shapes)
    out = []
    for k in range(ndim):
        dims = [s[len(s) - ndim + k] for s in shapes if len(s) - ndim + k >= 0]
        wide = [d for d in dims if not _is_one(d)]
        for d in wide[1:]:
            if not (d is wide[0] or (isinstance(d, IntImm) and isinstance(wide[0], IntImm)
                                     and d.value == wide[0].value)):
                raise ExprError(f"{kind}: shapes {[[str(x) for x in s] for s in shapes]} do not broadcast "
                                f"(dimension {k} from the left of the result: {wide[0]} vs {d})")
        out.append(wide[0] if wide else dims[0])
    return tuple(out)


def collect_input_tensors(exprs: Any) -> list[Tensor]:
    """Tensors read by ProducerLoads in ``exprs``, in first-use order, without repeats."""
    seen: dict[int, Tensor] = {}

    def visit(node: Any) -> None:
        if isinstance(node, ProducerLoad) and id(node.producer) not in seen:
            seen[id(node.producer)] = node.producer

    for e in exprs:
        post_order_visit(e, visit)
    return list(seen.values())
