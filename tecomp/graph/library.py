"""Linking a model into one shared library: kernels + C executor + weights blob.

For a CPU, the kernels (all PrimFuncs of the model) become LLVM modules,
optimized and emitted as objects by tecomp's LLVM backend while the builder
lowers (``codegen.parallel_objects``). For a GPU, nvcc
compiles them and the object only carries the device code in the library
metadata (``__tecomp_metadata``'s "cuda" section, as a single CUDA kernel
library has it). The C source (``executor_c.py``: the executor for a CPU, the
model description alone for a GPU) is compiled by gcc; the weights are a raw
blob placed in read-only data by an assembler ``.incbin`` (symbols
``tecomp_model_weights`` and ``tecomp_model_weights_end``). gcc links the three
like ``tecomp.codegen.build`` links a kernel library. The result is the file a
``GraphModule`` loads and ``export_library`` copies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

from ..codegen.thread_pool import pool_object
from ..error import BuildError
from ..target import Target

_WEIGHTS_ASM = """\
  .section .rodata.tecomp_weights,"a",@progbits
  .balign 64
  .globl tecomp_model_weights
  .type tecomp_model_weights, @object
tecomp_model_weights:
  .incbin "{blob}"
  .globl tecomp_model_weights_end
  .type tecomp_model_weights_end, @object
tecomp_model_weights_end:
  .byte 0
  .section .note.GNU-stack,"",@progbits
"""


def _gcc() -> str:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("building a model needs gcc on PATH, and none was found")
    return gcc


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (gcc exit {proc.returncode}):\n{proc.stderr.strip()[-4000:]}")


def cuda_kernels_object(funcs: Sequence[Any], target: Target) -> bytes:
    """An object holding ``__tecomp_metadata`` with the kernels' device code inside."""
    from ..codegen.cuda_build import compile_device_code, metadata_object
    return metadata_object(json.dumps(compile_device_code(funcs, target).metadata))


def link_model(kernel_objects: Sequence[bytes], executor_c: str, weights: bytes, directory: Path) -> Path:
    """Compile and link ``directory/model.so`` from the kernels' objects, the executor (or description)
    and the weights."""
    gcc = _gcc()
    objects = []
    for k, code in enumerate(kernel_objects):
        objects.append(directory / f"kernels{k}.o")
        objects[-1].write_bytes(code)
    (directory / "executor.c").write_text(executor_c)
    _run([gcc, "-O2", "-fPIC", "-std=c11", "-D_POSIX_C_SOURCE=200112L", "-c", str(directory / "executor.c"),
          "-o", str(directory / "executor.o")], "compiling the graph executor")
    objects.append(directory / "executor.o")
    blob = directory / "weights.bin"
    blob.write_bytes(weights)
    (directory / "weights.S").write_text(_WEIGHTS_ASM.format(blob=blob.resolve()))
    _run([gcc, "-c", str(directory / "weights.S"), "-o", str(directory / "weights.o")], "assembling the weights")
    objects.append(directory / "weights.o")
    so_path = directory / "model.so"
    # -z nodelete: dlclose must not unmap the model while the idle worker threads of its thread
    # pool (started by its parallel loops) still run in its code.
    _run([gcc, "-shared", "-Wl,-z,defs", "-Wl,-z,nodelete", "-o", str(so_path), *map(str, objects),
          str(pool_object(gcc)), "-pthread", "-lgomp", "-lm"], "linking the model library")
    return so_path
