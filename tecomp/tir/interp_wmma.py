"""The tensor core builtins (:mod:`.wmma`) in the reference interpreter: warp-collective, by lane 0.

Every lane of a warp calls a fragment builtin with the same arguments (CUDA's rule for
``nvcuda::wmma``); here the warp's lane 0 (linear thread index ``x + X * (y + Y * z)`` a
multiple of 32) performs the whole operation on its own copy of the fragment buffer and the
other lanes do nothing. Fragments are private to a thread (as ``local`` memory), so only
lane 0's copy ever holds data, and every shared or global element a warp reads or writes is
recorded once, as lane 0's access, by the race detector: two warps touching one tile without a
barrier race; the lanes of one warp do not. A fragment is its tile row-major at ``[index *
size, (index + 1) * size)`` of the buffer; ``mma_sync`` forms each product and sum exactly (in
float64) and rounds once to the accumulator's dtype, as the CPU emulation of CUDA does. This
module must not parse IR beyond the builtins' arguments (:mod:`.wmma` does) nor run statements.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..error import TecompError
from . import expr as E
from . import wmma

Fn = Callable[[list], Any]


def compile_call(c: Any, call: E.Call) -> Fn:
    """``call`` (a fragment builtin) as a closure of the interpreter's compiler ``c``."""
    fragments = c.fragments()
    lane_zero = c.lane_zero()
    if call.op == wmma.MMA:
        run = _mma(c, call, fragments)
    else:
        acc = wmma.unpack(call)
        frag = fragments[acc.frag]
        run = _fill(c, acc, frag) if call.op == wmma.FILL else _transfer(c, acc, frag)

    def collective(env: list) -> None:
        if lane_zero(env):
            run(env)
    return collective


def _tile(c: Any, var: E.Var, index: E.PrimExpr, frag: wmma.Fragment, what: str) -> Callable[[list], np.ndarray]:
    """The fragment ``index`` of buffer ``var`` as a (rows, cols) view of the thread's memory."""
    m = c.mem[var][0]
    findex = c.expr(index)

    def view(env: list) -> np.ndarray:
        i = findex(env)
        memory = env[m]
        if i < 0 or (i + 1) * frag.size > memory.shape[0]:
            raise TecompError(f"{what}: fragment index {i} of {var.name} is outside its "
                              f"{memory.shape[0] // frag.size} fragments")
        return memory[i * frag.size:(i + 1) * frag.size].reshape(frag.rows, frag.cols)
    return view


def _fill(c: Any, acc: wmma.Access, frag: wmma.Fragment) -> Fn:
    tile, fvalue = _tile(c, acc.frag, acc.index, frag, acc.op), c.expr(acc.value)

    def fill(env: list) -> None:
        tile(env)[...] = fvalue(env)
    return fill


def _transfer(c: Any, acc: wmma.Access, frag: wmma.Fragment) -> Fn:
    """load_matrix_sync / store_matrix_sync between a fragment and strided shared or global memory."""
    tile = _tile(c, acc.frag, acc.index, frag, acc.op)
    buf = acc.pointer.buffer
    m = c.memory(buf)
    fbase, fstride = c.expr(acc.pointer.indices[0]), c.expr(acc.stride)
    record = c.recorder(buf)
    rows, cols = np.arange(frag.rows)[:, None], np.arange(frag.cols)[None, :]
    store = acc.op == wmma.STORE

    def transfer(env: list) -> None:
        stride = fstride(env)
        at = fbase(env) + (rows * stride + cols if acc.layout == "row_major" else cols * stride + rows)
        memory = env[m]
        if at.min() < 0 or at.max() >= memory.shape[0]:
            raise TecompError(f"{acc.op}: the {frag.rows}x{frag.cols} tile at element {int(at.flat[0])} of "
                              f"{buf.name} (stride {stride}, {acc.layout}) reaches outside its "
                              f"{memory.shape[0]} elements")
        if store:
            memory[at] = tile(env)
        else:
            tile(env)[...] = memory[at]
        record(env, at.reshape(-1), store)
    return transfer


def _mma(c: Any, call: E.Call, fragments: dict) -> Fn:
    operands = wmma.mma_operands(call)
    d, a, b, acc = (_tile(c, var, index, fragments[var], call.op) for var, index in operands)

    def mma(env: list) -> None:
        product = a(env).astype(np.float64) @ b(env).astype(np.float64)
        out = d(env)
        out[...] = (product + acc(env).astype(np.float64)).astype(out.dtype)
    return mma
