"""Fixtures of the CUDA tests: a fake one-GPU machine (``fake_pycuda``) in place of pycuda."""

from __future__ import annotations

import sys

import pytest

from tecomp.runtime import cuda_driver

import fake_pycuda


@pytest.fixture
def gpu(monkeypatch):
    """A fake one-GPU machine for the runtime (caches of the real one cleared before and after)."""
    driver = fake_pycuda.FakeDriver()
    fake_pycuda.install(monkeypatch, driver)
    sys.modules["tecomp.runtime.device"]._cuda_device_count.cache_clear()
    cuda_driver._contexts.clear()
    yield driver
    sys.modules["tecomp.runtime.device"]._cuda_device_count.cache_clear()
    cuda_driver._contexts.clear()
