"""Data type strings: parsing, lanes and promotion.

A dtype is a plain string as in TVM and numpy: ``"float32"``, ``"int8"``,
``"bool"``, and vector types ``"float32x8"`` (8 lanes). This module owns the
rules for reading them and for promoting the operands of binary operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..error import ExprError

SCALAR_DTYPES = (
    "bool", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "bfloat16", "handle",
)

_DTYPE_RE = re.compile(r"^(bool|int|uint|float|bfloat|handle)(\d*)(?:x(\d+))?$")


@dataclass(frozen=True)
class DataType:
    """A parsed dtype: ``code`` is one of bool/int/uint/float/bfloat/handle (bfloat16 is a
    floating-point storage type whose arithmetic runs in float32)."""

    code: str
    bits: int
    lanes: int = 1

    @property
    def is_float(self) -> bool:
        return self.code in ("float", "bfloat")

    @property
    def is_int(self) -> bool:
        return self.code == "int"

    @property
    def is_uint(self) -> bool:
        return self.code == "uint"

    @property
    def is_bool(self) -> bool:
        return self.code == "bool"

    @property
    def is_integral(self) -> bool:
        """Integer-like for indexing: int, uint or bool."""
        return self.code in ("int", "uint", "bool")

    def element(self) -> "DataType":
        return DataType(self.code, self.bits, 1)

    def with_lanes(self, lanes: int) -> "DataType":
        return DataType(self.code, self.bits, lanes)

    def __str__(self) -> str:
        base = "bool" if self.code == "bool" else ("handle" if self.code == "handle" else f"{self.code}{self.bits}")
        return base if self.lanes == 1 else f"{base}x{self.lanes}"


_CACHE: dict[str, DataType] = {}


def parse(dtype: str) -> DataType:
    """Parse a dtype string, raising ExprError naming it when unknown."""
    cached = _CACHE.get(dtype)
    if cached is not None:
        return cached
    if not isinstance(dtype, str):
        raise ExprError(f"dtype must be a string such as 'float32', got {dtype!r}")
    m = _DTYPE_RE.match(dtype)
    if not m:
        raise ExprError(f"unknown dtype {dtype!r}; expected one of {', '.join(SCALAR_DTYPES)}")
    code, bits, lanes = m.group(1), m.group(2), m.group(3)
    if code == "int" and bits == "1":  # TVM's int1 is its bool
        code, bits = "bool", ""
    if code == "bool":
        if bits not in ("", "1"):
            raise ExprError(f"unknown dtype {dtype!r}")
        nbits = 1
    elif code == "handle":
        nbits = 64
    else:
        nbits = int(bits) if bits else 32  # TVM's "float" and "int" are float32 and int32
        allowed = {"float": (16, 32, 64), "bfloat": (16,)}.get(code, (8, 16, 32, 64))
        if nbits not in allowed:
            raise ExprError(f"unsupported dtype {dtype!r}: {code} comes in {allowed} bits")
    result = DataType(code, nbits, int(lanes) if lanes else 1)
    _CACHE[dtype] = result
    return result


def lanes(dtype: str) -> int:
    return parse(dtype).lanes


def element_of(dtype: str) -> str:
    return str(parse(dtype).element())


def with_lanes(dtype: str, n: int) -> str:
    return str(parse(dtype).with_lanes(n))


def is_float(dtype: str) -> bool:
    return parse(dtype).is_float


def is_integral(dtype: str) -> bool:
    return parse(dtype).is_integral


def is_bool(dtype: str) -> bool:
    return parse(dtype).is_bool


def promote(a: str, b: str) -> str:
    """The dtype two operands are converted to before a binary operation.

    Floats win over integers, wider types over narrower ones, signed over
    unsigned of the same width, and anything over bool. Lanes must agree
    (or one side be scalar, which is broadcast).
    """
    if a == b:
        return a
    ta, tb = parse(a), parse(b)
    nl = max(ta.lanes, tb.lanes)
    if ta.lanes != tb.lanes and 1 not in (ta.lanes, tb.lanes):
        raise ExprError(f"cannot combine vector types {a} and {b}")
    ea, eb = ta.element(), tb.element()

    def rank(t: DataType) -> tuple:
        order = {"bool": 0, "uint": 1, "int": 2, "bfloat": 3, "float": 3}
        return (order[t.code] == 3, t.bits, order[t.code])

    win = ea if rank(ea) >= rank(eb) else eb
    return str(win.with_lanes(nl))


def numpy_name(dtype: str) -> str:
    """The numpy dtype name of a scalar dtype ('bool' for bool)."""
    t = parse(dtype)
    if t.lanes != 1:
        raise ExprError(f"{dtype} is a vector type; numpy has no such scalar")
    return str(t)
