"""GraphModule: a compiled model (one shared library) run from Python; ``load`` opens an exported one.

The library holds the kernels, the weights and the model description. A CPU
model also holds a generated C graph executor (see ``executor_c.py`` for the
C ABI): Python's path is the C program's path, check the inputs, then one
ctypes call of ``tecomp_model_run``. A GPU model's steps are launched from
Python through pycuda (``cuda_executor.py``). This module needs numpy and
ctypes only (pycuda for a GPU model): it must never import the compiler, so
an exported model runs where llvmlite, xgboost and onnx are absent. Opening a
library runs none of its code before the file is checked to be a complete
ELF shared object; then only its own functions run (no pickle anywhere).
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..error import ArgumentError, GraphError
from ..runtime.device import Device
from ..runtime.module import copy_library, open_library
from ..runtime.packed_func import error_message_reader, kernel_error
from ..runtime.threads import ensure_thread_config
from .ir import compact_nbytes
from .memory import MemoryPlan

FORMAT = "tecomp-graph"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorSpec:
    """A model input or output: name, shape, dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return compact_nbytes(self.shape, self.dtype)


@dataclass(frozen=True)
class KernelTime:
    """One executor step of a profile: the kernel function, the operators it runs, seconds per run."""

    name: str
    label: str
    seconds: float


class HostExecutor:
    """Runs a CPU model through its C executor (``tecomp_model_run``/``tecomp_model_profile``)."""

    def __init__(self, lib: ctypes.CDLL, info: dict, path: str) -> None:
        self.path = path
        self._lib = lib
        lib.tecomp_model_create.restype = ctypes.c_void_p
        lib.tecomp_model_create.argtypes = []
        lib.tecomp_model_destroy.restype = None
        lib.tecomp_model_destroy.argtypes = [ctypes.c_void_p]
        pointers = ctypes.POINTER(ctypes.c_void_p)
        for fn, extra in ((lib.tecomp_model_run, []), (lib.tecomp_model_profile, [ctypes.POINTER(ctypes.c_double)])):
            fn.restype = ctypes.c_int32
            fn.argtypes = [ctypes.c_void_p, pointers, pointers] + extra
        self._destroy = lib.tecomp_model_destroy
        self._error_message = error_message_reader(lib)
        self._handle = lib.tecomp_model_create()
        if not self._handle:
            raise GraphError(f"{path}: could not allocate the model's {info['memory']['arena_bytes']:,}-byte arena")
        self._lock = threading.Lock()

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle:
            self._destroy(handle)
            self._handle = None

    def run(self, arrays: list[np.ndarray], outs: list[np.ndarray], seconds: Optional[Any] = None) -> None:
        """Inputs ``arrays`` in, ``outs`` filled; with ``seconds``, each step's time is stored there."""
        ins_ptr = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        outs_ptr = (ctypes.c_void_p * max(1, len(outs)))(*[a.ctypes.data for a in outs])
        ensure_thread_config()
        with self._lock:
            if seconds is None:
                code = self._lib.tecomp_model_run(self._handle, ins_ptr, outs_ptr)
            else:
                code = self._lib.tecomp_model_profile(self._handle, ins_ptr, outs_ptr, seconds)
        if code != 0:  # AllocationError etc., with the kernel's message
            raise kernel_error(self.path, code, self._error_message())


class GraphModule:
    """A compiled model: ``run(*inputs, **named_inputs) -> list of numpy arrays``.

    ``device``: where a GPU model runs (default ``tecomp.cuda(0)``); a CPU model runs on the CPU.
    """

    def __init__(self, path: str | os.PathLike, owner: object = None, device: Optional[Device] = None) -> None:
        self.library_path = os.path.abspath(os.fspath(path))
        self._owner = owner  # keeps the build's temp directory alive
        self._lib, self._holder = _open(self.library_path)
        self.info = _read_info(self._lib, self.library_path)
        self.inputs = [_spec(t) for t in self.info["inputs"]]
        self.outputs = [_spec(t) for t in self.info["outputs"]]
        self.steps: list[dict] = self.info["steps"]
        _verify_weights(self._lib, self.info, self.library_path)
        self.device = _model_device(self.info["target"], device)
        if self.device.kind == "cuda":
            from .cuda_executor import CUDAExecutor
            self._executor: Any = CUDAExecutor(self._lib, self.info, self.library_path, self.device.index)
        else:
            self._executor = HostExecutor(self._lib, self.info, self.library_path)

    # ------------------------------------------------------------------ properties

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    @property
    def memory_plan(self) -> MemoryPlan:
        """Where intermediates live; ``memory_plan.arena_bytes`` is the peak intermediate memory."""
        mem = self.info["memory"]
        buffers = mem["buffers"]
        return MemoryPlan({v: b[0] for v, b in buffers.items()}, {v: b[1] for v, b in buffers.items()},
                          mem["arena_bytes"])

    @property
    def kernel_count(self) -> int:
        """Kernel calls per run."""
        return sum(1 for s in self.steps if s["kind"] == "call")

    @property
    def weights_bytes(self) -> int:
        return self.info["weights_bytes"]

    def summary(self) -> str:
        """A few lines: inputs, outputs, kernels, weights, the memory plan."""
        lines = [f"model {self.library_path} (target {self.info['target']})"]
        lines += [f"  input  {t.name}: {t.dtype}{list(t.shape)}" for t in self.inputs]
        lines += [f"  output {t.name}: {t.dtype}{list(t.shape)}" for t in self.outputs]
        lines.append(f"  {self.kernel_count} kernel calls ({len(self.info['kernels'])} distinct kernels), "
                     f"weights {self.weights_bytes:,} bytes")
        lines.append("  " + self.memory_plan.summary())
        return "\n".join(lines)

    # ------------------------------------------------------------------ running

    def _arrays(self, args: tuple, kwargs: dict) -> list[np.ndarray]:
        names = self.input_names
        if len(args) > len(names):
            raise ArgumentError(f"model takes {len(names)} inputs ({', '.join(names)}), got {len(args)} positional")
        given = dict(zip(names, args))
        for name, value in kwargs.items():
            if name not in names:
                raise ArgumentError(f"model has no input named {name!r}; its inputs are {', '.join(names) or 'none'}")
            if name in given:
                raise ArgumentError(f"input {name!r} given twice (positionally and by name)")
            given[name] = value
        missing = [n for n in names if n not in given]
        if missing:
            raise ArgumentError(f"missing model inputs: {', '.join(missing)}")
        return [_checked_input(spec, given[spec.name]) for spec in self.inputs]

    def _call(self, arrays: list[np.ndarray], seconds: Optional[Any] = None) -> list[np.ndarray]:
        outs = [np.empty(t.shape, t.dtype) for t in self.outputs]
        self._executor.run(arrays, outs, seconds)
        return outs

    def run(self, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        """Run the model; inputs positionally in graph order and/or by name. Returns the outputs."""
        return self._call(self._arrays(args, kwargs))

    def __call__(self, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return self.run(*args, **kwargs)

    def benchmark(self, *args: Any, repeat: int = 100, **kwargs: Any) -> dict[str, float]:
        """Seconds per run over ``repeat`` runs after one warm-up: mean, median, min, max
        (on a GPU: host arrays in and out, copies included)."""
        if not isinstance(repeat, int) or repeat < 1:
            raise ArgumentError(f"benchmark: repeat must be a positive int, got {repeat!r}")
        arrays = self._arrays(args, kwargs)
        self._call(arrays)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            self._call(arrays)
            times.append(time.perf_counter() - start)
        return {"mean": statistics.fmean(times), "median": statistics.median(times), "min": min(times),
                "max": max(times)}

    def profile(self, *args: Any, repeat: int = 10, **kwargs: Any) -> list[KernelTime]:
        """Per executor step, the median seconds over ``repeat`` runs (timed in C around each kernel;
        with CUDA events on a GPU)."""
        if not isinstance(repeat, int) or repeat < 1:
            raise ArgumentError(f"profile: repeat must be a positive int, got {repeat!r}")
        arrays = self._arrays(args, kwargs)
        self._call(arrays)
        samples = []
        for _ in range(repeat):
            seconds = (ctypes.c_double * max(1, len(self.steps)))()
            self._call(arrays, seconds)
            samples.append(list(seconds)[:len(self.steps)])
        return [KernelTime(step.get("func", "copy"), step["label"], statistics.median(col))
                for step, col in zip(self.steps, zip(*samples))]

    # ------------------------------------------------------------------ export

    def export_library(self, path: str | os.PathLike) -> None:
        """Write the model (code, weights, executor, metadata) as one shared library at ``path``."""
        copy_library(self.library_path, path)

    def __repr__(self) -> str:
        return (f"<tecomp.graph.GraphModule {self.library_path} inputs={self.input_names} "
                f"kernels={self.kernel_count}>")


def load(path: str | os.PathLike, device: Optional[Device] = None) -> GraphModule:
    """Open a model written by ``GraphModule.export_library``; needs numpy only (and pycuda to run
    a GPU model, on ``device``, default ``tecomp.cuda(0)``)."""
    return GraphModule(path, device=device)


def _model_device(target: str, device: Optional[Device]) -> Device:
    """The device a model built for ``target`` runs on; ArgumentError for one it cannot run on."""
    kind = "cuda" if target.split()[0] == "cuda" else "cpu"
    if device is None:
        return Device(kind, 0)
    if not isinstance(device, Device):
        raise ArgumentError(f"device must be a tecomp device such as tecomp.cuda(0), got {device!r}")
    if device.kind != kind:
        raise ArgumentError(f"this model was compiled for {target!r}; it runs on a {kind} device, not {device}")
    return device


# ---------------------------------------------------------------------- inputs

def _spec(entry: dict) -> TensorSpec:
    return TensorSpec(entry["name"], tuple(entry["shape"]), entry["dtype"])


def _checked_input(spec: TensorSpec, value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - any failure to make an array is the caller's input
        raise ArgumentError(f"input {spec.name!r}: cannot convert {type(value).__name__} to an array: {exc}") from None
    if arr.dtype != np.dtype(spec.dtype):
        raise ArgumentError(f"input {spec.name!r}: expected dtype {spec.dtype}, got {arr.dtype}")
    if arr.shape != spec.shape:
        raise ArgumentError(f"input {spec.name!r}: expected shape {spec.shape}, got {arr.shape}")
    return np.require(arr, requirements="C")


# ---------------------------------------------------------------------- opening

def _check_elf(path: str) -> None:
    """GraphError unless ``path`` is a whole 64-bit little-endian ELF shared object (not truncated)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF":
                raise GraphError(f"{path} is not a shared library (no ELF header)")
            if header[4] != 2 or header[5] != 1 or struct.unpack_from("<H", header, 16)[0] != 3:
                raise GraphError(f"{path} is not a 64-bit little-endian ELF shared object")
            phoff, shoff = struct.unpack_from("<QQ", header, 32)
            phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", header, 54)
            if shoff + shnum * shentsize > size or phoff + phnum * phentsize > size:
                raise GraphError(f"{path} is truncated or corrupt: its ELF tables lie past the end of the file")
            f.seek(phoff)
            table = f.read(phnum * phentsize)
    except OSError as exc:
        raise GraphError(f"cannot read model library {path}: {exc.strerror or exc}") from None
    for k in range(phnum):
        (offset,) = struct.unpack_from("<Q", table, k * phentsize + 8)   # p_offset
        (filesz,) = struct.unpack_from("<Q", table, k * phentsize + 32)  # p_filesz
        if offset + filesz > size:
            raise GraphError(f"{path} is truncated or corrupt: segment {k} ends past the end of the file")


def _open(path: str) -> tuple[ctypes.CDLL, object]:

    if not os.path.exists(path):
        raise GraphError(f"no model library at {path}")
    _check_elf(path)
    try:
        lib, _, holder = open_library(path)
    except OSError as exc:
        raise GraphError(f"cannot load model library {path}: {exc}") from None
    return lib, holder


_REQUIRED = {"format": str, "format_version": int, "tecomp_version": str, "target": str, "inputs": list,
             "outputs": list, "steps": list, "kernels": list, "memory": dict, "weights_bytes": int,
             "weights_crc32": int}


def _read_info(lib: ctypes.CDLL, path: str) -> dict:
    try:
        info_fn = lib.tecomp_model_info
    except AttributeError:
        raise GraphError(f"{path} is not a tecomp model: it exports no tecomp_model_info "
                         "(a single-kernel library opens with tecomp.runtime.load_module)") from None
    info_fn.restype = ctypes.c_char_p
    info_fn.argtypes = []
    try:
        info = json.loads(info_fn().decode("utf-8"))
    except (AttributeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphError(f"{path}: the model metadata is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise GraphError(f"{path}: the model metadata is not in the {FORMAT} format")
    if info.get("format_version") != FORMAT_VERSION:
        raise GraphError(f"{path} was exported in model format version {info.get('format_version')!r} "
                         f"(tecomp {info.get('tecomp_version', '?')}); this tecomp reads version "
                         f"{FORMAT_VERSION}: rebuild the model with this version")
    for key, kind in _REQUIRED.items():
        if not isinstance(info.get(key), kind):
            raise GraphError(f"{path}: the model metadata has no valid {key!r}")
    try:
        for t in info["inputs"] + info["outputs"]:
            spec = _spec(t)
            np.dtype(spec.dtype)
    except (KeyError, TypeError) as exc:
        raise GraphError(f"{path}: the model metadata describes a tensor badly: {exc}") from None
    return info


def _verify_weights(lib: ctypes.CDLL, info: dict, path: str) -> None:
    lib.tecomp_model_weights_size.restype = ctypes.c_uint64
    lib.tecomp_model_weights_data.restype = ctypes.c_void_p
    size = lib.tecomp_model_weights_size()
    if size != info["weights_bytes"]:
        raise GraphError(f"{path} is corrupt: it holds {size} bytes of weights, its metadata says "
                         f"{info['weights_bytes']}")
    if size:
        blob = (ctypes.c_char * size).from_address(lib.tecomp_model_weights_data())
        if zlib.crc32(blob) != info["weights_crc32"]:
            raise GraphError(f"{path} is corrupt: its weights do not match their checksum")
