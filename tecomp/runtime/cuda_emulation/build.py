"""Compiling emitted CUDA C with the host C++ compiler, against the emulation header; cached.

``build_library(source)`` returns the path of a shared object holding the translation
unit exactly as the CUDA backend wrote it, preceded by ``cuda_emu.h`` and followed by one
launcher per kernel (``tecomp_launch_<kernel>``). Objects are cached under
``<TECOMP_CACHE_DIR>/cuda_emulation`` by a hash of the source, the headers and the flags,
so a test run compiles each distinct kernel source once per machine. A source the header
cannot compile raises :class:`EmulationBuildError` with the compiler's message and the
emitted lines it names. This module must not generate CUDA code nor run kernels.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ... import config
from ...error import BuildError

HERE = Path(__file__).resolve().parent
SOURCE_NAME = "kernel.cu"  # the emitted source's file name in compiler messages
# -fwrapv: integers wrap as the IR says; -ffp-contract=off: no fused multiply-add the IR does not have;
# alignment,bounds: a misaligned vector access or an index past a shared array is reported (no runtime linked).
FLAGS = ("-O1", "-std=c++17", "-fPIC", "-shared", "-w", "-fwrapv", "-ffp-contract=off", "-fno-strict-aliasing",
         "-fsanitize=alignment,bounds", "-nodefaultlibs")
_KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\) )?(\w+)\(')


class EmulationBuildError(BuildError):
    """The emitted CUDA C does not compile against the emulation header."""


def kernels_in(source: str) -> dict[str, bool]:
    """Each kernel of ``source`` by name, with whether its body calls ``__syncthreads()``."""
    found = list(_KERNEL.finditer(source))
    ends = [m.start() for m in found[1:]] + [len(source)]
    return {m.group(1): "__syncthreads()" in source[m.start():end] for m, end in zip(found, ends)}


def compiler() -> str:
    """The host C++ compiler's path; EmulationBuildError when there is none."""
    for name in ("g++", "c++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    raise EmulationBuildError("no host C++ compiler (g++, c++ or clang++) on PATH to run CUDA C on the CPU")


def _cache_dir() -> Path:
    path = config.cache_dir() / "cuda_emulation"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _digest(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _compile(unit: str, out: Path, what: str, source: str = "") -> None:
    """Compile ``unit`` (C++ text) to the shared object ``out``, atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tecomp-emu-") as tmp:
        cpp = Path(tmp) / "unit.cpp"
        cpp.write_text(unit)
        so = Path(tmp) / "unit.so"
        cmd = [compiler(), *FLAGS, "-I", str(HERE), "-o", str(so), str(cpp), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise EmulationBuildError(_explain(what, done.stderr, source))
        os.replace(so, out)  # another process may have built the same file: either copy is right


def _explain(what: str, stderr: str, source: str) -> str:
    lines = source.splitlines()
    quoted = []
    for n in sorted({int(m) for m in re.findall(rf"{SOURCE_NAME}:(\d+):", stderr)})[:5]:
        if 1 <= n <= len(lines):
            quoted.append(f"  {SOURCE_NAME}:{n}: {lines[n - 1].strip()}")
    message = "\n".join(stderr.strip().splitlines()[:40])
    where = ("\nthe emitted lines it names:\n" + "\n".join(quoted)) if quoted else ""
    return f"{what} does not compile on the CPU emulation of CUDA:\n{message}{where}"


def runtime_library() -> Path:
    """The scheduler (``cuda_emu_runtime.cpp``) as a shared object, built once."""
    text = (HERE / "cuda_emu_runtime.cpp").read_text()
    out = _cache_dir() / f"runtime-{_digest(text, compiler(), *FLAGS)}.so"
    if not out.exists():
        _compile(text, out, "the emulation runtime")
    return out


def build_library(source: str) -> tuple[Path, dict[str, bool]]:
    """The emulation's shared object for the CUDA translation unit ``source``, and its kernels."""
    kernels = kernels_in(source)
    if not kernels:
        raise EmulationBuildError("the CUDA source defines no kernel (no 'extern \"C\" __global__ void ...')")
    launchers = [f'extern "C" int tecomp_launch_{name}(void** a, const long long* d, int order, unsigned int seed) '
                 f'{{ return tecomp_emu_launch([](void** p) {{ tecomp_emu::invoke({name}, p); }}, a, d, order, seed, '
                 f'{int(barrier)}); }}' for name, barrier in kernels.items()]
    unit = "\n".join(['#include "cuda_emu.h"', f'#line 1 "{SOURCE_NAME}"', source,
                      '#line 1 "tecomp-launchers"', *launchers, ""])
    headers = "".join((HERE / h).read_text() for h in ("cuda_emu.h", "cuda_fp16.h", "mma.h"))
    out = _cache_dir() / f"kernels-{_digest(unit, headers, compiler(), *FLAGS)}.so"
    if not out.exists():
        _compile(unit, out, "the CUDA source", source)
    return out, kernels
