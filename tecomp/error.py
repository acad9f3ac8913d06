"""Error types raised by tecomp.

Every user-facing failure is a ``TecompError`` (or a subclass) whose message
names the user's object at fault: the stage and axis of a schedule, the
argument of a call, the target string. Nothing here may import the rest of
the package. The base is TVM's ``TVMError``, a ``RuntimeError``, as in TVM.
"""


class TVMError(RuntimeError):
    """TVM's base error, kept so that code written for TVM (``except tvm.TVMError``,
    ``pytest.raises(RuntimeError)``) catches tecomp's errors too."""


class TecompError(TVMError):
    """Base class of every error tecomp raises on purpose."""


class ExprError(TecompError):
    """An ill-formed tensor expression (bad dtype mix, bad reduction, ...)."""


class ScheduleError(TecompError):
    """An invalid schedule primitive: names the stage and the iteration variable."""


class LoweringError(TecompError):
    """A schedule that cannot be lowered to loop IR (names the stage at fault)."""


class BuildError(TecompError):
    """Code generation, compilation or linking failed."""


class UnresolvedSymbolError(BuildError):
    """Linking failed because the code calls functions that nothing linked defines."""


class TargetError(TecompError):
    """An unknown or unsupported target string."""


class ArgumentError(TecompError):
    """A compiled function was called with wrong arity, shape, dtype or device."""


class TuningError(TecompError):
    """A tuning template, config space, config record or dispatch request is at fault."""


class OperatorError(TecompError):
    """An operator of the library was defined with bad arguments (names the operator and argument)."""


class GraphError(TecompError):
    """An ill-formed model graph, an unsupported model operator, or a graph artifact that cannot be loaded."""
