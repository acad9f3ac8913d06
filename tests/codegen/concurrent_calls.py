"""Calling a compiled function from several Python threads at once (shared by the pool's tests)."""

from __future__ import annotations

import threading
from typing import Callable


def failures_of_concurrent_calls(check: Callable[[], None], callers: int = 4, rounds: int = 10) -> list:
    """Run ``check`` ``rounds`` times on each of ``callers`` threads at once; the assertion errors raised."""
    failures = []

    def run() -> None:
        try:
            for _ in range(rounds):
                check()
        except AssertionError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures
