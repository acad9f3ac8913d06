"""PackedFunc: one compiled function of a loaded library, called with checked arguments.

Owns the call ABI of tecomp libraries, ``int32_t NAME(void** args, int64_t*
size_var_values)``: ``args[i]`` is the data pointer of parameter i and
``size_var_values[j]`` the value of size var j (for a float scalar argument,
the bits of the double it is), both in metadata order; a
nonzero return is an error. Every call is checked against the function's
metadata first (arity, array type, device, contiguity, writability, dtype,
rank, constant extents, consistent size vars), so a bad call raises
``ArgumentError`` and never reaches machine code. Calls go through ctypes,
which releases the GIL. A nonzero return is raised as a :class:`KernelError`
(:class:`AllocationError`, :class:`OutOfBoundsError`) with the message the
library's ``__tecomp_error_message`` holds (the code generator's checks,
:mod:`tecomp.codegen.llvm_checks`). This module must not import the compiler.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any

import numpy as np

from ..error import ArgumentError, TecompError
from .metadata import FunctionInfo, ParamInfo, evaluate
from .ndarray import NDArray
from .registry import take_pending_error
from .threads import ensure_thread_config

_INT32_MAX = 2**31 - 1

# Codes a compiled function returns (and its ``__tecomp_error_message`` describes).
ERROR_ALLOCATION = 1
ERROR_OUT_OF_BOUNDS = 2
ERROR_PACKED_FUNC = 3  # a function called through tir.call_packed raised (runtime.registry keeps it)


class KernelError(TecompError):
    """A compiled function stopped with an error; its outputs are unspecified."""


class AllocationError(KernelError):
    """A compiled function could not allocate an intermediate buffer (names it and the size)."""


class OutOfBoundsError(KernelError):
    """A function built with ``bound_check=True`` accessed a buffer out of bounds (names the
    buffer, the flat index and the number of elements)."""


_ERRORS = {ERROR_ALLOCATION: AllocationError, ERROR_OUT_OF_BOUNDS: OutOfBoundsError}


def error_message_reader(lib: Any) -> Any:
    """A function returning the text of the library's last error (None for a library without one)."""
    try:
        getter = lib["__tecomp_error_message"]
    except AttributeError:
        return lambda: None
    getter.argtypes = []
    getter.restype = ctypes.c_char_p
    return lambda: (getter() or b"").decode("utf-8", "replace") or None


def kernel_error(name: str, code: int, message: str | None) -> KernelError:
    """The error raised for return ``code`` of function ``name``."""
    what = message or f"the compiled function returned error code {code}"
    return _ERRORS.get(code, KernelError)(f"{name} failed: {what}")


class PackedFunc:
    """A callable compiled function: ``f(*arrays)`` with NDArrays or C-contiguous numpy arrays."""

    def __init__(self, info: FunctionInfo, cfunc: Any, error_message: Any = None) -> None:
        if cfunc is not None:  # None for device functions, which launch their own way (cuda_module)
            cfunc.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int64)]
            cfunc.restype = ctypes.c_int32
        self.name = info.name
        self.info = info
        self._cfunc = cfunc
        self._error_message = error_message or (lambda: None)
        self._ptr_array = ctypes.c_void_p * max(1, len(info.params))
        self._size_array = ctypes.c_int64 * max(1, len(info.size_vars))
        sv_index = {name: k for k, (name, _) in enumerate(info.size_vars)}
        # Per dimension (constant extent, size-var index), -1 where not applicable; -2 for an
        # expression of size vars (``n // x``), checked once every size var is bound.
        def entries(dims: tuple) -> tuple:
            return tuple((d, -1) if isinstance(d, int) else (-1, -2) if isinstance(d, list)
                         else (-1, sv_index[d]) for d in dims)

        self._dims = tuple(entries(p.shape) for p in info.params)
        self._strides = tuple(entries(p.strides) for p in info.params)  # () for a compact parameter
        self._exprs = [(i, axis, d) for i, p in enumerate(info.params) for axis, d in enumerate(p.shape)
                       if isinstance(d, list)]
        self._stride_exprs = [(i, axis, d) for i, p in enumerate(info.params) for axis, d in enumerate(p.strides)
                              if isinstance(d, list)]

    def __call__(self, *args: Any) -> None:
        ptrs, sizes = self.prepare(args)
        ensure_thread_config()
        self.call_prepared(ptrs, sizes)

    def prepare(self, args: tuple[Any, ...]) -> tuple[Any, Any]:
        """Check ``args`` and build the ctypes ``void*[]`` and ``int64[]`` of a call."""
        params = self.info.params
        bound: list[tuple[int, int, int] | None] = [None] * len(self.info.size_vars)
        if self.info.scalar_args:
            args = self._take_scalars(args, bound)
        if len(args) != len(params):
            names = ", ".join(p.name for p in params)
            raise ArgumentError(f"{self.name} expects {len(params)} arguments ({names}), got {len(args)}")
        ptrs = self._ptr_array()
        arrays: list[np.ndarray] = []
        for i, (arg, param, dims) in enumerate(zip(args, params, self._dims)):
            arr, ptrs[i] = self._unwrap(i, param, arg)
            if arr.dtype != param.dtype:
                raise self._error(i, param, f"expected dtype {param.dtype}, got {arr.dtype}")
            if arr.ndim != len(dims):
                raise self._error(i, param, f"expected {len(dims)} dimensions (shape {_spec(param.shape)}), "
                                            f"got {arr.ndim} (shape {arr.shape})")
            self._bind_shape(i, param, arr.shape, dims, bound)
            arrays.append(arr)
        for i, (arr, param) in enumerate(zip(arrays, params)):
            if param.strides:
                self._bind_strides(i, param, arr, bound)
        self._check_overlap(arrays)
        sizes = self._size_values(bound)
        for i, axis, expr in self._exprs:
            want = evaluate(expr, sizes)
            if arrays[i].shape[axis] != want:
                raise self._error(i, params[i], f"dimension {axis} is {arrays[i].shape[axis]}, expected {want} "
                                                "(an expression of the size variables)")
        for i, axis, expr in self._stride_exprs:
            want, have = evaluate(expr, sizes), arrays[i].strides[axis] // arrays[i].itemsize
            if arrays[i].shape[axis] > 1 and have != want:
                raise self._error(i, params[i], f"stride {axis} is {have} elements, expected {want} "
                                                "(an expression of the size variables)")
        return ptrs, sizes

    def _bind_strides(self, i: int, param: ParamInfo, arr: np.ndarray, bound: list) -> None:
        """Check the element strides of a parameter declared with strides (``binds=``) and bind their
        variables. A dimension of extent 0 or 1 never moves an access, so its stride binds a variable
        only where nothing else does and is not checked (numpy reports any stride there)."""
        if any(s < 0 or s % arr.itemsize for s in arr.strides):
            raise self._error(i, param, f"strides {arr.strides} (bytes) are not non-negative multiples of the "
                                        f"element size {arr.itemsize}")
        elements = tuple(s // arr.itemsize for s in arr.strides)
        dims = self._strides[i]
        moving = tuple(d if extent > 1 else (-1, -2) for d, extent in zip(dims, arr.shape))  # -2: not checked
        self._bind_shape(i, param, elements, moving, bound, what="stride", spec=param.strides)
        for axis, (_, sv) in enumerate(dims):
            if sv >= 0 and bound[sv] is None:
                bound[sv] = (elements[axis], i, axis)

    def _take_scalars(self, args: tuple[Any, ...], bound: list) -> tuple[Any, ...]:
        """The array arguments, with the integer arguments at their positions bound to their size vars."""
        total = len(self.info.params) + len(self.info.scalar_args)
        if len(args) != total:
            raise ArgumentError(f"{self.name} expects {total} arguments ({len(self.info.params)} arrays and "
                                f"{len(self.info.scalar_args)} scalars), got {len(args)}")
        for pos, k in self.info.scalar_args:
            value, (sv_name, dtype) = args[pos], self.info.size_vars[k]
            if dtype.startswith("float"):  # int or float, as TVM converts a Python number
                if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
                    raise ArgumentError(f"{self.name}: argument {pos} ({sv_name}) must be a number, "
                                        f"got {type(value).__name__}")
                bound[k] = (float(value), -1, pos)
                continue
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise ArgumentError(f"{self.name}: argument {pos} ({sv_name}) must be an "
                                    f"integer, got {type(value).__name__}")
            bound[k] = (int(value), -1, pos)
        positions = {pos for pos, _ in self.info.scalar_args}
        return tuple(a for p, a in enumerate(args) if p not in positions)

    def call_prepared(self, ptrs: Any, sizes: Any) -> None:
        """Run the machine code on arguments from ``prepare``."""
        code = self._cfunc(ptrs, sizes)
        if code != 0:
            cause = take_pending_error() if code == ERROR_PACKED_FUNC else None
            if cause is not None:
                raise cause
            raise kernel_error(self.name, code, self._error_message())

    def time_calls(self, ptrs: Any, sizes: Any, count: int) -> float:
        """Seconds for ``count`` back-to-back calls on prepared arguments (wall clock)."""
        run = self.call_prepared
        start = time.perf_counter()
        for _ in range(count):
            run(ptrs, sizes)
        return time.perf_counter() - start

    def _unwrap(self, i: int, param: ParamInfo, arg: Any) -> tuple[np.ndarray, int]:
        if isinstance(arg, NDArray):
            if arg.device.kind != "cpu":
                raise self._error(i, param, f"array is on {arg.device}, this function runs on the CPU")
            return arg._array, arg.data_ptr
        if not isinstance(arg, np.ndarray):
            raise self._error(i, param, f"expected a tecomp NDArray or a numpy array, got {type(arg).__name__}")
        if not arg.flags.c_contiguous and not param.strides:
            raise self._error(i, param, "numpy array is not C-contiguous; pass np.ascontiguousarray(x) "
                                        "(a silent copy would lose what the function writes)")
        if not arg.flags.writeable:
            raise self._error(i, param, "numpy array is read-only; pass a writable copy")
        return arg, arg.ctypes.data

    def _bind_shape(self, i: int, param: ParamInfo, shape: tuple[int, ...],
                    dims: tuple[tuple[int, int], ...], bound: list, what: str = "dimension",
                    spec: tuple = ()) -> None:
        """Check constant extents (or element strides, ``what="stride"``) and bind size vars."""
        for axis, (extent, (const, sv)) in enumerate(zip(shape, dims)):
            if sv == -2:  # an expression: checked once every size var is bound
                continue
            if sv < 0:
                if extent != const:
                    label = "shape" if what == "dimension" else "strides"
                    raise self._error(i, param, f"expected {label} {_spec(spec or param.shape)}, got {shape}: "
                                                f"{what} {axis} is {extent}, expected {const}")
            elif bound[sv] is None:
                bound[sv] = (extent, i, axis)
            elif bound[sv][0] != extent:
                value, j, j_axis = bound[sv]
                sv_name = self.info.size_vars[sv][0]
                raise self._error(i, param, f"{what} {axis} is {extent}, but size var {sv_name} is {value} "
                                            f"from argument {j} ({self.info.params[j].name}) dimension {j_axis}")

    def _check_overlap(self, arrays: list[np.ndarray]) -> None:
        """Refuse an argument the function writes that shares memory with another argument.

        The compiled code assumes distinct buffers (its pointers are noalias),
        so such a call would be undefined behaviour, not just a surprise.
        """
        params = self.info.params
        for i, a in enumerate(arrays):
            if not params[i].written:
                continue
            for j, b in enumerate(arrays):
                if j != i and np.shares_memory(a, b):
                    raise self._error(i, params[i], f"shares memory with argument {j} ({params[j].name}); "
                                                    "the function writes it, so pass a separate array")

    def _size_values(self, bound: list[tuple[int, int, int]]) -> Any:
        sizes = self._size_array()
        for k, ((value, i, where), (sv_name, dtype)) in enumerate(zip(bound, self.info.size_vars)):
            if dtype == "int32" and not -_INT32_MAX - 1 <= value <= _INT32_MAX:
                if i < 0:  # a scalar argument, at position ``where`` of the call
                    raise ArgumentError(f"{self.name}: argument {where} ({sv_name}) = {value} does not fit in int32")
                raise self._error(i, self.info.params[i], f"size var {sv_name} = {value} does not fit in int32")
            # a float argument travels as the bits of a double (the entry reads its slot as one)
            sizes[k] = int(np.float64(value).view(np.int64)) if dtype.startswith("float") else value
        return sizes

    def _error(self, i: int, param: ParamInfo, what: str) -> ArgumentError:
        return ArgumentError(f"{self.name}: argument {i} ({param.name}): {what}")

    def __repr__(self) -> str:
        return f"<tecomp.PackedFunc {self.name}({', '.join(p.name for p in self.info.params)})>"


def _spec(dims: tuple) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
