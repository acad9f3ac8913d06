"""The second oracle of the CUDA tests: the emitted CUDA C run on the CPU must write what the interpreter wrote.

Every kernel the fake GPU launches and every function ``emulate_and_compile`` checks runs
twice more through :mod:`tecomp.runtime.cuda_emulation`, from the memory as it was before
the interpreter ran: threads and blocks in descending order, then in a seeded shuffle
(drawn again at every barrier). Each run must end cleanly (no fault, misaligned vector
access, barrier divergence or write outside an argument) and leave every argument equal to
what the interpreter left, to a few float ulps (math functions may differ by one). Emitted
code the emulation cannot compile fails the test with the compiler's message.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from tecomp.runtime import cuda_emulation as emu

ORDERS = ("descending", "shuffle")
SEED = 20240611
_RTOL = {"float16": 2e-3, "float32": 2e-5, "float64": 1e-12}


def assert_same(what: str, got: np.ndarray, want: np.ndarray, source: str) -> None:
    """``got`` (the emulation) equals ``want`` (the interpreter), to ulps for floats; else AssertionError."""
    if got.dtype.kind == "f":
        rtol = _RTOL.get(got.dtype.name, 1e-5)
        finite = np.abs(want[np.isfinite(want)])
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        same = np.isclose(got, want, rtol=rtol, atol=rtol * scale, equal_nan=True)
    else:
        same = got == want
    if not same.all():
        bad = np.flatnonzero(~same.reshape(-1))
        k = int(bad[0])
        raise AssertionError(f"{what}: the emitted CUDA C run on the CPU differs from the interpreter in "
                             f"{bad.size} of {same.size} elements; first at flat index {k}: "
                             f"{got.reshape(-1)[k]!r} (CUDA C) vs {want.reshape(-1)[k]!r} (interpreter)\n{source}")


def check_kernel(source: str, kernel: str, grid: Sequence[int], block: Sequence[int], before: Sequence[Any],
                 after: Sequence[Any], addresses: Optional[Sequence[Optional[int]]] = None) -> None:
    """Launch ``kernel`` of ``source`` from ``before`` (arrays and scalars, in parameter order) under each
    order; the arrays must end equal to ``after`` (one per array of ``before``)."""
    lib = emu.library(source)
    for order in ORDERS:
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in before]
        lib.launch(kernel, grid, block, args, order, SEED, addresses)
        arrays = [a for a in args if isinstance(a, np.ndarray)]
        for k, (got, want) in enumerate(zip(arrays, after)):
            assert_same(f"kernel {kernel}, pointer argument {k}, {order} order", got, want, source)


def check_function(source: str, plan: dict, before: Sequence[np.ndarray], after: Sequence[np.ndarray],
                   sizes: Sequence[Any] = ()) -> None:
    """Run one function's kernels from ``before`` under each order; every array must equal ``after``."""
    lib = emu.library(source)
    for order in ORDERS:
        arrays = [a.copy() for a in before]
        emu.run_function(lib, plan, arrays, sizes, order, SEED)
        for k, (got, want) in enumerate(zip(arrays, after)):
            assert_same(f"argument {k}, {order} order", got, want, source)
