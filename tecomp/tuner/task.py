"""Tuning templates and tasks.

Owns the ``@template(name)`` registry, ``get_config()`` (the config in effect
while a template runs), ``Task`` (a template bound to arguments and a
target, with its config space and FLOP count), workload keys and
``create``, and ``extract_from_graph`` (the tasks of a model, found by
``tecomp.graph``). It must not choose configs (``dispatch.py`` does) nor measure
them.

Workload arguments are canonicalized (sequences become tuples, numpy
scalars plain numbers) so that a task rebuilt from a record's JSON key is
the same task; templates receive the canonical arguments.
"""

from __future__ import annotations

import functools
import json
import math
import numbers
from typing import Any, Callable, Union

from ..context_stack import ThreadLocalStack
from ..error import TuningError
from ..target import Target
from ..te.operation import ComputeOp
from ..te.schedule import Schedule
from ..te.tensor import IterVar, Tensor
from ..tir.expr import Add, Call, Div, FloorDiv, FloorMod, IntImm, Max, Min, Mul, Sub
from ..tir.functor import Visitor
from ..tir.op import MATH_INTRINSICS
from . import dispatch
from .space import ConfigEntity, ConfigSpace

_TEMPLATES: dict[str, Callable] = {}
_configs = ThreadLocalStack()


def get_config() -> Union[ConfigSpace, ConfigEntity]:
    """The config of the running template: its space while defining it, else the chosen point."""
    stack = _configs.items
    if not stack:
        raise TuningError("get_config() was called outside a tuning template; call it in a function "
                          "decorated with @tuner.template(name)")
    return stack[-1]


def template(name: str) -> Callable[[Callable], Callable]:
    """Register a tuning template under ``name``.

    The decorated function, called directly with workload arguments, builds
    its schedule with the config the current dispatch context picks for the
    target in scope (``llvm`` if none) and returns ``(schedule, tensors)``.
    """
    if not isinstance(name, str) or not name:
        raise TuningError(f"a template name must be a non-empty string, got {name!r}")

    def register(func: Callable) -> Callable:
        if name in _TEMPLATES:
            raise TuningError(f"template {name!r} is already registered (by {_TEMPLATES[name].__qualname__})")
        _TEMPLATES[name] = func

        @functools.wraps(func)
        def dispatched(*args: Any) -> tuple:
            task = _task_in_scope(name, args)
            return task.instantiate(dispatch.query(task))

        dispatched.template_name = name  # type: ignore[attr-defined]
        return dispatched

    return register


def dispatched_config(name: str, args: tuple) -> ConfigEntity:
    """The config the dispatch contexts pick for template ``name`` on ``args`` and the target in
    scope (``llvm`` if none): the best record under ``apply_history_best``, else the fallback.

    Operator schedules use it to apply tuned knobs to kernels they build outside the template
    (a fused epilogue, a layout chosen for a model).
    """
    return dispatch.query(_task_in_scope(name, args))


def _task_in_scope(name: str, args: tuple) -> "Task":
    target = Target.current(allow_none=True) or Target("llvm")
    return _cached_task(name, _canonical_args(name, args), str(target))


def create(name: str, args: tuple, target: Union[str, Target, None] = None) -> "Task":
    """The task of template ``name`` on ``args`` for ``target`` (default: the one in scope, else llvm)."""
    if isinstance(target, str):
        target = Target(target)
    elif target is None:
        target = Target.current(allow_none=True) or Target("llvm")
    elif not isinstance(target, Target):
        raise TuningError(f"task {name}: target must be a string or a Target, got {target!r}")
    return Task(name, args, target)


def extract_from_graph(graph: Any, params: Any = None, target: Union[str, Target, None] = "llvm",
                       records: Any = None) -> list["Task"]:
    """The tunable kernels of a model graph (``tecomp.graph.Graph``) as tasks, one per workload.

    They are found after the passes and fusion ``tecomp.graph.build`` applies, so a record of
    one of these tasks is what the model's build dispatches. ``params`` (optional) is checked
    against the graph; the tasks depend on shapes, and with ``records`` (a database path or
    ``RecordDB``) on the tuned configs a build under ``apply_history_best(records)`` applies.
    """
    from ..graph.tasks import extract_tasks  # the graph compiler imports the tuner, not the reverse
    return extract_tasks(graph, params, target, records)


@functools.lru_cache(maxsize=256)
def _cached_task(name: str, args: tuple, target: str) -> "Task":
    # the space of a workload is fixed, so direct template calls define it once per process
    return Task(name, args, Target(target))


class Task:
    """A template bound to workload arguments and a target."""

    def __init__(self, name: str, args: tuple, target: Target):
        func = _TEMPLATES.get(name)
        if func is None:
            known = ", ".join(sorted(_TEMPLATES)) or "none"
            raise TuningError(f"no tuning template named {name!r}; registered: {known}")
        self.name = name
        self.args = _canonical_args(name, args)
        self.target = target
        self.workload = (name,) + self.args
        self.key = workload_key(name, self.args)
        self.func = func  # the template function (AutoTVM names it so)
        self.config_space = ConfigSpace()
        try:
            sch, _ = _run(func, self.args, self.config_space, target, name)
        except Exception as err:
            raise TuningError(f"template {name} failed while defining its config space for args "
                              f"{self.args}: {type(err).__name__}: {err}") from err
        self.flop = compute_flop(sch, name)

    def instantiate(self, config: ConfigEntity) -> tuple:
        """The template's ``(schedule, tensors)`` at ``config``."""
        if not isinstance(config, ConfigEntity):
            raise TuningError(f"task {self.name}: instantiate needs a ConfigEntity (a point of "
                              f"task.config_space), got {type(config).__name__}")
        return _run(self.func, self.args, config, self.target, self.name)

    def __str__(self) -> str:
        return (f"Task({self.name}, args={self.args}, target='{self.target}', "
                f"{len(self.config_space)} configs, {self.flop:.4g} FLOP)")

    __repr__ = __str__


def _run(func: Callable, args: tuple, config: Union[ConfigSpace, ConfigEntity], target: Target,
         name: str) -> tuple:
    stack = _configs.items
    stack.append(config)
    try:
        with target:
            result = func(*args)
    finally:
        stack.pop()
    if (not isinstance(result, (tuple, list)) or len(result) != 2 or not isinstance(result[0], Schedule)
            or not all(isinstance(t, Tensor) for t in result[1])):
        raise TuningError(f"template {name} must return (schedule, [tensors]), got {result!r}")
    return tuple(result)


# ---------------------------------------------------------------- workload keys

def workload_key(name: str, args: tuple) -> str:
    """The canonical JSON text of ``[name, args]`` (records are keyed by it)."""
    return json.dumps([name, list(_canonical_args(name, args))], separators=(",", ":"))


def _canonical_args(name: str, args: Any) -> tuple:
    if not isinstance(args, (list, tuple)):
        raise TuningError(f"template {name}: args must be a tuple of arguments, got {args!r}")
    return tuple(_canonical_arg(name, a) for a in args)


def _canonical_arg(name: str, arg: Any) -> Any:
    if arg is None or isinstance(arg, (bool, str)):
        return arg
    if isinstance(arg, numbers.Integral):
        return int(arg)
    if isinstance(arg, numbers.Real) and math.isfinite(arg):
        return float(arg)
    if isinstance(arg, (list, tuple)):
        return tuple(_canonical_arg(name, a) for a in arg)
    raise TuningError(f"template {name}: argument {arg!r} ({type(arg).__name__}) cannot be part of a "
                      "workload key; use ints, finite floats, strings, None or lists of them")


# ---------------------------------------------------------------- FLOP counting

_ARITHMETIC = (Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max)


class _ArithmeticCounter(Visitor):
    """Counts +, -, *, /, //, %, min, max and math calls in a value expression."""

    def __init__(self) -> None:
        self.count = 0

    def visit_ProducerLoad(self, node: Any) -> None:
        pass  # index arithmetic is addressing, not work

    def visit_Reduce(self, node: Any) -> None:
        self.visit(node.source[node.value_index])
        self.visit(node.combiner.result[node.value_index])

    def generic(self, node: Any) -> None:
        if isinstance(node, _ARITHMETIC) or (isinstance(node, Call) and node.op in MATH_INTRINSICS):
            self.count += 1
        super().generic(node)


def _constant_extent(iv: IterVar, op: ComputeOp, name: str) -> int:
    extent = iv.dom.extent if iv.dom is not None else None
    if not isinstance(extent, IntImm):
        raise TuningError(f"template {name}: cannot count the FLOPs of stage {op.name}: axis {iv.name} "
                          f"has a non-constant extent {extent}")
    return extent.value


def compute_flop(sch: Schedule, name: str = "?") -> float:
    """Arithmetic operations of the program: per compute stage, points x reduce extents x ops per point."""
    total = 0
    for stage in sch.stages:
        op = stage.op
        if not isinstance(op, ComputeOp):
            continue
        iterations = math.prod(_constant_extent(iv, op, name) for iv in op.axis + op.reduce_axis)
        counter = _ArithmeticCounter()
        for body in op.body:
            counter.visit(body)
        total += iterations * counter.count
    return float(total)
