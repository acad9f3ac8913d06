"""The vector unit default schedules size their register tiles for, read off the target."""

from __future__ import annotations

import llvmlite.binding as llvm
import pytest

from tecomp.schedules.vector_unit import AVX2, AVX512, VectorUnit, vector_unit
from tecomp.target import Target


@pytest.mark.parametrize("target, unit", [
    ("llvm -mcpu=skylake-avx512", AVX512),
    ("llvm -mcpu=znver4", AVX512),
    ("llvm -mcpu=znver3", AVX2),
    ("llvm -mcpu=haswell", AVX2),
    ("llvm -mcpu=znver4 -mattr=-avx512f", AVX2),     # a feature turned off wins over the CPU's
    ("llvm -mcpu=generic", VectorUnit(128, 16)),
    ("llvm -mcpu=generic -mattr=+avx2", AVX2),
    ("llvm -mattr=-avx512f", None),                   # the host, never wider than AVX2
])
def test_the_unit_follows_the_cpu_and_its_features(target, unit):
    got = vector_unit(Target(target))
    if unit is None:
        assert got.bits <= 256
    else:
        assert got == unit


def test_the_host_unit_matches_the_host_features():
    llvm.initialize_native_target()
    features = llvm.get_host_cpu_features()
    expected = 512 if features.get("avx512f") else 256 if features.get("avx") else 128
    assert vector_unit().bits == vector_unit(Target("llvm")).bits == expected


def test_lanes_and_accumulators():
    assert (AVX512.lanes(), AVX512.lanes("float64"), AVX512.accumulators) == (16, 8, 28)
    assert (AVX2.lanes(), AVX2.lanes("int8"), AVX2.accumulators) == (8, 32, 12)
    assert (AVX512.rows_that_fit(32), AVX2.rows_that_fit(16), AVX2.rows_that_fit(40), AVX2.rows_that_fit(200)) == (14, 6, 2, 1)
    # four vectors a row: 3 rows would leave no register for the operands (12 + 4 + 1 > 16 on AVX2)
    assert (AVX2.rows_that_fit(32), AVX2.rows_that_fit(24), AVX512.rows_that_fit(64)) == (2, 4, 6)
    with Target("llvm -mcpu=haswell"):
        assert vector_unit() == AVX2
