"""``tvm.ir.save_json`` / ``load_json``: tecomp's IR objects (expressions, tensors, operations,
schedules, loop IR) as JSON text and back.

The object graph is written as a list of nodes, each object once (shared and cyclic references
stay shared): ``{"root": value, "nodes": [...]}``, where a value is a JSON scalar or
``{"r": index}`` into ``nodes``. A node is a tuple, list, set, dict, enum member or object, the last
two named by module and qualified name. Only classes of tecomp's own modules are written or
read back, so loading text cannot construct anything else. Python functions (an ``fcompute``
lambda, a tensor intrinsic's body function) have no JSON form and are refused, naming where
they were found.
"""

from __future__ import annotations

import enum
import functools
import importlib
import json
import types
from typing import Any

from .error import TecompError

_SCALARS = (str, int, float, bool, type(None))
_FUNCTIONS = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)
_PACKAGE = "tecomp"


class SerializationError(TecompError):
    """An object that has no JSON form, or JSON text that is not a tecomp object graph."""


def _fields(obj: Any) -> dict:
    names: list = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return {n: getattr(obj, n) for n in dict.fromkeys(names)
            if n not in ("__dict__", "__weakref__") and hasattr(obj, n)}


def _class_name(cls: type, where: str) -> str:
    if not cls.__module__.split(".")[0] == _PACKAGE:
        raise SerializationError(f"save_json: {where} is a {cls.__module__}.{cls.__qualname__}, "
                                 "which is not a tecomp object")
    return f"{cls.__module__}:{cls.__qualname__}"


def save_json(obj: Any) -> str:
    """``obj`` (and everything it references) as JSON text for :func:`load_json`."""
    nodes: list = []
    index: dict[int, int] = {}
    keep: list = []  # the objects indexed by id stay alive until the end

    def value(x: Any, where: str) -> Any:
        if isinstance(x, _SCALARS) and not isinstance(x, enum.Enum):
            return x
        if id(x) in index:
            return {"r": index[id(x)]}
        if isinstance(x, _FUNCTIONS):
            raise SerializationError(f"save_json: {where} is a Python function, which has no JSON form")
        pos = index[id(x)] = len(nodes)
        keep.append(x)
        nodes.append(None)
        if isinstance(x, enum.Enum):
            node = {"t": "enum", "cls": _class_name(type(x), where), "name": x.name}
        elif isinstance(x, (tuple, list, set, frozenset)):
            kind = "set" if isinstance(x, (set, frozenset)) else type(x).__name__
            if kind not in ("tuple", "list", "set"):
                raise SerializationError(f"save_json: {where} is a {type(x).__qualname__}, a subclass "
                                         "of a Python container that has no JSON form")
            node = {"t": kind, "items": [value(v, f"{where}[{k}]") for k, v in enumerate(x)]}
        elif isinstance(x, dict) and type(x) is dict:
            node = {"t": "dict", "items": [[value(k, f"a key of {where}"), value(v, f"{where}[{k!r}]")]
                                           for k, v in x.items()]}
        else:
            cls = _class_name(type(x), where)
            node = {"t": "obj", "cls": cls, "attrs": {}}
            for name, v in _fields(x).items():
                node["attrs"][name] = value(v, f"{where}.{name}")
            if isinstance(x, dict):  # a tecomp dict subclass (container.Map)
                node["items"] = [[value(k, f"a key of {where}"), value(v, f"{where}[{k!r}]")] for k, v in x.items()]
        nodes[pos] = node
        return {"r": pos}

    root = value(obj, type(obj).__name__)
    return json.dumps({"root": root, "nodes": nodes})


def _load_class(name: str) -> type:
    module, _, qual = name.partition(":")
    if module.split(".")[0] != _PACKAGE or not qual:
        raise SerializationError(f"load_json: {name!r} is not a tecomp class")
    target: Any = importlib.import_module(module)
    for part in qual.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise SerializationError(f"load_json: tecomp has no class {name!r}")
    if not isinstance(target, type):
        raise SerializationError(f"load_json: {name!r} is not a class")
    return target


def load_json(text: str) -> Any:
    """The object graph :func:`save_json` wrote."""
    try:
        data = json.loads(text)
        root, nodes = data["root"], data["nodes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SerializationError(f"load_json: not the JSON form of a tecomp object ({exc})") from None
    built: dict[int, Any] = {}

    def shell(pos: int) -> Any:  # objects and mutable containers exist before their contents
        node = nodes[pos]
        kind = node["t"]
        if kind == "obj":
            cls = _load_class(node["cls"])
            return cls.__new__(cls)
        if kind == "enum":
            return _load_class(node["cls"])[node["name"]]
        return {"list": list, "set": set, "dict": dict}.get(kind, lambda: None)()

    def get(v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        pos = v["r"]
        if pos in built:
            return built[pos]
        node = nodes[pos]
        if node["t"] == "tuple":
            built[pos] = tuple(get(item) for item in node["items"])
        return built[pos]

    for pos in range(len(nodes)):
        if nodes[pos]["t"] != "tuple":
            built[pos] = shell(pos)
    for pos, node in enumerate(nodes):
        obj = built.get(pos) if node["t"] != "tuple" else get({"r": pos})
        if node["t"] == "obj":
            for name, v in node["attrs"].items():
                object.__setattr__(obj, name, get(v))
        if node["t"] in ("list", "set"):
            (obj.extend if node["t"] == "list" else obj.update)(get(v) for v in node["items"])
        if node["t"] == "dict" or (node["t"] == "obj" and "items" in node):
            dict.update(obj, ((get(k), get(v)) for k, v in node["items"]))
    return get(root)


__all__ = ["SerializationError", "load_json", "save_json"]
