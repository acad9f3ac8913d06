"""Timing compiled functions: ``time_evaluator`` and its ``ProfileResult``.

Follows TVM's semantics: one warm-up call, then ``repeat`` measurements of
``number`` back-to-back calls each; with ``min_repeat_ms`` > 0, ``number``
grows (by at least the golden ratio) until one measurement lasts that long.
Arguments are checked once before timing, so the figures cover the compiled
code and the call only; the function measures itself (``time_calls``: the
wall clock for CPU code, CUDA events for GPU kernels). This module must not import the compiler.
"""

from __future__ import annotations

import statistics
from typing import Any, Callable, NamedTuple

from ..error import TecompError
from .packed_func import PackedFunc
from .threads import ensure_thread_config

_GOLDEN_RATIO = 1.618


class ProfileResult(NamedTuple):
    """Seconds per call: ``results`` holds one figure per repeat."""

    mean: float
    median: float
    results: tuple[float, ...]
    min: float
    max: float
    std: float


def _check(name: str, value: Any, kinds: tuple[type, ...], least: int) -> None:
    if not isinstance(value, kinds) or isinstance(value, bool) or value < least:
        kind = "an integer" if kinds == (int,) else "a number"
        raise TecompError(f"time_evaluator: {name} must be {kind} >= {least}, got {value!r}")


def time_evaluator(func: PackedFunc, number: int = 10, repeat: int = 1,
                   min_repeat_ms: float = 0) -> Callable[..., ProfileResult]:
    """A callable that times ``func`` on the arguments it is given."""
    _check("number", number, (int,), 1)
    _check("repeat", repeat, (int,), 1)
    _check("min_repeat_ms", min_repeat_ms, (int, float), 0)

    def evaluator(*args: Any) -> ProfileResult:
        ptrs, sizes = func.prepare(args)
        ensure_thread_config()
        func.call_prepared(ptrs, sizes)  # warm-up: page faults, caches, the thread pool, code loading
        results = []
        count = number
        for _ in range(repeat):
            duration_ms = 0.0
            while True:
                if duration_ms > 0:
                    count = int(max(min_repeat_ms / (duration_ms / count) + 1, count * _GOLDEN_RATIO))
                duration_ms = func.time_calls(ptrs, sizes, count) * 1e3
                if duration_ms >= min_repeat_ms:
                    break
            results.append(duration_ms / 1e3 / count)
        return ProfileResult(mean=statistics.fmean(results), median=statistics.median(results),
                             results=tuple(results), min=min(results), max=max(results),
                             std=statistics.pstdev(results))

    return evaluator
