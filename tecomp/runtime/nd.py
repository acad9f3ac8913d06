"""``tecomp.nd``: creating arrays (``array``, ``empty``) and the ``NDArray`` type, as in ``tvm.nd``."""

from .ndarray import NDArray, array, empty

__all__ = ["NDArray", "array", "empty"]
