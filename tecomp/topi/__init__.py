"""``tvm.topi``'s place: only its helpers (``tecomp.topi.utils``) are here.

tecomp's operator library is ``tecomp.schedules`` (other names); a script that
calls a topi operator gets an error saying so.
"""

from typing import Any

from . import utils


def __getattr__(name: str) -> Any:
    raise AttributeError(f"tecomp.topi has only the helpers in tecomp.topi.utils, not {name!r}; "
                         "tecomp's operators are in tecomp.schedules")


__all__ = ["utils"]
