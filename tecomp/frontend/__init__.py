"""Model importers. ``from_onnx`` turns an ONNX model into a tecomp graph (``tecomp.graph.Graph``)
and its params; ``load_onnx`` reads and checks an ONNX file.

Importing this package needs the ``onnx`` package (the ``onnx`` extra); ``tecomp.graph`` does not.
"""

from __future__ import annotations

try:
    import onnx  # noqa: F401
except ModuleNotFoundError as _exc:
    raise ModuleNotFoundError("tecomp.frontend needs the onnx package, which is not installed: "
                              "pip install 'tecomp[onnx]'", name=_exc.name) from None

from . import ops_index, ops_llm, ops_math, ops_misc, ops_nn, ops_recurrent, ops_tensor  # noqa: F401 - importing them registers the converters
from .importer import UnsupportedOperatorError, from_onnx, load_onnx
from .registry import supported_ops

__all__ = ["UnsupportedOperatorError", "from_onnx", "load_onnx", "supported_ops"]
