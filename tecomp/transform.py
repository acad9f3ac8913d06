"""``tvm.transform.PassContext``: build options set with a ``with`` block, as in TVM.

::

    with tecomp.transform.PassContext(opt_level=3, config={"tir.disable_vectorize": True}):
        f = tecomp.build(s, [A, B])

This module owns the context stack and the reading of its options; lowering
and ``build`` ask :func:`current_options` what to do. Honoured keys:
``tir.instrument_bound_checkers`` (a build whose accesses check their
bounds), ``tir.disable_vectorize`` (vectorized loops stay serial) and
``tir.UnrollLoop`` with ``auto_max_step`` (serial nests of at most that many
iterations are unrolled) and tecomp's own ``tecomp.winograd`` (default True:
a model's 3x3 convolutions at stride 1 may run by Winograd's algorithm).
Other keys of TVM's are accepted and have no effect in tecomp; an unknown key
is an error, as in TVM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .context_stack import ThreadLocalStack
from .error import TecompError

_contexts = ThreadLocalStack()

# TVM's config keys tecomp accepts without acting on them (its own passes decide these).
_ACCEPTED = ("tir.noalias", "tir.disable_assert", "tir.detect_global_barrier", "tir.add_lower_pass",
             "tir.debug_keep_trivial_loop", "tir.LoopPartition", "tir.HoistIfThenElse", "tir.dma_bypass_cache",
             "tir.usmp.enable", "relay.backend.use_auto_scheduler", "relay.FuseOps.max_depth")
_HONOURED = ("tir.instrument_bound_checkers", "tir.disable_vectorize", "tir.UnrollLoop", "tecomp.winograd")


class PassContext:
    """Options for the builds inside its ``with`` block (see the module docstring)."""

    def __init__(self, opt_level: int = 2, required_pass: Optional[Sequence[str]] = None,
                 disabled_pass: Optional[Sequence[str]] = None, instruments: Optional[Sequence[Any]] = None,
                 config: Optional[dict] = None):
        if not isinstance(opt_level, int) or not 0 <= opt_level <= 4:
            raise TecompError(f"PassContext: opt_level must be an integer 0..4, got {opt_level!r}")
        self.opt_level = opt_level
        self.required_pass = list(required_pass or [])
        self.disabled_pass = list(disabled_pass or [])
        self.instruments = list(instruments or [])
        self.config = dict(config or {})
        for key in self.config:
            if key not in _HONOURED and key not in _ACCEPTED:
                raise TecompError(f"PassContext: unknown config key {key!r}; tecomp honours "
                                  f"{', '.join(_HONOURED)} and accepts {', '.join(_ACCEPTED)}")
        unroll = self.config.get("tir.UnrollLoop", {})
        if not isinstance(unroll, dict) or not set(unroll) <= {"auto_max_step", "auto_max_depth",
                                                               "auto_max_extent", "explicit_unroll",
                                                               "unroll_local_access"}:
            raise TecompError(f"PassContext: tir.UnrollLoop must be a dict of auto_max_step, auto_max_depth, "
                              f"auto_max_extent, explicit_unroll, unroll_local_access; got {unroll!r}")

    def __enter__(self) -> "PassContext":
        _contexts.items.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        _contexts.items.pop()

    @staticmethod
    def current() -> "PassContext":
        """The innermost ``with PassContext`` of this thread, else the default one."""
        return _contexts.items[-1] if _contexts.items else _DEFAULT


_DEFAULT = PassContext()


@dataclass(frozen=True)
class BuildOptions:
    """What the current PassContext asks of lowering and build."""

    bound_check: bool
    vectorize: bool
    auto_unroll_max_step: int
    winograd: bool


def current_options() -> BuildOptions:
    """The options of :meth:`PassContext.current`, read in this one place."""
    cfg = PassContext.current().config
    unroll = cfg.get("tir.UnrollLoop", {})
    return BuildOptions(bound_check=bool(cfg.get("tir.instrument_bound_checkers", False)),
                        vectorize=not cfg.get("tir.disable_vectorize", False),
                        auto_unroll_max_step=int(unroll.get("auto_max_step", 0)),
                        winograd=bool(cfg.get("tecomp.winograd", True)))
