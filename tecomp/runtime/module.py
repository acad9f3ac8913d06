"""Module: a compiled shared library, loaded, and ``load_module`` to open one.

Owns opening a tecomp library safely: the file must be an ELF shared object
(checked before ``dlopen``), must export ``__tecomp_metadata`` whose JSON
passes ``metadata.parse_metadata``, and every function the metadata lists
must be exported. Besides what the dynamic loader itself runs (ELF
constructors, which tecomp libraries have none of), the only code of the
library called while loading is ``__tecomp_metadata``. A library whose
metadata has a ``"cuda"`` section holds device code instead of host
functions (``cuda_module.py``); its functions launch kernels through pycuda.
Also owns the sources the build driver attaches (``Module.sources``), timing
and ``export_library``, and ``UnlinkedModule``: a build whose code calls C
functions nothing linked defines, kept for its sources and object file. This
module must not import the compiler: loading a library needs numpy only.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from ..error import TecompError
from .device import Device
from .metadata import parse_metadata
from .packed_func import PackedFunc, error_message_reader
from .profiling import ProfileResult, time_evaluator
from .registry import install_callback

_ELF_MAGIC = b"\x7fELF"
_ET_DYN = 3

# Identity (device, inode, size, mtime) of each file dlopen-ed, by path.
_opened: dict[str, tuple[int, int, int, int]] = {}
_opened_lock = threading.Lock()


class Module:
    """A loaded library of compiled functions; the first function is the entry.

    ``sources`` maps a format (``"ll"``, ``"asm"``, ``"cu"``, ...) to its text,
    or to a callable producing it on first use; the build driver fills it, a
    library loaded from disk has none. ``owner`` is kept alive as long as the
    module (for instance the temporary directory holding the library file).
    """

    def __init__(self, library_path: str, functions: list[PackedFunc], metadata: dict[str, Any],
                 owner: object = None) -> None:
        self.library_path = library_path
        self.metadata = metadata
        self.target: str = metadata["target"]
        self.device_kind = "cuda" if "cuda" in metadata else "cpu"
        self.sources: dict[str, str | Callable[[], str]] = {}
        self._functions = {f.name: f for f in functions}
        self._owner = owner

    @property
    def entry_name(self) -> str:
        return self.function_names[0]

    @property
    def function_names(self) -> tuple[str, ...]:
        return tuple(self._functions)

    @property
    def imported_modules(self) -> list["DeviceCode"]:
        """TVM's host module imports its device module: for a cuda build, one ``DeviceCode`` view
        of the kernels' source (``get_source()`` is the CUDA C, ``get_source("ptx")`` the PTX);
        a CPU module imports none."""
        if self.device_kind != "cuda":
            return []
        return [DeviceCode(self)]

    def __call__(self, *args: Any) -> None:
        self._functions[self.entry_name](*args)

    def get_function(self, name: str, query_imports: bool = False) -> PackedFunc:
        """The function called ``name`` (``query_imports`` is accepted for TVM compatibility)."""
        try:
            return self._functions[name]
        except (KeyError, TypeError):
            raise TecompError(f"module {self.library_path} has no function {name!r}; "
                              f"it has {', '.join(self._functions)}") from None

    def __getitem__(self, name: str) -> PackedFunc:
        return self.get_function(name)

    def get_source(self, fmt: str = "") -> str:
        """The source in format ``fmt``; ``""`` means the first format the build driver added."""
        if fmt == "" and "" not in self.sources and self.sources:
            fmt = next(iter(self.sources))
        if fmt not in self.sources:
            available = ", ".join(repr(k) for k in self.sources) or "none (a loaded library keeps no source)"
            raise TecompError(f"module {self.library_path} has no source in format {fmt!r}; available: {available}")
        text = self.sources[fmt]
        if callable(text):
            text = self.sources[fmt] = text()
        return text

    def time_evaluator(self, func_name: str, dev: Device, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0) -> Callable[..., ProfileResult]:
        """A callable timing ``func_name`` on its arguments: see ``profiling.time_evaluator``."""
        if not isinstance(dev, Device) or dev.kind != self.device_kind:
            where = "the CPU" if self.device_kind == "cpu" else "a CUDA GPU"
            raise TecompError(f"time_evaluator: module {self.library_path} runs on {where}, got device {dev!r}")
        return time_evaluator(self.get_function(func_name), number, repeat, min_repeat_ms)

    def save(self, path: str | os.PathLike, fmt: str = "") -> None:
        """TVM's ``Module.save``: write one source format (``o`` object, ``ll``, ``asm``; by
        default from the extension). An object file links into a library with
        ``tecomp.contrib.cc.create_shared`` and loads with ``load_module``."""
        path = os.fspath(path)
        fmt = fmt or {".o": "o", ".ll": "ll", ".s": "asm"}.get(os.path.splitext(path)[1], "")
        if not fmt:
            raise TecompError(f"Module.save({path!r}): cannot tell the format from the extension; use .o, .ll "
                              "or .s, or export_library for a shared library")
        data = self.get_source(fmt)
        with open(path, "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)

    def export_library(self, path: str | os.PathLike) -> None:
        """Copy the shared library to ``path``, creating its directory."""
        copy_library(self.library_path, path)

    def __repr__(self) -> str:
        return f"<tecomp.Module {self.library_path} functions=[{', '.join(self._functions)}]>"


class UnlinkedModule(Module):
    """A build whose code calls C functions that nothing linked defines (``build_llvm``).

    Its sources can be read and saved (an object file, ``save("x.o")``, links into a program
    that defines them); calling, exporting or timing it raises the linker's error, which names
    the missing functions.
    """

    def __init__(self, metadata_text: str, error: TecompError) -> None:
        metadata, _ = parse_metadata(metadata_text.encode("utf-8"), "the unlinked build")
        super().__init__("(unlinked build)", [], metadata)
        self._error = error

    @property
    def function_names(self) -> tuple[str, ...]:
        return tuple(f["name"] for f in self.metadata["functions"])

    def get_function(self, name: str, query_imports: bool = False) -> PackedFunc:
        raise self._error

    def __call__(self, *args: Any) -> None:
        raise self._error

    def export_library(self, path: str | os.PathLike) -> None:
        raise self._error

    def time_evaluator(self, func_name: str, dev: Device, number: int = 10, repeat: int = 1,
                       min_repeat_ms: float = 0) -> Callable[..., ProfileResult]:
        raise self._error

    def __repr__(self) -> str:
        return f"<tecomp.UnlinkedModule functions=[{', '.join(self.function_names)}]>"


class DeviceCode:
    """The device side of a cuda module, as TVM's imported ``cuda`` module shows it: its source,
    which can be saved (``.cu`` the CUDA C, ``.ptx`` the PTX); the functions are called through
    the host module."""

    type_key = "cuda"
    _FORMATS = {"": "cuda", "cu": "cuda", "cuda": "cuda", "ptx": "ptx"}

    def __init__(self, host: Module) -> None:
        self._host = host

    def get_source(self, fmt: str = "") -> str:
        if fmt not in self._FORMATS:
            raise TecompError(f"the cuda device module has source formats cu and ptx, not {fmt!r}")
        return self._host.get_source(self._FORMATS[fmt])

    def save(self, path: str | os.PathLike, fmt: str = "") -> None:
        """Write the CUDA C (``.cu``) or the PTX (``.ptx``), by ``fmt`` or the extension."""
        path = os.fspath(path)
        fmt = fmt or os.path.splitext(path)[1].lstrip(".")
        with open(path, "w") as fh:
            fh.write(self.get_source(fmt))

    def __repr__(self) -> str:
        return f"<tecomp.DeviceCode cuda of {self._host.library_path}>"


def _check_shared_object(path: str) -> None:
    try:
        with open(path, "rb") as f:
            header = f.read(18)
    except OSError as exc:
        raise TecompError(f"cannot read library {path}: {exc.strerror}") from None
    if not sys.platform.startswith("linux"):
        return
    e_type = int.from_bytes(header[16:18], "little" if header[5:6] == b"\x01" else "big")
    if header[:4] != _ELF_MAGIC or e_type != _ET_DYN:
        raise TecompError(f"{path} is not a shared library (ELF shared object)")


def read_metadata(lib: ctypes.CDLL, path: str) -> bytes:
    """The JSON text the library's ``__tecomp_metadata`` returns; TecompError if it has none."""
    try:
        meta_fn = lib["__tecomp_metadata"]
    except AttributeError:
        raise TecompError(f"{path} is not a tecomp library: it exports no __tecomp_metadata") from None
    meta_fn.argtypes = []
    meta_fn.restype = ctypes.c_char_p
    text = meta_fn()
    if text is None:
        raise TecompError(f"{path}: __tecomp_metadata returned NULL")
    return text


def check_output_path(path: str | os.PathLike, what: str = "output") -> Path:
    """``path`` as a Path if a file can be written there; TecompError (one line) if not.

    Its directory must exist (none is created) and be writable; ``path`` must not be a
    directory. Nothing is left behind: a probe file is created and removed.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise TecompError(f"{what} {path} is a directory; name a file")
    if not parent.exists():
        raise TecompError(f"cannot write {what} {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise TecompError(f"cannot write {what} {path}: {parent} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise TecompError(f"cannot write {what} {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    if target.exists() and not os.access(target, os.W_OK):
        raise TecompError(f"cannot write {what} {path}: the file exists and is not writable")
    return target


def _umask() -> int:
    """This process's umask (read from /proc where it can be, so no thread sees it changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def copy_library(source: str, path: str | os.PathLike) -> None:
    """Copy the shared library ``source`` to ``path`` (mode 0777 less the umask, as a linker
    writes it); its directory must exist.

    A new file is renamed over the target: rewriting a library in place would corrupt a
    process that has it loaded.
    """
    target = check_output_path(path, "library")
    if target.exists() and target.samefile(source):
        return
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        shutil.copyfile(source, partial)
        os.chmod(partial, 0o777 & ~_umask())
        os.replace(partial, target)
    except BaseException:
        os.unlink(partial)
        raise


def open_library(path: str) -> tuple[ctypes.CDLL, str, object]:
    """The loaded library, the file it was loaded from, and what keeps that file alive."""
    st = os.stat(path)
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    with _opened_lock:
        first = _opened.setdefault(path, identity)
    if first == identity:
        return ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL), path, None
    # dlopen hands back the library already loaded under this name, not the
    # new file now at the path; load the new file under a fresh name instead.
    holder = tempfile.TemporaryDirectory(prefix="tecomp-load-")
    fresh = os.path.join(holder.name, os.path.basename(path))
    shutil.copyfile(path, fresh)
    return ctypes.CDLL(fresh, mode=ctypes.RTLD_LOCAL), fresh, holder


def load_module(path: str | os.PathLike, owner: object = None) -> Module:
    """Open a library written by ``export_library`` (or the build driver); needs numpy only.

    ``owner`` is kept alive with the module (the build driver passes the
    temporary directory holding the library).
    """
    path = os.path.abspath(os.fspath(path))
    _check_shared_object(path)
    try:
        lib, loaded_from, holder = open_library(path)
    except OSError as exc:
        raise TecompError(f"cannot load library {path}: {exc}") from None
    install_callback(lib)  # tir.call_packed reaches registered Python functions through it
    metadata, infos = parse_metadata(read_metadata(lib, path), path)
    if "cuda" in metadata:
        from .cuda_module import functions_from_metadata
        module = Module(loaded_from, list(functions_from_metadata(metadata, infos, path)), metadata,
                        owner if holder is None else (owner, holder))
        source = metadata["cuda"].get("source")
        if isinstance(source, str):
            module.sources["cuda"] = source
        return module
    functions = []
    error_message = error_message_reader(lib)
    for info in infos:
        try:
            functions.append(PackedFunc(info, lib[info.name], error_message))
        except AttributeError:
            raise TecompError(f"{path}: metadata lists function {info.name!r}, "
                              f"but the library does not export it") from None
    return Module(loaded_from, functions, metadata, owner if holder is None else (owner, holder))
