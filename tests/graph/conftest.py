"""Fixtures of the graph tests: each small model built once per session (optimized and plain)."""

from __future__ import annotations

import logging

import pytest

import tecomp.graph

import graph_models as models


@pytest.fixture(autouse=True)
def _quiet_fallback_notices(caplog):
    caplog.set_level(logging.ERROR, logger="tecomp.tuner")


_built: dict = {}


@pytest.fixture(scope="session")
def built():
    """built(name, **options) -> (graph, params, reference, module), cached per session."""

    def get(name: str, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in _built:
            graph, params, reference = models.MODELS[name]()
            _built[key] = (graph, params, reference, tecomp.graph.build(graph, "llvm", params, **options))
        return _built[key]

    return get
