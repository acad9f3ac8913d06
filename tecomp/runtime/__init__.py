"""The tecomp runtime: devices, arrays, loaded libraries and the thread pool setting.

Everything needed to run a compiled library lives here and imports numpy
only (pycuda lazily, libgomp through ctypes). It must never import the
compiler (te, tir, lower, codegen, tuner): a library exported on one machine
loads on another that has neither llvmlite nor xgboost.
"""

from . import nd
from .device import Device, cpu, cuda, device
from .module import Module, load_module
from .ndarray import NDArray, array, empty
from .packed_func import AllocationError, KernelError, OutOfBoundsError, PackedFunc
from .profiling import ProfileResult
from .registry import convert, get_global_func, register_func
from .threads import get_num_threads, set_num_threads

__all__ = [
    "Device", "cpu", "cuda", "device", "nd", "NDArray", "array", "empty",
    "Module", "load_module", "PackedFunc", "ProfileResult", "set_num_threads", "get_num_threads",
    "KernelError", "AllocationError", "OutOfBoundsError", "convert", "enabled", "get_global_func", "register_func",
]


def enabled(target: str) -> bool:
    """TVM's ``runtime.enabled``: whether code for ``target`` (a target string or device name) can run here."""
    kind = target.split()[0] if isinstance(target, str) and target.strip() else ""
    if kind in ("llvm", "cpu", "c"):
        import importlib.util
        return importlib.util.find_spec("llvmlite") is not None
    if kind in ("cuda", "gpu", "nvptx"):
        return cuda(0).exist
    return False
