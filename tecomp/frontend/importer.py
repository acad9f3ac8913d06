"""ONNX ModelProto -> tecomp graph IR (``from_onnx``), and ``load_onnx`` for files.

Owns the model walk: the opset check (opsets 7 to 12 are first upgraded to 13
with ``onnx.version_converter``), the report of every unsupported node at
once (after ``masked_assign`` has rewritten PyTorch's ``x[mask] = value`` without NonZero
and dropped the nodes that only computed its indices and updates), graph inputs with static
shapes (``shape=`` fills symbolic dimensions),
graph inputs frozen into import-time constants (``freeze=``: inputs that act
as shapes, axes, pads), initializers, and the environment mapping each ONNX value to a ``Value``: a
typed graph value, an import-time constant (numpy), or both once a constant is
used by a runtime node and becomes a graph param. ``NodeContext`` is what a
converter (``ops_*.py``) sees of one ONNX node: its inputs, its attributes
(every attribute must be read, so none is silently ignored) and ``emit``,
which appends a library operator node typed by the library itself, or
evaluates it at once when all its inputs are small constants (``fold.py``).

Nothing from the model is executed: ONNX nodes are mapped to library
operators by name through the converter table, and constants are read as data.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..error import GraphError, TecompError
from ..graph.ir import Graph, Node, TensorType
from . import fold
from .registry import DEFAULT_DOMAINS, MIN_OPSET, OLDEST_UPGRADED, max_opset

_ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.DOUBLE: "float64", onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT8: "int8", onnx.TensorProto.INT16: "int16", onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.UINT16: "uint16",
    onnx.TensorProto.UINT32: "uint32", onnx.TensorProto.UINT64: "uint64", onnx.TensorProto.BOOL: "bool",
}
DTYPES = tuple(_ONNX_DTYPES.values())
_REQUIRED = object()


class UnsupportedOperatorError(GraphError):
    """A model uses ONNX operators (or versions, or domains) that have no converter.

    ``nodes`` lists every offending ``(op_type, node_name, reason)``, not only the first.
    """

    def __init__(self, nodes: list[tuple[str, str, str]]) -> None:
        self.nodes = nodes
        kinds = sorted({op for op, _, _ in nodes})
        lines = [f"  {op} (node {name!r}): {why}" for op, name, why in nodes]
        super().__init__(f"the ONNX model uses {len(nodes)} unsupported node(s) of {len(kinds)} op type(s) "
                         f"({', '.join(kinds)}):\n" + "\n".join(lines))


class NotConstantError(GraphError):
    """An operand that fixes an output's shape (Reshape's shape, Slice's starts, ...) is computed at
    run time; ``value_name`` is the ONNX value that would have to be known at import time and
    ``inputs`` the graph inputs it is computed from (freezing them makes it known)."""

    def __init__(self, message: str, value_name: str, inputs: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.value_name = value_name
        self.inputs = tuple(inputs)


def dtype_of(elem_type: int, what: str) -> str:
    """The tecomp dtype of an ONNX element type; GraphError naming ``what`` if tecomp has none."""
    if elem_type in _ONNX_DTYPES:
        return _ONNX_DTYPES[elem_type]
    name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in onnx.TensorProto.DataType.values() \
        else str(elem_type)
    raise GraphError(f"{what}: ONNX element type {name} is not supported (tecomp supports {', '.join(DTYPES)})")


class Value:
    """An ONNX value as the importer knows it: a graph value ``name`` of ``type``, and its
    contents ``const`` when known at import time."""

    __slots__ = ("name", "type", "const")

    def __init__(self, name: str, type: TensorType, const: np.ndarray | None = None) -> None:
        self.name, self.type, self.const = name, type, const

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    @property
    def rank(self) -> int:
        return len(self.type.shape)

    def __repr__(self) -> str:
        return f"Value({self.name!r}, {self.type}{', const' if self.const is not None else ''})"


def const_value(name: str, array: np.ndarray) -> Value:
    array = np.array(array, order="C")  # a contiguous copy that keeps 0-d arrays 0-d
    return Value(name, TensorType(tuple(int(d) for d in array.shape), str(array.dtype)), array)


def default_opset(model: onnx.ModelProto) -> int:
    """The model's default-domain opset; GraphError unless tecomp converts it (directly or upgraded)."""
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    if not versions:
        raise GraphError("the ONNX model imports no default-domain opset (opset_import is empty or lacks "
                         "domain ''); tecomp needs one to know the operators' semantics")
    opset = max(versions)
    if not OLDEST_UPGRADED <= opset <= max_opset():
        raise GraphError(f"the ONNX model uses opset {opset}; tecomp converts opsets {MIN_OPSET} to "
                         f"{max_opset()} and upgrades opsets {OLDEST_UPGRADED} to {MIN_OPSET - 1} on import")
    return opset


def _converter_message(exc: Exception) -> str:
    """The reason of an onnx.version_converter failure without its C++ source location."""
    text = str(exc).strip()
    return text.split("failed: ", 1)[1] if "failed: " in text else text


def _failing_node(model: onnx.ModelProto, opset: int) -> tuple[onnx.NodeProto, str] | None:
    """The first node that onnx.version_converter cannot convert alone (with its reason), if any."""
    from onnx import version_converter

    initializers = {t.name: t for t in model.graph.initializer}
    known = {v.name: v for v in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output)}
    tried: set[bytes] = set()
    for node in model.graph.node:
        key = node.SerializeToString()  # the same op with the same attributes fails the same way
        if key in tried:
            continue
        tried.add(key)
        names = [i for i in node.input if i]
        inputs = [known.get(i) or onnx.helper.make_empty_tensor_value_info(i) for i in names
                  if i not in initializers]
        inputs += [onnx.helper.make_tensor_value_info(i, initializers[i].data_type, initializers[i].dims)
                   for i in names if i in initializers]  # IR version 3 wants initializers among the inputs
        outputs = [onnx.helper.make_empty_tensor_value_info(o) for o in node.output if o]
        graph = onnx.helper.make_graph([node], "node", inputs, outputs,
                                       [initializers[i] for i in names if i in initializers])
        single = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)],
                                        ir_version=model.ir_version)
        try:
            version_converter.convert_version(single, MIN_OPSET)
        except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError and others
            return node, _converter_message(exc)
    return None


def upgrade_opset(model: onnx.ModelProto, opset: int) -> onnx.ModelProto:
    """``model`` (default-domain ``opset`` < MIN_OPSET) converted to MIN_OPSET by onnx.version_converter;
    GraphError naming the node (and op type) the converter cannot convert."""
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:  # noqa: BLE001 - the converter raises RuntimeError and others
        failing = _failing_node(model, opset)
        if failing is None:
            where = f"onnx.version_converter failed: {_converter_message(exc)}"
        else:
            node, why = failing
            where = (f"onnx.version_converter cannot convert node {node.name or '(unnamed)'!r} "
                     f"({node.op_type}): {why}")
        raise GraphError(f"the ONNX model uses opset {opset}, which tecomp upgrades to opset {MIN_OPSET} on "
                         f"import, but {where}") from None


def _jsonable(value: Any) -> Any:
    """Attribute values as plain Python (numpy scalars and tuples become ints, floats and lists)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class Importer:
    """One conversion: the graph being built and the ONNX environment."""

    def __init__(self, model: onnx.ModelProto, shape: Mapping[str, Sequence[int]] | None,
                 dtype: str | Mapping[str, str] | None, freeze: Mapping[str, Any] | None = None) -> None:
        if not isinstance(model, onnx.ModelProto):
            raise GraphError(f"from_onnx expects an onnx.ModelProto, got {type(model).__name__} "
                             "(use tecomp.frontend.load_onnx(path) for a file)")
        if not model.HasField("graph"):
            raise GraphError("the ONNX model has no graph (is the file truncated or not an ONNX model?)")
        self.opset = default_opset(model)
        if self.opset < MIN_OPSET:
            model = upgrade_opset(model, self.opset)
            self.opset = MIN_OPSET
        self.model = model
        self.graph = model.graph
        self.shape = dict(shape or {})
        self.dtype = dtype
        self.freeze = dict(freeze or {})
        self.env: dict[str, Value] = {}
        self.inputs: dict[str, TensorType] = {}
        self.params: dict[str, TensorType] = {}
        self.param_values: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []
        self.types: dict[str, TensorType] = {}
        self.node_names: set[str] = set()
        self.reserved = self._onnx_names()
        self._initializers = {t.name: t for t in self.graph.initializer}
        self._counter = 0
        from .masked_assign import plan  # here: it imports common, which imports this module

        self.rewrite = plan(self.graph)  # x[mask] = value without NonZero; the nodes it makes dead are dropped

    # ------------------------------------------------------------------ model level

    def _onnx_names(self) -> set[str]:
        names = {v.name for v in self.graph.input} | {v.name for v in self.graph.output}
        names |= {t.name for t in self.graph.initializer}
        for node in self.graph.node:
            names.update(node.input)
            names.update(node.output)
        names.discard("")
        return names

    def fresh(self, hint: str) -> str:
        """A value name used nowhere in the model or the graph, derived from ``hint``."""
        while True:
            self._counter += 1
            name = f"{hint}:{self._counter}"
            if name not in self.reserved:
                self.reserved.add(name)
                return name

    def run(self) -> tuple[Graph, dict[str, np.ndarray]]:
        self._check_supported()
        self._read_inputs()
        for index, node in enumerate(self.graph.node):
            if index not in self.rewrite.dropped:
                self._convert(index, node)
        outputs = []
        for out in self.graph.output:
            value = self.lookup(out.name, f"graph output {out.name!r}")
            outputs.append(self.tensor(value))
        graph = Graph(dict(self.inputs), dict(self.params), list(self.nodes), outputs, dict(self.types))
        graph.validate()
        return graph, dict(self.param_values)

    def _check_supported(self) -> None:
        bad = []
        for index, node in enumerate(self.graph.node):
            conv, _, why = self.rewrite.find(index, node, self.opset)
            if conv is None and index not in self.rewrite.dropped:
                bad.append((node.op_type if node.domain in DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}",
                            node.name or f"#{index}", why))
        if bad:
            raise UnsupportedOperatorError(bad)

    def _read_inputs(self) -> None:
        declared = [v for v in self.graph.input if v.name not in self._initializers]
        names = [v.name for v in declared]
        unknown = sorted(set(self.shape) - set(names))
        if unknown:
            raise GraphError(f"shape= names {unknown}, which are not inputs of the ONNX model "
                             f"(its inputs are {names or 'none'})")
        for option, given in (("dtype", self.dtype if isinstance(self.dtype, Mapping) else {}),
                              ("freeze", self.freeze)):
            unknown = sorted(set(given) - set(names))
            if unknown:
                raise GraphError(f"{option}= names {unknown}, which are not inputs of the ONNX model "
                                 f"(its inputs are {names or 'none'})")
        for info in declared:
            if info.name in self.freeze:
                self.env[info.name] = self._frozen_input(info)
                continue
            t = TensorType(self._input_shape(info), self._input_dtype(info))
            self.inputs[info.name] = self.types[info.name] = t
            self.env[info.name] = Value(info.name, t)

    def _frozen_input(self, info: onnx.ValueInfoProto) -> Value:
        """The import-time constant ``freeze=`` gives for input ``info``, checked against its declaration."""
        array = self.freeze[info.name]
        if not isinstance(array, np.ndarray):
            raise GraphError(f"freeze= for input {info.name!r} must be a numpy array, got {type(array).__name__}")
        if info.name in self.shape:
            raise GraphError(f"input {info.name!r} is given both shape= and freeze=; a frozen input takes its "
                             "shape from its array")
        if str(array.dtype) not in DTYPES:
            raise GraphError(f"freeze= gives input {info.name!r} an array of dtype {array.dtype}; expected one "
                             f"of {', '.join(DTYPES)}")
        elem = info.type.tensor_type.elem_type if info.type.HasField("tensor_type") else None
        if elem is None:
            raise GraphError(f"input {info.name!r} is not a tensor (sequences, maps and optionals are not supported)")
        if elem != onnx.TensorProto.UNDEFINED and dtype_of(elem, f"input {info.name!r}") != str(array.dtype):
            raise GraphError(f"freeze= gives input {info.name!r} an array of dtype {array.dtype}, but the model "
                             f"declares {dtype_of(elem, info.name)}")
        dims = self._declared_dims(info)
        if dims is not None and (len(dims) != array.ndim or
                                 any(isinstance(d, int) and d != a for d, a in zip(dims, array.shape))):
            raise GraphError(f"freeze= gives input {info.name!r} an array of shape {array.shape}, but the "
                             f"model declares shape {dims}")
        return const_value(info.name, array)

    def _input_dtype(self, info: onnx.ValueInfoProto) -> str:
        wanted = self.dtype.get(info.name) if isinstance(self.dtype, Mapping) else self.dtype
        if wanted is not None and wanted not in DTYPES:
            raise GraphError(f"dtype= gives input {info.name!r} dtype {wanted!r}; expected one of {', '.join(DTYPES)}")
        if not info.type.HasField("tensor_type"):
            raise GraphError(f"input {info.name!r} is not a tensor (sequences, maps and optionals are not supported)")
        elem = info.type.tensor_type.elem_type
        if elem == onnx.TensorProto.UNDEFINED:
            if wanted is None:
                raise GraphError(f"input {info.name!r} has no element type in the model; give it with dtype=")
            return wanted
        declared = dtype_of(elem, f"input {info.name!r}")
        if wanted is not None and wanted != declared:
            raise GraphError(f"dtype= gives input {info.name!r} dtype {wanted}, but the model declares {declared}")
        return declared

    @staticmethod
    def _declared_dims(info: onnx.ValueInfoProto) -> list[int | str] | None:
        """The input's dimensions as the model declares them (names or '?' where symbolic), None if unranked."""
        tt = info.type.tensor_type
        if not tt.HasField("shape"):
            return None
        return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]

    def _input_shape(self, info: onnx.ValueInfoProto) -> tuple[int, ...]:
        dims = self._declared_dims(info)
        given = self.shape.get(info.name)
        if given is None:
            if dims is None or any(isinstance(d, str) for d in dims):
                raise GraphError(f"input {info.name!r} has a dynamic shape {dims if dims is not None else '(none)'} "
                                 f"in the model; give its static shape with shape={{{info.name!r}: (...)}}")
            return tuple(dims)
        try:
            fixed = tuple(operator.index(d) for d in given)
        except TypeError:
            raise GraphError(f"shape= for input {info.name!r} must be a sequence of ints, got {given!r}") from None
        if any(d < 0 for d in fixed):
            raise GraphError(f"shape= for input {info.name!r} has a negative dimension: {fixed}")
        if dims is not None:
            if len(dims) != len(fixed):
                raise GraphError(f"shape= for input {info.name!r} is {fixed} (rank {len(fixed)}), but the model "
                                 f"declares rank {len(dims)}: {dims}")
            clash = [k for k, (d, f) in enumerate(zip(dims, fixed)) if isinstance(d, int) and d != f]
            if clash:
                raise GraphError(f"shape= for input {info.name!r} is {fixed}, but the model fixes dimension(s) "
                                 f"{clash} of {dims}")
        return fixed

    # ------------------------------------------------------------------ values

    def lookup(self, name: str, what: str) -> Value:
        """The value ONNX calls ``name``; GraphError naming ``what`` when nothing defines it (yet)."""
        value = self.env.get(name)
        if value is not None:
            return value
        proto = self._initializers.get(name)
        if proto is None:
            raise GraphError(f"{what}: value {name!r} is not defined by an input, initializer or earlier node "
                             "(the model is malformed or its nodes are not in topological order)")
        try:
            array = numpy_helper.to_array(proto)
        except Exception as exc:  # noqa: BLE001 - onnx raises many kinds for bad or missing (external) data
            raise GraphError(f"initializer {name!r}: cannot read its data: {type(exc).__name__}: {exc}") from None
        dtype_of(proto.data_type, f"initializer {name!r}")
        value = self.env[name] = const_value(name, array)
        return value

    def input_sources(self, name: str) -> list[str]:
        """The runtime graph inputs the ONNX value ``name`` is computed from (not through Shape or Size,
        whose outputs depend on static shapes only)."""
        producer = {out: node for node in self.graph.node for out in node.output if out}
        found, pending, seen = [], [name], set()
        while pending:
            value = pending.pop()
            if value in seen:
                continue
            seen.add(value)
            if value in self.inputs:
                found.append(value)
            node = producer.get(value)
            if node is not None and node.op_type not in ("Shape", "Size"):
                pending.extend(i for i in node.input if i)
        return sorted(found)

    def tensor(self, value: Value) -> str:
        """The graph value name of ``value``, making an import-time constant a param on first use."""
        if value.name not in self.types:
            self.params[value.name] = self.types[value.name] = value.type
            self.param_values[value.name] = value.const
        return value.name

    # ------------------------------------------------------------------ nodes

    def _unique_node_name(self, base: str) -> str:
        name, k = base, 0
        while name in self.node_names:
            k += 1
            name = f"{base}:{k}"
        self.node_names.add(name)
        return name

    def _convert(self, index: int, node: onnx.NodeProto) -> None:
        conv, version, _ = self.rewrite.find(index, node, self.opset)
        ctx = NodeContext(self, node, index, version)
        first_new = len(self.nodes)
        try:
            results = conv.convert(ctx)
        except GraphError:
            raise
        except TecompError as exc:
            raise ctx.error(str(exc)) from None
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        ctx.check_attributes_read()
        renames: dict[str, str] = {}
        for k, out in enumerate(node.output):
            if not out:
                continue
            if k >= len(results) or results[k] is None:
                raise ctx.error(f"output {k} ({out!r}) is not supported by the converter")
            self.env[out] = self._bind(out, results[k], first_new, renames)
        if renames:
            self._rename(first_new, renames)

    def _bind(self, onnx_name: str, value: Value, first_new: int, renames: dict[str, str]) -> Value:
        """The value to record under ``onnx_name``: named after it when this node just made it."""
        if value.name in renames:
            return Value(renames[value.name], value.type, value.const)
        if value.const is not None and value.name not in self.types and self.env.get(value.name) is not value:
            return Value(onnx_name, value.type, value.const)  # a constant this node computed
        made_here = any(value.name in n.outputs for n in self.nodes[first_new:])
        if made_here and value.name != onnx_name:
            renames[value.name] = onnx_name
            return Value(onnx_name, value.type, value.const)
        return value

    def _rename(self, first_new: int, renames: dict[str, str]) -> None:
        for node in self.nodes[first_new:]:
            node.inputs = [renames.get(v, v) for v in node.inputs]
            node.outputs = [renames.get(v, v) for v in node.outputs]
            node.kwinputs = {k: renames.get(v, v) for k, v in node.kwinputs.items()}
        for old, new in renames.items():
            self.types[new] = self.types.pop(old)

    def emit(self, ctx: NodeContext, op: str, inputs: Sequence[Value], attrs: Mapping[str, Any] | None,
             kw: Mapping[str, Value] | None, outputs: int | None) -> Value | list[Value]:
        from ..graph.ops import LIST_INPUT_OPS, output_types

        attrs = {k: _jsonable(v) for k, v in (attrs or {}).items()}
        kw = dict(kw or {})
        try:
            types = output_types(op, [v.type for v in inputs], attrs, {k: v.type for k, v in kw.items()})
        except GraphError as exc:
            message = str(exc)
            doubled = f"{op}: {op}: "  # output_types prefixes the op name the library's message starts with
            raise ctx.error(message[len(op) + 2:] if message.startswith(doubled) else message) from None
        if outputs is not None and len(types) != outputs:
            raise ctx.error(f"library operator {op} returned {len(types)} outputs, expected {outputs}")
        hint = ctx.hint
        everything = list(inputs) + list(kw.values())
        if not kw and everything and all(v.const is not None for v in everything) \
                and fold.foldable(op, [v.const for v in everything]):
            arrays = fold.evaluate(op, [v.const for v in inputs], attrs, op in LIST_INPUT_OPS)
            values = []
            for array, t in zip(arrays, types):
                if array.shape != t.shape:
                    raise ctx.error(f"internal: folding {op} gave shape {array.shape}, the library says {t}")
                values.append(const_value(self.fresh(hint), array.astype(t.dtype, copy=False)))
        else:
            names = [self.fresh(hint) for _ in types]
            node = Node(op, [self.tensor(v) for v in inputs], names, attrs,
                        self._unique_node_name(f"{ctx.name}/{op}"),
                        {k: self.tensor(v) for k, v in kw.items()})
            self.nodes.append(node)
            self.types.update(zip(names, types))
            values = [Value(n, t) for n, t in zip(names, types)]
        return values if outputs is not None else values[0]


class NodeContext:
    """One ONNX node as its converter sees it (see the module docstring)."""

    def __init__(self, importer: Importer, node: onnx.NodeProto, index: int, version: int) -> None:
        self.importer = importer
        self.node = node
        self.op_type = node.op_type
        self.version = version
        self.name = node.name or f"{node.op_type}#{index}"
        self.hint = next((o for o in node.output if o), self.name)
        self._attrs = {a.name: a for a in node.attribute}
        self._read: set[str] = set()

    def error(self, message: str) -> GraphError:
        """A GraphError naming this node, its op type and version."""
        return GraphError(f"ONNX node {self.name!r} ({self.op_type}-{self.version}): {message}")

    # ------------------------------------------------------------------ inputs and outputs

    def has_input(self, k: int) -> bool:
        return k < len(self.node.input) and self.node.input[k] != ""

    def input(self, k: int) -> Value:
        if not self.has_input(k):
            raise self.error(f"input {k} is required")
        return self.importer.lookup(self.node.input[k], f"ONNX node {self.name!r} ({self.op_type}) input {k}")

    def optional(self, k: int) -> Value | None:
        return self.input(k) if self.has_input(k) else None

    def inputs(self) -> list[Value]:
        """Every input given (variadic operators)."""
        return [self.input(k) for k in range(len(self.node.input)) if self.has_input(k)]

    def const(self, k: int, what: str) -> np.ndarray:
        """Input ``k`` (called ``what``) as an array; NotConstantError (naming the graph inputs it is
        computed from and how to freeze them) unless known at import time."""
        value = self.input(k)
        if value.const is None:
            name = self.node.input[k]
            sources = self.importer.input_sources(name)
            message = (f"input {k} ({what}) must be known at import time (an initializer, a Constant or "
                       f"computable from static shapes), but {name!r} is computed at run time")
            if sources:
                listed = ", ".join(repr(s) for s in sources)
                message += (f" from graph input(s) {listed}: give their values at import with "
                            f"from_onnx(..., freeze={{{sources[0]!r}: array}}) or "
                            f"tecomp compile --freeze {sources[0]}=file.npy")
            raise NotConstantError(str(self.error(message)), name, sources)
        return value.const

    def ints(self, k: int, what: str) -> list[int]:
        array = self.const(k, what)
        if array.dtype.kind not in "iu":
            raise self.error(f"input {k} ({what}) must be integers, got {array.dtype}")
        return [int(v) for v in array.reshape(-1)]

    def wants_output(self, k: int) -> bool:
        return k < len(self.node.output) and self.node.output[k] != ""

    # ------------------------------------------------------------------ attributes

    def attr(self, name: str, default: Any = _REQUIRED) -> Any:
        """Attribute ``name`` as a Python value (bytes decoded, tensors as arrays), or ``default``."""
        self._read.add(name)
        proto = self._attrs.get(name)
        if proto is None:
            if default is _REQUIRED:
                raise self.error(f"attribute {name!r} is required")
            return default
        if proto.ref_attr_name:
            raise self.error(f"attribute {name!r} refers to a function attribute ({proto.ref_attr_name!r})")
        value = onnx.helper.get_attribute_value(proto)
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        if isinstance(value, onnx.TensorProto):
            dtype_of(value.data_type, f"ONNX node {self.name!r} ({self.op_type}) attribute {name!r}")
            return numpy_helper.to_array(value)
        if isinstance(value, list):
            return [v.decode("utf-8", errors="replace") if isinstance(v, bytes) else v for v in value]
        return value

    def has_attr(self, name: str) -> bool:
        return name in self._attrs

    def ignore(self, *names: str) -> None:
        """Mark attributes that do not affect inference (seeds, training-only settings) as handled."""
        self._read.update(names)

    def choice(self, name: str, default: Any, allowed: Sequence[Any]) -> Any:
        """Attribute ``name`` when its value is one of ``allowed``; GraphError otherwise."""
        value = self.attr(name, default)
        if value not in allowed:
            raise self.error(f"attribute {name}={value!r} is not supported (supported: "
                             f"{', '.join(repr(a) for a in allowed)})")
        return value

    def check_attributes_read(self) -> None:
        unread = sorted(set(self._attrs) - self._read)
        if unread:
            raise self.error(f"attribute(s) {', '.join(unread)} are not supported by the converter")

    # ------------------------------------------------------------------ building

    def emit(self, op: str, *inputs: Value, kw: Mapping[str, Value] | None = None,
             **attrs: Any) -> Value:
        """One library operator node ``op(*inputs, **kw, **attrs)`` with one output."""
        return self.importer.emit(self, op, inputs, attrs, kw, None)

    def emit_multi(self, op: str, inputs: Sequence[Value], count: int, **attrs: Any) -> list[Value]:
        """A library operator node returning ``count`` outputs (``split``)."""
        return self.importer.emit(self, op, inputs, attrs, None, count)

    def constant(self, array: Any, dtype: str | None = None) -> Value:
        """A new import-time constant (a param if a runtime node reads it)."""
        return const_value(self.importer.fresh(self.hint), np.asarray(array, dtype=dtype))


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and check an ONNX file; GraphError naming the file when it is unreadable, truncated or invalid."""
    path = os.fspath(path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - protobuf and onnx raise many kinds for a bad file
        raise GraphError(f"cannot load ONNX model {path!r}: {type(exc).__name__}: {exc}") from None
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - onnx.checker raises ValidationError and others
        raise GraphError(f"ONNX model {path!r} is invalid (truncated or malformed?): "
                         f"{type(exc).__name__}: {exc}") from None
    return model


def from_onnx(model: onnx.ModelProto, shape: Mapping[str, Sequence[int]] | None = None,
              dtype: str | Mapping[str, str] | None = None,
              freeze: Mapping[str, np.ndarray] | None = None) -> tuple[Graph, dict[str, np.ndarray]]:
    """Convert an ONNX model into a tecomp ``Graph`` and its params (``{name: array}``).

    ``shape`` maps input names to static shapes; it is required for inputs with
    symbolic dimensions and must agree with the dimensions the model fixes.
    ``dtype`` (one dtype for all inputs, or a ``{name: dtype}`` dict) supplies
    input element types the model leaves undefined. ``freeze`` maps input
    names to arrays that become import-time constants (inputs that act as
    shapes, axes or pads; checked against the input's declared dtype and
    shape); they are no longer inputs of the graph. Older models (opsets 7 to
    12) are upgraded to opset 13 with ``onnx.version_converter`` first.
    Every value of the graph has a static ``TensorType``; shape computations
    are evaluated at import.
    Raises ``UnsupportedOperatorError`` (a GraphError) listing every
    unsupported node, and GraphError naming the node for other problems.
    """
    return Importer(model, shape, dtype, freeze).run()
