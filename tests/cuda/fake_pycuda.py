"""A stand-in for ``pycuda.driver`` that runs kernels with the reference interpreter.

It lets the CUDA runtime (device arrays, module loading, argument checks, workspaces,
launches with the planned grid and block, CUDA-event timing, exported libraries) run on
a machine without a GPU: device memory is host memory behind fake addresses, and a
launched kernel runs its launch-form IR (registered by the test from the lowered
function) on views of that memory. It checks what a driver would: the grid and block
the runtime passes must be the kernel's own, arguments must match the prepared format, and
a pointer the kernel's CUDA C reads or writes as ``float4`` (``int2``...) must be aligned to
that vector's size. Each launch also runs the CUDA C the backend emits for the registered
function on the CPU (``emulation``): what it writes must equal what the interpreter wrote.
"""

from __future__ import annotations

import re
import sys
import types
from typing import Any, Optional

import numpy as np

from tecomp.codegen.cuda import VECTOR_TYPES, expr_to_json, generate_cuda
from tecomp.lower.launch import host_loop_vars, kernel_launch, kernels, workspaces
from tecomp.runtime.cuda_module import evaluate
from tecomp.tir import PrimFunc, collect_vars, const, post_order_visit, substitute
from tecomp.tir.interpreter import run

import emulation


class Error(Exception):
    pass


class FakeDriver:
    """The module object installed as ``pycuda.driver``."""

    def __init__(self, gpus: int = 1):
        self.gpus = gpus
        self.memory: dict[int, np.ndarray] = {}   # base address -> bytes
        self.next_address = 0x10000
        self.kernels: dict[str, tuple] = {}       # kernel name -> (PrimFunc, arg buffers, size vars)
        self.sources: dict[str, str] = {}         # kernel name -> the CUDA C of its function
        self.launches: list[tuple] = []
        self.loaded_images: list[bytes] = []
        self.context_depth = 0
        self.module = types.ModuleType("pycuda.driver")
        for name in ("init", "mem_alloc", "memcpy_htod", "memcpy_dtoh", "memcpy_dtod", "module_from_buffer"):
            setattr(self.module, name, getattr(self, name))
        self.module.Error = Error
        self.module.Device = self._device_class()
        self.module.Context = self._context_class()
        self.module.Event = _Event

    # ------------------------------------------------------------ registration
    def register(self, func: PrimFunc, source: Optional[str] = None) -> None:
        """Make the kernels of a GPU-lowered function runnable, by the interpreter and as CUDA C:
        ``source``, the translation unit the build compiled (default: the function's own)."""
        spaces = workspaces(func)
        source = source if source is not None else generate_cuda([func]).text
        for kernel in kernels(func):
            used: set = set()
            post_order_visit(kernel, lambda n: used.add(n.buffer.data) if hasattr(n, "buffer") else None)
            args = [b for b in list(func.params) + spaces if b.data in used]
            in_shapes = set().union(*(collect_vars(d) for b in args for d in b.shape))
            size_vars = tuple(v for v in func.size_vars if v in in_shapes)
            self.kernels[kernel.node] = (PrimFunc(kernel.node, tuple(args), kernel, size_vars), func)
            self.sources[kernel.node] = source

    # ------------------------------------------------------------ driver API
    def init(self) -> None:
        pass

    def _device_class(self):
        fake = self

        class Device:
            def __init__(self, index: int):
                if index >= fake.gpus:
                    raise Error(f"invalid device {index}")
                self.index = index

            @staticmethod
            def count() -> int:
                return fake.gpus

            def compute_capability(self) -> tuple:
                return (9, 0)

            def retain_primary_context(self):
                return fake.module.Context()

        return Device

    def _context_class(self):
        fake = self

        class Context:
            def push(self) -> None:
                fake.context_depth += 1

            @staticmethod
            def pop() -> None:
                fake.context_depth -= 1

        return Context

    def mem_alloc(self, nbytes: int) -> "_Allocation":
        assert self.context_depth > 0, "driver call without a current context"
        address = self.next_address
        self.next_address += (nbytes + 255) // 256 * 256 + 256
        self.memory[address] = np.zeros(nbytes, np.uint8)
        return _Allocation(address)

    def _bytes(self, address: int, nbytes: int) -> np.ndarray:
        """The bytes at ``address`` (anywhere inside an allocation) up to the allocation's end."""
        address = int(address)
        base = max((b for b in self.memory if b <= address), default=None)
        assert base is not None and address - base < max(1, self.memory[base].size), \
            f"address {address:#x} is in no allocation"
        mem = self.memory[base][address - base:]
        assert nbytes <= mem.size, "access past the end of an allocation"
        return mem[:nbytes]

    def memcpy_htod(self, dest: Any, src: np.ndarray) -> None:
        self._bytes(dest, src.nbytes)[:] = np.ascontiguousarray(src).reshape(-1).view(np.uint8)

    def memcpy_dtoh(self, dest: np.ndarray, src: Any) -> None:
        dest.reshape(-1).view(np.uint8)[:] = self._bytes(src, dest.nbytes)

    def memcpy_dtod(self, dest: Any, src: Any, nbytes: int) -> None:
        self._bytes(dest, nbytes)[:] = self._bytes(src, nbytes)

    def module_from_buffer(self, image: bytes) -> "_Module":
        assert self.context_depth > 0
        self.loaded_images.append(image)
        return _Module(self)

    def launch(self, name: str, fmt: str, grid: tuple, block: tuple, args: tuple) -> None:
        assert self.context_depth > 0
        assert len(args) == len(fmt), f"{name}: {len(args)} arguments for format {fmt!r}"
        kernel, func = self.kernels[name]
        launch = kernel_launch(kernel.body)
        sizes = [a for a, f in zip(args, fmt) if f != "P"]
        pointers = [a for a, f in zip(args, fmt) if f == "P"]
        body_vars = collect_vars(launch.body)
        used_sizes = [v for v in func.size_vars if v in body_vars]
        sv_values = dict(zip(used_sizes, sizes))
        host = {v: const(int(a), v.dtype) for v, a in zip([v for v in host_loop_vars(func) if v in body_vars],
                                                           sizes[len(used_sizes):])}
        if host:  # the current values of the host loops around the kernel (a scan's time step)
            kernel = PrimFunc(kernel.name, kernel.params, substitute(kernel.body, host), kernel.size_vars)
        all_sizes = [sv_values.get(v, 0) for v in func.size_vars]
        if all(v in sv_values for g in launch.grid for v in collect_vars(g)):
            expected = tuple(evaluate(expr_to_json(g, func.size_vars), all_sizes) for g in launch.grid)
            assert tuple(grid) == expected, (grid, expected)
        assert tuple(block) == launch.block, (block, launch.block)
        self.launches.append((name, tuple(grid), tuple(block)))
        source = self.sources[name]
        aligns = [a for a, f in zip(_vector_alignments(source, name), fmt) if f == "P"]
        arrays = []
        for ptr, buf, vector in zip(pointers, kernel.params, aligns):
            shape = tuple(int(evaluate(expr_to_json(d, func.size_vars), all_sizes)) for d in buf.shape)
            dtype = np.dtype(buf.dtype)
            align = max(vector, dtype.itemsize)
            assert int(ptr) % align == 0, f"{name}: {buf.name} pointer {int(ptr):#x} is not aligned to {align} bytes"
            mem = self._bytes(ptr, int(np.prod(shape)) * dtype.itemsize)
            arrays.append(mem.view(dtype).reshape(shape))
        copies = iter([a.copy() for a in arrays])
        before = [next(copies) if f == "P" else _SIZE_TYPES[f](a) for a, f in zip(args, fmt)]
        run(kernel, arrays)
        emulation.check_kernel(source, name, grid, block, before, arrays,
                               [int(a) if f == "P" else None for a, f in zip(args, fmt)])


_SIZE_TYPES = {"i": np.int32, "q": np.int64}


def _vector_alignments(source: str, kernel: str) -> list[int]:
    """Per parameter of ``kernel``'s CUDA C, the bytes its widest vector access (``float4``...) needs (else 1)."""
    start = source.index(f" {kernel}(")
    end = source.find('extern "C"', start)
    body = source[start:end if end >= 0 else len(source)]
    params = body[body.index("(") + 1:body.index(") {")].split(", ")
    aligns = []
    for p in params:
        name = p.split()[-1]
        sizes = [np.dtype(elem).itemsize * lanes for (elem, lanes), vtype in VECTOR_TYPES.items()
                 if re.search(rf"\*\((?:const )?{vtype}\*\)\({re.escape(name)} \+", body)]
        aligns.append(max(sizes, default=1))
    return aligns


class _Allocation:
    def __init__(self, address: int):
        self.address = address

    def __int__(self) -> int:
        return self.address

    __index__ = __int__


class _Module:
    def __init__(self, driver: FakeDriver):
        self.driver = driver

    def get_function(self, name: str) -> "_Function":
        if name not in self.driver.kernels:
            raise Error(f"named symbol not found: {name}")
        return _Function(self.driver, name)


class _Function:
    def __init__(self, driver: FakeDriver, name: str):
        self.driver, self.name, self.fmt = driver, name, None

    def prepare(self, fmt: str) -> None:
        self.fmt = fmt

    def prepared_call(self, grid: tuple, block: tuple, *args: Any) -> None:
        assert self.fmt is not None, "prepared_call before prepare"
        self.driver.launch(self.name, self.fmt, grid, block, args)


class _Event:
    clock = 0.0

    def record(self) -> None:
        _Event.clock += 1.5
        self.at = _Event.clock

    def synchronize(self) -> None:
        pass

    def time_till(self, other: "_Event") -> float:
        return other.at - self.at


def install(monkeypatch: Any, driver: FakeDriver) -> None:
    """Put ``driver`` in place of pycuda for the test (undone by monkeypatch)."""
    package = types.ModuleType("pycuda")
    package.driver = driver.module
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver.module)
