"""``tvm.testing``: the helpers a ported TVM test imports.

``assert_allclose`` (accepts NDArrays), ``assert_prim_expr_equal``, ``requires_llvm`` / ``requires_cuda`` /
``requires_gpu`` / ``uses_gpu`` (pytest skip marks on what this machine can
run), ``enabled_targets``, ``parametrize_targets``, ``parameter`` (a pytest
fixture over values) and ``main`` (run the calling file's tests). Needs
pytest, so it is imported only on first use (``tecomp.testing``).
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import numpy as np
import pytest

from .runtime import cpu, cuda, enabled

_TARGETS = (("llvm", cpu), ("cuda", cuda))


def assert_allclose(actual: Any, desired: Any, rtol: float = 1e-7, atol: float = 1e-7) -> None:
    """numpy's check, on NDArrays or arrays, with TVM's default tolerances."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(desired), rtol=rtol, atol=atol, verbose=True)


def assert_prim_expr_equal(lhs: Any, rhs: Any) -> None:
    """That ``lhs - rhs`` simplifies to the constant 0; ValueError naming both otherwise."""
    from .tir import op as _op
    from .tir.expr import IntImm
    from .tir.simplify import Analyzer

    diff = Analyzer().simplify(_op.sub(_op.convert(lhs), _op.convert(rhs)))
    if not (isinstance(diff, IntImm) and diff.value == 0):
        raise ValueError(f"{lhs} and {rhs} are not equal (their difference simplifies to {diff})")


def device_enabled(target: str) -> bool:
    """Whether ``target`` can run here."""
    return enabled(target)


def enabled_targets() -> list[tuple[str, Any]]:
    """(target, device) for every target this machine runs."""
    return [(name, dev(0)) for name, dev in _TARGETS if enabled(name)]


requires_llvm = pytest.mark.skipif(not enabled("llvm"), reason="needs llvmlite")
requires_cuda = pytest.mark.skipif(not enabled("cuda"), reason="needs a CUDA GPU")
requires_gpu = requires_cuda


def uses_gpu(func: Callable) -> Callable:
    """TVM marks tests that also run on GPUs; here it changes nothing (they loop over enabled targets)."""
    return func


def parametrize_targets(*targets: Any) -> Any:
    """Run the test once per target (given, or every enabled one), with ``target`` and ``dev`` arguments."""
    if len(targets) == 1 and callable(targets[0]):
        return parametrize_targets()(targets[0])
    names = list(targets) or [name for name, _ in enabled_targets()]
    params = [pytest.param(t, dict(_TARGETS)[t.split()[0]](0), marks=[] if enabled(t) else
                           pytest.mark.skip(reason=f"{t} is not enabled here")) for t in names]
    return pytest.mark.parametrize("target,dev", params)


def parameter(*values: Any, ids: Optional[list] = None) -> Any:
    """A pytest fixture taking each of ``values`` in turn (TVM's ``tvm.testing.parameter``)."""
    @pytest.fixture(params=values, ids=ids)
    def fixture(request: Any) -> Any:
        return request.param
    return fixture


def main() -> None:
    """Run the tests of the calling script with pytest (``if __name__ == "__main__": tvm.testing.main()``)."""
    sys.exit(pytest.main([sys.argv[0]] + sys.argv[1:]))
