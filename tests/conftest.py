"""Shared test helpers: build a schedule both ways and compare with numpy."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp.tir import interpreter


def random_input(shape, dtype, rng):
    if dtype.startswith("float"):
        return rng.uniform(-2, 2, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -50), min(info.max, 50), size=shape).astype(dtype)


def run_both(sch, args, inputs, out_shapes, out_dtypes, name="main"):
    """Lower once; run the reference interpreter and the LLVM build; return both outputs."""
    func = tecomp.lower(sch, args, name=name)[name]
    ref_args = [x.copy() for x in inputs] + [np.zeros(s, d) for s, d in zip(out_shapes, out_dtypes)]
    interpreter.run(func, ref_args)
    mod = tecomp.build(func, target="llvm")
    llvm_args = [x.copy() for x in inputs] + [np.zeros(s, d) for s, d in zip(out_shapes, out_dtypes)]
    mod(*llvm_args)
    n_in = len(inputs)
    return ref_args[n_in:], llvm_args[n_in:], func


@pytest.fixture
def check():
    """check(sch, args, expected_outputs, inputs, rtol): interpreter == LLVM == numpy."""

    def _check(sch, args, inputs, expected, rtol=1e-5, atol=1e-5):
        expected = expected if isinstance(expected, (list, tuple)) else [expected]
        ref, got, func = run_both(sch, args, inputs, [e.shape for e in expected],
                                  [e.dtype for e in expected])
        for r, g, e in zip(ref, got, expected):
            np.testing.assert_allclose(r, e, rtol=rtol, atol=atol, err_msg=f"interpreter\n{func}")
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"llvm\n{func}")
        return func

    return _check


@pytest.fixture
def rng():
    return np.random.default_rng(0)
