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


def _host_library(meta: str, tmp: _TempDir, stem: str) -> str:
    """A shared object that only exports ``__tecomp_metadata`` returning ``meta``."""
    tm = target_machine(Target.host())
    emitter = ModuleEmitter(tm.triple, str(tm.target_data))
    emitter.add_metadata(meta)
    mod = llvm.parse_assembly(str(emitter.module))
    return str(_link(tm.emit_object(mod), tmp.path, stem, ()))


def compile_cuda_library(funcs: Sequence[PrimFunc], target: Union[Target, str],
                         fast_math: bool = False) -> CompiledLibrary:
    """Lower (if needed), generate, compile with nvcc and package ``funcs`` for a cuda target."""
    target = Target(target) if not isinstance(target, Target) else target
    if target.kind != "cuda":
        raise BuildError(f"the CUDA backend cannot build for target {str(target)!r}")
    funcs = [lower_for_gpu(f, target) for f in funcs]
    if not funcs:
        raise BuildError("nothing to build: the list of functions is empty")
    t0 = time.perf_counter()
    generated = generate_cuda(funcs, target, fast_math)
    arch = default_arch(target)
    stem = funcs[0].name
    t1 = time.perf_counter()
    image = compile_cuda(generated.text, arch, "fatbin", fast_math, stem)
    t2 = time.perf_counter()
    doc = json.loads(metadata_json(funcs, target))
    doc["cuda"] = {"format": CUDA_SECTION_FORMAT, "arch": arch, "image_format": "fatbin",
                   "image": base64.b64encode(image).decode("ascii"), "source": generated.text,
                   "functions": {f.name: plan_to_json(f, p) for f, p in zip(funcs, generated.plans)}}
    tmp = _TempDir()
    so_path = _host_library(json.dumps(doc), tmp, stem)
    t3 = time.perf_counter()
    sources = {"cuda": generated.text,
               "ptx": functools.partial(_ptx, generated.text, arch, fast_math, stem)}
    timings = {"codegen": t1 - t0, "nvcc": t2 - t1, "package": t3 - t2}
    return CompiledLibrary(so_path, sources, [f.name for f in funcs], timings, tmp)


def _ptx(source: str, arch: Optional[str], fast_math: bool, stem: str) -> str:
    return compile_cuda(source, arch, "ptx", fast_math, stem).decode()


def build_cuda(funcs: Sequence[PrimFunc], target: Union[Target, str], fast_math: bool = False) -> Any:
    """Compile ``funcs`` for a cuda target and load them as a ``tecomp.runtime.module.Module``."""
    from ..runtime.module import load_module
    lib = compile_cuda_library(funcs, target, fast_math)
    module = load_module(lib.so_path, owner=lib.tempdir)
    module.sources = lib.sources
    return module
