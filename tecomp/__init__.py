"""tecomp: a tensor-expression compiler in the lineage of TVM.

``import tecomp as tvm`` gives TVM's classic API: ``te`` to define and
schedule operators, ``lower`` to see the loop IR, ``build`` to compile it,
``nd``/``cpu`` to run it. Importing this package needs numpy only; the
compiler's heavier dependencies are imported where they are used. The
subpackages ``tecomp.graph`` (whole models) and ``tecomp.frontend`` (the ONNX
importer, which needs the ``onnx`` package) are imported on first attribute
access (``tecomp.frontend.from_onnx`` after a plain ``import tecomp``).
"""

from typing import Any

__version__ = "0.1.0"

from . import runtime, te, tir  # noqa: E402
from .build_module import build  # noqa: E402
from .error import (ArgumentError, BuildError, ExprError, LoweringError, ScheduleError,  # noqa: E402
                    TargetError, TecompError, TVMError)
from .lower.driver import lower  # noqa: E402
from .tir.module import IRModule  # noqa: E402
from .runtime import cpu, cuda, device, nd  # noqa: E402
from .runtime.registry import get_global_func, register_func  # noqa: E402
from . import container, driver, error, ir, target, transform  # noqa: E402



def _apply_log_level() -> None:
    """The ``tecomp`` logger at ``TECOMP_LOG_LEVEL`` when that is set (a warning if invalid)."""
    import logging
    import warnings

    from . import config

    try:
        level = config.log_level(default=None)
        if level is not None:
            logging.getLogger("tecomp").setLevel(level)
    except TecompError as exc:
        warnings.warn(f"{exc}; the tecomp logger keeps its level", stacklevel=3)


_apply_log_level()

_LAZY_SUBPACKAGES = ("graph", "frontend", "testing", "contrib", "tuner")


def __getattr__(name: str) -> Any:
    """Import the subpackage ``name`` (``graph``, ``frontend``, ...) on first use; ``autotvm`` is
    TVM's name of ``tuner``."""
    if name == "autotvm":
        name = "tuner"
    if name not in _LAZY_SUBPACKAGES:
        raise AttributeError(f"module 'tecomp' has no attribute {name!r}")
    import importlib

    return importlib.import_module(f".{name}", __name__)


__all__ = [
    "ArgumentError", "BuildError", "ExprError", "LoweringError", "ScheduleError", "TargetError",
    "IRModule", "TecompError", "TVMError", "build", "container", "driver", "error", "get_global_func", "ir", "register_func", "transform", "cpu", "cuda", "device", "frontend", "graph", "lower", "nd", "runtime", "target", "te",
    "tir",
]
