"""Tensor-compute operations: a ``te.compute`` whose body calls a tensor intrinsic on regions.

``C = te.compute((n, 16), lambda i: vadd(A[i, 0:16], B[i, 0:16]))`` (TVM's TensorComputeOp):
``fcompute`` takes the outer axes only and returns a call of a ``decl_tensor_intrin`` on tensor
regions (``A[i, 0:16]``), with ``reduce_axis=`` for a reduction that continues outside the
intrinsic; the remaining dimensions of the shape are the intrinsic's output axes. tecomp writes
this as an ordinary compute, the intrinsic's own body over the regions, whose stage starts with
the intrinsic's loops innermost and tensorized by it. Bound inference, cache stages and lowering
then treat it as any compute, and the loops outside the intrinsic can be scheduled.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from ..error import ExprError
from ..tir import op as _op
from ..tir.expr import ProducerLoad, Reduce, Var, is_const_int
from ..tir.functor import Mutator, substitute
from .operation import ComputeOp
from .tensor import IterVar, Range, Tensor


class TensorRegion:
    """``A[i, 0:16]``: a region of a tensor, an index or a ``begin:end`` slice per dimension."""

    def __init__(self, tensor: Tensor, begins: tuple, extents: tuple):
        self.tensor = tensor
        self.begins = begins      # PrimExpr per dimension
        self.extents = extents    # PrimExpr per dimension, None where it was a single index

    def __repr__(self) -> str:
        parts = [str(b) if e is None else f"{b}:{b}+{e}" for b, e in zip(self.begins, self.extents)]
        return f"{self.tensor.name}[{', '.join(parts)}]"


def region_of(tensor: Tensor, indices: tuple) -> TensorRegion:
    """The region ``tensor[indices]`` where some index is a slice (steps are not allowed)."""
    if len(indices) != len(tensor.shape):
        raise ExprError(f"the region of tensor {tensor.name} needs {len(tensor.shape)} indices or slices, "
                        f"got {len(indices)}")
    begins, extents = [], []
    for idx, dim in zip(indices, tensor.shape):
        if isinstance(idx, slice):
            if idx.step is not None:
                raise ExprError(f"a region of tensor {tensor.name} cannot have a step ({idx})")
            begin = _op.convert(0 if idx.start is None else idx.start)
            end = dim if idx.stop is None else _op.convert(idx.stop)
            begins.append(begin)
            extents.append(_op.sub(end, begin))
        else:
            begins.append(_op.convert(idx))
            extents.append(None)
    return TensorRegion(tensor, tuple(begins), tuple(extents))


class TensorIntrinCall:
    """``intrin(regions..., reduce_axis=k)``: what ``fcompute`` of a tensor compute returns."""

    def __init__(self, intrin: Any, regions: tuple, reduce_axis: tuple):
        self.intrin = intrin
        self.regions = regions
        self.reduce_axis = reduce_axis


def call_intrin(intrin: Any, args: Sequence[Any], reduce_axis: Any = None) -> TensorIntrinCall:
    """The call of ``intrin`` on ``args`` (tensor regions, or whole tensors)."""
    regions = []
    for pos, a in enumerate(args):
        if isinstance(a, Tensor):
            a = region_of(a, tuple(slice(None) for _ in a.shape))
        if not isinstance(a, TensorRegion):
            raise ExprError(f"tensor intrinsic {intrin.name}: argument {pos} must be a tensor region such as "
                            f"A[i, 0:16], got {a!r} (scalar parameters are not supported)")
        regions.append(a)
    if len(regions) != len(intrin.inputs):
        raise ExprError(f"tensor intrinsic {intrin.name} takes {len(intrin.inputs)} tensor regions, "
                        f"got {len(regions)}")
    axes = () if reduce_axis is None else (reduce_axis,) if isinstance(reduce_axis, IterVar) else tuple(reduce_axis)
    if not all(isinstance(k, IterVar) and k.is_reduce for k in axes):
        raise ExprError(f"tensor intrinsic {intrin.name}: reduce_axis must be te.reduce_axis values")
    return TensorIntrinCall(intrin, tuple(regions), axes)


class TensorComputeOp(ComputeOp):
    """A compute written as a tensor intrinsic over regions: the first ``num_outer`` axes and
    ``num_outer_reduce`` reduction axes are the caller's, the rest the intrinsic's."""

    def __init__(self, name: str, tag: str, attrs: dict, axis: tuple, reduce_axis: tuple, body: tuple,
                 shape: tuple, intrin: Any, num_outer: int, num_outer_reduce: int):
        super().__init__(name, tag, attrs, axis, reduce_axis, body, shape)
        self.intrin = intrin
        self.num_outer = num_outer
        self.num_outer_reduce = num_outer_reduce


class _ToRegions(Mutator):
    """Loads of the intrinsic's placeholders become loads of the regions they stand for."""

    def __init__(self, regions: dict):
        self.regions = regions

    def visit_ProducerLoad(self, node: ProducerLoad) -> Any:
        region: Optional[TensorRegion] = self.regions.get(node.producer)
        if region is None:
            return node
        lead = len(region.begins) - len(node.indices)
        indices = region.begins[:lead] + tuple(_op.add(b, i) for b, i in zip(region.begins[lead:], node.indices))
        return ProducerLoad(region.tensor, indices)


def _check_region(region: TensorRegion, placeholder: Tensor, where: str) -> None:
    lead = len(region.begins) - len(placeholder.shape)
    if lead < 0:
        raise ExprError(f"{where}: region {region} has fewer dimensions than the intrinsic's input "
                        f"{placeholder.name} ({len(placeholder.shape)})")
    for ext in region.extents[:lead]:
        if ext is not None and not is_const_int(ext, 1):
            raise ExprError(f"{where}: region {region} has more than one element along a dimension the "
                            f"intrinsic's input {placeholder.name} does not have")
    for ext, dim in zip(region.extents[lead:], placeholder.shape):
        if ext is not None and is_const_int(dim) and is_const_int(_op.convert(ext)) \
                and _op.convert(ext).value != dim.value:
            raise ExprError(f"{where}: region {region} does not have the shape of the intrinsic's input "
                            f"{placeholder.name} ({[str(d) for d in placeholder.shape]})")


def tensor_compute(shape: tuple, outer: tuple, call: TensorIntrinCall, name: str, tag: str,
                   attrs: dict) -> TensorComputeOp:
    """The compute of ``call`` over the outer axes ``outer``; ``shape``'s remaining dimensions
    must be the intrinsic's output shape."""
    intrin = call.intrin
    iop = intrin.op
    where = f"compute {name}"
    inner_shape = shape[len(outer):]
    if len(inner_shape) != len(iop.axis) or not all(
            not (is_const_int(a) and is_const_int(b)) or a.value == b.value for a, b in zip(inner_shape, iop.shape)):
        raise ExprError(f"{where}: the dimensions after the {len(outer)} axes of fcompute, "
                        f"{[str(d) for d in inner_shape]}, must be the output shape of the intrinsic "
                        f"{intrin.name}, {[str(d) for d in iop.shape]}")
    for region, placeholder in zip(call.regions, intrin.inputs):
        _check_region(region, placeholder, where)
    inner = tuple(IterVar(Range(_op.const(0, s.dtype), s), Var(iv.name, iv.var.dtype), IterVar.DataPar)
                  for iv, s in zip(iop.axis, inner_shape))
    inner_reduce = tuple(IterVar(iv.dom, Var(iv.name, iv.var.dtype), IterVar.CommReduce) for iv in iop.reduce_axis)
    vmap = {old.var: new.var for old, new in zip(iop.axis + iop.reduce_axis, inner + inner_reduce)}
    to_regions = _ToRegions(dict(zip(intrin.inputs, call.regions)))
    reduce_axis = call.reduce_axis + inner_reduce
    body = []
    for b in iop.body:
        b = to_regions.visit(substitute(b, vmap))
        if isinstance(b, Reduce):
            b = Reduce(b.combiner, b.source, reduce_axis, b.condition, b.value_index)
        elif call.reduce_axis:
            raise ExprError(f"{where}: reduce_axis is given but the intrinsic {intrin.name} is not a reduction")
        body.append(b)
    return TensorComputeOp(name, tag, attrs, tuple(outer) + inner, reduce_axis, tuple(body), shape,
                           intrin, len(outer), len(call.reduce_axis))


__all__ = ["TensorComputeOp", "TensorIntrinCall", "TensorRegion", "call_intrin", "region_of", "tensor_compute"]
