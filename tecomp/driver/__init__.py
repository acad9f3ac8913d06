"""``tvm.driver``: TVM's home of ``build`` and ``lower``, for scripts that import them from there."""

from ..build_module import build
from ..lower.driver import lower
from .build_module import schedule_to_module

__all__ = ["build", "lower", "schedule_to_module"]
