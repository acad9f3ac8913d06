"""``tensorize`` on a CUDA schedule: each thread's reduction loop replaced by a tensor intrinsic
written as loop IR, checked against numpy by interpretation and as emitted CUDA C, compiled by nvcc."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from tecomp import te

from gpu_helpers import emulate_and_compile

sys.path.insert(0, str(Path(__file__).parent.parent / "lower"))
from test_tensorize import _matmul_nt, intrin_dot  # noqa: E402


def test_dot_intrinsic_inside_bound_threads():
    A, B, C = _matmul_nt(13, 7, 13)
    s = te.create_schedule(C.op)
    i, j = C.op.axis
    s[C].bind(i, te.thread_axis("blockIdx.x"))
    s[C].bind(j, te.thread_axis("threadIdx.x"))
    s[C].tensorize(C.op.reduce_axis[0], intrin_dot(13))
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, (13, 13)).astype("float32")
    b = rng.uniform(-1, 1, (7, 13)).astype("float32")
    func, _ = emulate_and_compile(s, [A, B, C], [a, b], a @ b.T)
    assert "for (t, 13)" in str(func) and "for (k" not in str(func)
