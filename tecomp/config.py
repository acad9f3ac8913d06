"""User knobs read from the environment: the one place tecomp looks at them.

==================== ================================ =========================================
variable             default                          meaning
==================== ================================ =========================================
TECOMP_NUM_THREADS   all cores available to process   threads used by parallel loops (libgomp)
TECOMP_CACHE_DIR     ``~/.cache/tecomp``              where compiled artefacts may be cached
TECOMP_LOG_LEVEL     ``WARNING``                      level of the ``tecomp`` logger
TECOMP_WORKER_MEMORY half of RAM / workers (>= 2 GiB) address space of each tuning worker process
                                                      (bytes, or with a K/M/G/T suffix: ``4G``)
TECOMP_BUILD_JOBS    cores available, at most 8       LLVM worker processes of a model build
==================== ================================ =========================================

Each knob is read by a function when it is needed, so a change to the
environment is seen by the next call. This module must not read other
environment variables, create directories or configure anything itself:
it only answers questions. Nothing here may import the rest of the package
except ``tecomp.error``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .error import BuildError, TecompError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_BUILD_JOBS = 8


def _env(name: str) -> str | None:
    """The variable's value, or None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _positive_int(name: str, error: Callable[[str], TecompError]) -> int | None:
    """The variable as a positive integer, None when unset or blank; ``error(value)`` is raised
    for anything else."""
    value = _env(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise error(value)
    return number


def num_threads() -> int:
    """``TECOMP_NUM_THREADS`` (a positive integer), or all available cores."""
    threads = _positive_int("TECOMP_NUM_THREADS",
                            lambda v: TecompError(f"TECOMP_NUM_THREADS must be a positive integer, got {v!r}"))
    return available_cores() if threads is None else threads


def build_jobs() -> int:
    """``TECOMP_BUILD_JOBS`` (a positive integer), or the available cores, at most ``MAX_BUILD_JOBS``."""
    jobs = _positive_int("TECOMP_BUILD_JOBS", lambda v: BuildError(
        f"TECOMP_BUILD_JOBS={v!r}: expected a whole number of processes, at least 1"))
    return min(MAX_BUILD_JOBS, available_cores()) if jobs is None else jobs


def cache_dir() -> Path:
    """``TECOMP_CACHE_DIR``, or ``~/.cache/tecomp``; the directory is not created here."""
    return Path(_env("TECOMP_CACHE_DIR") or "~/.cache/tecomp").expanduser()


def default_records_path() -> Path:
    """The tuning records database used when none is named: ``<cache_dir>/tuning/records.db``
    (its directory is created)."""
    path = cache_dir() / "tuning" / "records.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def log_level(default: str | None = "WARNING") -> str | None:
    """``TECOMP_LOG_LEVEL`` upper-cased (one of LOG_LEVELS), or ``default`` when it is unset."""
    value = _env("TECOMP_LOG_LEVEL")
    if value is None:
        return default
    if value.upper() not in LOG_LEVELS:
        raise TecompError(f"TECOMP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value.upper()


_MEMORY_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def worker_memory() -> int | None:
    """``TECOMP_WORKER_MEMORY`` in bytes (a whole number, optionally with a binary K/M/G/T
    suffix, at least 64M), or None when unset (the tuner then sizes it from the machine)."""
    value = _env("TECOMP_WORKER_MEMORY")
    if value is None:
        return None
    text = value.upper().removesuffix("B").removesuffix("I")
    unit = text[-1:] if text[-1:] in _MEMORY_UNITS else ""
    number = text[:len(text) - len(unit)].strip()
    if not number.isdigit() or int(number) * _MEMORY_UNITS[unit] < (64 << 20):
        raise TecompError(f"TECOMP_WORKER_MEMORY must be a number of bytes of at least 64M, optionally "
                          f"with a K, M, G or T suffix (e.g. 4G), got {value!r}")
    return int(number) * _MEMORY_UNITS[unit]
