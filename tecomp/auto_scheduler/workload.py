"""The workload registry: functions that return te tensors, keyed by name and arguments.

Owns ``register_workload`` (TVM's decorator), the canonical workload key of
``(function name, args)`` and looking a function up again from a key. A
workload key is the JSON text ``["auto_scheduler:<name>", [args...]]``; the
prefix keeps it apart from template task keys in a shared records database
(the template tuners skip keys whose name is not a registered template). It
must not schedule, measure or read records.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Union

from ..error import TuningError
from ..te.tensor import Tensor
from ..tuner.task import _canonical_args, workload_key

KEY_PREFIX = "auto_scheduler:"
_WORKLOADS: dict[str, Callable] = {}


def register_workload(func_or_name: Union[Callable, str, None] = None,
                      override: bool = False) -> Any:
    """Register a function returning a list of te tensors (inputs and outputs) as a workload.

    Use as ``@register_workload`` or ``@register_workload("name")``; the name defaults to the
    function's ``__name__``. Registering another function under a taken name is a TuningError
    unless ``override``.
    """
    def register(func: Callable, name: Optional[str]) -> Callable:
        name = name or func.__name__
        old = _WORKLOADS.get(name)
        if old is not None and old is not func and not override and \
                getattr(old, "__qualname__", None) != getattr(func, "__qualname__", None):
            raise TuningError(f"workload {name!r} is already registered (by {old.__qualname__}); "
                              "pass override=True to replace it")
        _WORKLOADS[name] = func
        func.workload_name = name  # type: ignore[attr-defined]
        return func

    if callable(func_or_name):
        return register(func_or_name, None)
    if func_or_name is not None and not isinstance(func_or_name, str):
        raise TuningError(f"register_workload: expected a function or a name, got {func_or_name!r}")
    return lambda func: register(func, func_or_name)


def workload_name(func: Union[Callable, str]) -> str:
    """The registered name of ``func`` (a registered function or its name)."""
    name = func if isinstance(func, str) else getattr(func, "workload_name", None)
    if name is None or name not in _WORKLOADS:
        what = func if isinstance(func, str) else getattr(func, "__qualname__", repr(func))
        raise TuningError(f"{what} is not a registered workload; decorate it with "
                          "@auto_scheduler.register_workload")
    return name


def is_registered(name: str) -> bool:
    """Whether a workload is registered under ``name`` in this process."""
    return name in _WORKLOADS


def workload_func(name: str) -> Callable:
    """The function registered under ``name``."""
    return _WORKLOADS[workload_name(name)]


def make_workload_key(name: str, args: tuple) -> str:
    """The records key of workload ``name`` on ``args`` (canonical JSON)."""
    return workload_key(KEY_PREFIX + name, args)


def parse_workload_key(key: str) -> Optional[tuple[str, tuple]]:
    """``(name, args)`` of an auto-scheduler workload key; None for any other key."""
    try:
        name, args = json.loads(key)
    except (ValueError, TypeError):
        return None
    if not isinstance(name, str) or not name.startswith(KEY_PREFIX) or not isinstance(args, list):
        return None
    return name[len(KEY_PREFIX):], _canonical_args(name, _tuples(args))


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def call_workload(func: Callable, name: str, args: tuple) -> list[Tensor]:
    """Run the workload function; its result must be a list of tensors."""
    try:
        tensors = func(*args)
    except Exception as err:
        raise TuningError(f"workload {name} failed for args {args}: {type(err).__name__}: {err}") from err
    if not isinstance(tensors, (list, tuple)) or not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TuningError(f"workload {name} must return a list of te tensors (inputs and outputs), "
                          f"got {tensors!r}")
    return list(tensors)


def default_schedule(func: Callable, name: str, args: tuple, gpu: bool) -> tuple[Any, list[Tensor]]:
    """``(schedule, tensors)`` a build uses without records: the workload function's own
    ``default_schedule(gpu)`` if it has one (a graph kernel's template schedule), else the compute's
    own loops (for a GPU, one thread per output element: ``schedules.cuda.schedule_fallback``)."""
    own = getattr(func, "default_schedule", None)
    if own is not None:
        return own(gpu)
    from ..te.schedule import create_schedule
    from .compute_dag import output_ops

    tensors = call_workload(func, name, args)
    if gpu:
        from ..schedules.cuda.fallback import schedule_fallback
        return schedule_fallback([op.output(0) for op in output_ops(tensors)]), tensors
    return create_schedule(output_ops(tensors)), tensors
