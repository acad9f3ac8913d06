"""The CUDA C that tecomp emits, run on the host CPU: a second oracle beside the interpreter.

The CUDA backend's translation unit is compiled, unchanged, by the host C++ compiler against
``cuda_emu.h`` (the CUDA keywords, thread indices, vector types and math functions) and run by
``cuda_emu_runtime.cpp`` (blocks one at a time, the threads of a block as fibers meeting at
every ``__syncthreads()``, in ascending, descending or shuffled order). Misaligned vector
accesses, faults, barrier divergence and writes outside an argument are errors. No nvcc and
no GPU are needed. :mod:`.build` compiles and caches, :mod:`.launch` runs.
"""

from .build import EmulationBuildError, build_library, kernels_in
from .launch import ORDERS, EmulatedKernelError, EmulatedLibrary, library, run_function

__all__ = ["EmulationBuildError", "EmulatedKernelError", "EmulatedLibrary", "ORDERS", "build_library",
           "kernels_in", "library", "run_function"]
