"""The LLVM build driver: PrimFuncs -> verified, optimized object code -> shared library.

``compile_llvm`` produces a shared object on disk (what a process-isolated
tuning builder needs); ``build_llvm`` also loads it as a runtime Module (an
``UnlinkedModule`` when the code calls C functions nothing linked defines).
This module owns the TargetMachines (their settings and the O3 pipeline are
:mod:`.llvm_worker`'s), linking with gcc and the ``__tecomp_metadata`` JSON.
It must not translate loop IR itself (:mod:`.llvm` does) nor call compiled
code (the runtime does).

Every exported function follows the entry ABI
``int32_t NAME(void** args, int64_t* size_var_values)``: ``args[i]`` is the
data pointer of ``params[i]`` (compact row-major; distinct arguments must not
overlap, their pointers are ``noalias``), ``size_var_values[j]`` the value of
``size_vars[j]``; it returns 0. ``const char* __tecomp_metadata(void)``
returns the JSON description of the functions (see :func:`metadata_json`).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import llvmlite.binding as llvm

from ..error import BuildError, UnresolvedSymbolError
from ..lower.bfloat16 import legalize_bfloat16
from ..target import Target
from ..tir import expr as E
from ..tir.buffer import Buffer
from ..tir.functor import post_order_visit
from ..tir.stmt import BufferStore, PrimFunc
from .llvm import ModuleEmitter
from .llvm_worker import create_machine, optimize
from .thread_pool import pool_object
from .vecmath import needs_libmvec

METADATA_FORMAT = 1

_lock = threading.Lock()
_initialized = False
_machines: dict = {}


def _init_llvm() -> None:
    global _initialized
    with _lock:
        if not _initialized:
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialized = True


def cpu_and_features(target: Target) -> tuple[str, str]:
    """The LLVM CPU name and feature string for ``target``: the host's own unless -mcpu names another."""
    extra = list(target.mattr)
    if target.is_host_cpu:
        return llvm.get_host_cpu_name(), ",".join([llvm.get_host_cpu_features().flatten()] + extra)
    return target.mcpu or "generic", ",".join(extra)


def target_machine(target: Target) -> llvm.TargetMachine:
    """A cached O3, position-independent TargetMachine for an llvm ``target``."""
    if target.kind != "llvm":
        raise BuildError(f"the LLVM backend cannot build for target {str(target)!r}")
    _init_llvm()
    key = str(target)
    with _lock:
        tm = _machines.get(key)
        if tm is None:
            tm = create_machine(*cpu_and_features(target))
            _machines[key] = tm
    return tm


# ---------------------------------------------------------------- metadata

def _tecomp_version() -> str:
    import tecomp
    return getattr(tecomp, "__version__", "0.1.0")


def _shape_entry(func: PrimFunc, buf: Any, extent: Any, size_var_names: dict) -> Union[int, str, list]:
    if isinstance(extent, int):
        return extent
    if isinstance(extent, E.IntImm):
        return extent.value
    if isinstance(extent, E.Var) and extent in size_var_names:
        return size_var_names[extent]
    from .cuda import expr_to_json  # an expression of size variables (n // x), checked at each call
    try:
        return expr_to_json(extent, tuple(func.size_vars))
    except BuildError:
        raise BuildError(
            f"function {func.name}: dimension {extent} of buffer {buf.name} is neither a constant nor "
            f"an expression of the function's size variables ({', '.join(size_var_names.values()) or 'none'})"
        ) from None


def _stored_buffers(func: PrimFunc) -> set:
    """Buffers the body stores to, or hands to a packed function (which may write them)."""
    stored: set = set()

    def visit(n: Any) -> None:
        if isinstance(n, BufferStore):
            stored.add(n.buffer)
        elif isinstance(n, E.Call) and n.op == "tvm_call_packed":
            stored.update(a for a in n.args if isinstance(a, Buffer))

    post_order_visit(func.body, visit)
    return stored


def function_metadata(func: PrimFunc) -> dict:
    """The metadata record of one PrimFunc (validates that its shapes are callable)."""
    names: dict = {}
    scalars = {v: pos for pos, v in dict(func.attrs).get("scalar_args", ())}
    for var in func.size_vars:
        if var.dtype not in ("int32", "int64") and not (var in scalars and var.dtype in ("float32", "float64")):
            raise BuildError(f"function {func.name}: size variable {var.name} has dtype {var.dtype}; "
                             "size variables are int32 or int64 (float32/float64 only as scalar arguments)")
        if var.name in names.values():
            raise BuildError(f"function {func.name}: two size variables are named {var.name!r}")
        names[var] = var.name
    stored = _stored_buffers(func)
    params = [{"name": buf.name, "dtype": buf.dtype,
               "shape": [_shape_entry(func, buf, s, names) for s in buf.shape],
               **({"strides": [_shape_entry(func, buf, s, names) for s in buf.strides]} if buf.strides else {}),
               "written": buf in stored} for buf in func.params]
    used = {dim for p in params for dim in (*p["shape"], *p.get("strides", ())) if isinstance(dim, str)}
    used |= {v.name for v in scalars}
    unused = [name for name in names.values() if name not in used]
    if unused:
        raise BuildError(f"function {func.name}: size variables {', '.join(unused)} appear in no "
                         "parameter's shape, so a caller cannot supply them")
    size_vars = [{"name": v.name, "dtype": v.dtype, **({"arg": scalars[v]} if v in scalars else {})}
                 for v in func.size_vars]
    return {"name": func.name, "params": params, "size_vars": size_vars}


def metadata_json(funcs: Sequence[PrimFunc], target: Target) -> str:
    """The JSON text ``__tecomp_metadata`` returns."""
    return json.dumps({"format": METADATA_FORMAT, "tecomp_version": _tecomp_version(),
                       "target": str(target), "functions": [function_metadata(f) for f in funcs]})


# ---------------------------------------------------------------- compile

class _TempDir:
    """A directory removed when the last object holding it is garbage collected."""

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="tecomp-"))
        weakref.finalize(self, shutil.rmtree, str(self.path), True)


@dataclass
class CompiledLibrary:
    """A linked shared object and the texts it was made from; the directory lives as long as this."""

    so_path: str
    sources: dict  # format -> text, or a zero-argument callable producing it
    function_names: list
    timings: dict = field(default_factory=dict)
    tempdir: Any = None
    unresolved: Any = None  # the UnresolvedSymbolError of a link left undone (so_path is "" then)
    metadata: str = ""  # the JSON text of __tecomp_metadata


def generate_ir(funcs: Sequence[PrimFunc], target: Target, bound_check: bool = False,
                keep_blocks: bool = True) -> str:
    """Unoptimized LLVM IR text of ``funcs`` plus the metadata function (``bound_check``: every
    buffer access checks its index; ``keep_blocks``: see ``FunctionEmitter.block_slot``)."""
    tm = target_machine(target)
    meta = metadata_json(funcs, target)
    emitter = ModuleEmitter(tm.triple, str(tm.target_data), cpu_and_features(target)[1], bound_check,
                            keep_blocks=keep_blocks)
    for func in sorted(funcs, key=lambda f: f.name):  # the text does not depend on the caller's order
        emitter.add_primfunc(func)
    emitter.add_metadata(meta)
    return str(emitter.module)


def imported_llvm(funcs: Sequence[PrimFunc]) -> list[str]:
    """LLVM IR texts given by ``pragma(loop, "import_llvm", text)`` (TVM's way to supply the
    function a tensor intrinsic calls; as in TVM the value may also be the path of a ``.ll`` or
    ``.bc`` file), each once. Their external definitions become
    ``linkonce_odr``: two imports defining the same function (a schedule importing one C file
    and then a larger one that includes it) link to one definition, as in TVM, which links
    imports only as needed."""
    from ..tir.functor import post_order_visit
    from ..tir.stmt import For
    texts: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, For):
            texts.extend(v for k, v in node.annotations if k == "import_llvm" and v not in texts)

    for func in funcs:
        post_order_visit(func.body, visit)
    return [_mergeable_definitions(_parse_import(text, funcs)) for text in texts]


def _parse_import(value: str, funcs: Sequence[PrimFunc]) -> llvm.ModuleRef:
    if "\n" in value or not value.endswith((".ll", ".bc")):
        return _parse_and_verify(value, funcs)
    path = Path(value)
    if not path.is_file():
        raise BuildError(f"pragma import_llvm: {value} is not a file (give LLVM IR text, or a .ll or .bc file)")
    if value.endswith(".ll"):
        return _parse_and_verify(path.read_text(), funcs)
    try:
        mod = llvm.parse_bitcode(path.read_bytes())
        mod.verify()
    except RuntimeError as exc:
        raise BuildError(f"pragma import_llvm: LLVM rejected the bitcode file {value}: {exc}") from exc
    return mod


_EXTERNAL_LINKAGE = 0  # llvmlite's code for LLVM's default ``external`` linkage


def _mergeable_definitions(mod: llvm.ModuleRef) -> str:
    for value in [*mod.functions, *mod.global_variables]:
        if not value.is_declaration and value.linkage == _EXTERNAL_LINKAGE:
            value.linkage = "linkonce_odr"
    return str(mod)


def _parse_and_verify(text: str, funcs: Sequence[PrimFunc]) -> llvm.ModuleRef:
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as exc:
        names = ", ".join(f.name for f in funcs)
        raise BuildError(f"LLVM rejected the IR generated for function {names}: {exc}") from exc
    return mod


def _link(objects: Sequence[bytes], directory: Path, stem: str, libraries: Sequence[str]) -> Path:
    """Link ``objects`` (object code) into ``directory/stem.so``."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("linking needs gcc on PATH, and none was found")
    paths = [directory / f"{stem}{k or ''}.o" for k in range(len(objects))]
    for path, obj in zip(paths, objects):
        path.write_bytes(obj)
    so_path = directory / f"{stem}.so"
    # -z defs: an unresolved symbol fails here, with gcc's message, not later at load time.
    # -z nodelete: a dlclose (from C users) must not unmap code the pool's idle threads still run.
    proc = subprocess.run([gcc, "-shared", "-Wl,-z,defs", "-Wl,-z,nodelete", "-o", str(so_path), *map(str, paths),
                           str(pool_object(gcc)), "-pthread", *(f"-l{lib}" for lib in libraries)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        unresolved = "undefined reference" in proc.stderr
        hint = ("\n(define every function the code calls with call_extern, or link a library defining it)"
                if unresolved else "")
        raise (UnresolvedSymbolError if unresolved else BuildError)(
            f"linking {stem} failed (gcc exit {proc.returncode}):\n{proc.stderr.strip()}{hint}")
    return so_path


def _emit_asm(tm: llvm.TargetMachine, optimized_ir: str) -> str:
    return tm.emit_assembly(llvm.parse_assembly(optimized_ir))


def _emit_object(tm: llvm.TargetMachine, optimized_ir: str) -> bytes:
    return tm.emit_object(llvm.parse_assembly(optimized_ir))


def compile_llvm(funcs: Sequence[PrimFunc], target: Union[Target, str, None] = None,
                 bound_check: bool = False, defer_unresolved: bool = False,
                 keep_blocks: bool = True) -> CompiledLibrary:
    """Compile ``funcs`` for an llvm target into a shared object in a fresh temp directory
    (``bound_check``: every buffer access checks its index; ``keep_blocks=False``: heap buffers are
    freed after each call, for code loaded once). With ``defer_unresolved``, code calling
    functions nothing defines is returned unlinked, its error in ``unresolved``, instead of raising."""
    target = Target(target) if target is not None else (Target.current() or Target.host())
    funcs = [legalize_bfloat16(f) for f in funcs]
    if not funcs:
        raise BuildError("nothing to build: the list of functions is empty")
    tm = target_machine(target)
    t0 = time.perf_counter()
    text = generate_ir(funcs, target, bound_check, keep_blocks)
    t1 = time.perf_counter()
    mod = _parse_and_verify(text, funcs)
    for imported in imported_llvm(funcs):
        mod.link_in(_parse_and_verify(imported, funcs))
    t2 = time.perf_counter()
    optimize(mod, tm)
    optimized = str(mod)
    t3 = time.perf_counter()
    obj = tm.emit_object(mod)
    t4 = time.perf_counter()
    tmp = _TempDir()
    libraries = ["gomp", "m"] + (["mvec"] if needs_libmvec(text) else [])
    try:
        so_path, unresolved = str(_link([obj], tmp.path, funcs[0].name, libraries)), None
    except UnresolvedSymbolError as exc:
        if not defer_unresolved:
            raise
        so_path, unresolved = "", exc
    t5 = time.perf_counter()
    sources = {"ll": optimized, "ll-unopt": text, "asm": functools.partial(_emit_asm, tm, optimized),
               "o": functools.partial(_emit_object, tm, optimized)}  # bytes, for Module.save("x.o")
    timings = {"ir": t1 - t0, "verify": t2 - t1, "optimize": t3 - t2, "codegen": t4 - t3, "link": t5 - t4}
    return CompiledLibrary(so_path, sources, [f.name for f in funcs], timings, tmp, unresolved,
                           metadata_json(funcs, target) if unresolved else "")


def build_llvm(funcs: Sequence[PrimFunc], target: Union[Target, str, None] = None,
               bound_check: bool = False) -> Any:
    """Compile ``funcs`` and load them as a ``tecomp.runtime.module.Module``.

    The module gets ``sources`` (``ll``, ``ll-unopt``, and ``asm`` as a
    callable that ``Module.get_source`` runs on first read) and owns the
    temp directory of its .so, which goes away with the module.

    Code calling C functions that nothing linked defines gives an ``UnlinkedModule``, as TVM
    builds such a module and fails only when it is run: its sources can be read and its object
    saved (``save("x.o")``) for a program that defines them; calling it raises the linker's error.
    """
    from ..runtime.module import UnlinkedModule, load_module
    lib = compile_llvm(funcs, target, bound_check, defer_unresolved=True)
    if lib.unresolved is not None:
        module = UnlinkedModule(lib.metadata, lib.unresolved)
    else:
        module = load_module(lib.so_path, owner=lib.tempdir)
    module.sources = lib.sources
    return module

