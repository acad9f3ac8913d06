"""CUDA C for tensor core fragments: ``nvcuda::wmma`` declarations and calls (``#include <mma.h>``).

A buffer of a ``wmma.*`` scope is declared as an array of ``nvcuda::wmma::fragment``s whose
use, m/n/k, element type and (matrix_a/b) layout :func:`tecomp.tir.wmma.infer_fragments`
found; the four builtins become ``fill_fragment``, ``load_matrix_sync``, ``store_matrix_sync``
and ``mma_sync`` on ``frag[index]``, with pointers ``&buffer[offset]``. Every thread of a
warp executes them (warp-collective), as TVM emits them. The expressions inside are written
by the kernel emitter of :mod:`.cuda`; this module only spells the wmma parts.
"""

from __future__ import annotations

from typing import Any

from ..tir import expr as E
from ..tir import wmma
from ..tir.buffer import Buffer

NS = "nvcuda::wmma::"
_USE = {"wmma.matrix_a": "matrix_a", "wmma.matrix_b": "matrix_b", "wmma.accumulator": "accumulator"}


def declaration(buf: Buffer, frag: wmma.Fragment, name: str, ctype: str) -> str:
    """The C declaration of fragment buffer ``buf`` (C name ``name``, element type ``ctype``)."""
    params = [NS + _USE[frag.scope], str(frag.m), str(frag.n), str(frag.k), ctype]
    if frag.layout is not None:
        params.append(NS + frag.layout)
    return f"{NS}fragment<{', '.join(params)}> {name}[{wmma.fragment_count(buf, frag)}];"


def statement(emitter: Any, call: E.Call, fragments: dict) -> str:
    """The C statement of one builtin call; ``emitter`` writes names and expressions."""
    def frag(var: E.Var, index: E.PrimExpr) -> str:
        return f"{emitter.names[var]}[{emitter.expr(index)}]"

    if call.op == wmma.MMA:
        d, a, b, c = (frag(var, index) for var, index in wmma.mma_operands(call))
        return f"{NS}mma_sync({d}, {a}, {b}, {c});"
    acc = wmma.unpack(call)
    target = frag(acc.frag, acc.index)
    if call.op == wmma.FILL:
        dtype = fragments[acc.frag].dtype
        value = acc.value if acc.value.dtype == dtype else E.Cast(dtype, acc.value)
        return f"{NS}fill_fragment({target}, {emitter.expr(value)});"
    pointer = f"&{emitter.buffer(acc.pointer.buffer)}[{emitter.expr(acc.pointer.indices[0])}]"
    stride = emitter.expr(acc.stride)
    memory_layout = f"{NS}mem_{acc.layout}"
    if call.op == wmma.STORE:
        return f"{NS}store_matrix_sync({pointer}, {target}, {stride}, {memory_layout});"
    if fragments[acc.frag].scope == "wmma.accumulator":
        return f"{NS}load_matrix_sync({target}, {pointer}, {stride}, {memory_layout});"
    return f"{NS}load_matrix_sync({target}, {pointer}, {stride});"
