"""What the code generators share: node dispatch and facts about flattened accesses.

Both backends (LLVM and CUDA C) walk the same loop IR; this module owns the
small pieces of that walk that do not depend on the output language. It must
not import a backend's libraries (llvmlite) so the CUDA generator stays light.
"""

from __future__ import annotations

from typing import Callable, Optional

from ..tir import expr as E
from ..tir.op import add

_METHODS: dict = {}


def method_for(owner: type, prefix: str, cls: type) -> Optional[Callable]:
    """The ``prefix + ClassName`` method of ``owner`` for ``cls`` or its nearest base class (cached)."""
    key = (owner, prefix, cls)
    if key not in _METHODS:
        found = None
        for base in cls.__mro__:
            found = getattr(owner, prefix + base.__name__, None)
            if found is not None:
                break
        _METHODS[key] = found
    return _METHODS[key]


def const_product(shape: tuple) -> Optional[int]:
    """The number of elements of a constant shape, else None."""
    count = 1
    for extent in shape:
        if not isinstance(extent, (E.IntImm, int)):
            return None
        count *= int(extent)
    return count


def contiguous_base(index: E.PrimExpr) -> Optional[E.PrimExpr]:
    """The first offset of a stride-1 vector index (Ramp, or Ramp plus a Broadcast), else None."""
    if isinstance(index, E.Ramp):
        return index.base if E.is_const_int(index.stride, 1) else None
    if isinstance(index, E.Add):
        for ramp, other in ((index.a, index.b), (index.b, index.a)):
            if isinstance(other, E.Broadcast) and isinstance(ramp, E.Ramp):
                base = contiguous_base(ramp)
                if base is not None:
                    return add(base, other.value)
    return None
