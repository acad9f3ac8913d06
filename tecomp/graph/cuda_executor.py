"""Running a model compiled for a GPU: its steps, launched from Python through pycuda.

A cuda model library holds the model description (``tecomp_model_info``,
the weights) and, in ``__tecomp_metadata``'s "cuda" section, the device code
and launch plan of every kernel function (what a single CUDA kernel library
holds, ``tecomp.runtime.cuda_module``). On first run on a GPU the executor
copies the weights into device memory once, allocates the planned arena and
one device buffer per model input and output; a run copies the inputs in,
launches each step's kernels (or device-to-device copies) in order on the
default stream, and copies the outputs back. Profiling times each step with
CUDA events. This module needs numpy and pycuda only: it must never import
the compiler.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from ..error import GraphError
from ..runtime.cuda_driver import activate
from ..runtime.cuda_module import CUDAFunction, Launch, functions_from_metadata
from ..runtime.metadata import parse_metadata
from ..runtime.module import read_metadata


@dataclass
class _DeviceBuffers:
    """What a model holds in one GPU's memory (allocations kept alive here)."""

    weights: Any
    arena: Any
    inputs: list
    outputs: list


def _allocate(drv: Any, nbytes: int) -> Any:
    return drv.mem_alloc(max(1, nbytes))


class CUDAExecutor:
    """Runs a cuda model's steps on GPU ``device``; ``run`` takes and returns numpy arrays."""

    def __init__(self, lib: ctypes.CDLL, info: dict, path: str, device: int) -> None:
        self.info, self.path, self.device = info, path, device
        self._lib = lib
        self._functions = self._load_functions()
        self._buffers: Optional[_DeviceBuffers] = None
        self._lock = threading.Lock()

    def _load_functions(self) -> dict[str, CUDAFunction]:
        needed = {s["func"] for s in self.info["steps"] if s["kind"] == "call"}
        if not needed:
            return {}
        metadata, infos = parse_metadata(read_metadata(self._lib, self.path), self.path)
        if "cuda" not in metadata:
            raise GraphError(f"{self.path}: the model targets {self.info['target']} but carries no device code")
        functions = {f.name: f for f in functions_from_metadata(metadata, infos, self.path)}
        missing = sorted(needed - set(functions))
        if missing:
            raise GraphError(f"{self.path} is corrupt: its steps call {', '.join(missing)}, "
                             "which its device code lacks")
        return functions

    def _device_buffers(self, drv: Any) -> _DeviceBuffers:
        if self._buffers is None:
            size = self._lib.tecomp_model_weights_size()
            weights = _allocate(drv, size)
            if size:
                blob = (ctypes.c_uint8 * size).from_address(self._lib.tecomp_model_weights_data())
                drv.memcpy_htod(weights, np.frombuffer(blob, np.uint8))
            self._buffers = _DeviceBuffers(
                weights, _allocate(drv, self.info["memory"]["arena_bytes"]),
                [_allocate(drv, t["nbytes"]) for t in self.info["inputs"]],
                [_allocate(drv, t["nbytes"]) for t in self.info["outputs"]])
        return self._buffers

    def _pointer(self, buffers: _DeviceBuffers, location: list) -> int:
        kind, value = location
        if kind == "input":
            return int(buffers.inputs[value])
        if kind == "output":
            return int(buffers.outputs[value])
        return int(buffers.weights if kind == "param" else buffers.arena) + value

    def run(self, arrays: list[np.ndarray], outs: list[np.ndarray], seconds: Optional[Any] = None) -> None:
        """Inputs ``arrays`` in, ``outs`` filled; with ``seconds``, each step's GPU time is stored there."""
        with self._lock, activate(self.device) as drv:
            buffers = self._device_buffers(drv)
            for buf, array in zip(buffers.inputs, arrays):
                if array.nbytes:
                    drv.memcpy_htod(buf, array)
            events = [drv.Event() for _ in range(len(self.info["steps"]) + 1)] if seconds is not None else None
            if events:
                events[0].record()
            for k, step in enumerate(self.info["steps"]):
                if step["kind"] == "call":
                    ptrs = [self._pointer(buffers, loc) for loc in step["args"]]
                    self._functions[step["func"]].launch(drv, ptrs, Launch((), self.device))
                elif step["bytes"]:
                    drv.memcpy_dtod(self._pointer(buffers, step["dst"]), self._pointer(buffers, step["src"]),
                                    step["bytes"])
                if events:
                    events[k + 1].record()
            for buf, out in zip(buffers.outputs, outs):
                if out.nbytes:
                    drv.memcpy_dtoh(out, buf)
            if events:
                events[-1].synchronize()
                for k in range(len(events) - 1):
                    seconds[k] = events[k].time_till(events[k + 1]) / 1e3
