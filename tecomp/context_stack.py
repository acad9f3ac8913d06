"""A stack per thread, for the ``with`` contexts tecomp keeps (targets, dispatch, tuning configs)."""

from __future__ import annotations

import threading


class ThreadLocalStack(threading.local):
    """``items`` is a list private to each thread; ``threading.local`` runs ``__init__`` once per thread."""

    def __init__(self) -> None:
        self.items: list = []
