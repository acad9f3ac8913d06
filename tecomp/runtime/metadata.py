"""The metadata a compiled library describes itself with, and its validation.

A library built by tecomp exports ``const char* __tecomp_metadata(void)``
returning JSON (format 1)::

    {"format": 1, "tecomp_version": "0.1.0", "target": "llvm -mcpu=native",
     "functions": [{"name": "vadd",
                    "params": [{"name": "A", "dtype": "float32", "shape": [1024, "n"]}],
                    "size_vars": [{"name": "n", "dtype": "int32"}]}]}

A shape entry is a non-negative int, the name of one of the function's size
vars, or an expression of them (an EXPR, see :func:`evaluate`: ``n // x``,
checked at each call); every size var must appear in some parameter's shape
(it is bound from the arguments) unless it is a scalar argument
(``{"name": "x", "dtype": "int32", "arg": 2}``: the caller passes its value as
argument 2, between the arrays). Extra keys are allowed and kept for other readers (the
graph runtime). This module only parses and checks; it never loads code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..error import TecompError
from .ndarray import check_dtype, vector_dtype

FORMAT_VERSION = 1
SIZE_VAR_DTYPES = ("int32", "int64")
FLOAT_ARG_DTYPES = ("float32", "float64")  # a scalar argument may be a float: its slot holds a double's bits


@dataclass(frozen=True)
class ParamInfo:
    """One buffer parameter: ``shape`` holds ints and size-var names (or expressions of them);
    ``strides``, in elements and alike, are empty for a compact row-major array."""

    name: str
    dtype: np.dtype
    shape: tuple[int | str, ...]
    written: bool = True  # the function stores to it (absent in metadata: assume so)
    strides: tuple[int | str, ...] = ()


@dataclass(frozen=True)
class FunctionInfo:
    """One exported function: its buffer parameters and its size vars, in ABI order."""

    name: str
    params: tuple[ParamInfo, ...]
    size_vars: tuple[tuple[str, str], ...]  # (name, dtype)
    # size vars the caller passes as integer arguments: (argument position, size var index)
    scalar_args: tuple[tuple[int, int], ...] = ()


_OPS: dict[str, Callable[[int, int], int]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b, "floormod": lambda a, b: a % b, "min": min, "max": max,
}


def evaluate(expr: Any, sizes: Any) -> int:
    """The value of an EXPR (an int, ``["sv", k]`` or ``[op, EXPR, EXPR]``, op one of add, sub, mul,
    floordiv, floormod, min, max) for size-var values ``sizes``."""
    if isinstance(expr, int) and not isinstance(expr, bool):
        return expr
    if isinstance(expr, list) and len(expr) == 2 and expr[0] == "sv":
        return int(sizes[expr[1]])
    if isinstance(expr, list) and len(expr) == 3 and expr[0] in _OPS:
        return _OPS[expr[0]](evaluate(expr[1], sizes), evaluate(expr[2], sizes))
    raise TecompError(f"invalid size expression {expr!r} in a library's metadata")


def _valid_expr(expr: Any, count: int) -> bool:
    if isinstance(expr, int) and not isinstance(expr, bool):
        return True
    if isinstance(expr, list) and len(expr) == 2 and expr[0] == "sv":
        return isinstance(expr[1], int) and 0 <= expr[1] < count
    return (isinstance(expr, list) and len(expr) == 3 and expr[0] in _OPS
            and _valid_expr(expr[1], count) and _valid_expr(expr[2], count))


class _Invalid(Exception):
    """A problem found while reading; turned into a TecompError naming the library."""


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise _Invalid(f"{where} has no {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise _Invalid(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


def _name(obj: Any, where: str) -> str:
    name = _field(obj, "name", str, where)
    if not name:
        raise _Invalid(f"{where} has an empty name")
    return name


def _size_vars(fn: dict, where: str) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[int, int], ...]]:
    """The size vars (name, dtype) and the scalar arguments among them (position, index)."""
    out, scalars = [], []
    for k, sv in enumerate(_field(fn, "size_vars", list, where)):
        sv_where = f"{where}, size var {k}"
        name, dtype = _name(sv, sv_where), _field(sv, "dtype", str, sv_where)
        if dtype not in SIZE_VAR_DTYPES and not ("arg" in sv and dtype in FLOAT_ARG_DTYPES):
            raise _Invalid(f"{sv_where} ({name}) has dtype {dtype!r}; expected int32 or int64 "
                           "(float32 or float64 for a scalar argument)")
        if "arg" in sv:
            scalars.append((_field(sv, "arg", int, sv_where), k))
        out.append((name, dtype))
    if len({name for name, _ in out}) != len(out):
        raise _Invalid(f"{where} declares a size var twice")
    if len({pos for pos, _ in scalars}) != len(scalars):
        raise _Invalid(f"{where} gives two scalar arguments one position")
    return tuple(out), tuple(sorted(scalars))


def _dim(dim: Any, size_vars: tuple[str, ...], where: str) -> int | str | list:
    if isinstance(dim, int) and not isinstance(dim, bool) and dim >= 0:
        return dim
    if isinstance(dim, str) and dim in size_vars:
        return dim
    if isinstance(dim, list) and _valid_expr(dim, len(size_vars)):  # e.g. n // x, checked at each call
        return dim
    raise _Invalid(f"{where}: shape entry {dim!r} is neither a non-negative int, a declared size var "
                   "nor an expression of them")


def _param(param: Any, size_vars: tuple[str, ...], where: str) -> ParamInfo:
    name = _name(param, where)
    where = f"{where} ({name})"
    dtype_name = _field(param, "dtype", str, where)
    element, lanes = vector_dtype(dtype_name)  # float32x4: float32 arrays with a trailing dimension of 4
    try:
        # numpy has no bfloat16: such arrays travel as their 16-bit patterns, in uint16 arrays (as in TVM)
        dtype = check_dtype("uint16" if element == "bfloat16" else element)
    except TecompError as exc:
        raise _Invalid(f"{where}: {exc}") from None
    if str(dtype) != element and element != "bfloat16":  # reject numpy aliases such as "f4"
        raise _Invalid(f"{where}: dtype {dtype_name!r} is not a tecomp dtype name")
    shape = tuple(_dim(d, size_vars, where) for d in _field(param, "shape", list, where))
    strides = tuple(_dim(d, size_vars, where) for d in param.get("strides", ()))
    if strides and (len(strides) != len(shape) or lanes > 1):
        raise _Invalid(f"{where}: strides {list(strides)} do not match shape {list(shape)}")
    shape += (lanes,) if lanes > 1 else ()
    written = param.get("written", True)
    if not isinstance(written, bool):
        raise _Invalid(f"{where}: 'written' must be true or false, got {written!r}")
    return ParamInfo(name, dtype, shape, written, strides)


def _function(fn: Any, index: int) -> FunctionInfo:
    name = _name(fn, f"function {index}")
    where = f"function {name!r}"
    size_vars, scalars = _size_vars(fn, where)
    sv_names = tuple(n for n, _ in size_vars)
    params = tuple(_param(p, sv_names, f"{where}, param {k}")
                   for k, p in enumerate(_field(fn, "params", list, where)))
    given = {sv_names[k] for _, k in scalars}
    unbound = set(sv_names) - given - {d for p in params for d in (*p.shape, *p.strides) if isinstance(d, str)}
    if unbound:
        raise _Invalid(f"{where}: size vars {sorted(unbound)} appear in no parameter shape")
    if any(pos > len(params) + len(scalars) - 1 for pos, _ in scalars):
        raise _Invalid(f"{where}: a scalar argument's position is past the last argument")
    return FunctionInfo(name, params, size_vars, scalars)


def parse_metadata(text: bytes, library: str) -> tuple[dict[str, Any], list[FunctionInfo]]:
    """The parsed JSON and its functions in order; TecompError naming ``library`` if invalid."""
    try:
        doc = json.loads(text.decode("utf-8"))
        version = _field(doc, "format", int, "metadata")
        if version != FORMAT_VERSION:
            raise _Invalid(f"metadata format {version} is not supported (this runtime reads {FORMAT_VERSION})")
        _field(doc, "tecomp_version", str, "metadata")
        _field(doc, "target", str, "metadata")
        functions = [_function(fn, k) for k, fn in enumerate(_field(doc, "functions", list, "metadata"))]
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TecompError(f"{library}: __tecomp_metadata is not valid JSON: {exc}") from None
    except _Invalid as exc:
        raise TecompError(f"{library}: invalid metadata: {exc}") from None
    if not functions:
        raise TecompError(f"{library}: invalid metadata: it lists no functions")
    if len({f.name for f in functions}) != len(functions):
        raise TecompError(f"{library}: invalid metadata: a function name appears twice")
    return doc, functions
