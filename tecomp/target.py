"""Compilation targets: parsing target strings and the current-target stack.

A target string is a kind followed by ``-key=value`` options, as in TVM::

    llvm                      the host CPU with all its native features
    llvm -mcpu=znver3         a named CPU (its default features)
    llvm -mattr=+avx2,+fma    the host CPU, features adjusted
    cuda -arch=sm_90          CUDA, for a given compute capability

As in TVM, an option may be spelled with two dashes (``--mcpu=znver3``) and a
boolean one may stand alone (``-system-lib`` is ``-system-lib=1``).
``-system-lib`` and ``-runtime=c`` (TVM's options for a library linked
statically into a C program) are accepted and change nothing: every tecomp
build is C-ABI object code, which ``Module.save("x.o")`` writes for linking
into a program (the entry ABI is in ``tecomp.codegen.build``).

Plain ``llvm`` deliberately means the *host* CPU with its native features
(``-mcpu=native``), not TVM's generic x86-64: tecomp compiles for the machine
it runs on unless ``-mcpu`` names another CPU, because that is where the
code runs and generic code leaves AVX/AVX-512 unused.

This module owns the string syntax and the ``with Target(...)`` stack. It
must not import llvmlite or any backend: resolving ``native`` to a CPU name
and feature list is the LLVM code generator's job.
"""

from __future__ import annotations

from typing import Any, Optional, Union

from .context_stack import ThreadLocalStack
from .error import TargetError

KNOWN_KINDS = ("llvm", "cuda")

# option name -> whether the value is a comma-separated list
_OPTIONS = {
    "llvm": {"mcpu": False, "mattr": True, "system-lib": False, "runtime": False},
    "cuda": {"arch": False, "max_num_threads": False},
}
_INT_OPTIONS = ("max_num_threads",)
_BOOL_OPTIONS = {"system-lib"}  # TVM's spellings of true and false -> the canonical value
_BOOL_VALUES = {"1": "1", "true": "1", "0": "0", "false": "0"}
_CHOICES = {"runtime": ("c", "c++")}
_KEYS = {"llvm": ("cpu",), "cuda": ("cuda", "gpu")}

_contexts = ThreadLocalStack()


def __getattr__(name: str) -> Any:
    """``tvm.target.codegen``, imported on first use: loading a compiled library must not import
    the code generators."""
    if name == "codegen":
        from .codegen import llvm_info
        return llvm_info
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class TargetKind(str):
    """The kind of a target (``"llvm"``, ``"cuda"``): a string, with TVM's ``kind.name``."""

    @property
    def name(self) -> str:
        return str(self)


class _Host:
    """``Target.host()`` on the class: this machine's CPU target; ``target.host`` on a target:
    the host given as ``Target(..., host=...)``, or None (TVM's attribute)."""

    def __get__(self, obj: Optional["Target"], cls: type) -> Any:
        if obj is None:
            return lambda: cls("llvm")
        return obj._host


class Target:
    """A parsed target string.

    Attributes: ``kind`` ("llvm" or "cuda"), ``mcpu`` (None, "native" or a
    CPU name), ``mattr`` (tuple of "+feature"/"-feature"), ``arch`` (e.g.
    "sm_90" or None), ``keys`` (("cpu",) or ("cuda", "gpu")).
    ``str(Target(s))`` is a canonical string that parses back to an equal target.
    """

    host = _Host()

    def __init__(self, target: Union[str, "Target"], host: Union[str, "Target", None] = None):
        self._host: Optional[Target] = None if host is None else Target(host)
        if isinstance(target, Target) and host is None:
            self._host = target._host
        text = str(target) if isinstance(target, Target) else target
        if not isinstance(text, str):
            raise TargetError(f"a target must be a string such as 'llvm', got {target!r}")
        words = text.split()
        if not words or words[0] not in KNOWN_KINDS:
            raise _invalid(text, "the kind (first word) is unknown")
        self.kind: TargetKind = TargetKind(words[0])
        self.options: dict[str, str] = {}
        for word in words[1:]:
            key, value = _parse_option(text, self.kind, word)
            self.options[key] = value
        self.mcpu: Optional[str] = self.options.get("mcpu")
        mattr = self.options.get("mattr")
        self.mattr: tuple = tuple(mattr.split(",")) if mattr else ()
        self.arch: Optional[str] = self.options.get("arch")
        self.keys: tuple = _KEYS[self.kind]

    # ------------------------------------------------------------ properties
    @property
    def is_host_cpu(self) -> bool:
        """True for llvm targets that compile for this machine's own CPU."""
        return self.kind == "llvm" and self.mcpu in (None, "native")

    @property
    def max_num_threads(self) -> int:
        """Threads per block (cuda; 1 on CPUs)."""
        if self.kind != "cuda":
            return 1
        return int(self.options.get("max_num_threads", 1024))

    # ------------------------------------------------------------ stack
    def __enter__(self) -> "Target":
        _contexts.items.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _contexts.items.pop()

    @staticmethod
    def current(allow_none: bool = True) -> Optional["Target"]:
        """The innermost target of an enclosing ``with Target(...)`` block in this thread."""
        stack = _contexts.items
        if stack:
            return stack[-1]
        if not allow_none:
            raise TargetError("no target is in scope: use 'with Target(\"llvm\"):' or pass target=")
        return None

    # ------------------------------------------------------------ identity
    def __str__(self) -> str:
        return " ".join([self.kind] + [f"-{k}={v}" for k, v in self.options.items()])

    def __repr__(self) -> str:
        return f"Target({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def _invalid(text: str, detail: str) -> TargetError:
    return TargetError(f"invalid target {text!r}: {detail} (known kinds: {', '.join(KNOWN_KINDS)})")


def _parse_option(text: str, kind: str, word: str) -> tuple[str, str]:
    known = _OPTIONS[kind]
    known_list = ", ".join("-" + k for k in known)
    name = word[2:] if word.startswith("--") else word[1:] if word.startswith("-") else ""
    if name in _BOOL_OPTIONS:
        name += "=1"
    if not name or "=" not in name:
        raise _invalid(text, f"malformed option {word!r}: options look like -key=value "
                             f"(known for {kind}: {known_list})")
    key, value = name.split("=", 1)
    if key not in known:
        raise _invalid(text, f"unknown option -{key}; known for {kind}: {known_list}")
    if not value:
        raise _invalid(text, f"option -{key} has an empty value")
    if key in _BOOL_OPTIONS:
        if value.lower() not in _BOOL_VALUES:
            raise _invalid(text, f"option -{key} is a flag: give it alone or as -{key}=1 / -{key}=0, "
                                 f"not {value!r}")
        value = _BOOL_VALUES[value.lower()]
    if key in _CHOICES and value not in _CHOICES[key]:
        raise _invalid(text, f"option -{key} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
    if key in _INT_OPTIONS and not value.isdigit():
        raise _invalid(text, f"option -{key} must be a positive integer, got {value!r}")
    if known[key] and any(not f or f[0] not in "+-" for f in value.split(",")):
        raise _invalid(text, f"option -{key} must be a comma-separated list of +feature/-feature, "
                             f"got {value!r}")
    return key, value
