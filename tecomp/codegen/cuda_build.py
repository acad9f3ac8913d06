"""The CUDA build driver: GPU-lowered PrimFuncs -> CUDA C -> nvcc -> a loadable tecomp library.

``compile_cuda_library`` writes a library file: a small host shared object
(linked like the LLVM backend's) whose ``__tecomp_metadata`` JSON holds, next
to the usual function descriptions, a ``"cuda"`` section with the fatbin nvcc
made (SASS for the target architecture plus PTX for newer GPUs), the CUDA
source and each function's launch plan (:mod:`tecomp.runtime.cuda_module`
reads it). ``build_cuda`` loads that file as a runtime Module whose sources
are ``"cuda"`` (the default of ``get_source()``) and ``"ptx"`` (made on first
read). The device code is compiled here, at build time, so a compile error is
a BuildError from ``tecomp.build``; running needs pycuda and a GPU, building
only nvcc.
"""

from __future__ import annotations

import base64
import functools
import json
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import llvmlite.binding as llvm

from ..error import BuildError
from ..lower.launch import lower_for_gpu
from ..runtime.cuda_module import CUDA_SECTION_FORMAT
from ..target import Target
from ..tir.stmt import PrimFunc
from .build import CompiledLibrary, _link, _TempDir, metadata_json, target_machine
from .cuda import generate_cuda, plan_to_json
from .llvm import ModuleEmitter
from .nvcc import compile_cuda


def default_arch(target: Target) -> Optional[str]:
    """The target's ``-arch``, else the first GPU's compute capability, else None (nvcc's default)."""
    if target.arch:
        return target.arch
    from ..runtime.cuda_driver import compute_capability
    cc = compute_capability(0)
    return f"sm_{cc[0]}{cc[1]}" if cc else None


def _check_tensor_core_arch(source: str, arch: Optional[str]) -> None:
    """BuildError where kernels use tensor core fragments (``nvcuda::wmma``) and ``arch`` has none."""
    if "#include <mma.h>" not in source:
        return
    digits = arch[3:] if arch and arch.startswith("sm_") else ""
    if not digits.isdigit() or int(digits) < 70:
        raise BuildError(f"the kernels use tensor cores (nvcuda::wmma fragments), which need sm_70 or newer, but "
                         f"the architecture is {arch or 'nvcc default (no -arch and no GPU to read it from)'}; "
                         "build for a target such as 'cuda -arch=sm_80'")


def metadata_object(meta: str) -> bytes:
    """An object file whose only symbol is ``__tecomp_metadata`` returning ``meta``."""
    tm = target_machine(Target.host())
    emitter = ModuleEmitter(tm.triple, str(tm.target_data))
    emitter.add_metadata(meta)
    return tm.emit_object(llvm.parse_assembly(str(emitter.module)))


@dataclass
class DeviceCode:
    """GPU-lowered functions compiled by nvcc, and the library metadata that carries them."""

    metadata: dict        # ``__tecomp_metadata``'s document, with its "cuda" section
    source: str           # the CUDA C
    arch: Optional[str]
    timings: dict


def compile_device_code(funcs: Sequence[PrimFunc], target: Union[Target, str],
                        fast_math: bool = False) -> DeviceCode:
    """Lower (if needed), generate and compile ``funcs`` with nvcc for a cuda target."""
    target = Target(target) if not isinstance(target, Target) else target
    if target.kind != "cuda":
        raise BuildError(f"the CUDA backend cannot build for target {str(target)!r}")
    funcs = [lower_for_gpu(f, target) for f in funcs]
    if not funcs:
        raise BuildError("nothing to build: the list of functions is empty")
    t0 = time.perf_counter()
    generated = generate_cuda(funcs, target, fast_math)
    arch = default_arch(target)
    _check_tensor_core_arch(generated.text, arch)
    t1 = time.perf_counter()
    image = compile_cuda(generated.text, arch, "fatbin", fast_math, funcs[0].name)
    t2 = time.perf_counter()
    doc = json.loads(metadata_json(funcs, target))
    doc["cuda"] = {"format": CUDA_SECTION_FORMAT, "arch": arch, "image_format": "fatbin",
                   "image": base64.b64encode(image).decode("ascii"), "source": generated.text,
                   "functions": {f.name: plan_to_json(f, p) for f, p in zip(funcs, generated.plans)}}
    return DeviceCode(doc, generated.text, arch, {"codegen": t1 - t0, "nvcc": t2 - t1})


def compile_cuda_library(funcs: Sequence[PrimFunc], target: Union[Target, str],
                         fast_math: bool = False) -> CompiledLibrary:
    """Lower (if needed), generate, compile with nvcc and package ``funcs`` for a cuda target."""
    code = compile_device_code(funcs, target, fast_math)
    t0 = time.perf_counter()
    tmp = _TempDir()
    stem = code.metadata["functions"][0]["name"]
    so_path = str(_link([metadata_object(json.dumps(code.metadata))], tmp.path, stem, ()))
    sources = {"cuda": code.source,
               "ptx": functools.partial(_ptx, code.source, code.arch, fast_math, stem)}
    timings = dict(code.timings, package=time.perf_counter() - t0)
    return CompiledLibrary(so_path, sources, [f["name"] for f in code.metadata["functions"]], timings, tmp)


def _ptx(source: str, arch: Optional[str], fast_math: bool, stem: str) -> str:
    return compile_cuda(source, arch, "ptx", fast_math, stem).decode()


def build_cuda(funcs: Sequence[PrimFunc], target: Union[Target, str], fast_math: bool = False) -> Any:
    """Compile ``funcs`` for a cuda target and load them as a ``tecomp.runtime.module.Module``."""
    from ..runtime.module import load_module
    lib = compile_cuda_library(funcs, target, fast_math)
    module = load_module(lib.so_path, owner=lib.tempdir)
    module.sources = lib.sources
    return module
