"""The thread count of parallel loops in compiled code (libgomp's setting).

Compiled libraries run parallel loops on their thread pool (``thread_pool.c``)
with as many threads as libgomp's setting of the calling thread says, a
per-thread setting (``omp_set_num_threads`` affects only the calling
thread). So the wanted count is kept here with a generation number, and
``ensure_thread_config`` (called before every compiled call) applies it once
to each Python thread that calls compiled code. The initial count is
``tecomp.config.num_threads()`` (``TECOMP_NUM_THREADS``). libgomp is loaded
lazily; without it compiled calls still run and only the setters fail.
"""

from __future__ import annotations

import ctypes
import threading
from functools import lru_cache

from .. import config
from ..error import TecompError

_wanted: int | None = None  # None: not decided yet, take config.num_threads() on first use
_generation = 0
_applied = threading.local()
_set_lock = threading.Lock()


@lru_cache(maxsize=1)
def _libgomp() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libgomp.so.1")
    except OSError:
        return None
    lib.omp_set_num_threads.argtypes = [ctypes.c_int]
    lib.omp_set_num_threads.restype = None
    lib.omp_get_max_threads.argtypes = []
    lib.omp_get_max_threads.restype = ctypes.c_int
    return lib


def _require_libgomp() -> ctypes.CDLL:
    lib = _libgomp()
    if lib is None:
        raise TecompError("libgomp.so.1 (GCC's OpenMP runtime) could not be loaded; install libgomp1")
    return lib


def ensure_thread_config() -> None:
    """Apply the wanted thread count to the calling thread if it has not seen it yet."""
    global _wanted
    if getattr(_applied, "generation", -1) == _generation:
        return
    lib = _libgomp()
    if lib is None:
        return
    if _wanted is None:
        _wanted = config.num_threads()
    lib.omp_set_num_threads(_wanted)
    _applied.generation = _generation


def set_num_threads(n: int) -> None:
    """Run parallel loops of compiled code with ``n`` threads, from every Python thread."""
    global _wanted, _generation
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise TecompError(f"set_num_threads expects a positive integer, got {n!r}")
    _require_libgomp()
    with _set_lock:
        _wanted = n
        _generation += 1
    ensure_thread_config()


def wanted_num_threads() -> int:
    """The thread count compiled code will run with (``set_num_threads``, else the configured
    count), known without loading libgomp."""
    return _wanted if _wanted is not None else config.num_threads()


def get_num_threads() -> int:
    """The number of threads parallel loops use when called from this thread."""
    lib = _require_libgomp()
    ensure_thread_config()
    return lib.omp_get_max_threads()
