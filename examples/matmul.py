"""Define, schedule, build and run a matrix multiply; print its speed beside numpy's.

This is tecomp's main job end to end: a tensor expression for C = A @ B, a
schedule that packs B, keeps an 8x32 tile of C in vector registers and runs
row blocks in parallel, the loop IR it lowers to, the compiled kernel checked
against numpy, and both timed in the same run.

    python examples/matmul.py [--size 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tecomp
from tecomp import te


def matmul_schedule(n: int, mr: int = 8, nr: int = 32):
    """C = A @ B for n x n float32 matrices, scheduled for a CPU with wide vectors."""
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    packed_b = te.compute((n // nr, n, nr), lambda x, y, z: B[y, x * nr + z], name="packedB")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * packed_b[j // nr, k, j % nr], axis=k), name="C")

    s = te.create_schedule(C.op)
    acc = s.cache_write(C, "local")                       # the accumulator tile
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[acc].compute_at(s[C], jo)
    ai, aj = s[acc].op.axis
    (ak,) = s[acc].op.reduce_axis
    s[acc].reorder(ak, ai, aj)
    s[acc].unroll(ai)                                     # mr rows ...
    s[acc].vectorize(aj)                                  # ... of nr-wide vectors stay in registers
    s[C].vectorize(ji)
    s[C].parallel(io)
    s[packed_b].vectorize(packed_b.op.axis[2])
    s[packed_b].parallel(packed_b.op.axis[0])
    return s, [A, B, C]


def median_seconds(fn, repeat: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description="tecomp matmul, end to end")
    parser.add_argument("--size", type=int, default=1024, help="matrix size (a multiple of 32)")
    args = parser.parse_args()
    n = args.size
    if n % 32:
        parser.error("--size must be a multiple of 32 (the schedule packs B in 32-column panels)")

    s, tensors = matmul_schedule(n)
    print("Loop IR of a 64x64 instance of the same schedule:\n")
    small_s, small_tensors = matmul_schedule(64)
    print(tecomp.lower(small_s, small_tensors, name="matmul64"))

    start = time.perf_counter()
    f = tecomp.build(s, tensors, target="llvm", name="matmul")
    print(f"\ncompiled in {time.perf_counter() - start:.3f} s for {tecomp.target.Target('llvm')}")

    rng = np.random.default_rng(0)
    a_np = rng.random((n, n), dtype=np.float32)
    b_np = rng.random((n, n), dtype=np.float32)
    dev = tecomp.cpu(0)
    a, b = tecomp.nd.array(a_np, dev), tecomp.nd.array(b_np, dev)
    c = tecomp.nd.empty((n, n), "float32", dev)
    f(a, b, c)
    expected = a_np @ b_np
    np.testing.assert_allclose(c.numpy(), expected, rtol=1e-4, atol=1e-3)
    print(f"result matches numpy (max abs difference {np.abs(c.numpy() - expected).max():.2e})")

    flops = 2.0 * n ** 3
    tecomp_s = f.time_evaluator(f.entry_name, dev, number=3, repeat=5, min_repeat_ms=200)(a, b, c).median
    numpy_s = median_seconds(lambda: a_np @ b_np)
    print(f"tecomp: {flops / tecomp_s / 1e9:7.1f} GFLOP/s  ({tecomp_s * 1e3:.2f} ms)")
    print(f"numpy : {flops / numpy_s / 1e9:7.1f} GFLOP/s  ({numpy_s * 1e3:.2f} ms)")
    print(f"tecomp / numpy speed: {numpy_s / tecomp_s:.2f}x")


if __name__ == "__main__":
    main()
