"""LLVM's side of a CPU build, in this process or in a worker process: IR text -> object code.

Owns tecomp's TargetMachine settings (``create_machine``) and its O3
pipeline (``optimize``), which ``codegen.build`` uses in process. Run as a
script (``python llvm_worker.py CPU FEATURES``; CPU and FEATURES are the last two arguments) it is one of the worker
processes of ``codegen.parallel_objects``: it answers requests on its
standard streams until its input closes. It imports nothing from tecomp, so
that a worker starts in a tenth of a second.

Protocol, each item a frame (an 8-byte little-endian length, then the
bytes): a request is a frame holding the number of IR texts (ASCII digits)
followed by one frame per text, the first the module and the others LLVM IR
to link into it; the reply is a frame ``ok`` then the object code, or a
frame ``error`` then the message (UTF-8).
"""

from __future__ import annotations

import struct
import sys
from typing import BinaryIO, Optional, Sequence

import llvmlite.binding as llvm


def create_machine(cpu: str, features: str) -> llvm.TargetMachine:
    """An O3, position-independent TargetMachine for this process's triple (LLVM must be initialized)."""
    target = llvm.Target.from_triple(llvm.get_process_triple())
    return target.create_target_machine(cpu=cpu, features=features, opt=3, reloc="pic", codemodel="default")


def optimize(mod: llvm.ModuleRef, tm: llvm.TargetMachine) -> None:
    """Run LLVM's O3 pipeline with SLP vectorization, without LLVM's loop vectorizer or unroller.

    Schedules vectorize and unroll explicitly, so neither LLVM loop pass is needed for speed
    (no loss on the GEMM, operator and model benchmarks), and both miscompiled floordiv /
    floormod-indexed loads on AVX-512 hosts with LLVM 22 (the loop vectorizer alone, and
    together with the unroller; see tests/lower/test_regressions.py).
    """
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = False
    pto.slp_vectorization = True
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def object_code(tm: llvm.TargetMachine, texts: Sequence[str]) -> bytes:
    """Parse and verify ``texts[0]``, link the other texts in, optimize, emit (RuntimeError: LLVM's message)."""
    mod = llvm.parse_assembly(texts[0])
    mod.verify()
    for extra in texts[1:]:
        other = llvm.parse_assembly(extra)
        other.verify()
        mod.link_in(other)
    optimize(mod, tm)
    return tm.emit_object(mod)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)


def read_frame(stream: BinaryIO) -> Optional[bytes]:
    """The next frame, or None at the end of the stream (a truncated frame is an end too)."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    return data if len(data) == size else None


def serve(cpu: str, features: str, requests: BinaryIO, replies: BinaryIO) -> None:
    """Answer requests until ``requests`` ends."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    tm = create_machine(cpu, features)
    while (count := read_frame(requests)) is not None:
        texts = [read_frame(requests) for _ in range(int(count))]
        if any(t is None for t in texts):
            return
        try:
            reply = [b"ok", object_code(tm, [t.decode() for t in texts])]
        except RuntimeError as exc:
            reply = [b"error", str(exc).encode()]
        for item in reply:
            write_frame(replies, item)
        replies.flush()


if __name__ == "__main__":
    serve(sys.argv[-2], sys.argv[-1], sys.stdin.buffer, sys.stdout.buffer)
