"""The thread pool's object file (``runtime/thread_pool.c``), compiled once per machine.

Every shared library tecomp links (a kernel build, a model library) includes it, with
its symbols hidden, so a library runs its parallel loops on its own pool and needs
nothing from tecomp at run time. The object is cached under
``<TECOMP_CACHE_DIR>/thread_pool`` by a hash of the source and the compiler.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from .. import config
from ..error import BuildError

SOURCE = Path(__file__).resolve().parent.parent / "runtime" / "thread_pool.c"
FLAGS = ("-O2", "-fPIC", "-std=c11", "-pthread", "-D_POSIX_C_SOURCE=200112L", "-fvisibility=hidden")


def pool_object(gcc: str) -> Path:
    """The pool's object file, compiled by ``gcc`` (cached)."""
    text = SOURCE.read_text()
    digest = hashlib.sha256("\0".join((text, gcc, *FLAGS)).encode()).hexdigest()[:24]
    out = config.cache_dir() / "thread_pool" / f"thread_pool-{digest}.o"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tecomp-pool-") as tmp:
        obj = Path(tmp) / "thread_pool.o"
        done = subprocess.run([gcc, *FLAGS, "-c", str(SOURCE), "-o", str(obj)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"compiling tecomp's thread pool ({SOURCE}) failed (gcc exit {done.returncode}):\n"
                             f"{done.stderr.strip()}")
        os.replace(obj, out)  # another process may have compiled the same file: either copy is right
    return out
