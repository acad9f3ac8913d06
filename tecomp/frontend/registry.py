"""The table of ONNX operator converters and the opset check that picks one for a node.

A converter is registered for an ONNX op type with the operator *versions* it
implements: the ``since_version`` of each ONNX schema whose semantics it was
written for (``onnx.defs.get_schema(op, opset).since_version``). A model's
opset resolves each node to one schema version; a version missing from the
list is reported as unsupported rather than converted with the semantics of
another version. This module knows nothing about how nodes are converted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import onnx.defs

MIN_OPSET = 13
# Models of opsets OLDEST_UPGRADED..MIN_OPSET-1 are converted to MIN_OPSET on import (onnx.version_converter).
OLDEST_UPGRADED = 7
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Converter:
    """How one ONNX op type becomes library operator nodes."""

    op_type: str
    versions: tuple[int, ...]
    convert: Callable[[Any], Any]


CONVERTERS: dict[str, Converter] = {}


def converter(*op_types: str, versions: tuple[int, ...]) -> Callable[[Callable], Callable]:
    """Register the decorated ``convert(node_context)`` for ``op_types`` at schema ``versions``."""

    def register(fn: Callable) -> Callable:
        for op_type in op_types:
            if op_type in CONVERTERS:
                raise ValueError(f"two converters for ONNX op {op_type}")
            CONVERTERS[op_type] = Converter(op_type, tuple(versions), fn)
        return fn

    return register


def max_opset() -> int:
    """The newest default-domain opset the installed onnx package describes."""
    return onnx.defs.onnx_opset_version()


def schema_version(op_type: str, domain: str, opset: int) -> int | None:
    """The ``since_version`` of the schema ``op_type`` resolves to at ``opset``; None if onnx has none."""
    try:
        return onnx.defs.get_schema(op_type, opset, domain).since_version
    except onnx.defs.SchemaError:
        return None


def find(op_type: str, domain: str, opset: int) -> tuple[Converter | None, int | None, str]:
    """(converter, schema version, why not) for a node; the converter is None when unsupported."""
    if domain not in DEFAULT_DOMAINS:
        return None, None, f"domain {domain!r} is not supported"
    conv = CONVERTERS.get(op_type)
    if conv is None:
        return None, None, "no converter"
    version = schema_version(op_type, "", opset)
    if version is None:
        return None, None, f"onnx has no schema for it at opset {opset}"
    if version not in conv.versions:
        known = ", ".join(str(v) for v in conv.versions)
        return None, version, f"{op_type}-{version} (opset {opset}) is not supported, only versions {known}"
    return conv, version, ""


def supported_ops() -> dict[str, tuple[int, ...]]:
    """ONNX op type -> the schema versions converted, for documentation and reports."""
    return {name: conv.versions for name, conv in sorted(CONVERTERS.items())}
