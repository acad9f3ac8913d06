"""NDArray: an n-dimensional array on a device, the argument type of compiled functions.

Owns allocation (64-byte-aligned host storage, so vector loads of any width
are aligned at the base), conversion from numpy / ``__array__`` / DLPack
producers, and the dtypes the runtime supports. CPU arrays wrap a numpy
array; ``empty``/``array`` on a CUDA device return a ``CUDANDArray``
(``cuda_driver.py``, device memory through pycuda, imported only then). This
module must not import the compiler.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..error import TecompError
from .device import Device, cpu

ALIGNMENT = 64

SUPPORTED_DTYPES = (
    "bool", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
)
_SUPPORTED = {np.dtype(name) for name in SUPPORTED_DTYPES}
_VECTOR = re.compile(r"^((?:u?int|float)\d+)x(\d+)$")


def vector_dtype(dtype: Any) -> tuple[str, int]:
    """(element dtype, lanes) of a dtype name: ``"float32x4"`` is ("float32", 4), ``"int8"`` ("int8", 1).

    An array of a vector dtype (TVM's ``float32x4``) is held as an array of its element dtype with
    one more, trailing, dimension of ``lanes``: what numpy and the compiled code both see.
    """
    match = _VECTOR.match(dtype) if isinstance(dtype, str) else None
    return (match.group(1), int(match.group(2))) if match else (dtype, 1)


def check_dtype(dtype: Any) -> np.dtype:
    """The numpy dtype for a supported dtype (native byte order), else TecompError naming it."""
    try:
        resolved = np.dtype(dtype)
    except TypeError:
        resolved = None
    if resolved is not None and resolved.newbyteorder("=") in _SUPPORTED:
        return resolved.newbyteorder("=")
    raise TecompError(f"unsupported dtype {str(dtype if resolved is None else resolved)!r}; "
                      f"tecomp arrays hold one of {', '.join(SUPPORTED_DTYPES)}")


def _require_host(dev: Device) -> None:
    if not isinstance(dev, Device):
        raise TecompError(f"expected a tecomp Device such as tecomp.cpu(0), got {type(dev).__name__}")
    if dev.kind != "cpu":
        raise TecompError(f"an NDArray wrapping a numpy array lives on the CPU, not {dev}; copy data to the "
                          f"GPU with tecomp.nd.array(x, {dev!r}) or allocate with tecomp.nd.empty(..., device=...)")


def _on_gpu(dev: Any) -> bool:
    return isinstance(dev, Device) and dev.kind == "cuda"


def _aligned_empty(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    nbytes = math.prod(shape) * dtype.itemsize
    raw = np.empty(nbytes + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def _check_shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        dims = tuple(dims)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                               for d in dims):
        raise TecompError(f"shape must be a tuple of non-negative integers, got {shape!r}")
    return tuple(int(d) for d in dims)


class NDArray:
    """An array on a device. Create with ``tecomp.nd.array`` or ``tecomp.nd.empty``.

    ``NDArray(data, device)`` wraps a writable C-contiguous numpy array
    without copying (the array's memory becomes this NDArray's storage).
    """

    __slots__ = ("_array", "_device", "data_ptr")

    def __init__(self, data: np.ndarray, device: Device | None = None) -> None:
        device = cpu(0) if device is None else device
        _require_host(device)
        if not isinstance(data, np.ndarray):
            raise TecompError(f"NDArray wraps a numpy array, got {type(data).__name__}; use tecomp.nd.array")
        check_dtype(data.dtype)
        if not (data.flags.c_contiguous and data.flags.writeable and data.dtype.isnative):
            raise TecompError("NDArray wraps only writable, C-contiguous, native-byte-order numpy arrays; "
                              "use tecomp.nd.array to copy")
        self._array = data
        self._device = device
        # Address of the first element, cached so a call does not ask numpy again.
        self.data_ptr: int = data.ctypes.data

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def dtype(self) -> str:
        return str(self._array.dtype)

    @property
    def device(self) -> Device:
        return self._device

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def numpy(self) -> np.ndarray:
        """A copy of the contents as a numpy array."""
        return self._array.copy()

    def copyfrom(self, source: Any) -> "NDArray":
        """Copy ``source`` (NDArray, numpy array or array-like) in, casting to this dtype."""
        src = _to_numpy(source) if isinstance(source, NDArray) else np.asarray(source)
        if src.shape != self.shape:
            raise TecompError(f"copyfrom: source shape {src.shape} does not match array shape {self.shape}")
        np.copyto(self._array, src, casting="unsafe")
        return self

    def copyto(self, target: "NDArray | Device") -> "NDArray":
        """Copy into ``target``: an NDArray of the same shape and dtype, or a Device (a new array)."""
        if isinstance(target, Device):
            target = empty(self.shape, self.dtype, target)
        elif not isinstance(target, NDArray):
            raise TecompError(f"copyto expects an NDArray or a Device, got {type(target).__name__}")
        elif (target.shape, target.dtype) != (self.shape, self.dtype):
            raise TecompError(f"copyto: target is {target.dtype}{list(target.shape)}, "
                              f"source is {self.dtype}{list(self.shape)}")
        return target.copyfrom(self)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False and dtype is not None and np.dtype(dtype) != self._array.dtype:
            raise ValueError("a cast needs a copy")
        out = self._array if dtype is None else self._array.astype(dtype, copy=False)
        return out.copy() if copy else out

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._array.__dlpack_device__()

    def __repr__(self) -> str:
        return f"<tecomp.NDArray shape={self.shape}, {self.device}>\n{self._array!r}"


def empty(shape: Any, dtype: Any = "float32", device: Device | None = None) -> NDArray:
    """An uninitialised array in fresh 64-byte-aligned storage (a vector dtype ``float32x4`` gives an
    array of float32 with a trailing dimension of 4)."""
    device = cpu(0) if device is None else device
    dtype, lanes = vector_dtype(dtype)
    if lanes > 1:
        shape = _check_shape(shape) + (lanes,)
    if _on_gpu(device):
        from .cuda_driver import CUDANDArray
        return CUDANDArray(_check_shape(shape), check_dtype(dtype), device)
    _require_host(device)
    return NDArray(_aligned_empty(_check_shape(shape), check_dtype(dtype)), device)


def _to_numpy(data: Any) -> np.ndarray:
    if isinstance(data, NDArray):
        return data._array if data._array is not None else data.numpy()
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "__dlpack__"):
        try:
            return np.from_dlpack(data)
        except (BufferError, RuntimeError, TypeError) as exc:
            if not hasattr(data, "__array__"):
                raise TecompError(f"cannot read {type(data).__name__} through DLPack: {exc}") from exc
    try:
        return np.asarray(data)
    except Exception as exc:  # arbitrary __array__ implementations raise anything
        raise TecompError(f"cannot convert {type(data).__name__} to an array: {exc}") from exc


def array(data: Any, device: Device | None = None) -> NDArray:
    """Copy ``data`` (numpy array, ``__array__`` or DLPack producer, nested lists) into a new NDArray."""
    device = cpu(0) if device is None else device
    src = _to_numpy(data)
    if _on_gpu(device):
        return empty(src.shape, check_dtype(src.dtype), device).copyfrom(src)
    _require_host(device)
    out = empty(src.shape, check_dtype(src.dtype), device)
    np.copyto(out._array, src)
    return out
