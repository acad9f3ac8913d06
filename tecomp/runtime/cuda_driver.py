"""The CUDA driver, reached through pycuda, and arrays in device memory.

Owns the lazy import of pycuda (it needs a driver, so ``import tecomp`` must
not touch it), the primary context of each GPU (pushed around every driver
call, so any thread may use any device), and ``CUDANDArray``: an NDArray
whose storage is device memory, with host copies in and out. Without pycuda
or a driver every entry point raises ``CUDAUnavailableError`` ("no CUDA
driver/pycuda: ..."), never an ImportError. This module must not import the
compiler.
"""

from __future__ import annotations

import contextlib
import math
import threading
from typing import Any, Iterator, Optional

import numpy as np

from ..error import TecompError
from .device import Device
from .ndarray import NDArray, check_dtype

_lock = threading.Lock()
_contexts: dict[int, Any] = {}


class CUDAUnavailableError(TecompError):
    """CUDA code cannot run here: pycuda, the driver or the GPU is missing."""


def driver() -> Any:
    """``pycuda.driver``, initialised; CUDAUnavailableError naming what is missing."""
    try:
        import pycuda.driver as drv
    except ImportError as exc:
        raise CUDAUnavailableError(f"no CUDA driver/pycuda: pycuda cannot be imported ({exc}); install it "
                                   "with `pip install 'tecomp[cuda]'` on a machine with an NVIDIA driver") from None
    try:
        drv.init()
    except Exception as exc:  # pycuda raises its own error types, or OSError for a missing libcuda
        raise CUDAUnavailableError(f"no CUDA driver/pycuda: the CUDA driver failed to initialise ({exc})") from None
    return drv


@contextlib.contextmanager
def activate(index: int) -> Iterator[Any]:
    """Run the block with GPU ``index``'s primary context current; yields ``pycuda.driver``."""
    drv = driver()
    with _lock:
        ctx = _contexts.get(index)
        if ctx is None:
            count = drv.Device.count()
            if index >= count:
                raise CUDAUnavailableError(f"no CUDA device cuda({index}): this machine has {count} GPU(s)")
            ctx = _contexts[index] = drv.Device(index).retain_primary_context()
    ctx.push()
    try:
        yield drv
    except drv.Error as exc:
        raise TecompError(f"CUDA error on cuda({index}): {exc}") from None
    finally:
        drv.Context.pop()


def compute_capability(index: int = 0) -> Optional[tuple[int, int]]:
    """The (major, minor) compute capability of GPU ``index``; None without a usable GPU."""
    try:
        drv = driver()
        return tuple(drv.Device(index).compute_capability())  # type: ignore[return-value]
    except Exception:
        return None


def _require_cuda(device: Device) -> None:
    if not isinstance(device, Device) or device.kind != "cuda":
        raise TecompError(f"expected a CUDA device such as tecomp.cuda(0), got {device!r}")


class CUDANDArray(NDArray):
    """An array in the memory of a GPU. Create with ``tecomp.nd.array(x, tecomp.cuda(0))`` or ``nd.empty``."""

    __slots__ = ("_shape", "_dtype", "_allocation")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, device: Device) -> None:
        _require_cuda(device)
        self._array = None
        self._device = device
        self._shape = tuple(shape)
        self._dtype = check_dtype(dtype)
        nbytes = max(1, math.prod(self._shape) * self._dtype.itemsize)
        with activate(device.index) as drv:
            self._allocation = drv.mem_alloc(nbytes)
        self.data_ptr = int(self._allocation)

    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @property
    def dtype(self) -> str:
        return str(self._dtype)

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self._shape) * self._dtype.itemsize

    def numpy(self) -> np.ndarray:
        """A host copy of the contents."""
        out = np.empty(self._shape, self._dtype)
        if out.size:
            with activate(self._device.index) as drv:
                drv.memcpy_dtoh(out, self.data_ptr)
        return out

    def copyfrom(self, source: Any) -> "CUDANDArray":
        """Copy ``source`` (NDArray on any device, numpy array or array-like) in, casting to this dtype."""
        if isinstance(source, CUDANDArray) and (source.shape, source.dtype) == (self.shape, self.dtype):
            if self.nbytes:
                with activate(self._device.index) as drv:
                    drv.memcpy_dtod(self.data_ptr, source.data_ptr, self.nbytes)
            return self
        src = source.numpy() if isinstance(source, NDArray) else np.asarray(source)
        if src.shape != self.shape:
            raise TecompError(f"copyfrom: source shape {src.shape} does not match array shape {self.shape}")
        host = np.ascontiguousarray(src, dtype=self._dtype)
        if host.size:
            with activate(self._device.index) as drv:
                drv.memcpy_htod(self.data_ptr, host)
        return self

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a CUDA array can only be read into host memory by copying it")
        out = self.numpy()
        return out if dtype is None else out.astype(dtype, copy=False)

    def __dlpack__(self, **kwargs: Any) -> Any:
        raise TecompError("DLPack export of CUDA arrays is not supported; use .numpy()")

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, self._device.index)  # kDLCUDA

    def __repr__(self) -> str:
        return f"<tecomp.NDArray shape={self.shape}, {self.device}>\n{self.numpy()!r}"
