"""Helpers of the ONNX frontend tests: onnxruntime as the reference, tecomp build-and-run, the
benchmark model builders (benchmarks/onnx_models.py) on the import path, and the sampling of the
per-operator files' long parametrizations (every third case by default, the rest with -m slow)."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import onnx_models  # noqa: E402


# Files whose parametrizations sweep every attribute value of an operator: the default run takes
# the first case of each test and every third after it, CI's slow run the others.
SAMPLED_FILES = ("test_ops_math.py", "test_ops_conv.py", "test_ops_llm.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    seen: Counter = Counter()
    for item in items:
        if item.path.name not in SAMPLED_FILES or getattr(item, "callspec", None) is None \
                or item.get_closest_marker("slow"):
            continue
        key = (item.path.name, item.originalname)
        if seen[key] % 3:
            item.add_marker(pytest.mark.slow)
        seen[key] += 1


@pytest.fixture(autouse=True)
def _quiet_fallback_notices(caplog):
    caplog.set_level(logging.ERROR, logger="tecomp.tuner")


def run_tecomp(model, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Import ``model`` with the inputs' shapes, build it for llvm and run it."""
    import tecomp.graph
    from tecomp.frontend import from_onnx

    graph, params = from_onnx(model, shape={k: v.shape for k, v in inputs.items()})
    return tecomp.graph.build(graph, "llvm", params).run(**inputs)


def assert_matches_onnxruntime(model, inputs: dict[str, np.ndarray], rtol: float = 1e-4) -> None:
    """tecomp's outputs equal onnxruntime's within ``rtol`` relative to each output's largest magnitude."""
    want = onnx_models.run_onnxruntime(model, inputs)
    got = run_tecomp(model, inputs)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        scale = float(np.abs(w).max()) or 1.0
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * scale)
