"""Readable text of the loop IR, in the style of TVM's ``simple_mode`` output.

Variables are printed by name; two distinct variables that share a name get
``_1``, ``_2`` suffixes within one function so the text stays unambiguous.
"""

from __future__ import annotations

from typing import Any

from . import expr as E
from .buffer import Buffer
from . import stmt as S

_BIN = {E.Add: "+", E.Sub: "-", E.Mul: "*", E.Div: "/", E.EQ: "==", E.NE: "!=",
        E.LT: "<", E.LE: "<=", E.GT: ">", E.GE: ">=", E.And: "&&", E.Or: "||"}
_FUNC = {E.FloorDiv: "floordiv", E.FloorMod: "floormod", E.Min: "min", E.Max: "max"}


class _Printer:
    def __init__(self) -> None:
        self.names: dict[int, str] = {}
        self.used: dict[str, int] = {}
        self.lines: list[str] = []

    def name_of(self, v: Any, base: str) -> str:
        key = id(v)
        if key not in self.names:
            n = self.used.get(base, 0)
            self.used[base] = n + 1
            self.names[key] = base if n == 0 else f"{base}_{n}"
        return self.names[key]

    def var(self, v: E.Var) -> str:
        return self.name_of(v, v.name)

    def buf(self, b: Any) -> str:
        return self.name_of(b.data, b.name)  # views of one memory (same data variable) share a name

    # ------------------------------------------------------------ expressions
    def expr(self, e: Any) -> str:
        if isinstance(e, Buffer):  # an argument of call_packed
            return self.buf(e)
        if isinstance(e, E.Var):
            return self.var(e)
        if isinstance(e, E.IntImm):
            if e.dtype == "bool":
                return "True" if e.value else "False"
            return str(e.value) if e.dtype in ("int32",) else f"{e.value}{_suffix(e.dtype)}"
        if isinstance(e, E.FloatImm):
            return f"{e.value!r}f" if e.dtype == "float32" else f"{e.value!r}{_suffix(e.dtype)}"
        if isinstance(e, E.StringImm):
            return repr(e.value)
        op = _BIN.get(type(e))
        if op is not None:
            return f"({self.expr(e.a)} {op} {self.expr(e.b)})"
        fn = _FUNC.get(type(e))
        if fn is not None:
            return f"{fn}({self.expr(e.a)}, {self.expr(e.b)})"
        if isinstance(e, E.Not):
            return f"!{self.expr(e.a)}"
        if isinstance(e, E.Cast):
            return f"{e.dtype}({self.expr(e.value)})"
        if isinstance(e, E.Select):
            return (f"select({self.expr(e.condition)}, {self.expr(e.true_value)}, "
                    f"{self.expr(e.false_value)})")
        if isinstance(e, E.Call):
            return f"{e.op}({', '.join(self.expr(a) for a in e.args)})"
        if isinstance(e, E.Let):
            return f"(let {self.var(e.var)} = {self.expr(e.value)} in {self.expr(e.body)})"
        if isinstance(e, E.Ramp):
            return f"ramp({self.expr(e.base)}, {self.expr(e.stride)}, {e.lanes})"
        if isinstance(e, E.Broadcast):
            return f"broadcast({self.expr(e.value)}, {e.lanes})"
        if isinstance(e, E.Shuffle):
            return (f"shuffle([{', '.join(self.expr(v) for v in e.vectors)}], "
                    f"[{', '.join(str(i.value) for i in e.indices)}])")
        if isinstance(e, E.BufferLoad):
            return f"{self.buf(e.buffer)}[{', '.join(self.expr(i) for i in e.indices)}]"
        if isinstance(e, E.ProducerLoad):
            return f"{e.producer.name}[{', '.join(self.expr(i) for i in e.indices)}]"
        if isinstance(e, E.Reduce):
            axes = ", ".join(self.var(iv.var) for iv in e.axis)
            src = ", ".join(self.expr(s) for s in e.source)
            return f"reduce_{e.combiner.name}({src}, axis=[{axes}])"
        return f"<{type(e).__name__}>"

    # ------------------------------------------------------------ statements
    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def stmt(self, s: Any, depth: int) -> None:
        if isinstance(s, S.SeqStmt):
            for c in s.seq:
                self.stmt(c, depth)
        elif isinstance(s, S.For):
            kind = "" if s.kind is S.ForKind.SERIAL else f"{s.kind.value} "
            if s.kind is S.ForKind.THREAD_BINDING:
                kind = f"thread_binding({s.thread_tag}) "
            begin = "" if _is_zero(s.min) else f"{self.expr(s.min)}, "
            self.emit(depth, f"{kind}for ({self.var(s.loop_var)}, {begin}{self.expr(s.extent)}) {{")
            self.stmt(s.body, depth + 1)
            self.emit(depth, "}")
        elif isinstance(s, S.BufferStore):
            idx = ", ".join(self.expr(i) for i in s.indices)
            self.emit(depth, f"{self.buf(s.buffer)}[{idx}] = {self.expr(s.value)}")
        elif isinstance(s, S.IfThenElse):
            self.emit(depth, f"if ({self.expr(s.condition)}) {{")
            self.stmt(s.then_case, depth + 1)
            if s.else_case is not None:
                self.emit(depth, "} else {")
                self.stmt(s.else_case, depth + 1)
            self.emit(depth, "}")
        elif isinstance(s, S.Allocate):
            b = s.buffer
            shape = ", ".join(self.expr(x) for x in b.shape)
            self.emit(depth, f"allocate {self.buf(b)}[{b.dtype} * {shape}], {b.scope}")
            self.stmt(s.body, depth)
        elif isinstance(s, S.AttrStmt):
            node = s.node
            target = self.var(node) if isinstance(node, E.Var) else (
                node if isinstance(node, str) else getattr(node, "name", type(node).__name__))
            self.emit(depth, f"// attr [{target}] {s.attr_key} = {self.expr(s.value)}")
            self.stmt(s.body, depth)
        elif isinstance(s, S.LetStmt):
            self.emit(depth, f"let {self.var(s.var)} = {self.expr(s.value)}")
            self.stmt(s.body, depth)
        elif isinstance(s, S.Evaluate):
            self.emit(depth, self.expr(s.value))
        else:
            self.emit(depth, f"<{type(s).__name__}>")


def _suffix(dtype: str) -> str:
    return {"int64": "i64", "int8": "i8", "int16": "i16", "uint8": "u8", "float64": "",
            "float16": "h"}.get(dtype, f"_{dtype}")


def _is_zero(e: Any) -> bool:
    return isinstance(e, E.IntImm) and e.value == 0


def expr_to_str(e: Any) -> str:
    return _Printer().expr(e)


def stmt_to_str(s: Any) -> str:
    p = _Printer()
    p.stmt(s, 0)
    return "\n".join(p.lines)


def func_to_str(f: S.PrimFunc) -> str:
    p = _Printer()
    params = []
    for b in f.params:
        shape = ", ".join(p.expr(x) for x in b.shape)
        strides = f", strides=[{', '.join(p.expr(x) for x in b.strides)}]" if b.strides else ""
        params.append(f"{p.buf(b)}: Buffer({b.dtype}, [{shape}]{strides})")
    p.emit(0, f"primfn {f.name}({', '.join(params)}) {{")
    p.stmt(f.body, 1)
    p.emit(0, "}")
    return "\n".join(p.lines)
