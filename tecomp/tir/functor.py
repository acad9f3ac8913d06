"""Generic traversal of the loop IR: visitors, mutators, substitution, equality.

Nodes are dataclasses, so traversal is generic: a mutator walks every field
that holds an expression, a statement, or a tuple of them, and rebuilds a
node only when a child changed. Subclasses override ``visit_<ClassName>``
for the nodes they care about and call ``self.generic(node)`` for the rest.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from .buffer import Buffer
from .expr import CommReducer, FloatImm, IntImm, PrimExpr, Reduce, StringImm, Var
from .stmt import PrimFunc, Stmt

_FIELDS: dict[type, tuple[str, ...]] = {}
_WALKED: dict[type, tuple[str, ...]] = {}  # node class -> the fields walkers enter (() for leaves)
_HANDLERS: dict[tuple[type, type], Callable | None] = {}  # (walker class, node class) -> visit_<Node>
_NODE_TYPES = (PrimExpr, Stmt)


def _node_fields(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls))
        _FIELDS[cls] = names
    return names


def _walked_fields(cls: type) -> tuple[str, ...]:
    """The fields a visitor or mutator descends into: none for non-dataclasses, Buffers and reducers."""
    names = _WALKED.get(cls)
    if names is None:
        leaf = not dataclasses.is_dataclass(cls) or issubclass(cls, (Buffer, CommReducer))
        names = _WALKED[cls] = () if leaf else _node_fields(cls)
    return names


def _handler(walker: Any, node: Any) -> Callable | None:
    """The ``visit_<ClassName>`` function of ``walker``'s class for ``node`` (looked up once per pair:
    the traversal calls this for every node, so string building and getattr are kept off it)."""
    key = (type(walker), type(node))
    try:
        return _HANDLERS[key]
    except KeyError:
        method = _HANDLERS[key] = getattr(type(walker), "visit_" + type(node).__name__, None)
        return method


class Mutator:
    """Rebuilds IR bottom-up; override ``visit_<ClassName>`` to rewrite nodes."""

    def visit(self, node: Any) -> Any:
        method = _handler(self, node)
        if method is not None:
            return method(self, node)
        return self.generic(node)

    def generic(self, node: Any) -> Any:
        changes = None
        for name in _walked_fields(type(node)):
            old = getattr(node, name)
            new = self._visit_field(old)
            if new is not old:
                if changes is None:
                    changes = {}
                changes[name] = new
        if changes is None:
            return node
        return dataclasses.replace(node, **changes)

    def _visit_field(self, value: Any) -> Any:
        if isinstance(value, _NODE_TYPES):
            return self.visit(value)
        if isinstance(value, tuple) and value:
            new = tuple(self._visit_field(v) for v in value)
            if all(a is b for a, b in zip(new, value)):
                return value
            return new
        return value


class Visitor:
    """Walks IR top-down; override ``visit_<ClassName>`` (call ``self.generic`` to descend)."""

    def visit(self, node: Any) -> None:
        method = _handler(self, node)
        if method is not None:
            method(self, node)
        else:
            self.generic(node)

    def generic(self, node: Any) -> None:
        for name in _walked_fields(type(node)):
            self._visit_field(getattr(node, name))
        if isinstance(node, Reduce):  # an ``init=`` value is the identity: it may read tensors
            self._visit_field(node.combiner.identity)

    def _visit_field(self, value: Any) -> None:
        if isinstance(value, _NODE_TYPES):
            self.visit(value)
        elif isinstance(value, tuple):
            for v in value:
                self._visit_field(v)


def find_handler(owner: Any, prefix: str, node: Any) -> Callable | None:
    """``owner``'s method ``prefix + ClassName`` for ``node``, else its family handler.

    Comparisons fall back to ``prefix + "cmp"`` and binary arithmetic to
    ``prefix + "binary"``, so a pass can treat a whole family alike.
    """
    method = getattr(owner, prefix + type(node).__name__, None)
    if method is not None:
        return method
    from .expr import BinaryOp, CmpOp
    for cls, family in ((CmpOp, "cmp"), (BinaryOp, "binary")):
        if isinstance(node, cls):
            return getattr(owner, prefix + family, None)
    return None


def post_order_visit(node: Any, fn: Callable[[Any], None]) -> None:
    """Call ``fn`` on every expression/statement node under ``node``, children first."""

    class _V(Visitor):
        def visit(self, n: Any) -> None:
            self.generic(n)
            fn(n)

    _V().visit(node)


class _Substituter(Mutator):
    def __init__(self, vmap: dict):
        self.vmap = vmap

    def visit_Var(self, node: Var) -> Any:
        return self.vmap.get(node, node)

    visit_SizeVar = visit_Var

    def visit_Reduce(self, node: Any) -> Any:
        """Also into the combiner: an identity (``init=``) or a combine rule may use an axis variable."""
        node = self.generic(node)
        c = node.combiner
        identity = tuple(self.visit(e) for e in c.identity)
        result = tuple(self.visit(e) for e in c.result)
        if all(a is b for a, b in zip(identity + result, c.identity + c.result)):
            return node
        return dataclasses.replace(node, combiner=dataclasses.replace(c, identity=identity, result=result))


def substitute(node: Any, vmap: dict) -> Any:
    """Replace Vars by expressions (``vmap`` maps Var -> PrimExpr) in an expr or stmt."""
    if not vmap:
        return node
    return _Substituter(vmap).visit(node)


def collect_vars(node: Any) -> set:
    """Every Var that occurs under ``node``."""
    found: set = set()

    def f(n: Any) -> None:
        if isinstance(n, Var):
            found.add(n)

    post_order_visit(node, f)
    return found


def uses_var(node: Any, var_set: Iterable[Var]) -> bool:
    targets = set(var_set)
    return bool(collect_vars(node) & targets)


def structural_equal(a: Any, b: Any) -> bool:
    """Equality of IR trees: same node types and constants, Vars and Buffers by identity."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (Var, Buffer)):
        return False
    if isinstance(a, (IntImm, FloatImm, StringImm)):
        return a.value == b.value and a.dtype == b.dtype
    if isinstance(a, tuple):
        return len(a) == len(b) and all(structural_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (PrimExpr, Stmt, PrimFunc)) or dataclasses.is_dataclass(a):
        return all(structural_equal(getattr(a, n), getattr(b, n)) for n in _node_fields(type(a)))
    return a == b


def structural_hash(e: Any) -> int:
    """A hash consistent with :func:`structural_equal` (for memo tables)."""
    if isinstance(e, (Var, Buffer)):
        return id(e)
    if isinstance(e, (IntImm, FloatImm, StringImm)):
        return hash((type(e).__name__, e.value, e.dtype))
    if isinstance(e, tuple):
        return hash(tuple(structural_hash(x) for x in e))
    if isinstance(e, (PrimExpr, Stmt)):
        return hash((type(e).__name__,) + tuple(structural_hash(getattr(e, n)) for n in _node_fields(type(e))))
    try:
        return hash(e)
    except TypeError:
        return id(e)
