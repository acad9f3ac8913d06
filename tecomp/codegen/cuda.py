"""Loop IR in launch form to CUDA C source, and the launch plan the runtime follows.

This module owns the translation of GPU-lowered PrimFuncs (see
:mod:`tecomp.lower.launch`) into one CUDA C translation unit: one
``extern "C" __global__`` function per kernel, with ``__restrict__``
pointers (``const`` for buffers the kernel only reads), ``__shared__``
arrays declared at the top of the kernel, local arrays where the IR
allocates them, tensor core fragments as ``nvcuda::wmma`` arrays (:mod:`.cuda_wmma`),
``__syncthreads()`` for barriers and
``__launch_bounds__(threads per block)``. Vector code (ramps of a vectorized
loop) becomes ``float4``/``float2``-style loads and stores where the first
offset is provably aligned to the vector width in global or shared memory,
and lane-by-lane scalar code elsewhere. Integer division and modulo are C's
``/``/``%`` where both operands are provably non-negative, floor-semantics
helpers otherwise. Math intrinsics map to the precise CUDA functions for the
dtype (``expf``, ``erff``, ``exp``, ``hexp``...); the ``__expf`` family only
with ``fast_math``. Integer index arithmetic a statement repeats is computed
once into ``const`` temporaries, so copies into shared memory stay readable.

It also describes how to run each function (:class:`FunctionPlan`): the
kernels in order with their grid (expressions of size variables) and block
sizes, their arguments, and the global workspaces between kernels. It must
not run nvcc (:mod:`.nvcc` does) nor touch the runtime.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from ..error import BuildError
from ..lower.launch import (HostLoop, KernelLaunch, host_loop_vars, host_steps, is_gpu_lowered, kernel_launch,
                            kernels, workspaces)
from ..tir import dtype as dt
from ..tir import expr as E
from ..tir import op as _op
from ..tir import stmt as S
from ..tir import wmma
from ..tir.buffer import Buffer
from ..tir.functor import collect_vars, post_order_visit, structural_equal, structural_hash, substitute
from ..tir.interval import Interval
from ..tir.simplify import Analyzer
from . import cuda_wmma
from .common import contiguous_base, method_for

C_TYPES = {
    "bool": "bool", "int8": "signed char", "uint8": "unsigned char", "int16": "short",
    "uint16": "unsigned short", "int32": "int", "uint32": "unsigned int", "int64": "long long",
    "uint64": "unsigned long long", "float16": "half", "float32": "float", "float64": "double",
}
# CUDA's built-in vector types by (element dtype, lanes); 8- and 16-byte accesses.
VECTOR_TYPES = {
    ("float32", 4): "float4", ("float32", 2): "float2", ("int32", 4): "int4", ("int32", 2): "int2",
    ("uint32", 4): "uint4", ("uint32", 2): "uint2", ("float64", 2): "double2",
    ("int64", 2): "longlong2", ("uint64", 2): "ulonglong2",
}
_LANE_FIELDS = "xyzw"
SHARED_ALIGN = 16
MAX_SHARED_TEMPS = 8

# intrinsic -> (float32, float64, float16) spellings; None means "compute in float".
_MATH = {
    "exp": ("expf", "exp", "hexp"), "log": ("logf", "log", "hlog"), "sqrt": ("sqrtf", "sqrt", "hsqrt"),
    "rsqrt": ("rsqrtf", "rsqrt", "hrsqrt"), "tanh": ("tanhf", "tanh", None), "erf": ("erff", "erf", None),
    "fabs": ("fabsf", "fabs", "__habs"), "floor": ("floorf", "floor", "hfloor"),
    "ceil": ("ceilf", "ceil", "hceil"), "pow": ("powf", "pow", None), "exp2": ("exp2f", "exp2", "hexp2"),
    "log2": ("log2f", "log2", "hlog2"), "log10": ("log10f", "log10", "hlog10"),
    "sin": ("sinf", "sin", "hsin"), "cos": ("cosf", "cos", "hcos"), "trunc": ("truncf", "trunc", "htrunc"),
    "round": ("rintf", "rint", "hrint"),
}
_FAST_MATH = {"exp": "__expf", "log": "__logf", "pow": "__powf", "log2": "__log2f", "log10": "__log10f",
              "sin": "__sinf", "cos": "__cosf"}

# C precedence levels (higher binds tighter).
_PRIMARY, _UNARY, _MUL, _ADD, _REL, _EQ, _AND, _OR, _COND = 16, 15, 13, 12, 10, 9, 5, 4, 3
_BINARY = {E.Add: ("+", _ADD), E.Sub: ("-", _ADD), E.Mul: ("*", _MUL), E.Div: ("/", _MUL)}
_COMPARE = {E.LT: ("<", _REL), E.LE: ("<=", _REL), E.GT: (">", _REL), E.GE: (">=", _REL),
            E.EQ: ("==", _EQ), E.NE: ("!=", _EQ)}

_RESERVED = set("""auto break case char const continue default do double else enum extern float for goto if
int long register return short signed sizeof static struct switch typedef union unsigned void volatile
while bool true false half threadIdx blockIdx blockDim gridDim warpSize min max inline""".split())

# Buffers and variables must not shadow the functions the kernels call.
_RESERVED |= {name for names in _MATH.values() for name in names if name} | set(_FAST_MATH.values()) | {
    "fminf", "fmaxf", "fmin", "fmax", "tecomp_floordiv", "tecomp_floormod", "__syncthreads"}

_HELPERS = """\
template <typename T> __device__ __forceinline__ T tecomp_floordiv(T a, T b) {
  T q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
template <typename T> __device__ __forceinline__ T tecomp_floormod(T a, T b) {
  T r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}
__device__ __forceinline__ float tecomp_floordiv(float a, float b) { return floorf(a / b); }
__device__ __forceinline__ float tecomp_floormod(float a, float b) { return a - floorf(a / b) * b; }
__device__ __forceinline__ double tecomp_floordiv(double a, double b) { return floor(a / b); }
__device__ __forceinline__ double tecomp_floormod(double a, double b) { return a - floor(a / b) * b; }
"""


@dataclass
class KernelPlan:
    """How to launch one kernel: ``args`` are ``("param", i)``, ``("workspace", i)``, ``("size_var", i)``
    or ``("host_var", i)`` (the current value of host loop ``i``)."""

    name: str
    grid: tuple          # three PrimExprs
    block: tuple         # three ints
    args: list
    shared_bytes: int


@dataclass
class FunctionPlan:
    """How to run one PrimFunc: its workspaces (global buffers between kernels), its kernels in
    program order, and the host loops around them (``host_vars``; ``steps`` as ``host_steps``)."""

    name: str
    workspaces: list     # Buffers
    kernels: list = field(default_factory=list)
    host_vars: list = field(default_factory=list)   # Vars of the host loops, outermost first
    steps: tuple = ()    # lower.launch.host_steps(func)


@dataclass
class CUDAModuleSource:
    """The translation unit and the plan of every function in it."""

    text: str
    plans: list          # FunctionPlan, one per PrimFunc, in order


def generate_cuda(funcs: list[S.PrimFunc], target: Any = None, fast_math: bool = False) -> CUDAModuleSource:
    """CUDA C for GPU-lowered PrimFuncs (``lower_for_gpu``); BuildError if one is not."""
    body: list[str] = []
    plans = []
    features: set = set()
    for func in funcs:
        if not is_gpu_lowered(func):
            raise BuildError(f"function {func.name} is not lowered for a GPU; lower it with "
                             "tecomp.lower(..., target='cuda') or build it for target 'cuda'")
        plan = FunctionPlan(func.name, workspaces(func), host_vars=host_loop_vars(func), steps=host_steps(func))
        for kernel in kernels(func):
            emitter = KernelEmitter(func, plan, kernel_launch(kernel), fast_math)
            body.append(emitter.emit())
            plan.kernels.append(emitter.plan)
            features |= emitter.features
        plans.append(plan)
    head = [f"// Generated by tecomp for target {target}" if target is not None else "// Generated by tecomp"]
    if "half" in features:
        head.append("#include <cuda_fp16.h>")
    if "wmma" in features:
        head.append("#include <mma.h>")
    if "helpers" in features:
        head.append(_HELPERS.rstrip("\n"))
    return CUDAModuleSource("\n\n".join(["\n".join(head)] + body) + "\n", plans)


def _identifier(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_]", "_", name) or "v"
    if text[0].isdigit():
        text = "_" + text
    return text + "_" if text in _RESERVED else text


class KernelEmitter:
    """Emits one kernel; ``plan`` describes its launch once ``emit`` has run."""

    def __init__(self, func: S.PrimFunc, fplan: FunctionPlan, launch: KernelLaunch, fast_math: bool):
        self.func = func
        self.fplan = fplan
        self.launch = launch
        self.fast_math = fast_math
        self.features: set = set()
        self.lines: list[str] = []
        self.depth = 1
        self.names: dict[Any, str] = {}      # Var or Buffer data Var -> C spelling
        self.taken: set = set()
        self.temps = 0
        self.analyzer = Analyzer()
        self.plan: Optional[KernelPlan] = None
        self.fragments: dict = {}            # fragment buffer data Var -> wmma.Fragment

    # ------------------------------------------------------------ names
    def declare(self, key: Any, name: str) -> str:
        base = _identifier(name)
        text, n = base, 0
        while text in self.taken:
            n += 1
            text = f"{base}_{n}"
        self.taken.add(text)
        self.names[key] = text
        return text

    def temp(self, prefix: str, dtype: str) -> E.Var:
        """A fresh temporary variable with a C name of its own."""
        self.temps += 1
        var = E.Var(f"{prefix}{self.temps}", dtype)
        self.declare(var, var.name)
        return var

    def emit_line(self, text: str) -> None:
        self.lines.append("  " * self.depth + text)

    def fail(self, message: str) -> BuildError:
        return BuildError(f"CUDA code generation, kernel {self.launch.name}: {message}")

    def ctype(self, dtype: str) -> str:
        t = dt.parse(dtype)
        if t.lanes != 1:
            raise self.fail(f"vector type {dtype} has no C spelling here")
        if t.code == "handle":
            raise self.fail("a handle value cannot be computed in a kernel")
        if dtype == "float16":
            self.features.add("half")
        return C_TYPES[dtype]

    # ------------------------------------------------------------ kernel
    def emit(self) -> str:
        launch, func = self.launch, self.func
        for tag, var in launch.thread_vars.items():
            self.names[var] = f"(({self.ctype(var.dtype)}){tag})"
            extent = (launch.block["xyz".index(tag[-1])] if tag.startswith("threadIdx")
                      else launch.grid["xyz".index(tag[-1])])
            self.analyzer.bind(var, (_op.const(0, var.dtype), extent))
        for v in func.size_vars:
            self.analyzer.bind(v, Interval(_op.const(0, v.dtype), None))
        params, args = self.signature()
        self.fragments = wmma.infer_fragments(launch.body)
        for buf in launch.shared:
            name = self.declare(buf.data, buf.name)
            self.emit_line(f"__shared__ __align__({SHARED_ALIGN}) {self.ctype(buf.dtype)} "
                           f"{name}[{self.extent(buf)}];")
        self.stmt(launch.body)
        threads = math.prod(launch.block)
        shared_bytes = sum(self.extent(b) * max(1, dt.parse(b.dtype).bits // 8) for b in launch.shared)
        self.plan = KernelPlan(launch.name, launch.grid, launch.block, args, shared_bytes)
        header = (f'extern "C" __global__ void __launch_bounds__({threads}) {launch.name}('
                  f'{", ".join(params)}) {{')
        return "\n".join([header] + self.lines + ["}"])

    def extent(self, buf: Buffer) -> int:
        count = 1
        for x in buf.shape:
            if not isinstance(x, E.IntImm):
                raise self.fail(f"buffer {buf.name} ({buf.scope}) has the non-constant size {x}")
            count *= x.value
        return count

    def signature(self) -> tuple[list[str], list]:
        """Parameters: buffers the kernel touches (function params, then workspaces), then size vars."""
        used, stored = set(), set()

        def visit(n: Any) -> None:
            if isinstance(n, (E.BufferLoad, S.BufferStore)):
                used.add(n.buffer.data)
                if isinstance(n, S.BufferStore):
                    stored.add(n.buffer.data)
            written = wmma.written_pointer(n)
            if written is not None:
                stored.add(written.buffer.data)

        post_order_visit(self.launch.body, visit)
        params, args = [], []
        sources = [("param", k, b) for k, b in enumerate(self.func.params)]
        sources += [("workspace", k, b) for k, b in enumerate(self.fplan.workspaces)]
        for kind, k, buf in sources:
            if buf.data not in used:
                continue
            const = "" if buf.data in stored else "const "
            name = self.declare(buf.data, buf.name)
            params.append(f"{const}{self.ctype(buf.dtype)}* __restrict__ {name}")
            args.append((kind, k))
        free = collect_vars(self.launch.body)
        scalars = [("size_var", k, v) for k, v in enumerate(self.func.size_vars)]
        scalars += [("host_var", k, v) for k, v in enumerate(self.fplan.host_vars)]
        for kind, k, v in scalars:
            if v in free and v not in self.names:
                params.append(f"{self.ctype(v.dtype)} {self.declare(v, v.name)}")
                args.append((kind, k))
        return params, args

    # ------------------------------------------------------------ statements
    def stmt(self, s: S.Stmt) -> None:
        method = method_for(type(self), "_s_", type(s))
        if method is None:
            raise self.fail(f"the CUDA backend cannot compile the statement {type(s).__name__}")
        method(self, s)

    def _s_SeqStmt(self, s: S.SeqStmt) -> None:
        for c in s.seq:
            self.stmt(c)

    def _s_AttrStmt(self, s: S.AttrStmt) -> None:
        self.stmt(s.body)

    def _s_Evaluate(self, s: S.Evaluate) -> None:
        v = s.value
        if isinstance(v, E.Call) and v.op == "tvm_storage_sync":
            self.emit_line("__syncthreads();")
        elif isinstance(v, E.Call) and v.op in wmma.BUILTINS:
            self.features.add("wmma")
            self.emit_line(cuda_wmma.statement(self, v, self.fragments))
        elif not isinstance(v, (E.IntImm, E.FloatImm, E.StringImm)):
            self.emit_line(f"(void)({self.expr(v)});")

    def _s_LetStmt(self, s: S.LetStmt) -> None:
        value = self.expr(s.value)
        name = self.declare(s.var, s.var.name)
        self.emit_line(f"const {self.ctype(s.var.dtype)} {name} = {value};")
        if dt.is_integral(s.var.dtype):
            self.analyzer.bind(s.var, Interval.point(s.value))
        self.stmt(s.body)

    def _s_IfThenElse(self, s: S.IfThenElse) -> None:
        store = s.then_case
        if s.else_case is None and isinstance(store, S.BufferStore) and dt.lanes(store.value.dtype) == 1:
            # a guarded store (a partial tile): the guard and the address share their index arithmetic
            cond, value, index = self.share_subexpressions([s.condition, store.value, store.indices[0]],
                                                           guarded_from=1)
            s = S.IfThenElse(cond, S.BufferStore(store.buffer, value, (index,)))
        self.emit_line(f"if ({self.expr(s.condition)}) {{")
        self.block(s.then_case)
        if s.else_case is not None:
            self.emit_line("} else {")
            self.block(s.else_case)
        self.emit_line("}")

    def block(self, s: S.Stmt) -> None:
        self.depth += 1
        self.stmt(s)
        self.depth -= 1

    def _s_For(self, s: S.For) -> None:
        if s.kind in (S.ForKind.THREAD_BINDING, S.ForKind.PARALLEL):
            raise self.fail(f"loop {s.loop_var.name} ({s.kind.value} {s.thread_tag}) is left inside the "
                            "kernel body; GPU lowering should have removed it")
        name = self.declare(s.loop_var, s.loop_var.name)
        lo, hi = s.min, self.analyzer.simplify(_op.add(s.min, s.extent))
        self.analyzer.bind(s.loop_var, (s.min, s.extent))
        pragma = "#pragma unroll" if s.kind is S.ForKind.UNROLLED else None
        if pragma:
            self.emit_line(pragma)
        self.emit_line(f"for ({self.ctype(s.loop_var.dtype)} {name} = {self.expr(lo)}; {name} < {self.expr(hi)}; "
                       f"++{name}) {{")
        self.block(s.body)
        self.emit_line("}")

    def _s_Allocate(self, s: S.Allocate) -> None:
        buf = s.buffer
        name = self.declare(buf.data, buf.name)
        if wmma.is_fragment_scope(buf.scope):
            self.features.add("wmma")
            self.emit_line(cuda_wmma.declaration(buf, self.fragments[buf.data], name, self.ctype(buf.dtype)))
        elif buf.scope == "local":
            self.emit_line(f"{self.ctype(buf.dtype)} {name}[{self.extent(buf)}];")
        else:
            raise self.fail(f"buffer {buf.name} of scope {buf.scope} is allocated inside the kernel body")
        self.stmt(s.body)

    def _s_BufferStore(self, s: S.BufferStore) -> None:
        index = self.flat_index(s.buffer, s.indices)
        lanes = dt.lanes(index.dtype)
        if lanes == 1:
            if dt.lanes(s.value.dtype) != 1:
                raise self.fail(f"store of the vector {s.value} to the scalar index {index} of {s.buffer.name}")
            value, index = self.share_subexpressions([s.value, index])
            self.emit_line(f"{self.buffer(s.buffer)}[{self.expr(index)}] = {self.expr(value)};")
            return
        self.vector_store(s.buffer, index, s.value, lanes)

    def flat_index(self, buf: Buffer, indices: tuple) -> E.PrimExpr:
        if len(indices) != 1:
            raise self.fail(f"access to {buf.name} has {len(indices)} indices; the CUDA backend needs "
                            "flattened accesses")
        return indices[0]

    def buffer(self, buf: Buffer) -> str:
        if wmma.is_fragment_scope(buf.scope):
            raise self.fail(f"fragment {buf.name} ({buf.scope}) is accessed element by element; a tensor core "
                            "fragment is only read and written by the wmma builtins, so tensorize its stage "
                            "(and its readers) with tvm_load_matrix_sync / tvm_mma_sync / tvm_store_matrix_sync "
                            "intrinsics")
        name = self.names.get(buf.data)
        if name is None:
            raise self.fail(f"buffer {buf.name} is neither an argument nor allocated in the kernel")
        return name

    def share_subexpressions(self, roots: list, guarded_from: Optional[int] = None) -> list:
        """``roots`` with integer subexpressions that occur more than once computed once, in
        ``const`` temporaries emitted here (the biggest saving first). Roots from
        ``guarded_from`` on only run under a condition: from them, only what cannot fault."""
        for _ in range(MAX_SHARED_TEMPS):
            best = _repeated_index_expr(roots, len(roots) if guarded_from is None else guarded_from)
            if best is None:
                break
            var = self.temp("i", best.dtype)
            self.emit_line(f"const {self.ctype(var.dtype)} {self.names[var]} = {self.expr(best)};")
            self.analyzer.bind(var, Interval.point(best))
            roots = [_replace_structural(r, best, var) for r in roots]
        return roots

    # ------------------------------------------------------------ vectors
    def vector_store(self, buf: Buffer, index: E.PrimExpr, value: E.PrimExpr, lanes: int) -> None:
        """Store ``lanes`` lanes: hoist the value's vector loads, then one vector or scalar store per chunk."""
        hoisted: dict = {}
        self.hoist(value, lanes, hoisted, guarded=False)
        lane_values = [self.expr(self.lane(value, k, hoisted)) for k in range(lanes)]
        base = contiguous_base(index)
        width = self.vector_width(buf, base, lanes)
        name = self.buffer(buf)
        if width > 1:
            vtype = VECTOR_TYPES[(buf.dtype, width)]
            for c in range(0, lanes, width):
                addr = self.expr(self.analyzer.simplify(_op.add(base, c)))
                self.emit_line(f"*({vtype}*)({name} + {addr}) = make_{vtype}({', '.join(lane_values[c:c + width])});")
            return
        for k in range(lanes):
            self.emit_line(f"{name}[{self.expr(self.lane(index, k, {}))}] = {lane_values[k]};")

    def vector_width(self, buf: Buffer, base: Optional[E.PrimExpr], lanes: int) -> int:
        """The widest vector access (4 or 2 lanes) that divides ``lanes`` and is provably aligned, else 1."""
        if base is None or buf.scope == "local":
            return 1
        for width in (4, 2):
            if lanes % width == 0 and (buf.dtype, width) in VECTOR_TYPES and \
                    self.analyzer.can_prove(_op.cmp("==", _op.floormod(base, width), 0)):
                return width
        return 1

    def hoist(self, e: E.PrimExpr, lanes: int, hoisted: dict, guarded: bool) -> None:
        """Emit temporaries for the vector loads and broadcast values of ``e`` (outside guarded branches)."""
        if isinstance(e, E.Call) and e.op == "if_then_else":
            self.hoist(e.args[0], lanes, hoisted, guarded)
            for branch in e.args[1:]:
                self.hoist(branch, lanes, hoisted, True)
            return
        if isinstance(e, E.BufferLoad) and dt.lanes(e.dtype) > 1 and not guarded:
            self.hoist_load(e, lanes, hoisted)
            return
        if isinstance(e, E.Broadcast) and not guarded and not isinstance(e.value, (E.Var, E.IntImm, E.FloatImm)):
            var = self.temp("b", e.value.dtype)
            self.emit_line(f"const {self.ctype(var.dtype)} {self.names[var]} = {self.expr(e.value)};")
            hoisted[id(e)] = [var] * lanes
            return
        for child in _children(e):
            self.hoist(child, lanes, hoisted, guarded)

    def hoist_load(self, load: E.BufferLoad, lanes: int, hoisted: dict) -> None:
        index = self.flat_index(load.buffer, load.indices)
        base = contiguous_base(index)
        width = self.vector_width(load.buffer, base, lanes)
        if width == 1:
            return
        vtype = VECTOR_TYPES[(load.buffer.dtype, width)]
        lane_vars = []
        for c in range(0, lanes, width):
            name = self.names[self.temp("v", load.buffer.dtype)]
            addr = self.expr(self.analyzer.simplify(_op.add(base, c)))
            self.emit_line(f"const {vtype} {name} = *(const {vtype}*)({self.buffer(load.buffer)} + {addr});")
            for k in range(width):
                var = E.Var(f"{name}.{_LANE_FIELDS[k]}", load.buffer.dtype)
                self.names[var] = f"{name}.{_LANE_FIELDS[k]}"
                lane_vars.append(var)
        hoisted[id(load)] = lane_vars

    def lane(self, e: E.PrimExpr, k: int, hoisted: dict) -> E.PrimExpr:
        """The scalar expression lane ``k`` of the vector expression ``e`` computes."""
        if dt.lanes(e.dtype) == 1:
            return e
        if id(e) in hoisted:
            return hoisted[id(e)][k]
        if isinstance(e, E.Ramp):
            return self.analyzer.simplify(_op.add(e.base, _op.mul(e.stride, k)))
        if isinstance(e, E.Broadcast):
            return e.value
        if isinstance(e, E.BufferLoad):
            index = self.analyzer.simplify(self.lane(self.flat_index(e.buffer, e.indices), k, hoisted))
            return E.BufferLoad(e.buffer, (index,))
        if isinstance(e, (E.BinaryOp, E.CmpOp, E.And, E.Or)):
            node = type(e)(self.lane(e.a, k, hoisted), self.lane(e.b, k, hoisted))
            # integer lanes are index arithmetic: fold "base + 3" forms for readable addresses
            return self.analyzer.simplify(node) if isinstance(e, E.BinaryOp) and dt.is_integral(node.dtype) else node
        if isinstance(e, E.Not):
            return E.Not(self.lane(e.a, k, hoisted))
        if isinstance(e, E.Select):
            return E.Select(*(self.lane(x, k, hoisted) for x in (e.condition, e.true_value, e.false_value)))
        if isinstance(e, E.Cast):
            return E.Cast(dt.element_of(e.dtype), self.lane(e.value, k, hoisted))
        if isinstance(e, E.Call):
            return E.Call(dt.element_of(e.dtype), e.op, tuple(self.lane(a, k, hoisted) for a in e.args))
        if isinstance(e, E.Let):
            return self.lane(substitute(e.body, {e.var: e.value}), k, hoisted)
        raise self.fail(f"cannot split the vector expression {type(e).__name__} ({e}) into lanes")

    # ------------------------------------------------------------ expressions
    def expr(self, e: E.PrimExpr) -> str:
        return self.expr_p(e)[0]

    def expr_p(self, e: E.PrimExpr) -> tuple[str, int]:
        """C text of a scalar expression and the precedence of its outermost operator."""
        if dt.lanes(e.dtype) != 1:
            raise self.fail(f"the vector expression {e} appears where a scalar is needed")
        method = method_for(type(self), "_e_", type(e))
        if method is None:
            raise self.fail(f"the CUDA backend cannot compile the expression {type(e).__name__} ({e})")
        return method(self, e)

    def wrap(self, e: E.PrimExpr, level: int, strict: bool = False) -> str:
        """``e`` parenthesised unless it binds at least as tightly as ``level`` (more, if ``strict``)."""
        text, prec = self.expr_p(e)
        return text if prec > level or (prec == level and not strict) else f"({text})"

    def _e_Var(self, e: E.Var) -> tuple[str, int]:
        name = self.names.get(e)
        if name is None:
            raise self.fail(f"variable {e.name} is used where it is not defined")
        return name, _PRIMARY

    def _e_IntImm(self, e: E.IntImm) -> tuple[str, int]:
        t = dt.parse(e.dtype)
        if t.is_bool:
            return ("true" if e.value else "false"), _PRIMARY
        v = e.value
        if t.bits == 64:
            text = f"{v}ULL" if t.is_uint else (f"{v}LL" if v != -2**63 else "(-9223372036854775807LL - 1)")
        elif t.bits == 32:
            text = f"{v}U" if t.is_uint else (str(v) if v != -2**31 else "(-2147483647 - 1)")
        else:
            return f"({self.ctype(e.dtype)}){v}", _UNARY
        return text, (_UNARY if v < 0 else _PRIMARY)

    def _e_FloatImm(self, e: E.FloatImm) -> tuple[str, int]:
        v = e.value
        if e.dtype == "float16":
            return f"__float2half({self.float_literal(float(np.float16(v)), 'float32')})", _PRIMARY
        text = self.float_literal(v, e.dtype)
        return text, (_UNARY if text.startswith("-") else _PRIMARY)

    def float_literal(self, v: float, dtype: str) -> str:
        if dtype == "float32":
            v = float(np.float32(v))
        if math.isnan(v) or math.isinf(v):
            bits = {"float32": (0x7FC00000, 0x7F800000, 0xFF800000),
                    "float64": (0x7FF8000000000000, 0x7FF0000000000000, 0xFFF0000000000000)}[dtype]
            pattern = bits[0] if math.isnan(v) else (bits[1] if v > 0 else bits[2])
            return (f"__int_as_float(0x{pattern:08x})" if dtype == "float32"
                    else f"__longlong_as_double(0x{pattern:016x}LL)")
        text = repr(v)
        if "e" not in text and "." not in text:
            text += ".0"
        return text + ("f" if dtype == "float32" else "")

    def _e_Cast(self, e: E.Cast) -> tuple[str, int]:
        src, dst = e.value.dtype, e.dtype
        if dst == "float16":
            inner = self.wrap(e.value, _UNARY) if src != "float32" else self.expr(e.value)
            return (f"__float2half({inner if src == 'float32' else '(float)' + inner})"), _PRIMARY
        if src == "float16":
            return f"({self.ctype(dst)})__half2float({self.expr(e.value)})", _UNARY
        return f"({self.ctype(dst)}){self.wrap(e.value, _UNARY)}", _UNARY

    def _e_BinaryOp(self, e: E.BinaryOp) -> tuple[str, int]:
        cls = type(e)
        if cls in _BINARY:
            op, prec = _BINARY[cls]
            text = f"{self.wrap(e.a, prec)} {op} {self.wrap(e.b, prec, strict=True)}"
            if dt.parse(e.dtype).bits < 32 and dt.is_integral(e.dtype):
                return f"({self.ctype(e.dtype)})({text})", _UNARY  # C promotes to int: wrap back
            return text, prec
        if cls in (E.FloorDiv, E.FloorMod):
            return self.floor_div_mod(e)
        if cls in (E.Min, E.Max):
            return self.min_max(e)
        raise self.fail(f"no C spelling for {cls.__name__}")

    def floor_div_mod(self, e: E.BinaryOp) -> tuple[str, int]:
        div = isinstance(e, E.FloorDiv)
        if dt.is_integral(e.dtype) and self.analyzer.can_prove(_op.cmp(">=", e.a, 0)) and \
                self.analyzer.can_prove(_op.cmp(">", e.b, 0)):
            return f"{self.wrap(e.a, _MUL)} {'/' if div else '%'} {self.wrap(e.b, _MUL, strict=True)}", _MUL
        self.features.add("helpers")
        if e.dtype == "float16":
            raise self.fail(f"floor division of float16 values ({e}) is not supported")
        fn = "tecomp_floordiv" if div else "tecomp_floormod"
        return f"{fn}({self.expr(e.a)}, {self.expr(e.b)})", _PRIMARY

    def min_max(self, e: E.BinaryOp) -> tuple[str, int]:
        name = "min" if isinstance(e, E.Min) else "max"
        a, b = self.expr(e.a), self.expr(e.b)
        if e.dtype == "float32":
            return f"f{name}f({a}, {b})", _PRIMARY
        if e.dtype == "float64":
            return f"f{name}({a}, {b})", _PRIMARY
        if e.dtype == "float16":
            return f"__float2half(f{name}f(__half2float({a}), __half2float({b})))", _PRIMARY
        return f"{name}({a}, {b})", _PRIMARY

    def _e_CmpOp(self, e: E.CmpOp) -> tuple[str, int]:
        op, prec = _COMPARE[type(e)]
        return f"{self.wrap(e.a, prec)} {op} {self.wrap(e.b, prec, strict=True)}", prec

    def _e_And(self, e: E.And) -> tuple[str, int]:
        return f"{self.wrap(e.a, _AND)} && {self.wrap(e.b, _AND, strict=True)}", _AND

    def _e_Or(self, e: E.Or) -> tuple[str, int]:
        return f"{self.wrap(e.a, _OR)} || {self.wrap(e.b, _OR, strict=True)}", _OR

    def _e_Not(self, e: E.Not) -> tuple[str, int]:
        return f"!{self.wrap(e.a, _UNARY)}", _UNARY

    def _e_Select(self, e: E.Select) -> tuple[str, int]:
        return self.conditional(e.condition, e.true_value, e.false_value)

    def conditional(self, c: E.PrimExpr, t: E.PrimExpr, f: E.PrimExpr) -> tuple[str, int]:
        return f"{self.wrap(c, _COND, strict=True)} ? {self.wrap(t, _COND)} : {self.wrap(f, _COND)}", _COND

    def _e_Let(self, e: E.Let) -> tuple[str, int]:
        return self.expr_p(substitute(e.body, {e.var: e.value}))

    def _e_BufferLoad(self, e: E.BufferLoad) -> tuple[str, int]:
        index = self.flat_index(e.buffer, e.indices)
        return f"{self.buffer(e.buffer)}[{self.expr(index)}]", _PRIMARY

    def _e_Call(self, e: E.Call) -> tuple[str, int]:
        if e.op == "if_then_else":
            return self.conditional(*e.args)  # C evaluates only the branch taken, as the IR requires
        if e.op == "call_extern":  # a device function by name (``__expf``, ``logf``: tir.call_pure_extern)
            return f"{e.args[0].value}({', '.join(self.expr(a) for a in e.args[1:])})", _PRIMARY
        if e.op == "sigmoid":
            one = E.FloatImm(e.dtype, 1.0)
            return self.expr_p(E.Div(one, E.Add(one, E.Call(e.dtype, "exp", (E.Sub(E.FloatImm(e.dtype, 0.0),
                                                                                      e.args[0]),)))))
        names = _MATH.get(e.op)
        if names is None:
            raise self.fail(f"unknown intrinsic {e.op!r}; known: if_then_else, sigmoid, {', '.join(sorted(_MATH))}")
        args = [self.expr(a) for a in e.args]
        if e.dtype == "float32":
            fn = _FAST_MATH.get(e.op, names[0]) if self.fast_math else names[0]
            return f"{fn}({', '.join(args)})", _PRIMARY
        if e.dtype == "float64":
            return f"{names[1]}({', '.join(args)})", _PRIMARY
        if e.dtype == "float16":
            self.features.add("half")
            if names[2] is not None:
                return f"{names[2]}({', '.join(args)})", _PRIMARY
            wide = ", ".join(f"__half2float({a})" for a in args)
            return f"__float2half({names[0]}({wide}))", _PRIMARY
        raise self.fail(f"intrinsic {e.op} on {e.dtype} values")

    def _e_StringImm(self, e: E.StringImm) -> tuple[str, int]:
        raise self.fail(f"string {e.value!r} used as a value")


def _children(e: E.PrimExpr) -> tuple:
    if isinstance(e, (E.BinaryOp, E.CmpOp, E.And, E.Or)):
        return (e.a, e.b)
    if isinstance(e, E.Not):
        return (e.a,)
    if isinstance(e, E.Select):
        return (e.condition, e.true_value, e.false_value)
    if isinstance(e, E.Cast):
        return (e.value,)
    if isinstance(e, E.Call):
        return e.args
    if isinstance(e, E.Broadcast):
        return (e.value,)
    if isinstance(e, E.Ramp):
        return (e.base, e.stride)
    if isinstance(e, E.BufferLoad):
        return e.indices
    if isinstance(e, E.Let):
        return (e.value, e.body)
    return ()


def _size(e: E.PrimExpr) -> int:
    return 1 + sum(_size(c) for c in _children(e))


def _repeated_index_expr(roots: list, guarded_from: int) -> Optional[E.PrimExpr]:
    """The integer arithmetic expression (of at least 3 nodes, no loads; inside an
    ``if_then_else`` branch only if it cannot fault) found at least twice in ``roots`` whose
    sharing saves the most, or None."""
    seen: dict[int, list] = {}  # structural hash -> [[node, count], ...]

    def visit(e: E.PrimExpr, guarded: bool) -> None:
        if isinstance(e, E.Call) and e.op == "if_then_else":
            visit(e.args[0], guarded)
            for branch in e.args[1:]:
                visit(branch, True)
            return
        if isinstance(e, E.BinaryOp) and dt.is_integral(e.dtype) and dt.lanes(e.dtype) == 1 and \
                (not guarded or _cannot_fault(e)):
            bucket = seen.setdefault(structural_hash(e), [])
            for entry in bucket:
                if structural_equal(entry[0], e):
                    entry[1] += 1
                    break
            else:
                bucket.append([e, 1])
        for child in _children(e):
            visit(child, guarded)

    for k, r in enumerate(roots):
        visit(r, k >= guarded_from)
    best, best_saving = None, 0
    for bucket in seen.values():
        for node, count in bucket:
            saving = (count - 1) * _size(node)  # nodes no longer written out
            if count > 1 and saving > best_saving and _size(node) >= 3 and not _has_load(node):
                best, best_saving = node, saving
    return best


def _cannot_fault(e: E.PrimExpr) -> bool:
    """Integer arithmetic whose every division is by a nonzero constant (safe to compute early)."""
    if isinstance(e, (E.FloorDiv, E.FloorMod, E.Div)) and not (isinstance(e.b, E.IntImm) and e.b.value != 0):
        return False
    return all(_cannot_fault(c) for c in _children(e))


def _has_load(e: E.PrimExpr) -> bool:
    return isinstance(e, E.BufferLoad) or any(_has_load(c) for c in _children(e))


def _replace_structural(e: E.PrimExpr, target: E.PrimExpr, var: E.Var) -> E.PrimExpr:
    if structural_equal(e, target):
        return var
    if isinstance(e, (E.BinaryOp, E.CmpOp, E.And, E.Or)):
        a, b = _replace_structural(e.a, target, var), _replace_structural(e.b, target, var)
        return e if a is e.a and b is e.b else type(e)(a, b)
    if isinstance(e, E.Not):
        a = _replace_structural(e.a, target, var)
        return e if a is e.a else E.Not(a)
    if isinstance(e, E.Select):
        parts = tuple(_replace_structural(x, target, var) for x in (e.condition, e.true_value, e.false_value))
        return E.Select(*parts)
    if isinstance(e, E.Cast):
        v = _replace_structural(e.value, target, var)
        return e if v is e.value else E.Cast(e.dtype, v)
    if isinstance(e, E.Call):
        return E.Call(e.dtype, e.op, tuple(_replace_structural(a, target, var) for a in e.args))
    if isinstance(e, E.BufferLoad):
        return E.BufferLoad(e.buffer, tuple(_replace_structural(i, target, var) for i in e.indices))
    return e


# ---------------------------------------------------------------- plans as data

_EXPR_OPS = {E.Add: "add", E.Sub: "sub", E.Mul: "mul", E.FloorDiv: "floordiv", E.FloorMod: "floormod",
             E.Min: "min", E.Max: "max"}


def expr_to_json(e: E.PrimExpr, size_vars: tuple) -> Any:
    """A launch extent or workspace size as JSON the runtime evaluates: ints, ``["sv", k]``, ``[op, a, b]``."""
    if isinstance(e, E.IntImm):
        return e.value
    if isinstance(e, E.Var):
        for k, v in enumerate(size_vars):
            if v is e:
                return ["sv", k]
        raise BuildError(f"launch expression uses {e.name}, which is not a size variable of the function")
    if isinstance(e, E.Cast) and dt.is_integral(e.dtype):
        return expr_to_json(e.value, size_vars)
    op = _EXPR_OPS.get(type(e))
    if op is None:
        raise BuildError(f"launch expression {e} uses {type(e).__name__}, which the runtime cannot evaluate")
    return [op, expr_to_json(e.a, size_vars), expr_to_json(e.b, size_vars)]


def plan_to_json(func: S.PrimFunc, plan: FunctionPlan) -> dict:
    """The runtime's description of how to run ``func`` (see :mod:`tecomp.runtime.cuda_module`)."""
    sv = tuple(func.size_vars)
    spaces = []
    for buf in plan.workspaces:
        elements: E.PrimExpr = _op.const(1)
        for x in buf.shape:
            elements = _op.mul(elements, x)
        spaces.append({"name": buf.name, "dtype": buf.dtype, "elements": expr_to_json(elements, sv)})
    doc = {"workspaces": spaces,
           "kernels": [{"name": k.name, "grid": [expr_to_json(g, sv) for g in k.grid], "block": list(k.block),
                        "shared_bytes": k.shared_bytes, "args": [list(a) for a in k.args]}
                       for k in plan.kernels]}
    if plan.host_vars:  # without host loops the kernels run once each, in order
        doc["host_vars"] = [v.dtype for v in plan.host_vars]
        doc["steps"] = _steps_to_json(plan.steps, [k.name for k in plan.kernels], plan.host_vars, sv)
    return doc


def _steps_to_json(steps: tuple, names: list, host_vars: list, sv: tuple) -> list:
    """Steps as the runtime reads them: a kernel's index in ``kernels``, or a host loop
    ``{"loop": i, "min": EXPR, "extent": EXPR, "body": [steps]}``."""
    out: list = []
    for step in steps:
        if isinstance(step, HostLoop):
            out.append({"loop": next(i for i, v in enumerate(host_vars) if v is step.var), "min": expr_to_json(step.min, sv),
                        "extent": expr_to_json(step.extent, sv),
                        "body": _steps_to_json(step.steps, names, host_vars, sv)})
        else:
            out.append(names.index(step.node))
    return out
