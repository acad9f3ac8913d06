"""The reference evaluator: runs a PrimFunc on numpy arrays, slowly and exactly.

This module owns the executable semantics of the loop IR and is the oracle
that tests lowering without LLVM or CUDA. It compiles a PrimFunc once into
nested Python closures over a flat list of slots (one per bound variable and
per buffer's memory) and runs them on the caller's arrays in place. It must
not rewrite or simplify IR, and it must not depend on any backend.

Semantics, chosen to match compiled code:

* integers are Python ints wrapped to their dtype after every operation
  (two's complement); FloorDiv/FloorMod use floor semantics; division by
  zero and float-to-int casts of non-finite or out-of-range values (undefined
  in C/LLVM) raise :class:`~tecomp.error.TecompError`;
* floats are numpy scalars of the node's dtype, so float32/float16 rounding
  is exact for + - * /; math intrinsics are computed in float64 and rounded
  to the node's dtype (correctly rounded results, which a libm may differ
  from by an ulp); ``round`` rounds half to even; Min/Max are selects
  (``a < b ? a : b``);
* ``And``/``Or``/``Select`` evaluate both operands; ``if_then_else`` only the
  branch taken;
* every load and store is bounds-checked (per dimension for
  multi-dimensional accesses, against the memory for flattened ones) and an
  out-of-bounds access raises TecompError naming the buffer and the index;
* ``Allocate`` memory starts as NaN (floats), 0xA5 bytes (integers) or True
  (bool), so reads of uninitialised memory show in results;
* loops run serially, except ``threadIdx.*`` thread loops whose bodies reach
  ``tvm_storage_sync``: each thread is then a generator and all threads of a
  block (nested threadIdx loops form one block) meet at every barrier before
  any goes on. ``shared`` allocations inside a block are one per block;
  ``local`` memory allocated outside a thread loop is copied per thread.
  Sibling thread loops run one after the other, as if separated by a barrier.
* blocks (``blockIdx.*`` loops) and the threads of a block run in the order
  ``run`` is given: ascending (the default), descending or a seeded shuffle
  drawn again at every barrier; with ``races=True`` every shared and global
  access inside thread loops is checked by :mod:`.races`'s shadow record, and
  an unsynchronised conflict raises :class:`~tecomp.tir.races.DataRaceError`;
* tensor core fragments (``wmma.*`` scopes) are private to a thread like ``local``
  memory, and their builtins are warp-collective: lane 0 of each warp performs the whole
  operation, the other lanes do nothing (:mod:`.interp_wmma`).
"""

from __future__ import annotations

import math
import operator
import weakref
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..error import ArgumentError, TecompError
from . import dtype as dt
from . import expr as E
from . import interp_wmma
from . import stmt as S
from . import wmma
from .buffer import Buffer
from .functor import find_handler
from .races import ThreadSchedule

Fn = Callable[[list], Any]

# env slots: the current thread block's shared allocations (a dict), the run's ThreadSchedule,
# the current thread's and block's ((tag, index), ...) as the race detector names them
_SHARED, _SCHEDULE, _THREAD, _BLOCK = 0, 1, 2, 3
_INT_FILL = 0xA5

_CMP_OPS = {E.EQ: operator.eq, E.NE: operator.ne, E.LT: operator.lt,
            E.LE: operator.le, E.GT: operator.gt, E.GE: operator.ge}
_ARITH_OPS = {E.Add: operator.add, E.Sub: operator.sub, E.Mul: operator.mul,
              E.Div: operator.truediv, E.FloorDiv: operator.floordiv, E.FloorMod: operator.mod}


def _erf(x: Any) -> Any:
    if np.ndim(x) == 0:
        return math.erf(x)
    return np.array([math.erf(v) for v in np.asarray(x).tolist()], dtype=np.float64)


# Each takes and returns float64 (scalar or array).
_MATH: dict[str, Callable[..., Any]] = {
    "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
    "rsqrt": lambda x: 1.0 / np.sqrt(x), "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "erf": _erf, "fabs": np.abs, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
    "round": np.rint, "pow": np.power, "exp2": np.exp2, "log2": np.log2,
    "log10": np.log10, "sin": np.sin, "cos": np.cos,
}


def run(func: S.PrimFunc, args: Sequence[np.ndarray], order: str = "ascending", seed: int = 0,
        races: bool = False) -> None:
    """Execute ``func`` on ``args`` (one C-contiguous array per param), writing outputs in place.

    ``order`` and ``seed`` order GPU blocks and threads; ``races`` checks them for data races."""
    cache = _CHECKED if races else _PROGRAMS
    program = cache.get(func)
    if program is None:
        program = cache[func] = _Program(func, races)
    program(args, ThreadSchedule(order, seed, races))


_PROGRAMS: "weakref.WeakKeyDictionary[S.PrimFunc, _Program]" = weakref.WeakKeyDictionary()
_CHECKED: "weakref.WeakKeyDictionary[S.PrimFunc, _Program]" = weakref.WeakKeyDictionary()  # races=True


# ---------------------------------------------------------------- values

def _np_type(dtype: str) -> type:
    return np.dtype(dt.numpy_name(dt.element_of(dtype))).type


def _int_limits(t: dt.DataType) -> tuple[int, int, Callable[[int], int]]:
    """Range of an integer dtype and the two's-complement wrap into it."""
    if t.is_bool:
        return 0, 1, lambda v: v & 1
    mask = (1 << t.bits) - 1
    if t.is_uint:
        return 0, mask, lambda v: v & mask
    half = 1 << (t.bits - 1)
    return -half, half - 1, lambda v: ((v + half) & mask) - half


def _scalar_converter(src: str, dst: str) -> Callable[[Any], Any]:
    """C/LLVM conversion of one value of dtype ``src`` to ``dst``."""
    s, d = dt.parse(src).element(), dt.parse(dst).element()
    if d.is_bool:
        return lambda v: bool(v != 0)
    if d.is_float:
        to = _np_type(dst)
        if s.is_float or s.bits < 53:
            return to
        wide = _np_type(src)  # avoid rounding twice (int -> float64 -> float32) for huge ints
        return lambda v: to(wide(v))
    lo, hi, wrap = _int_limits(d)
    if s.is_float:
        def float_to_int(v: Any) -> int:
            if not (math.isfinite(v) and lo - 1 < v < hi + 1):
                raise TecompError(f"cast of {v} to {dst} is undefined (out of range or not finite)")
            return int(v)
        return float_to_int
    return lambda v: int(v) if lo <= v <= hi else wrap(int(v))


def _vector_converter(src: str, dst: str) -> Callable[[Any], Any]:
    s, d = dt.parse(src).element(), dt.parse(dst).element()
    to = _np_type(dst)
    if d.is_bool:
        return lambda v: np.asarray(v) != 0
    if s.is_float and not d.is_float:
        scalar = _scalar_converter(src, dst)

        def checked(v: Any) -> Any:
            for x in np.asarray(v).tolist():
                scalar(x)
            return np.asarray(v).astype(to)
        return checked
    return lambda v: np.asarray(v).astype(to)


def _memory(flat: np.ndarray) -> tuple:
    """(array, fast scalar accessor, size) for a 1-D view; ints read fastest through a memoryview."""
    accessor = flat if flat.dtype.kind == "f" else memoryview(flat)
    return flat, accessor, flat.shape[0]


def _allocate(size: int, dtype: str) -> tuple:
    t = dt.parse(dtype)
    if t.is_float:
        flat = np.full(size, np.nan, dtype=_np_type(dtype))
    elif t.is_bool:
        flat = np.ones(size, dtype=bool)
    else:
        flat = np.empty(size, dtype=_np_type(dtype))
        flat.view(np.uint8).fill(_INT_FILL)
    return _memory(flat)


def _oob(kind: str, buf: Buffer, index: Any, bound: Any) -> TecompError:
    if isinstance(index, np.ndarray):
        index = index.tolist()
    return TecompError(f"out-of-bounds {kind} of buffer {buf.name}: index {index} outside {bound}")


# ---------------------------------------------------------------- threads

def _step_block(threads: list, tag: str, order: ThreadSchedule) -> list:
    """Advance every thread (in ``order``) to its next barrier; return those that reached one."""
    waiting = []
    for g in order.arrange(threads) if order.order == "shuffle" else threads:
        try:
            next(g)
            waiting.append(g)
        except StopIteration:
            pass
    if waiting and len(waiting) != len(threads):
        raise TecompError(f"tvm_storage_sync reached by only {len(waiting)} of {len(threads)} "
                          f"threads over {tag} (barrier divergence)")
    return waiting


def _is_barrier(s: S.Stmt) -> bool:
    return (isinstance(s, S.Evaluate) and isinstance(s.value, E.Call)
            and s.value.op == "tvm_storage_sync")


def _child_stmts(s: S.Stmt) -> tuple:
    if isinstance(s, S.SeqStmt):
        return s.seq
    if isinstance(s, S.IfThenElse):
        return (s.then_case,) if s.else_case is None else (s.then_case, s.else_case)
    body = getattr(s, "body", None)
    return () if body is None else (body,)


def _barrier_stmts(s: S.Stmt, found: set) -> bool:
    """Record in ``found`` the ids of every statement that contains a barrier."""
    has = _is_barrier(s)
    for c in _child_stmts(s):
        has = _barrier_stmts(c, found) or has
    if has:
        found.add(id(s))
    return has


def _is_thread_loop(s: S.For) -> bool:
    return s.kind is S.ForKind.THREAD_BINDING and s.thread_tag.startswith("threadIdx.")


# ---------------------------------------------------------------- the program

class _Program:
    """A PrimFunc compiled to closures; calling it binds args and runs the body."""

    def __init__(self, func: S.PrimFunc, races: bool = False):
        self.func = func
        c = _Compiler(func, races)
        self.shape_vars = c.bind_shape_vars()
        self.mem_slots = [c.bind_memory(b.data, b.scope) for b in func.params]
        # Per param, per layout entry: the compiled entry when it is not a plain Var.
        self.checks = [[None if isinstance(e, E.Var) else c.expr(e) for e in _layout(b)]
                       for b in func.params]
        self.body = c.stmt(func.body)
        self.nslots = c.nslots

    def __call__(self, args: Sequence[np.ndarray], schedule: ThreadSchedule) -> None:
        env: list = [None] * self.nslots
        env[_SCHEDULE], env[_THREAD], env[_BLOCK] = schedule, (), ()
        self._bind(env, args)
        with np.errstate(all="ignore"):
            self.body(env)

    def _bind(self, env: list, args: Sequence[np.ndarray]) -> None:
        func = self.func
        if len(args) != len(func.params):
            raise ArgumentError(f"{func.name} takes {len(func.params)} arrays "
                                f"({', '.join(b.name for b in func.params)}), got {len(args)}")
        for buf, arr, m in zip(func.params, args, self.mem_slots):
            _check_array(buf, arr)
            env[m:m + 3] = _memory(arr.reshape(-1))
            for e, actual in zip(_layout(buf), _actual_layout(arr)):
                if isinstance(e, E.Var):
                    self._bind_var(env, e, actual, buf)
        for var, slot in self.shape_vars.items():
            if env[slot] is None:
                raise ArgumentError(f"{func.name}: size variable {var.name} is not "
                                    "determined by the shape of any argument")
        for buf, arr, checks in zip(func.params, args, self.checks):
            for e, f, actual in zip(_layout(buf), checks, _actual_layout(arr)):
                if f is not None and f(env) != actual:
                    raise ArgumentError(f"{func.name}: argument {buf.name} has shape {arr.shape}, but "
                                        f"{e} = {f(env)} is declared (shape {list(buf.shape)})")

    def _bind_var(self, env: list, var: E.Var, actual: int, buf: Buffer) -> None:
        slot = self.shape_vars[var]
        if env[slot] is None:
            env[slot] = actual
        elif env[slot] != actual:
            raise ArgumentError(f"{self.func.name}: size variable {var.name} is {env[slot]} from an "
                                f"earlier argument but {actual} from argument {buf.name}")


def _check_array(buf: Buffer, arr: Any) -> None:
    if not isinstance(arr, np.ndarray):
        raise ArgumentError(f"argument {buf.name} must be a numpy array, got {type(arr).__name__}")
    if arr.dtype != np.dtype(dt.numpy_name(buf.dtype)):
        raise ArgumentError(f"argument {buf.name} must have dtype {buf.dtype}, got {arr.dtype}")
    if arr.ndim != buf.ndim:
        raise ArgumentError(f"argument {buf.name} must have {buf.ndim} dimensions, got shape {arr.shape}")
    if not arr.flags.c_contiguous:
        raise ArgumentError(f"argument {buf.name} must be C-contiguous (it is written in place)")


def _layout(buf: Buffer) -> tuple:
    """The declared extents, then the declared strides (if any), of a param."""
    return tuple(buf.shape) + tuple(buf.strides)


def _actual_layout(arr: np.ndarray) -> tuple:
    return tuple(arr.shape) + tuple(s // arr.itemsize for s in arr.strides)


class _Compiler:
    """Turns IR into closures ``f(env)``; ``env`` is a list of slots laid out here."""

    def __init__(self, func: S.PrimFunc, races: bool = False):
        self.func = func
        self.races = races
        self.nslots = 4  # _SHARED, _SCHEDULE, _THREAD, _BLOCK
        self.slots: dict[E.Var, int] = {}
        self.mem: dict[E.Var, tuple[int, str]] = {}  # data var -> (first slot, scope)
        self.thread_depth = 0
        self.block_depth = 0
        self.statement = ""  # the statement being compiled, as the race detector quotes it
        self.barriers: set[int] = set()
        _barrier_stmts(func.body, self.barriers)
        self.thread_axes: list[tuple[str, int, int]] = []  # enclosing thread loops: (tag, slot, extent)
        self._fragments: dict | None = None

    # ------------------------------------------------------------ scopes
    def new_slots(self, n: int = 1) -> int:
        first = self.nslots
        self.nslots += n
        return first

    def bind_shape_vars(self) -> dict:
        found: dict[E.Var, int] = {}
        for v in self.func.size_vars:
            found[v] = self.slots[v] = self.new_slots()
        for buf in self.func.params:
            for e in _layout(buf):
                if isinstance(e, E.Var) and e not in found:
                    found[e] = self.slots[e] = self.new_slots()
        return found

    def bind_memory(self, data: E.Var, scope: str) -> int:
        m = self.new_slots(3)
        self.mem[data] = (m, scope)
        return m

    def scoped(self, table: dict, key: Any, value: Any, compile_body: Callable[[], Any]) -> Any:
        old = table.get(key)
        table[key] = value
        try:
            return compile_body()
        finally:
            if old is None:
                del table[key]
            else:
                table[key] = old

    # ------------------------------------------------------------ expressions
    def expr(self, e: E.PrimExpr) -> Fn:
        method = find_handler(self, "e_", e)
        if method is None:
            raise TecompError(f"the interpreter cannot evaluate {type(e).__name__} ({e}); lower it first")
        return method(e)

    def coerced(self, e: E.PrimExpr, dtype: str) -> Fn:
        """``e`` compiled and converted to the element type ``dtype`` if it has another."""
        f = self.expr(e)
        if dt.element_of(e.dtype) == dt.element_of(dtype):
            return f
        conv = (_vector_converter if dt.lanes(e.dtype) > 1 else _scalar_converter)(e.dtype, dtype)
        return lambda env: conv(f(env))

    def e_Var(self, e: E.Var) -> Fn:
        k = self.slots.get(e)
        if k is None:
            raise TecompError(f"variable {e.name} is used outside the scope that binds it")
        return lambda env: env[k]

    e_SizeVar = e_Var

    def e_IntImm(self, e: E.IntImm) -> Fn:
        value = bool(e.value) if dt.is_bool(e.dtype) else e.value
        return lambda env: value

    def e_FloatImm(self, e: E.FloatImm) -> Fn:
        value = _np_type(e.dtype)(e.value)
        return lambda env: value

    def e_StringImm(self, e: E.StringImm) -> Fn:
        value = e.value
        return lambda env: value

    def e_Cast(self, e: E.Cast) -> Fn:
        return self.coerced(e.value, e.dtype)

    def e_binary(self, e: E.BinaryOp) -> Fn:
        elem = dt.element_of(e.a.dtype)
        fa, fb = self.coerced(e.a, elem), self.coerced(e.b, elem)
        vector = max(dt.lanes(e.a.dtype), dt.lanes(e.b.dtype)) > 1
        t = dt.parse(elem)
        if isinstance(e, (E.Min, E.Max)):
            return _min_max(fa, fb, isinstance(e, E.Min), vector, _np_type(elem))
        if isinstance(e, E.Div) and not t.is_float:
            raise TecompError(f"Div on {elem} operands ({e}); integer division must be FloorDiv")
        op = _ARITH_OPS[type(e)]
        if isinstance(e, (E.FloorDiv, E.FloorMod)) and not t.is_float:
            fb = _nonzero_divisor(fb, e, vector)
        if vector or t.is_float:
            return lambda env: op(fa(env), fb(env))
        return _wrapping(op, fa, fb, *_int_limits(t))

    def e_cmp(self, e: E.CmpOp) -> Fn:
        common = dt.promote(dt.element_of(e.a.dtype), dt.element_of(e.b.dtype))
        fa, fb = self.coerced(e.a, common), self.coerced(e.b, common)
        op = _CMP_OPS[type(e)]
        return lambda env: op(fa(env), fb(env))

    def e_And(self, e: E.And) -> Fn:
        fa, fb = self.expr(e.a), self.expr(e.b)
        return lambda env: fa(env) & fb(env)

    def e_Or(self, e: E.Or) -> Fn:
        fa, fb = self.expr(e.a), self.expr(e.b)
        return lambda env: fa(env) | fb(env)

    def e_Not(self, e: E.Not) -> Fn:
        fa = self.expr(e.a)
        if dt.lanes(e.a.dtype) > 1:
            return lambda env: np.logical_not(fa(env))
        return lambda env: not fa(env)

    def e_Select(self, e: E.Select) -> Fn:
        fc = self.expr(e.condition)
        ft, ff = self.coerced(e.true_value, e.dtype), self.coerced(e.false_value, e.dtype)
        if max(dt.lanes(x.dtype) for x in (e.condition, e.true_value, e.false_value)) > 1:
            to = _np_type(e.dtype)
            return lambda env: np.where(fc(env), ft(env), ff(env)).astype(to, copy=False)

        def select(env: list) -> Any:
            c, t, f = fc(env), ft(env), ff(env)
            return t if c else f
        return select

    def e_Let(self, e: E.Let) -> Fn:
        fv = self.expr(e.value)
        k = self.new_slots()
        fb = self.scoped(self.slots, e.var, k, lambda: self.expr(e.body))

        def let(env: list) -> Any:
            env[k] = fv(env)
            return fb(env)
        return let

    def e_Ramp(self, e: E.Ramp) -> Fn:
        fb, fs = self.expr(e.base), self.expr(e.stride)
        lanes, to = np.arange(e.lanes, dtype=np.int64), _np_type(e.dtype)
        return lambda env: (lanes * fs(env) + fb(env)).astype(to)

    def e_Broadcast(self, e: E.Broadcast) -> Fn:
        if dt.lanes(e.value.dtype) != 1:
            raise TecompError(f"broadcast of the vector {e.value}")
        fv, n, to = self.expr(e.value), e.lanes, _np_type(e.dtype)
        return lambda env: np.full(n, fv(env), dtype=to)

    def e_Shuffle(self, e: E.Shuffle) -> Fn:
        parts, picks, to = [self.expr(v) for v in e.vectors], [i.value for i in e.indices], _np_type(e.dtype)

        def shuffle(env: list) -> Any:
            lanes = np.concatenate([np.atleast_1d(f(env)) for f in parts])[picks]
            return lanes.astype(to) if len(picks) > 1 else lanes[0]
        return shuffle

    def e_Call(self, e: E.Call) -> Fn:
        if e.op == "if_then_else":
            return self.if_then_else(e)
        if e.op in wmma.BUILTINS:
            return interp_wmma.compile_call(self, e)
        fn = _MATH.get(e.op)
        if fn is None:
            raise TecompError(f"the interpreter does not know the intrinsic {e.op!r} ({e})")
        fargs = [self.expr(a) for a in e.args]
        to = _np_type(e.dtype)
        if dt.lanes(e.dtype) > 1:
            return lambda env: fn(*(np.asarray(f(env), dtype=np.float64) for f in fargs)).astype(to)
        if len(fargs) == 1:
            (fx,) = fargs
            return lambda env: to(fn(float(fx(env))))
        return lambda env: to(fn(*(float(f(env)) for f in fargs)))

    def if_then_else(self, e: E.Call) -> Fn:
        cond, t, f = e.args
        fc, ft, ff = self.expr(cond), self.coerced(t, e.dtype), self.coerced(f, e.dtype)
        if dt.lanes(cond.dtype) == 1:
            return lambda env: ft(env) if fc(env) else ff(env)
        to = _np_type(e.dtype)

        def lanewise(env: list) -> Any:
            c = fc(env)
            if c.all():
                return ft(env)
            if not c.any():
                return ff(env)
            return np.where(c, ft(env), ff(env)).astype(to, copy=False)
        return lanewise

    def e_BufferLoad(self, e: E.BufferLoad) -> Fn:
        f = self.load(e)
        return self.watched(f, e.buffer, e.indices, False) if self.watches(e.buffer) else f

    def load(self, e: E.BufferLoad) -> Fn:
        if _is_slice(e.buffer, e.indices):
            m, fslice = self.ramp_slice(e.buffer, e.indices[0], "load")
            return lambda env: env[m][fslice(env)].copy()
        m, fi, offset = self.address(e.buffer, e.indices, "load")
        if fi is not None:
            return _flat_load(m, fi, e.buffer)
        slot = m if dt.lanes(e.dtype) > 1 else m + 1
        return lambda env: env[slot][offset(env)]

    # ------------------------------------------------------------ race detection
    def watches(self, buf: Buffer) -> bool:
        """Whether accesses of ``buf`` go to the race detector (shared and global memory, races=True)."""
        return self.races and not _private(buf.scope)

    def watched(self, f: Fn, buf: Buffer, indices: tuple, write: bool) -> Fn:
        """The access ``f`` followed by its record in the run's shadow memory (inside thread loops)."""
        where, record = self.flat_offset(buf, indices), self.recorder(buf)

        if write:
            def store(env: list) -> None:
                f(env)
                record(env, where(env), True)
            return store

        def load(env: list) -> Any:
            value = f(env)
            record(env, where(env), False)
            return value
        return load

    def recorder(self, buf: Buffer) -> Callable[[list, Any, bool], None]:
        """``record(env, at, write)``: the access of element(s) ``at`` of ``buf`` in the run's shadow
        memory (inside thread loops, with races=True; private scopes are never recorded)."""
        if not self.watches(buf):
            return lambda env, at, write: None
        name, key, shared, what = buf.name, id(buf.data), buf.scope == "shared", self.statement

        def record(env: list, at: Any, write: bool) -> None:
            thread = env[_THREAD]
            if not thread:
                return
            block, order = env[_BLOCK], env[_SCHEDULE]
            for i in at.tolist() if isinstance(at, np.ndarray) else (at,):
                order.access(name, (key, block if shared else None, i), i, write, block, thread, what)
        return record

    # ------------------------------------------------------------ warp-collective builtins
    def fragments(self) -> dict:
        """The function's fragment buffers (:func:`.wmma.infer_fragments`), inferred once."""
        if self._fragments is None:
            self._fragments = wmma.infer_fragments(self.func.body)
        return self._fragments

    def lane_zero(self) -> Fn:
        """Whether the running thread is lane 0 of its warp (always, outside thread loops)."""
        axes = {tag: (k, extent) for tag, k, extent in self.thread_axes}
        terms, scale = [], 1
        for tag in ("threadIdx.x", "threadIdx.y", "threadIdx.z"):
            if tag in axes:
                terms.append((axes[tag][0], scale))
                scale *= axes[tag][1]

        def lane_zero(env: list) -> bool:
            return sum(env[k] * s for k, s in terms) % wmma.WARP_SIZE == 0
        return lane_zero

    def flat_offset(self, buf: Buffer, indices: tuple) -> Fn:
        """The element offset(s) of an access into ``buf``'s memory (unchecked: the access checks)."""
        fidx = [self.expr(i) for i in indices]
        if len(fidx) == 1:
            return fidx[0]
        fshape = [self.expr(x) for x in buf.shape]
        fstrides = [self.expr(x) for x in buf.strides] if buf.strides else None

        def offset(env: list) -> Any:
            strides = [f(env) for f in fstrides] if fstrides else _row_major([f(env) for f in fshape])
            return sum(f(env) * st for f, st in zip(fidx, strides))
        return offset

    def quoting(self, s: Any, compile_part: Callable[[], Any]) -> Any:
        """``compile_part()`` with ``s`` as the statement the race detector names (races=True only)."""
        if not self.races:
            return compile_part()
        old, self.statement = self.statement, _describe(s)
        try:
            return compile_part()
        finally:
            self.statement = old

    # ------------------------------------------------------------ addressing
    def memory(self, buf: Buffer) -> int:
        """The first of the three slots holding ``buf``'s memory (array, accessor, size)."""
        if buf.data not in self.mem:
            raise TecompError(f"buffer {buf.name} is accessed outside its allocation "
                              "(it is neither a parameter nor allocated in scope)")
        return self.mem[buf.data][0]

    def ramp_slice(self, buf: Buffer, ramp: E.Ramp, kind: str) -> tuple[int, Fn]:
        """A flat access at a constant-stride ramp, as a checked slice of the memory (fast)."""
        m, fb = self.memory(buf), self.expr(ramp.base)
        step = ramp.stride.value
        span = step * (ramp.lanes - 1)

        def to_slice(env: list) -> slice:
            b = fb(env)
            if 0 <= b and b + span < env[m + 2]:
                return slice(b, b + span + 1, step)
            raise _oob(kind, buf, list(range(b, b + span + 1, step)), f"[0, {env[m + 2]})")
        return m, to_slice

    def address(self, buf: Buffer, indices: tuple, kind: str) -> tuple:
        """(memory slot, index fn, None) for a flat scalar access, else (slot, None, checked offset fn).

        An access is flat when it has one index and the buffer is not a
        strided 1-D buffer; it is checked against the whole memory.
        Multi-dimensional accesses are checked per dimension of ``buf``.
        """
        m = self.memory(buf)
        vector = any(dt.lanes(i.dtype) > 1 for i in indices)
        fidx = [self.expr(i) for i in indices]
        if len(indices) == 1 and (buf.ndim != 1 or not buf.strides):
            if not vector:
                return m, fidx[0], None
            return m, None, _checked_flat(m, fidx[0], buf, kind)
        if len(indices) != buf.ndim:
            raise TecompError(f"{len(indices)} indices into buffer {buf.name} of {buf.ndim} dimensions")
        fshape = [self.expr(x) for x in buf.shape]
        fstrides = [self.expr(x) for x in buf.strides] if buf.strides else None
        checked = _checked_nd(m, fidx, fshape, fstrides, buf, kind, vector)
        layout = _layout(buf)
        if vector or not all(isinstance(x, E.IntImm) for x in layout):
            return m, None, checked
        shape = [x.value for x in buf.shape]
        strides = [x.value for x in buf.strides] if buf.strides else _row_major(shape)
        return m, None, _constant_nd(m, fidx, shape, strides, checked)

    # ------------------------------------------------------------ statements
    def stmt(self, s: S.Stmt) -> Fn:
        method = getattr(self, "s_" + type(s).__name__, None)
        if method is None:
            raise TecompError(f"the interpreter cannot run {type(s).__name__}")
        return method(s)

    def part(self, s: S.Stmt) -> tuple[Fn, bool]:
        """``s`` compiled as a generator (True) when it reaches a barrier inside a thread block."""
        if self.thread_depth and id(s) in self.barriers:
            return self.gen(s), True
        return self.stmt(s), False

    def child(self, s: S.Stmt, as_gen: bool) -> Fn:
        """A nested statement, as a generator function when its parent is one."""
        f, is_gen = self.part(s)
        return _as_gen(f) if as_gen and not is_gen else f

    def s_SeqStmt(self, s: S.SeqStmt) -> Fn:
        parts = tuple(self.stmt(c) for c in s.seq)

        def run_seq(env: list) -> None:
            for p in parts:
                p(env)
        return run_seq

    def s_Evaluate(self, s: S.Evaluate) -> Fn:
        if _is_barrier(s):
            return lambda env: None  # outside a thread block a barrier has nothing to wait for
        f = self.quoting(s, lambda: self.expr(s.value))

        def evaluate(env: list) -> None:
            f(env)
        return evaluate

    def s_AttrStmt(self, s: S.AttrStmt) -> Fn:
        return self.stmt(s.body)

    def s_LetStmt(self, s: S.LetStmt) -> Fn:
        fv, k, body = self.let_parts(s, False)

        def let(env: list) -> None:
            env[k] = fv(env)
            body(env)
        return let

    def let_parts(self, s: S.LetStmt, as_gen: bool) -> tuple:
        fv, k = self.quoting(s, lambda: self.expr(s.value)), self.new_slots()
        return fv, k, self.scoped(self.slots, s.var, k, lambda: self.child(s.body, as_gen))

    def s_IfThenElse(self, s: S.IfThenElse) -> Fn:
        fc, then, other = self.if_parts(s, False)

        def branch(env: list) -> None:
            if fc(env):
                then(env)
            elif other is not None:
                other(env)
        return branch

    def if_parts(self, s: S.IfThenElse, as_gen: bool) -> tuple:
        if dt.lanes(s.condition.dtype) != 1:
            raise TecompError(f"IfThenElse on the vector condition {s.condition}")
        other = None if s.else_case is None else self.child(s.else_case, as_gen)
        return self.quoting(s, lambda: self.expr(s.condition)), self.child(s.then_case, as_gen), other

    def s_BufferStore(self, s: S.BufferStore) -> Fn:
        return self.quoting(s, lambda: self.watched(self.store(s), s.buffer, s.indices, True)
                            if self.watches(s.buffer) else self.store(s))

    def store(self, s: S.BufferStore) -> Fn:
        if dt.lanes(s.value.dtype) > 1 and all(dt.lanes(i.dtype) == 1 for i in s.indices):
            raise TecompError(f"store of the vector {s.value} to a scalar index of buffer {s.buffer.name}")
        fv = self.coerced(s.value, s.buffer.dtype)
        if _is_slice(s.buffer, s.indices):
            m, fslice = self.ramp_slice(s.buffer, s.indices[0], "store")

            def store_slice(env: list) -> None:
                v = fv(env)
                env[m][fslice(env)] = v
            return store_slice
        m, fi, offset = self.address(s.buffer, s.indices, "store")
        if fi is not None:
            return _flat_store(m, fi, fv, s.buffer)
        slot = m if any(dt.lanes(i.dtype) > 1 for i in s.indices) else m + 1

        def store(env: list) -> None:
            v = fv(env)
            env[slot][offset(env)] = v
        return store

    def s_Allocate(self, s: S.Allocate) -> Fn:
        alloc, m, body = self.allocate_parts(s, False)

        def allocate(env: list) -> None:
            env[m:m + 3] = alloc(env)
            body(env)
        return allocate

    def allocate_parts(self, s: S.Allocate, as_gen: bool) -> tuple:
        buf = s.buffer
        fshape = [self.expr(x) for x in buf.shape]

        def fresh(env: list) -> tuple:
            size = math.prod(f(env) for f in fshape)
            if size < 0:
                raise TecompError(f"allocation of buffer {buf.name} with negative size {size}")
            return _allocate(size, buf.dtype)

        alloc = fresh
        if buf.scope == "shared" and self.thread_depth:
            def per_block(env: list) -> tuple:
                block = env[_SHARED]
                mem = block.get(s)
                if mem is None:
                    mem = block[s] = fresh(env)
                return mem
            alloc = per_block
        m = self.new_slots(3)
        body = self.scoped(self.mem, buf.data, (m, buf.scope), lambda: self.child(s.body, as_gen))
        return alloc, m, body

    def s_For(self, s: S.For) -> Fn:
        if _is_thread_loop(s):
            return self.thread_loop(s)
        if s.kind is S.ForKind.THREAD_BINDING and s.thread_tag.startswith("blockIdx."):
            return self.block_loop(s)
        fmin, fext, k, body = self.loop_parts(s, False)

        def loop(env: list) -> None:
            lo = fmin(env)
            for v in range(lo, lo + fext(env)):
                env[k] = v
                body(env)
        return loop

    def loop_parts(self, s: S.For, as_gen: bool) -> tuple:
        fmin, fext, k = self.expr(s.min), self.expr(s.extent), self.new_slots()
        return fmin, fext, k, self.scoped(self.slots, s.loop_var, k, lambda: self.child(s.body, as_gen))

    # ------------------------------------------------------------ thread blocks
    def block_loop(self, s: S.For) -> Fn:
        """A grid loop: blocks in the run's order; the outermost one starts a kernel for the race detector."""
        outermost = self.block_depth == 0
        fmin, fext, k = self.expr(s.min), self.expr(s.extent), self.new_slots()
        self.block_depth += 1
        try:
            body = self.scoped(self.slots, s.loop_var, k, lambda: self.stmt(s.body))
        finally:
            self.block_depth -= 1
        tag = s.thread_tag

        def blocks(env: list) -> None:
            order, parent = env[_SCHEDULE], env[_BLOCK]
            if outermost:
                order.new_kernel()
            lo = fmin(env)
            for b in order.arrange(range(lo, lo + fext(env))):
                env[k], env[_BLOCK] = b, parent + ((tag, b),)
                body(env)
            env[_BLOCK] = parent
        return blocks

    def thread_loop(self, s: S.For) -> Fn:
        """A thread loop; the outermost one outside any grid loop (a launch of one block) starts a kernel."""
        outermost = self.thread_depth == 0
        if outermost and self.block_depth == 0:
            return _starting_kernel(self._thread_loop(s, outermost))
        return self._thread_loop(s, outermost)

    def _thread_loop(self, s: S.For, outermost: bool) -> Fn:
        fmin, fext, k = self.expr(s.min), self.expr(s.extent), self.new_slots()
        local = [m for m, scope in self.mem.values() if _private(scope)]
        extent = s.extent.value if isinstance(s.extent, E.IntImm) else 0
        self.thread_depth += 1
        self.thread_axes.append((s.thread_tag, k, extent))
        try:
            body, lockstep = self.scoped(self.slots, s.loop_var, k, lambda: self.part(s.body))
        finally:
            self.thread_depth -= 1
            self.thread_axes.pop()
        tag = s.thread_tag
        if not lockstep:
            return _serial_threads(fmin, fext, k, body, outermost, tag)
        spawn = _spawner(k, body, local, outermost, tag)
        if outermost:
            def block(env: list) -> None:
                order = env[_SCHEDULE]
                threads = spawn(env, fmin(env), fext(env))
                while threads:
                    threads = _step_block(threads, tag, order)
                    order.barrier()
            return block

        def nested_block(env: list) -> Iterator[None]:
            order = env[_SCHEDULE]
            threads = _step_block(spawn(env, fmin(env), fext(env)), tag, order)
            while threads:
                yield
                threads = _step_block(threads, tag, order)
        return nested_block

    # ------------------------------------------------------------ generator forms
    def gen(self, s: S.Stmt) -> Fn:
        """``s`` as a generator function that yields at each barrier (inside a thread block)."""
        if _is_barrier(s):
            return _barrier
        if isinstance(s, S.SeqStmt):
            return _gen_seq([self.part(c) for c in s.seq])
        if isinstance(s, S.For):
            return self.thread_loop(s) if _is_thread_loop(s) else _gen_loop(*self.loop_parts(s, True))
        if isinstance(s, S.IfThenElse):
            return _gen_if(*self.if_parts(s, True))
        if isinstance(s, S.LetStmt):
            return _gen_let(*self.let_parts(s, True))
        if isinstance(s, S.Allocate):
            return _gen_allocate(*self.allocate_parts(s, True))
        if isinstance(s, S.AttrStmt):
            return self.gen(s.body)
        raise TecompError(f"the interpreter cannot run {type(s).__name__} in a thread block")


# ---------------------------------------------------------------- closure builders

def _wrapping(op: Callable, fa: Fn, fb: Fn, lo: int, hi: int, wrap: Callable[[int], int]) -> Fn:
    if op is operator.add:
        def add(env: list) -> int:
            v = fa(env) + fb(env)
            return v if lo <= v <= hi else wrap(v)
        return add
    if op is operator.mul:
        def mul(env: list) -> int:
            v = fa(env) * fb(env)
            return v if lo <= v <= hi else wrap(v)
        return mul

    def arith(env: list) -> int:
        v = op(fa(env), fb(env))
        return v if lo <= v <= hi else wrap(v)
    return arith


def _nonzero_divisor(fb: Fn, e: E.PrimExpr, vector: bool) -> Fn:
    def divisor(env: list) -> Any:
        b = fb(env)
        if (not np.all(b)) if vector else b == 0:
            raise TecompError(f"integer division by zero in {e}")
        return b
    return divisor


def _min_max(fa: Fn, fb: Fn, is_min: bool, vector: bool, to: type) -> Fn:
    # A select, as the backends emit it: with a NaN operand the result is b.
    less = operator.lt if is_min else operator.gt
    if vector:
        def vpick(env: list) -> Any:
            a, b = fa(env), fb(env)
            return np.where(less(a, b), a, b).astype(to, copy=False)
        return vpick

    def pick(env: list) -> Any:
        a, b = fa(env), fb(env)
        return a if less(a, b) else b
    return pick


def _private(scope: str) -> bool:
    """Memory each thread has its own copy of: ``local`` and tensor core fragments."""
    return scope == "local" or wmma.is_fragment_scope(scope)


def _is_slice(buf: Buffer, indices: tuple) -> bool:
    """A flat access at ``ramp(base, c, n)``, c > 0 a constant: contiguous or evenly strided."""
    if len(indices) != 1 or (buf.ndim == 1 and buf.strides):
        return False
    r = indices[0]
    return (isinstance(r, E.Ramp) and isinstance(r.stride, E.IntImm) and r.stride.value > 0
            and dt.lanes(r.base.dtype) == 1)


def _flat_load(m: int, fi: Fn, buf: Buffer) -> Fn:
    # The hot path after storage flatten: one scalar index, checked against the memory.
    def load(env: list) -> Any:
        i = fi(env)
        if 0 <= i < env[m + 2]:
            return env[m + 1][i]
        raise _oob("load", buf, i, f"[0, {env[m + 2]})")
    return load


def _flat_store(m: int, fi: Fn, fv: Fn, buf: Buffer) -> Fn:
    def store(env: list) -> None:
        v, i = fv(env), fi(env)
        if 0 <= i < env[m + 2]:
            env[m + 1][i] = v
        else:
            raise _oob("store", buf, i, f"[0, {env[m + 2]})")
    return store


def _checked_flat(m: int, fi: Fn, buf: Buffer, kind: str) -> Fn:
    def offset(env: list) -> Any:
        i = fi(env)
        if i.min() < 0 or i.max() >= env[m + 2]:
            raise _oob(kind, buf, i, f"[0, {env[m + 2]})")
        return i
    return offset


def _checked_nd(m: int, fidx: list, fshape: list, fstrides: list | None, buf: Buffer,
                kind: str, vector: bool) -> Fn:
    """The flat offset of a multi-dimensional access, checked per dimension of ``buf``."""
    def inside(i: Any, n: int) -> bool:
        return bool(np.all((0 <= np.asarray(i)) & (np.asarray(i) < n))) if vector else 0 <= i < n

    def offset(env: list) -> Any:
        idx = [f(env) for f in fidx]
        shape = [f(env) for f in fshape]
        if not all(inside(i, n) for i, n in zip(idx, shape)):
            shown = tuple(np.asarray(i).tolist() for i in idx)
            raise _oob(kind, buf, shown, f"shape {shape}")
        strides = [f(env) for f in fstrides] if fstrides else _row_major(shape)
        off = sum(i * s for i, s in zip(idx, strides))
        if vector and (np.min(off) < 0 or np.max(off) >= env[m + 2]) or not vector and not 0 <= off < env[m + 2]:
            raise _oob(kind, buf, off, f"[0, {env[m + 2]}) of its memory")
        return off
    return offset


def _constant_nd(m: int, fidx: list, shape: list, strides: list, checked: Fn) -> Fn:
    """The fast path of ``checked`` for scalar indices into a buffer of constant layout."""
    dims = tuple(zip(fidx, shape, strides))

    def offset(env: list) -> int:
        off = 0
        for f, n, s in dims:
            i = f(env)
            if not 0 <= i < n:
                return checked(env)  # raises, naming every index
            off += i * s
        return off if off < env[m + 2] else checked(env)
    return offset


def _row_major(shape: list) -> list:
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return strides[::-1]


def _starting_kernel(run: Fn) -> Fn:
    def kernel(env: list) -> None:
        env[_SCHEDULE].new_kernel()
        run(env)
    return kernel


def _serial_threads(fmin: Fn, fext: Fn, k: int, body: Fn, outermost: bool, tag: str) -> Fn:
    def threads(env: list) -> None:
        if outermost:
            env[_SHARED] = {}
        order, parent = env[_SCHEDULE], env[_THREAD]
        lo = fmin(env)
        for t in order.arrange(range(lo, lo + fext(env))):
            env[k], env[_THREAD] = t, parent + ((tag, t),)
            body(env)
        env[_THREAD] = parent
        if outermost:
            env[_SHARED] = None
            order.barrier()  # sibling thread loops run as if separated by a barrier
    return threads


def _spawner(k: int, body: Fn, local: list, outermost: bool, tag: str) -> Callable[[list, int, int], list]:
    """Makes one generator per thread (in the run's order), each on its own copy of the slots."""
    def spawn(env: list, lo: int, extent: int) -> list:
        block = {} if outermost else env[_SHARED]
        threads = []
        for t in env[_SCHEDULE].arrange(range(lo, lo + extent)):
            mine = env.copy()
            mine[k], mine[_SHARED], mine[_THREAD] = t, block, env[_THREAD] + ((tag, t),)
            for m in local:
                mine[m:m + 3] = _memory(env[m].copy())
            threads.append(body(mine))
        return threads
    return spawn


def _describe(s: Any) -> str:
    """A statement as the race detector quotes it: its first line, shortened."""
    if isinstance(s, S.LetStmt):
        text = f"let {s.var.name} = {s.value}"
    elif isinstance(s, S.IfThenElse):
        text = f"if ({s.condition})"
    else:
        text = str(s).strip().splitlines()[0] if str(s).strip() else type(s).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _barrier(env: list) -> Iterator[None]:
    yield


def _as_gen(f: Fn) -> Fn:
    def run_plain(env: list) -> Iterator[None]:
        f(env)
        yield from ()
    return run_plain


def _gen_seq(parts: list) -> Fn:
    def seq(env: list) -> Iterator[None]:
        for f, is_gen in parts:
            if is_gen:
                yield from f(env)
            else:
                f(env)
    return seq


def _gen_loop(fmin: Fn, fext: Fn, k: int, body: Fn) -> Fn:
    def loop(env: list) -> Iterator[None]:
        lo = fmin(env)
        for v in range(lo, lo + fext(env)):
            env[k] = v
            yield from body(env)
    return loop


def _gen_if(fc: Fn, then: Fn, other: Fn | None) -> Fn:
    def branch(env: list) -> Iterator[None]:
        if fc(env):
            yield from then(env)
        elif other is not None:
            yield from other(env)
    return branch


def _gen_let(fv: Fn, k: int, body: Fn) -> Fn:
    def let(env: list) -> Iterator[None]:
        env[k] = fv(env)
        yield from body(env)
    return let


def _gen_allocate(alloc: Fn, m: int, body: Fn) -> Fn:
    def allocate(env: list) -> Iterator[None]:
        env[m:m + 3] = alloc(env)
        yield from body(env)
    return allocate
