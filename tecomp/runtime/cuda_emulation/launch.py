"""Launching the CPU emulation's kernels on numpy memory: thread orders, guard zones, faults.

``library(source)`` loads (building once, see :mod:`.build`) a CUDA translation unit;
``EmulatedLibrary.launch`` runs one kernel with a grid and block, ``run_function`` the
kernels of one function in the order of its launch plan (the runtime's format, see
:mod:`tecomp.runtime.cuda_module`). Pointer arguments are numpy arrays, read and written
in place: each is copied into a buffer with guard bytes either side, placed at the same
address modulo 256 as the device address it stands for (so a vector access is exactly as
aligned as on the GPU), and copied back only when the launch ended cleanly and no guard
byte changed. A fault, a misaligned access, a barrier divergence or a write outside an
argument raises :class:`EmulatedKernelError` naming the kernel, block and thread. This
module must not compile anything itself nor import the code generator.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Optional, Sequence

import numpy as np

from ...error import TecompError
from ..cuda_module import evaluate, launch_sequence
from .build import build_library, runtime_library

ORDERS = {"ascending": 0, "descending": 1, "shuffle": 2}
GUARD = 256          # guard bytes either side; also the alignment modulus of device addresses
_GUARD_BYTE = 0xA5
_lock = threading.Lock()  # the runtime runs one launch at a time
_runtime: Optional[ctypes.CDLL] = None
_libraries: dict[str, "EmulatedLibrary"] = {}


class EmulatedKernelError(TecompError):
    """A kernel failed on the CPU emulation (fault, misalignment, divergence, out-of-bounds write)."""


def _load_runtime() -> ctypes.CDLL:
    global _runtime
    if _runtime is None:
        # global: the kernel libraries find threadIdx, the launcher and the fault handlers here
        _runtime = ctypes.CDLL(str(runtime_library()), mode=ctypes.RTLD_GLOBAL)
        _runtime.tecomp_emu_message.restype = ctypes.c_char_p
    return _runtime


class _Guarded:
    """A copy of one pointer argument between guard bytes, at a chosen address modulo GUARD."""

    def __init__(self, array: np.ndarray, address: Optional[int]):
        if not array.flags.c_contiguous:
            raise EmulatedKernelError("a pointer argument of an emulated kernel must be a C-contiguous array")
        self.array = array
        self.raw = np.full(array.nbytes + 3 * GUARD, _GUARD_BYTE, np.uint8)
        base = self.raw.ctypes.data + GUARD
        self.start = GUARD + ((address or 0) - base) % GUARD
        self.data[:] = array.reshape(-1).view(np.uint8)
        self.pointer = self.raw.ctypes.data + self.start

    @property
    def data(self) -> np.ndarray:
        return self.raw[self.start:self.start + self.array.nbytes]

    def outside_writes(self) -> list[int]:
        """Byte offsets (relative to the argument's start) of changed guard bytes, a few."""
        changed = np.flatnonzero(self.raw != _GUARD_BYTE)
        end = self.start + self.array.nbytes
        return [int(k) - self.start for k in changed if k < self.start or k >= end][:4]

    def copy_back(self) -> None:
        self.array.reshape(-1).view(np.uint8)[:] = self.data


class EmulatedLibrary:
    """The kernels of one CUDA translation unit, compiled for the host CPU."""

    def __init__(self, source: str):
        self._message = _load_runtime().tecomp_emu_message
        path, self.kernels = build_library(source)
        self.source = source
        self._lib = ctypes.CDLL(str(path))

    def launch(self, kernel: str, grid: Sequence[int], block: Sequence[int], args: Sequence[Any],
               order: str = "ascending", seed: int = 0, addresses: Optional[Sequence[Optional[int]]] = None) -> None:
        """Run ``kernel``: ``args`` are arrays (pointers) and numpy scalars of the parameter's type."""
        if kernel not in self.kernels:
            raise EmulatedKernelError(f"no kernel {kernel!r} in the emulated CUDA source "
                                      f"(it has {', '.join(self.kernels)})")
        guarded: dict[int, _Guarded] = {}
        pointers = (ctypes.c_void_p * max(1, len(args)))()
        scalars = []
        for i, a in enumerate(args):
            if isinstance(a, np.ndarray):
                guarded[i] = _Guarded(a, None if addresses is None else addresses[i])
                pointers[i] = guarded[i].pointer
            else:
                scalars.append(np.array([a], dtype=np.asarray(a).dtype))
                pointers[i] = scalars[-1].ctypes.data
        dims = (ctypes.c_longlong * 6)(*[int(x) for x in grid], *[int(x) for x in block])
        fn = getattr(self._lib, f"tecomp_launch_{kernel}")
        with _lock:
            status = fn(pointers, dims, ORDERS[order], ctypes.c_uint(seed & 0xFFFFFFFF))
            message = self._message().decode(errors="replace") if status else ""
        where = f"kernel {kernel} (grid {tuple(grid)}, block {tuple(block)}, {order} order)"
        if status:
            raise EmulatedKernelError(f"{where}: {message}")
        for i, g in guarded.items():
            outside = g.outside_writes()
            if outside:
                raise EmulatedKernelError(f"{where} wrote outside argument {i} ({g.array.nbytes} bytes), at byte "
                                          f"offsets {outside}")
        for g in guarded.values():
            g.copy_back()


def library(source: str) -> EmulatedLibrary:
    """The emulated library of ``source`` (loaded once per process)."""
    lib = _libraries.get(source)
    if lib is None:
        lib = _libraries[source] = EmulatedLibrary(source)
    return lib


def run_function(lib: EmulatedLibrary, plan: dict, arrays: Sequence[np.ndarray], sizes: Sequence[Any] = (),
                 order: str = "ascending", seed: int = 0) -> None:
    """Run one function's kernels (``plan`` as in a CUDA library's metadata) on ``arrays`` in place.

    ``sizes`` are the values of the function's size variables, as numpy scalars of their dtype."""
    values = [int(s) for s in sizes]
    spaces = []
    for w in plan["workspaces"]:
        dtype = np.dtype(w["dtype"])
        fill = np.nan if dtype.kind == "f" else 0
        spaces.append(np.full(max(1, evaluate(w["elements"], values)), fill, dtype))
    host_types = [np.dtype(d).type for d in plan.get("host_vars", ())]
    for index, host in launch_sequence(plan, values):
        k = plan["kernels"][index]
        grid = tuple(evaluate(g, values) for g in k["grid"])
        if min(grid) <= 0:
            continue
        args = [arrays[i] if kind == "param" else spaces[i] if kind == "workspace"
                else host_types[i](host[i]) if kind == "host_var" else sizes[i]
                for kind, i in k["args"]]
        lib.launch(k["name"], grid, k["block"], args, order, seed)
