"""``tvm.contrib.cblas.matmul``: a matrix product by BLAS ``sgemm``/``dgemm``, as a ``te.extern``.

The extern calls the packed function ``tvm.contrib.cblas.matmul``, which
this module registers: it calls the CBLAS of the OpenBLAS that numpy ships
(through ctypes, on the kernel's own memory) when one is found, else
``numpy.matmul`` into the output.
"""

from __future__ import annotations

import ctypes
import glob
import os
from typing import Any, Optional

import numpy as np

from .. import te, tir
from ..runtime.registry import register_func

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112


def _numpy_openblas() -> Optional[ctypes.CDLL]:
    libs = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas64_*.so"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def _gemm_functions() -> dict:
    lib = _numpy_openblas()
    found = {}
    for dtype, symbol, scalar in (("float32", "scipy_cblas_sgemm64_", ctypes.c_float),
                                  ("float64", "scipy_cblas_dgemm64_", ctypes.c_double)):
        fn = getattr(lib, symbol, None) if lib is not None else None
        if fn is not None:
            i64, ptr = ctypes.c_int64, ctypes.c_void_p
            fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, i64, i64, i64, scalar, ptr, i64, ptr, i64,
                           scalar, ptr, i64]
            fn.restype = None
            found[dtype] = fn
    return found


_GEMM = _gemm_functions()


@register_func("tvm.contrib.cblas.matmul", override=True)
def _matmul(a: Any, b: Any, c: Any, transa: int, transb: int) -> None:
    """``c = op(a) @ op(b)`` on NDArray views of the kernel's buffers."""
    x, y, out = (np.asarray(t) for t in (a, b, c))  # views of the kernel's memory, not copies
    gemm = _GEMM.get(str(out.dtype))
    if gemm is None or out.dtype != x.dtype or out.dtype != y.dtype:
        np.matmul(x.T if transa else x, y.T if transb else y, out=out)
        return
    m, n = out.shape
    k = x.shape[0] if transa else x.shape[1]
    gemm(_ROW_MAJOR, _TRANS if transa else _NO_TRANS, _TRANS if transb else _NO_TRANS, m, n, k, 1.0,
         x.ctypes.data, x.shape[1], y.ctypes.data, y.shape[1], 0.0, out.ctypes.data, n)


def matmul(lhs: te.Tensor, rhs: te.Tensor, transa: bool = False, transb: bool = False) -> te.Tensor:
    """``op(lhs) @ op(rhs)`` (``op`` transposes where asked), computed by BLAS."""
    n = lhs.shape[1] if transa else lhs.shape[0]
    m = rhs.shape[0] if transb else rhs.shape[1]
    return te.extern((n, m), [lhs, rhs],
                     lambda ins, outs: tir.call_packed("tvm.contrib.cblas.matmul", ins[0], ins[1], outs[0],
                                                       int(transa), int(transb)),
                     name="C")
