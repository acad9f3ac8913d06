"""TVM's warp-level matrix builtins (CUDA tensor cores): their arguments and fragment inference.

Storage scopes ``wmma.matrix_a``, ``wmma.matrix_b`` and ``wmma.accumulator`` hold
*fragments*: 16x16 (or 32x8, 8x32) tiles a warp owns together. A buffer of such a scope is an
array of fragments, fragment ``i`` standing for the elements ``[i * size, (i + 1) * size)``
(``size`` is m*k for matrix_a, k*n for matrix_b, m*n for the accumulator); only the four
builtins touch them, with TVM's arguments (``tir.call_intrin("handle", "tir.<name>", ...)``)::

    tvm_fill_fragment(frag, m, n, k, index, value)
    tvm_load_matrix_sync(frag, m, n, k, index, pointer, stride, layout)
    tvm_store_matrix_sync(frag, m, n, k, index, pointer, stride, layout)
    tvm_mma_sync(d, d_index, a, a_index, b, b_index, c, c_index)        # D = A @ B + C

``pointer`` is ``Buffer.access_ptr(...)`` of shared or global memory, ``stride`` its row
pitch in elements and ``layout`` ``"row_major"`` or ``"col_major"``. :func:`infer_fragments`
is TVM's InferFragment pass: the shape of each fragment buffer from the calls that use it,
and for matrix_a/b the layout it was loaded with; a buffer used with two shapes or layouts, or
never given one, is a :class:`FragmentError`. The backends (CUDA C, the interpreter, the CPU
emulation of CUDA) take each call as a warp-collective operation. This module must not
generate code nor run anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..error import TecompError
from . import expr as E
from . import stmt as S
from .buffer import Buffer
from .functor import post_order_visit

SCOPES = ("wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator")
FILL, LOAD, STORE, MMA = "tvm_fill_fragment", "tvm_load_matrix_sync", "tvm_store_matrix_sync", "tvm_mma_sync"
BUILTINS = (FILL, LOAD, STORE, MMA)
LAYOUTS = ("row_major", "col_major")
SHAPES = ((16, 16, 16), (32, 8, 16), (8, 32, 16))
WARP_SIZE = 32
_INPUT_DTYPES = ("float16",)
_ACCUMULATOR_DTYPES = ("float16", "float32")


class FragmentError(TecompError):
    """A tensor core fragment or builtin is used wrongly (names the buffer and the call)."""


def is_fragment_scope(scope: str) -> bool:
    return scope in SCOPES


@dataclass(frozen=True)
class Fragment:
    """What one fragment buffer holds: its use (scope), m/n/k, element dtype and (matrix_a/b) layout."""

    scope: str
    m: int
    n: int
    k: int
    dtype: str
    layout: Optional[str]

    @property
    def rows(self) -> int:
        return self.k if self.scope == "wmma.matrix_b" else self.m

    @property
    def cols(self) -> int:
        return self.k if self.scope == "wmma.matrix_a" else self.n

    @property
    def size(self) -> int:
        """Elements of one fragment."""
        return self.rows * self.cols


@dataclass(frozen=True)
class Access:
    """One fill/load/store call, its arguments unpacked."""

    op: str
    frag: E.Var
    shape: tuple          # (m, n, k) as ints
    index: E.PrimExpr
    value: Optional[E.PrimExpr] = None     # fill
    pointer: Optional[E.BufferLoad] = None  # load/store: the element the pointer addresses
    stride: Optional[E.PrimExpr] = None
    layout: Optional[str] = None


def _const(e: Any, what: str, call: E.Call) -> int:
    if not isinstance(e, E.IntImm):
        raise FragmentError(f"{call.op}: {what} must be a constant integer, got {e}")
    return e.value


def _pointer(e: Any, call: E.Call) -> E.BufferLoad:
    if isinstance(e, E.Call) and e.op == "address_of" and isinstance(e.args[0], E.BufferLoad):
        return e.args[0]
    raise FragmentError(f"{call.op}: the pointer argument must be Buffer.access_ptr(...) of shared or global "
                        f"memory, got {e}")


def unpack(call: E.Call) -> Access:
    """The arguments of a fill/load/store call; FragmentError naming what is malformed."""
    counts = {FILL: 6, LOAD: 8, STORE: 8}
    if call.op not in counts:
        raise FragmentError(f"{call.op} is not a fragment fill/load/store")
    if len(call.args) != counts[call.op]:
        raise FragmentError(f"{call.op} takes {counts[call.op]} arguments (fragment, m, n, k, index, "
                            f"{'value' if call.op == FILL else 'pointer, stride, layout'}), got {len(call.args)}")
    frag = call.args[0]
    if not isinstance(frag, E.Var):
        raise FragmentError(f"{call.op}: the first argument must be a fragment buffer's data (BC.data), got {frag}")
    shape = tuple(_const(a, w, call) for a, w in zip(call.args[1:4], "mnk"))
    if call.op == FILL:
        return Access(call.op, frag, shape, call.args[4], value=call.args[5])
    layout = call.args[7]
    if not isinstance(layout, E.StringImm) or layout.value not in LAYOUTS:
        raise FragmentError(f"{call.op}: the layout must be 'row_major' or 'col_major', got {layout}")
    return Access(call.op, frag, shape, call.args[4], pointer=_pointer(call.args[5], call), stride=call.args[6],
                  layout=layout.value)


def mma_operands(call: E.Call) -> list[tuple[E.Var, E.PrimExpr]]:
    """(fragment data, index) of D, A, B and C of a ``tvm_mma_sync`` call."""
    if len(call.args) != 8 or not all(isinstance(call.args[i], E.Var) for i in (0, 2, 4, 6)):
        raise FragmentError(f"{MMA} takes (d, d_index, a, a_index, b, b_index, c, c_index) with fragment "
                            f"buffers' data, got {len(call.args)} arguments")
    return [(call.args[i], call.args[i + 1]) for i in (0, 2, 4, 6)]


def builtin_calls(s: Any) -> list[E.Call]:
    """The fragment builtin calls under ``s``, in program order."""
    found: list[E.Call] = []
    post_order_visit(s, lambda n: found.append(n) if isinstance(n, E.Call) and n.op in BUILTINS else None)
    return found


def written_pointer(call: E.Call) -> Optional[E.BufferLoad]:
    """The memory element a ``tvm_store_matrix_sync`` call writes from (None for other calls)."""
    return unpack(call).pointer if isinstance(call, E.Call) and call.op == STORE else None


def infer_fragments(body: S.Stmt) -> dict[E.Var, Fragment]:
    """Each fragment buffer allocated in ``body`` (by its data variable) with what it holds."""
    buffers: dict[E.Var, Buffer] = {}
    post_order_visit(body, lambda n: buffers.__setitem__(n.buffer.data, n.buffer)
                     if isinstance(n, S.Allocate) and is_fragment_scope(n.buffer.scope) else None)
    shapes: dict[E.Var, tuple] = {}
    layouts: dict[E.Var, str] = {}
    calls = builtin_calls(body)
    for call in calls:
        if call.op == MMA:
            continue
        acc = unpack(call)
        buf = _fragment_buffer(buffers, acc.frag, call)
        if acc.shape not in SHAPES:
            raise FragmentError(f"{call.op} on {buf.name}: m, n, k = {acc.shape} is not a tensor core shape; "
                                f"use one of {', '.join(map(str, SHAPES))}")
        old = shapes.setdefault(acc.frag, acc.shape)
        if old != acc.shape:
            raise FragmentError(f"fragment {buf.name} is used with two shapes, m, n, k = {old} and {acc.shape}; "
                                "a fragment buffer holds tiles of one shape: declare a buffer per shape")
        if call.op == LOAD and buf.scope != "wmma.accumulator":
            was = layouts.setdefault(acc.frag, acc.layout)
            if was != acc.layout:
                raise FragmentError(f"fragment {buf.name} is loaded both {was} and {acc.layout}; a matrix_a/b "
                                    "fragment has one layout")
        if call.op == STORE and buf.scope != "wmma.accumulator":
            raise FragmentError(f"{STORE} from {buf.name} ({buf.scope}): only an accumulator fragment is stored")
        if call.op == FILL and buf.scope != "wmma.accumulator":
            raise FragmentError(f"{FILL} of {buf.name} ({buf.scope}): only an accumulator fragment is filled")
    found = {var: _fragment(buf, shapes, layouts) for var, buf in buffers.items()}
    for call in calls:
        if call.op == MMA:
            _check_mma(call, buffers, found)
    return found


def _fragment_buffer(buffers: dict, var: E.Var, call: E.Call) -> Buffer:
    buf = buffers.get(var)
    if buf is None:
        raise FragmentError(f"{call.op}: {var.name} is not a buffer of scope {', '.join(SCOPES)} allocated in the "
                            "kernel; the fragment stages need cache_read/cache_write with a wmma scope")
    return buf


def _fragment(buf: Buffer, shapes: dict, layouts: dict) -> Fragment:
    shape = shapes.get(buf.data)
    if shape is None:
        raise FragmentError(f"fragment {buf.name} ({buf.scope}) is never filled, loaded or stored, so its shape "
                            "is unknown; tensorize its stage with a tvm_load_matrix_sync (or tvm_fill_fragment) "
                            "intrinsic")
    wanted = _ACCUMULATOR_DTYPES if buf.scope == "wmma.accumulator" else _INPUT_DTYPES
    if buf.dtype not in wanted:
        raise FragmentError(f"fragment {buf.name} ({buf.scope}) holds {buf.dtype}; tecomp's tensor core support "
                            f"takes {' or '.join(wanted)} there")
    layout = None if buf.scope == "wmma.accumulator" else layouts.get(buf.data)
    if buf.scope != "wmma.accumulator" and layout is None:
        raise FragmentError(f"fragment {buf.name} ({buf.scope}) is never loaded, so its layout is unknown")
    frag = Fragment(buf.scope, *shape, buf.dtype, layout)
    elements = math.prod(d.value for d in buf.shape if isinstance(d, E.IntImm))
    if elements % frag.size:
        raise FragmentError(f"fragment buffer {buf.name} has {elements} elements, not a whole number of "
                            f"{frag.rows}x{frag.cols} fragments")
    return frag


def _check_mma(call: E.Call, buffers: dict, found: dict) -> None:
    roles = ("wmma.accumulator", "wmma.matrix_a", "wmma.matrix_b", "wmma.accumulator")
    frags = []
    for (var, _), role, name in zip(mma_operands(call), roles, "dabc"):
        buf = _fragment_buffer(buffers, var, call)
        if buf.scope != role:
            raise FragmentError(f"{MMA}: operand {name} is {buf.name} of scope {buf.scope}; it must be {role}")
        frags.append(found[var])
    shapes = {(f.m, f.n, f.k) for f in frags}
    if len(shapes) != 1:
        raise FragmentError(f"{MMA}: its fragments have different shapes {sorted(shapes)}; D, A, B and C must "
                            "share m, n, k")
    if frags[0].dtype != frags[3].dtype:
        raise FragmentError(f"{MMA}: C holds {frags[3].dtype} but D {frags[0].dtype}; they must match")


def fragment_count(buf: Buffer, frag: Fragment) -> int:
    return math.prod(d.value for d in buf.shape) // frag.size


__all__ = ["Access", "BUILTINS", "FILL", "Fragment", "FragmentError", "LAYOUTS", "LOAD", "MMA", "SCOPES",
           "STORE", "WARP_SIZE", "builtin_calls", "fragment_count", "infer_fragments", "is_fragment_scope",
           "mma_operands", "unpack", "written_pointer"]
