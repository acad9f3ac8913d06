"""Devices: where an NDArray lives and where a compiled function runs.

Owns the mapping from the names users write (``"llvm"``, ``"cpu"``, ``"cuda"``,
``"gpu"``, or a whole target string such as ``"llvm -mcpu=native"``) to a
``Device``. It must not import pycuda at import time: ``Device.exist`` looks
for a GPU lazily and answers False whenever pycuda or a driver is missing.
"""

from __future__ import annotations

from functools import lru_cache

from ..error import TargetError

# Every accepted device name and the kind of device it means.
_KINDS = {"cpu": "cpu", "llvm": "cpu", "cuda": "cuda", "gpu": "cuda"}
# TVM's other device kinds: a script may name them (to ask whether they exist); none exists here.
_ABSENT_KINDS = ("opencl", "metal", "vulkan", "rocm")
_KINDS.update((k, k) for k in _ABSENT_KINDS)


class Device:
    """A device: ``kind`` is ``"cpu"`` or ``"cuda"`` (or one of TVM's other kinds, which never
    exist here), ``index`` its number."""

    __slots__ = ("device_type", "index")

    def __init__(self, device_type: str, index: int = 0) -> None:
        kind = _kind_of(device_type, device_type)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise TargetError(f"device index must be a non-negative integer, got {index!r}")
        self.device_type = kind
        self.index = index

    @property
    def kind(self) -> str:
        return self.device_type

    @property
    def device_id(self) -> int:
        """TVM's name for ``index``."""
        return self.index

    @property
    def exist(self) -> bool:
        """Whether the device is there: always for the CPU, for CUDA only with pycuda and a GPU."""
        if self.kind == "cpu":
            return True
        return self.kind == "cuda" and self.index < _cuda_device_count()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Device):
            return NotImplemented
        return (self.device_type, self.index) == (other.device_type, other.index)

    def __hash__(self) -> int:
        return hash((self.device_type, self.index))

    def __repr__(self) -> str:
        return f"{self.device_type}({self.index})"


def _kind_of(name: str, shown: object) -> str:
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise TargetError(f"unknown device {shown!r}; expected one of {', '.join(_KINDS)}")
    return kind


@lru_cache(maxsize=1)
def _cuda_device_count() -> int:
    """GPUs pycuda can see; 0 when pycuda, the driver or a GPU is missing."""
    try:
        import pycuda.driver as drv

        drv.init()
        return drv.Device.count()
    except Exception:  # ImportError, a missing driver, or pycuda's own LogicError
        return 0


def cpu(index: int = 0) -> Device:
    return Device("cpu", index)


def cuda(index: int = 0) -> Device:
    return Device("cuda", index)


def device(name: str, index: int = 0) -> Device:
    """The device for a name or a target string (only its first word counts, as in TVM)."""
    words = name.split() if isinstance(name, str) else []
    return Device(_kind_of(words[0] if words else "", name), index)
