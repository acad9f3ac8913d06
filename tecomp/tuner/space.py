"""Config spaces: the knobs a tuning template defines, and the points in them.

Owns the four knob kinds (``define_split``, ``define_reorder``,
``define_annotate``, ``define_knob``), ``ConfigSpace`` (filled while a
template runs in define mode), ``ConfigEntity`` (one point, decoded from an
index), ``FallbackConfigEntity`` (a heuristic point for when no record
exists) and the JSON form of a point. It must not run templates, measure,
or read records: ``task.py`` runs templates and ``dispatch.py`` picks points.

A point's index is a mixed-radix number over the knobs in definition order,
the first knob being the least significant digit.
"""

from __future__ import annotations

import itertools
import json
import math
import numbers
from typing import Any, Iterator, Optional, Sequence, Union

from ..error import TuningError
from ..te.schedule import Schedule
from ..te.tensor import IterVar, Operation, Tensor
from ..tir.expr import IntImm

OpLike = Union[Operation, Tensor]

SPLIT_POLICIES = ("factors", "power2")
REORDER_POLICIES = ("all", "identity", "candidate")
ANNOTATE_POLICIES = ("try_unroll", "try_vec", "try_unroll_vec")
MAX_REORDER_AXES = 8          # 8! = 40320 permutations; 9! would swamp any space


def _canonical(value: Any, what: str) -> str:
    """The canonical JSON text of ``value``; the identity used to match record values."""
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TuningError(f"{what}: {value!r} is not JSON-able ({err})") from None


# ---------------------------------------------------------------- entities (one knob's value)

class KnobEntity:
    """One value of one knob."""

    def to_json(self) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_json()!r})"


class SplitEntity(KnobEntity):
    """Loop extents of a split, outermost first: ``size[0]`` loops over ``size[1:]`` inner loops."""

    def __init__(self, size: Sequence[int]):
        self.size = list(size)

    def to_json(self) -> list:
        return list(self.size)

    def apply(self, s: Schedule, op: OpLike, axis: IterVar) -> list:
        """Split ``axis`` of ``s[op]`` into ``len(size)`` loops; return them outermost first."""
        stage = s[op]
        loops = []
        for pos in range(1, len(self.size)):
            outer, axis = stage.split(axis, factor=math.prod(self.size[pos:]))
            loops.append(outer)
        return loops + [axis]


class ReorderEntity(KnobEntity):
    """A permutation: position ``p`` of the new order holds ``axes[perm[p]]``."""

    def __init__(self, perm: Sequence[int]):
        self.perm = list(perm)

    def to_json(self) -> list:
        return list(self.perm)

    def apply(self, s: Schedule, op: OpLike, axes: Sequence[IterVar]) -> list:
        """Reorder ``axes`` of ``s[op]`` by the permutation; return them in their new order."""
        ordered = [axes[i] for i in self.perm]
        s[op].reorder(*ordered)
        return ordered


class AnnotateEntity(KnobEntity):
    """One annotation per axis: "none", "unroll" or "vec"."""

    def __init__(self, anns: Sequence[str]):
        self.anns = list(anns)

    def to_json(self) -> list:
        return list(self.anns)

    def apply(self, s: Schedule, op: OpLike, axes: Sequence[IterVar]) -> None:
        stage = s[op]
        for axis, ann in zip(axes, self.anns):
            if ann == "unroll":
                stage.unroll(axis)
            elif ann == "vec":
                stage.vectorize(axis)


class OtherOptionEntity(KnobEntity):
    """One candidate of a ``define_knob``."""

    def __init__(self, val: Any):
        self.val = val

    def to_json(self) -> Any:
        return self.val


# ---------------------------------------------------------------- knobs (the value sets)

class Knob:
    """A named, ordered list of entities; subclasses say how they were made and which is the fallback."""

    kind = "knob"

    def __init__(self, name: str, entities: list, detail: str):
        self.name = name
        self.entities = entities
        self.detail = detail
        self._positions = {_canonical(e.to_json(), name): i for i, e in enumerate(entities)}

    def __len__(self) -> int:
        return len(self.entities)

    def position_of(self, value: Any) -> int:
        """The position of the entity whose JSON form is ``value``."""
        pos = self._positions.get(_canonical(value, f"knob {self.name}"))
        if pos is None:
            raise TuningError(f"knob {self.name} ({self.kind}, {self.detail}) has no value {value!r}")
        return pos

    def fallback_position(self) -> int:
        return 0

    def describe(self) -> str:
        return f"{self.name}: {self.kind}({self.detail}) -> {len(self)}"


class SplitKnob(Knob):
    kind = "split"

    def fallback_position(self) -> int:
        return min(range(len(self)), key=lambda i: _split_score(self.entities[i].size))


class ReorderKnob(Knob):
    kind = "reorder"

    def fallback_position(self) -> int:
        identity = list(range(len(self.entities[0].perm)))
        return self._positions.get(_canonical(identity, self.name), 0)


class AnnotateKnob(Knob):
    kind = "annotate"

    def fallback_position(self) -> int:
        n = len(self.entities[0].anns)
        vec_last = ["none"] * (n - 1) + ["vec"]
        return self._positions.get(_canonical(vec_last, self.name), 0)


class OtherKnob(Knob):
    kind = "knob"


def _split_score(size: list) -> tuple:
    """Fallback preference for a split: innermost near 16 (larger on ties), middles in 4..8."""
    inner = size[-1]
    middle_miss = sum(max(4 - f, f - 8, 0) for f in size[1:-1])
    return abs(inner - 16), -inner, middle_miss


def _split_extent(name: str, axis: Union[IterVar, int]) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, IterVar)):
        raise TuningError(f"define_split {name}: axis must be an IterVar or an int extent, got {axis!r}")
    if isinstance(axis, int):
        extent = axis
    elif axis.dom is None or not isinstance(axis.dom.extent, IntImm):
        dom = "no domain (it comes from a split or fuse)" if axis.dom is None else f"extent {axis.dom.extent}"
        raise TuningError(f"define_split {name}: axis {axis.name} has {dom}; "
                          "a split knob needs a constant extent")
    else:
        extent = axis.dom.extent.value
    if extent <= 0:
        raise TuningError(f"define_split {name}: extent must be positive, got {extent}")
    return extent


def _factor_tuples(extent: int, parts: int, max_factor: int) -> Iterator[tuple]:
    """Inner-factor tuples (outermost first) whose product divides ``extent``, each <= max_factor."""
    if parts == 0:
        yield ()
        return
    for f in range(1, min(extent, max_factor) + 1):
        if extent % f == 0:
            for rest in _factor_tuples(extent // f, parts - 1, max_factor):
                yield (f,) + rest


def _power2_tuples(extent: int, parts: int, max_factor: int) -> Iterator[tuple]:
    """Inner tuples of powers of two, each <= max_factor, with product <= ``extent``."""
    if parts == 0:
        yield ()
        return
    f = 1
    while f <= min(extent, max_factor):
        for rest in _power2_tuples(extent // f, parts - 1, max_factor):
            yield (f,) + rest
        f *= 2


def _split_entities(extent: int, policy: str, num_outputs: int, max_factor: int) -> list:
    gen = _factor_tuples if policy == "factors" else _power2_tuples
    return [SplitEntity([-(-extent // math.prod(inner))] + list(inner))
            for inner in gen(extent, num_outputs - 1, max_factor)]


def _reorder_perms(name: str, axes: Sequence[Any], policy: str, candidate: Optional[list]) -> list:
    n = len(axes)
    if policy == "identity":
        return [list(range(n))]
    if policy == "all":
        if n > MAX_REORDER_AXES:
            raise TuningError(f"define_reorder {name}: policy 'all' over {n} axes would give {math.factorial(n)} "
                              f"orders; use at most {MAX_REORDER_AXES} axes or policy 'candidate'")
        return [list(p) for p in itertools.permutations(range(n))]
    if not candidate:
        raise TuningError(f"define_reorder {name}: policy 'candidate' needs a non-empty candidate= list of orders")
    return [_perm_of(name, axes, order) for order in candidate]


def _perm_of(name: str, axes: Sequence[Any], order: Sequence[Any]) -> list:
    # IterVars overload ==, so match axes by identity
    ids = [id(a) for a in axes]
    perm = [ids.index(id(a)) if id(a) in ids else -1 for a in order]
    if sorted(perm) != list(range(len(axes))):
        names = ", ".join(getattr(a, "name", repr(a)) for a in order)
        raise TuningError(f"define_reorder {name}: candidate [{names}] is not a permutation of the axes")
    return perm


def _annotate_choices(n: int, policy: str) -> list:
    if policy == "try_unroll":
        return [["none", "unroll"]] * n
    if policy == "try_vec":
        return [["none"]] * (n - 1) + [["none", "vec"]]
    return [["none", "unroll"]] * (n - 1) + [["none", "unroll", "vec"]]


def _check_policy(what: str, name: str, policy: str, known: tuple) -> None:
    if policy not in known:
        raise TuningError(f"{what} {name}: unknown policy {policy!r}; known: {', '.join(known)}")


# ---------------------------------------------------------------- the space

class ConfigSpace:
    """All knobs of a template; ``get_config()`` returns one while the template defines its space.

    In this define mode ``cfg[name]`` is the knob's first entity, so the
    template runs to the end and returns a schedule.
    """

    def __init__(self) -> None:
        self.knobs: dict[str, Knob] = {}

    # ------------------------------------------------------------ definitions
    def define_split(self, name: str, axis: Union[IterVar, int], policy: str = "factors",
                     num_outputs: int = 2, max_factor: Optional[int] = None) -> None:
        """Split an axis (or an int extent) into ``num_outputs`` loops, outermost first.

        "factors": every tuple of positive ints whose product is the extent
        (inner parts <= ``max_factor``). "power2": inner parts are powers of
        two (<= ``max_factor``) with product <= extent, the outer part
        ceil(extent / product), so the split may leave a guarded tail.
        """
        _check_policy("define_split", name, policy, SPLIT_POLICIES)
        extent = _split_extent(name, axis)
        if not isinstance(num_outputs, int) or num_outputs < 2:
            raise TuningError(f"define_split {name}: num_outputs must be an int >= 2, got {num_outputs!r}")
        if max_factor is not None and (not isinstance(max_factor, int) or max_factor < 1):
            raise TuningError(f"define_split {name}: max_factor must be a positive int, got {max_factor!r}")
        entities = _split_entities(extent, policy, num_outputs, max_factor or extent)
        axis_name = axis.name if isinstance(axis, IterVar) else "int"
        detail = f"{axis_name} extent={extent}, policy={policy}, outputs={num_outputs}"
        if max_factor is not None:
            detail += f", max_factor={max_factor}"
        self._add(SplitKnob(name, entities, detail))

    def define_reorder(self, name: str, axes: Sequence[IterVar], policy: str = "all",
                       candidate: Optional[list] = None) -> None:
        """Order ``axes``: every permutation ("all"), as given ("identity"), or the ``candidate`` orders."""
        _check_policy("define_reorder", name, policy, REORDER_POLICIES)
        if not axes:
            raise TuningError(f"define_reorder {name}: give at least one axis")
        perms = _reorder_perms(name, axes, policy, candidate)
        self._add(ReorderKnob(name, [ReorderEntity(p) for p in perms], f"{len(axes)} axes, policy={policy}"))

    def define_annotate(self, name: str, axes: Sequence[IterVar], policy: str) -> None:
        """Per-axis none/unroll ("try_unroll"), none/vec on the last axis ("try_vec"), or both."""
        _check_policy("define_annotate", name, policy, ANNOTATE_POLICIES)
        if not axes:
            raise TuningError(f"define_annotate {name}: give at least one axis")
        entities = [AnnotateEntity(c) for c in itertools.product(*_annotate_choices(len(axes), policy))]
        self._add(AnnotateKnob(name, entities, f"{len(axes)} axes, policy={policy}"))

    def define_knob(self, name: str, candidates: list) -> None:
        """A free choice among JSON-able ``candidates``."""
        if not isinstance(candidates, (list, tuple)) or not candidates:
            raise TuningError(f"define_knob {name}: candidates must be a non-empty list, got {candidates!r}")
        texts = [_canonical(c, f"define_knob {name}") for c in candidates]
        if len(set(texts)) != len(texts):
            raise TuningError(f"define_knob {name}: candidates {list(candidates)!r} repeat a value")
        self._add(OtherKnob(name, [OtherOptionEntity(c) for c in candidates], f"{len(candidates)} candidates"))

    def _add(self, knob: Knob) -> None:
        if knob.name in self.knobs:
            raise TuningError(f"knob {knob.name} is defined twice in this template")
        self.knobs[knob.name] = knob

    # ------------------------------------------------------------ lookup
    def __getitem__(self, name: str) -> KnobEntity:
        return self.knob(name).entities[0]

    def knob(self, name: str) -> Knob:
        knob = self.knobs.get(name)
        if knob is None:
            known = ", ".join(self.knobs) or "none"
            raise TuningError(f"config has no knob {name!r} (knobs defined so far: {known})")
        return knob

    def __len__(self) -> int:
        return math.prod(len(k) for k in self.knobs.values())

    def get(self, index: int) -> "ConfigEntity":
        """The point at ``index`` (0 <= index < len(space))."""
        return ConfigEntity(self, index)

    def positions(self, index: int) -> dict:
        """Decode ``index`` into one entity position per knob."""
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or not 0 <= index < len(self):
            raise TuningError(f"config index {index!r} is out of range for a space of {len(self)} points")
        index, out = int(index), {}
        for name, knob in self.knobs.items():
            index, out[name] = divmod(index, len(knob))
        return out

    def index_of(self, positions: dict) -> int:
        """Encode one entity position per knob (the inverse of ``positions``)."""
        index, stride = 0, 1
        for name, knob in self.knobs.items():
            index += positions[name] * stride
            stride *= len(knob)
        return index

    def __str__(self) -> str:
        lines = [f"ConfigSpace with {len(self.knobs)} knobs"]
        lines += [f"  {k.describe()}" for k in self.knobs.values()]
        lines.append(f"  total: {len(self)} points")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"ConfigSpace({len(self.knobs)} knobs, {len(self)} points)"


# ---------------------------------------------------------------- a point

class ConfigEntity:
    """One point of a space. ``define_*`` calls are no-ops here (they only check the knob exists)."""

    def __init__(self, space: ConfigSpace, index: int):
        self.space = space
        self._entities = {name: space.knobs[name].entities[pos]
                          for name, pos in space.positions(index).items()}
        self.index = int(index)

    def __getitem__(self, name: str) -> KnobEntity:
        entity = self._entities.get(name)
        if entity is None:
            raise TuningError(f"config has no knob {name!r}; its knobs are {', '.join(self._entities) or 'none'}")
        return entity

    def _check_defined(self, name: str, *_args: Any, **_kwargs: Any) -> None:
        self[name]

    define_split = define_reorder = define_annotate = define_knob = _check_defined

    def to_json_dict(self) -> dict:
        return {"index": self.index, "entities": {n: e.to_json() for n, e in self._entities.items()}}

    @staticmethod
    def from_json_dict(space: ConfigSpace, d: Any) -> "ConfigEntity":
        """The point ``d`` (from ``to_json_dict``) names; TuningError if it does not fit ``space``."""
        if not isinstance(d, dict) or set(d) != {"index", "entities"} or not isinstance(d["entities"], dict):
            raise TuningError(f"not a config record (expected {{'index': int, 'entities': {{...}}}}): {d!r}")
        entities = d["entities"]
        unknown = [n for n in entities if n not in space.knobs]
        missing = [n for n in space.knobs if n not in entities]
        if unknown or missing:
            raise TuningError(f"config record does not fit the space: unknown knobs {unknown}, missing knobs "
                              f"{missing} (the space has {', '.join(space.knobs) or 'no knobs'})")
        index = space.index_of({n: k.position_of(entities[n]) for n, k in space.knobs.items()})
        if d["index"] != index or isinstance(d["index"], bool):
            raise TuningError(f"config record index {d['index']!r} disagrees with its entities (which are "
                              f"point {index}); the space changed since the record was written")
        return ConfigEntity(space, index)

    def __repr__(self) -> str:
        values = ", ".join(f"{n}={e.to_json()!r}" for n, e in self._entities.items())
        return f"{type(self).__name__}(index={self.index}: {values})"


class FallbackConfigEntity(ConfigEntity):
    """The point used when no tuning record exists: a reasonable CPU schedule, not a tuned one.

    Heuristic, knob by knob:
      * split: the innermost loop's extent is the choice closest to 16 (one
        or two vectors of float32; on the "factors" policy a divisor of the
        extent, so no tail), ties going to the larger; the middle loops'
        extents as close to the range 4..8 as the extent allows (a small
        register block);
      * reorder: the identity order (the template author's order), else the
        first candidate;
      * annotate: vectorize the last axis if the policy allows it, unroll nothing;
      * other knobs: the first candidate.
    """

    def __init__(self, space: ConfigSpace):
        super().__init__(space, space.index_of({n: k.fallback_position() for n, k in space.knobs.items()}))
