"""Global functions by name: TVM's ``register_func`` / ``get_global_func``.

A registered function is a Python callable under a dotted name. Compiled
code reaches one through ``tir.call_packed(name, *args)``: the generated
library calls back through its ``__tecomp_packed_call`` slot, which
:func:`install_callback` points at :func:`_dispatch` when the library is
loaded. Buffer arguments arrive as ``NDArray`` views of the kernel's memory
(no copy), scalars as Python numbers. An exception in the callback is kept
and re-raised by the call into the compiled function. This module must not
import the compiler.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable, Optional, Union

import numpy as np

from ..error import TecompError

_registry: dict[str, Callable] = {}
_pending: dict[str, Optional[BaseException]] = {"error": None}  # the first failure wins, across threads
_pending_lock = threading.Lock()

CALLBACK_SYMBOL = "__tecomp_packed_call"
# int32 callback(const char* signature, void** pointers, int64* values)
_CALLBACK_TYPE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                  ctypes.POINTER(ctypes.c_int64))


def register_func(func_name: Union[str, Callable], f: Optional[Callable] = None,
                  override: bool = False) -> Any:
    """Register ``f`` as ``func_name``; used bare (``@register_func``) or as ``@register_func("name")``."""
    if callable(func_name) and f is None:
        return register_func(func_name.__name__, func_name, override)
    if not isinstance(func_name, str) or not func_name:
        raise TecompError(f"register_func: the name must be a non-empty string, got {func_name!r}")

    def register(fn: Callable) -> Callable:
        if func_name in _registry and not override:
            raise TecompError(f"global function {func_name!r} is already registered; pass override=True")
        _registry[func_name] = fn
        return fn

    return register(f) if f is not None else register


def get_global_func(name: str, allow_missing: bool = False) -> Optional[Callable]:
    """The function registered as ``name``; None if missing and ``allow_missing``."""
    fn = _registry.get(name)
    if fn is None and not allow_missing:
        known = ", ".join(sorted(_registry)) or "none"
        raise TecompError(f"no global function {name!r} is registered (registered: {known})")
    return fn


def list_global_func_names() -> list[str]:
    return sorted(_registry)


def remove_global_func(name: str) -> None:
    _registry.pop(name, None)


def _arguments(signature: str, pointers: Any, values: Any) -> tuple[str, list]:
    """Decode the call: ``name|b<dtype>:<ndim>|i|f|...``; ``values`` holds dims and scalars in order."""
    from .ndarray import NDArray
    name, *kinds = signature.split("|")
    args: list = []
    slot = 0
    for k, kind in enumerate(kinds):
        if kind[0] == "b":
            dtype, ndim = kind[1:].split(":")
            shape = tuple(values[slot + d] for d in range(int(ndim)))
            slot += int(ndim)
            count = int(np.prod(shape)) if shape else 1
            buf = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(pointers[k])
            args.append(NDArray(np.frombuffer(buf, dtype=dtype).reshape(shape)))
        elif kind == "f":
            args.append(ctypes.c_double.from_buffer_copy(ctypes.c_int64(values[slot])).value)
            slot += 1
        else:
            args.append(int(values[slot]))
            slot += 1
    return name, args


def _dispatch(signature: bytes, pointers: Any, values: Any) -> int:
    try:
        name, args = _arguments(signature.decode(), pointers, values)
        get_global_func(name)(*args)
        return 0
    except BaseException as exc:  # noqa: BLE001 (every failure goes back to the caller of the kernel)
        with _pending_lock:
            _pending["error"] = _pending["error"] or exc
        return 1


_callback = _CALLBACK_TYPE(_dispatch)


def install_callback(lib: Any) -> None:
    """Point a loaded library's packed-call slot (if it has one) at the registry."""
    try:
        slot = ctypes.c_void_p.in_dll(lib, CALLBACK_SYMBOL)
    except ValueError:
        return
    slot.value = ctypes.cast(_callback, ctypes.c_void_p).value


def take_pending_error() -> Optional[BaseException]:
    """The exception a packed function raised during the last failed call (then cleared)."""
    with _pending_lock:
        exc, _pending["error"] = _pending["error"], None
    return exc


def convert(value: Any) -> Any:
    """TVM's ``runtime.convert``: Python numbers become constants, lists and tuples lists of them,
    strings ``StringImm``; expressions, tensors and other objects pass through."""
    from ..tir import op as _op  # the expression language, imported only when converting
    from ..tir.expr import StringImm
    if isinstance(value, (list, tuple)):
        return [convert(v) for v in value]
    if isinstance(value, str):
        return StringImm(value)
    if isinstance(value, (bool, int, float, np.number, np.bool_)):
        return _op.const(value)
    return value
