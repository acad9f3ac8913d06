"""``tvm.container``: TVM's container names for what tecomp returns as Python containers.

``Map`` is a ``dict`` (``te.schedule.InferBound`` returns one) and ``Array`` a ``list``, so code
that checks ``isinstance(x, tvm.container.Map)`` holds and everything else sees plain Python.
"""

from __future__ import annotations


class Map(dict):
    """A dict, under TVM's name."""


class Array(list):
    """A list, under TVM's name."""


__all__ = ["Array", "Map"]
