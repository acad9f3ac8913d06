"""Running the functions of a CUDA library: device code, launch plans, checked calls, timing.

A library built for a cuda target is a tecomp library like any other (an ELF
file exporting ``__tecomp_metadata``); its metadata carries a ``"cuda"``
section (format 1)::

    {"format": 1, "arch": "sm_90", "image_format": "fatbin", "image": "<base64>",
     "source": "<CUDA C>",
     "functions": {"main": {"workspaces": [{"name": "T", "dtype": "float32", "elements": EXPR}],
                            "kernels": [{"name": "main_kernel0", "grid": [EXPR, EXPR, EXPR],
                                         "block": [32, 8, 1], "shared_bytes": 2048,
                                         "args": [["param", 0], ["workspace", 0], ["size_var", 0]]}]}}}

An EXPR (:func:`tecomp.runtime.metadata.evaluate`) is an int, ``["sv", k]`` (size var k) or
``[op, EXPR, EXPR]`` with op one of add, sub, mul, floordiv, floormod, min,
max: launch extents and workspace sizes depend on argument shapes.

A function with host loops around its kernels (a scan's time loop) also has
``"host_vars": ["int32", ...]`` and ``"steps"``, the order to run: a kernel's index, or
``{"loop": i, "min": EXPR, "extent": EXPR, "body": [steps]}`` running its body once per
value of host var ``i``, which kernels take as ``["host_var", i]`` arguments. Without
``steps`` every kernel runs once, in order (:func:`launch_sequence`).

``CUDAFunction`` checks a call exactly as ``PackedFunc`` does (the same
code), then launches the kernels in order on the arguments' GPU, with
workspaces allocated once per device and size. The device image is loaded on
first use, so a CUDA library loads (and exports) on a machine without a GPU;
calling it there raises ``CUDAUnavailableError``. This module must not
import the compiler.
"""

from __future__ import annotations

import base64
import threading
from typing import Any, Iterator, NamedTuple

import numpy as np

from ..error import ArgumentError, TecompError
from .cuda_driver import CUDANDArray, activate, driver
from .metadata import FunctionInfo, ParamInfo, evaluate
from .packed_func import PackedFunc

CUDA_SECTION_FORMAT = 1
_SIZE_VAR_FORMAT = {"int32": "i", "int64": "q"}


class DeviceImage:
    """The compiled device code of a library, loaded into each GPU's context on first use."""

    def __init__(self, image: bytes, library: str):
        self.image = image
        self.library = library
        self._loaded: dict[int, Any] = {}
        self._functions: dict[tuple[int, str], Any] = {}
        self._lock = threading.Lock()

    def function(self, drv: Any, device: int, name: str, arg_format: str) -> Any:
        """Kernel ``name`` in GPU ``device``'s context (current), prepared for ``arg_format``."""
        key = (device, name)
        fn = self._functions.get(key)
        if fn is None:
            with self._lock:
                module = self._loaded.get(device)
                if module is None:
                    try:
                        module = self._loaded[device] = drv.module_from_buffer(self.image)
                    except drv.Error as exc:
                        raise TecompError(f"{self.library}: the GPU cuda({device}) cannot load its device code "
                                          f"(built for another architecture?): {exc}") from None
                fn = module.get_function(name)
                fn.prepare(arg_format)
                self._functions[key] = fn
        return fn


class Launch(NamedTuple):
    """What ``prepare`` hands to ``call_prepared`` besides the pointers: sizes and the GPU."""

    sizes: Any
    device: int


class CUDAFunction(PackedFunc):
    """A callable function of a CUDA library: ``f(*arrays)`` with NDArrays on one GPU."""

    def __init__(self, info: FunctionInfo, plan: dict, image: DeviceImage) -> None:
        super().__init__(info, None)
        self.plan = plan
        self.image = image
        self._workspaces: dict[tuple, list] = {}
        self._kernels = []
        scalar_dtypes = {"size_var": [dtype for _, dtype in info.size_vars], "host_var": plan.get("host_vars", [])}
        for k in plan["kernels"]:
            fmt = "".join(_SIZE_VAR_FORMAT[scalar_dtypes[kind][i]] if kind in scalar_dtypes else "P"
                          for kind, i in k["args"])
            self._kernels.append((k, fmt))

    def __call__(self, *args: Any) -> None:
        ptrs, launch = self.prepare(args)
        self.call_prepared(ptrs, launch)

    def prepare(self, args: tuple[Any, ...]) -> tuple[Any, Launch]:
        driver()  # without pycuda or a driver, say so before judging the arguments
        ptrs, sizes = super().prepare(args)
        devices = {a.device.index for a in args}
        if len(devices) != 1:
            raise ArgumentError(f"{self.name}: arguments are on different GPUs "
                                f"({', '.join(sorted(f'cuda({d})' for d in devices))}); put them on one")
        return ptrs, Launch(sizes, devices.pop())

    def _unwrap(self, i: int, param: ParamInfo, arg: Any) -> tuple[Any, int]:
        if isinstance(arg, CUDANDArray):
            return arg, arg.data_ptr
        where = f"on {arg.device}" if hasattr(arg, "device") and not isinstance(arg, np.ndarray) \
            else f"a {type(arg).__name__}"
        raise self._error(i, param, f"got {where}; this function runs on a CUDA GPU: pass arrays made with "
                                    "tecomp.nd.array(x, tecomp.cuda(0)) or tecomp.nd.empty(..., device=tecomp.cuda(0))")

    def _check_overlap(self, arrays: list[Any]) -> None:
        params = self.info.params
        spans = [(a.data_ptr, a.data_ptr + a.nbytes) for a in arrays]
        for i, (lo, hi) in enumerate(spans):
            if not params[i].written:
                continue
            for j, (lo2, hi2) in enumerate(spans):
                if j != i and lo < hi2 and lo2 < hi:
                    raise self._error(i, params[i], f"shares memory with argument {j} ({params[j].name}); "
                                                    "the function writes it, so pass a separate array")

    def call_prepared(self, ptrs: Any, launch: Launch) -> None:
        with activate(launch.device) as drv:
            self.launch(drv, ptrs, launch)

    def launch(self, drv: Any, ptrs: Any, launch: Launch) -> None:
        """Launch the kernels on device pointers ``ptrs`` (one per parameter), the GPU's context current."""
        sizes, device = launch.sizes, launch.device
        spaces = self._workspace(drv, device, sizes)
        for index, host in launch_sequence(self.plan, sizes):
            k, fmt = self._kernels[index]
            grid = tuple(evaluate(g, sizes) for g in k["grid"])
            if min(grid) <= 0:
                continue  # an empty extent: nothing to compute
            values = []
            for kind, i in k["args"]:
                if kind == "param":
                    values.append(ptrs[i])
                elif kind == "workspace":
                    values.append(int(spaces[i]))
                elif kind == "host_var":
                    values.append(host[i])
                else:
                    values.append(sizes[i])
            fn = self.image.function(drv, device, k["name"], fmt)
            fn.prepared_call(grid, tuple(k["block"]), *values)

    def _workspace(self, drv: Any, device: int, sizes: Any) -> list:
        plan = self.plan["workspaces"]
        if not plan:
            return []
        key = (device,) + tuple(sizes)
        spaces = self._workspaces.get(key)
        if spaces is None:
            spaces = []
            for w in plan:
                nbytes = evaluate(w["elements"], sizes) * np.dtype(w["dtype"]).itemsize
                spaces.append(drv.mem_alloc(max(1, nbytes)))
            self._workspaces[key] = spaces
        return spaces

    def time_calls(self, ptrs: Any, launch: Launch, count: int) -> float:
        """Seconds for ``count`` back-to-back calls, measured with CUDA events on the GPU."""
        with activate(launch.device) as drv:
            start, end = drv.Event(), drv.Event()
            start.record()
            for _ in range(count):
                self.launch(drv, ptrs, launch)
            end.record()
            end.synchronize()
            return start.time_till(end) / 1e3

    def __repr__(self) -> str:
        return f"<tecomp.CUDAFunction {self.name}({', '.join(p.name for p in self.info.params)})>"


def launch_sequence(plan: dict, sizes: Any) -> Iterator[tuple[int, list]]:
    """The kernel launches of ``plan`` in order, as (kernel index, host var values) pairs; the
    list of values is updated in place as host loops advance."""
    host = [0] * len(plan.get("host_vars", ()))

    def run(steps: list) -> Iterator[tuple[int, list]]:
        for step in steps:
            if isinstance(step, int):
                yield step, host
                continue
            start = evaluate(step["min"], sizes)
            for value in range(start, start + evaluate(step["extent"], sizes)):
                host[step["loop"]] = value
                yield from run(step["body"])

    yield from run(plan.get("steps", list(range(len(plan["kernels"])))))


def _check_steps(steps: Any, kernels: int, host_vars: int) -> None:
    if not isinstance(steps, list):
        raise ValueError("steps must be a list")
    for step in steps:
        if isinstance(step, int) and not isinstance(step, bool):
            if not 0 <= step < kernels:
                raise ValueError(f"step {step} names no kernel")
        elif isinstance(step, dict) and isinstance(step.get("loop"), int) and 0 <= step["loop"] < host_vars:
            _check_steps(step["body"], kernels, host_vars)
        else:
            raise ValueError(f"invalid step {step!r}")


def functions_from_metadata(doc: dict, infos: list[FunctionInfo], library: str) -> list[CUDAFunction]:
    """The functions of a CUDA library, from its parsed metadata; TecompError if the section is invalid."""
    section = doc.get("cuda")
    try:
        if not isinstance(section, dict) or section.get("format") != CUDA_SECTION_FORMAT:
            raise ValueError(f"the cuda section has no supported format (this runtime reads {CUDA_SECTION_FORMAT})")
        image = DeviceImage(base64.b64decode(section["image"], validate=True), library)
        plans = section["functions"]
        functions = []
        for info in infos:
            plan = plans[info.name]
            for k in plan["kernels"]:
                if len(k["grid"]) != 3 or len(k["block"]) != 3:
                    raise ValueError(f"kernel {k['name']} needs three grid and block extents")
                for kind, i in k["args"]:
                    limit = {"param": len(info.params), "workspace": len(plan["workspaces"]),
                             "size_var": len(info.size_vars), "host_var": len(plan.get("host_vars", ()))}[kind]
                    if not 0 <= i < limit:
                        raise ValueError(f"kernel {k['name']} has argument {kind} {i} out of range")
            if any(dtype not in _SIZE_VAR_FORMAT for dtype in plan.get("host_vars", ())):
                raise ValueError(f"host loop variables must be int32 or int64, got {plan['host_vars']}")
            if "steps" in plan:
                _check_steps(plan["steps"], len(plan["kernels"]), len(plan.get("host_vars", ())))
            functions.append(CUDAFunction(info, plan, image))
    except (KeyError, TypeError, ValueError) as exc:
        raise TecompError(f"{library}: invalid CUDA metadata: {exc}") from None
    return functions
