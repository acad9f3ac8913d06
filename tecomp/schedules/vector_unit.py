"""The CPU vector unit a default schedule sizes its register tiles for: vector width and count.

A register-blocked kernel keeps an accumulator tile in vector registers across its whole
reduction; a tile larger than the register file spills to the stack on every step and runs
2-3x slower. AVX-512 has 32 registers of 16 float32 lanes, AVX2 16 of 8, SSE and NEON 16 or 32
of 4, so the tile shapes (dense's row x panel tile, the blocked conv's columns x channel block)
come from the target's unit rather than from constants.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..target import Target
from ..tir import dtype as dt

# Named CPUs (``-mcpu=...``) with AVX-512; other named x86 CPUs are taken as AVX2 machines.
_AVX512_CPUS = frozenset({
    "skylake-avx512", "cascadelake", "cooperlake", "cannonlake", "icelake-client", "icelake-server",
    "tigerlake", "rocketlake", "sapphirerapids", "emeraldrapids", "graniterapids", "znver4", "znver5",
    "x86-64-v4", "knl", "knm"})
_RESERVED = 4  # registers a tile leaves free: operand vectors, a broadcast, an address


@dataclass(frozen=True)
class VectorUnit:
    """``bits`` per vector register and how many ``registers`` the unit has."""

    bits: int
    registers: int

    def lanes(self, dtype: str = "float32") -> int:
        """Elements of ``dtype`` per vector register."""
        return max(1, self.bits // dt.parse(dtype).bits)

    @property
    def accumulators(self) -> int:
        """Vector registers an accumulator tile may hold."""
        return self.registers - _RESERVED

    def rows_that_fit(self, width: int, dtype: str = "float32") -> int:
        """The most rows of ``width``-element accumulators the registers hold beside a row's
        operand vectors and a broadcast, at least one (AVX2: 6 rows of 16 float32, 2 of 32: 3
        rows of 32 are 12 accumulators and 4 operands, which spilled, 46 against 94 GFLOP/s)."""
        vectors = -(-width // self.lanes(dtype))
        return max(1, min(self.accumulators, self.registers - 1 - vectors) // vectors)


AVX512 = VectorUnit(512, 32)
AVX2 = VectorUnit(256, 16)


def _unit_of(cpu: str, features: str) -> VectorUnit:
    flags = {f[1:]: f[0] == "+" for f in features.split(",") if f[:1] in "+-" and f[1:]}  # last one wins
    enabled = {name for name, on in flags.items() if on}
    if flags.get("avx512f", cpu in _AVX512_CPUS):
        return AVX512
    if enabled & {"avx", "avx2"} or (cpu not in ("generic", "") and not enabled):
        return AVX2
    return VectorUnit(128, 32 if "neon" in enabled else 16)


@functools.lru_cache(maxsize=64)
def _unit_for(target: Target) -> VectorUnit:
    # cached: reading the host's features through LLVM costs about 0.2 ms, and every register
    # tile of every kernel a model builds asks
    if target.kind != "llvm":
        return AVX512  # GPU schedules do not size CPU register tiles; keep the default shapes
    from ..codegen.build import cpu_and_features  # the codegen layer reads the host through LLVM
    return _unit_of(*cpu_and_features(target))


def vector_unit(target: Target | None = None) -> VectorUnit:
    """The vector unit of ``target`` (default: the current target, else the host CPU)."""
    return _unit_for(target or Target.current(allow_none=True) or Target("llvm"))
