"""GEMM on the CPU: the classic schedule progression, each step beside numpy.

C = A @ B with 1024x1024 float32 matrices. Steps follow TVM's "How to
optimize GEMM on CPU": naive -> blocking -> vectorize -> loop permutation ->
array packing -> write cache -> parallel; then tecomp's register-blocked
micro-kernel schedule. For each step: compile time (lower + build), GFLOP/s
with 1 and 2 threads, and the ratio to numpy's matmul timed right after it
with the same thread count (so drift of a shared machine hits both alike). Also the launch overhead of a parallel
region. Run: ``python benchmarks/gemm_cpu.py [--size 1024] [--quick]``.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import tecomp
from tecomp import te

from harness import gflops, median_seconds, threads


def _operands(n: int):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    return A, B, k


def naive(n: int):
    A, B, k = _operands(n)
    C = te.compute((n, n), lambda x, y: te.sum(A[x, k] * B[k, y], axis=k), name="C")
    return te.create_schedule(C.op), [A, B, C]


def _blocked(n: int, bn: int, permute: bool, vectorize: bool):
    A, B, k = _operands(n)
    C = te.compute((n, n), lambda x, y: te.sum(A[x, k] * B[k, y], axis=k), name="C")
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    ko, ki = s[C].split(k, factor=4)
    if permute:
        s[C].reorder(xo, yo, ko, xi, ki, yi)
    else:
        s[C].reorder(xo, yo, ko, ki, xi, yi)
    if vectorize:
        s[C].vectorize(yi)
    return s, [A, B, C]


def blocking(n: int):
    return _blocked(n, 32, permute=False, vectorize=False)


def vectorized(n: int):
    return _blocked(n, 32, permute=False, vectorize=True)


def permuted(n: int):
    return _blocked(n, 32, permute=True, vectorize=True)


def _packed_compute(n: int, bn: int):
    A, B, k = _operands(n)
    packed = te.compute((n // bn, n, bn), lambda x, y, z: B[y, x * bn + z], name="packedB")
    C = te.compute((n, n), lambda x, y: te.sum(A[x, k] * packed[y // bn, k, y % bn], axis=k), name="C")
    return A, B, k, packed, C


def packing(n: int, bn: int = 32):
    A, B, k, packed, C = _packed_compute(n, bn)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(xo, yo, ko, xi, ki, yi)
    s[C].vectorize(yi)
    s[packed].vectorize(packed.op.axis[2])
    return s, [A, B, C]


def write_cache(n: int, bn: int = 32, parallel: bool = False):
    A, B, k, packed, C = _packed_compute(n, bn)
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "global")
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    s[CC].compute_at(s[C], yo)
    xc, yc = s[CC].op.axis
    (kaxis,) = s[CC].op.reduce_axis
    ko, ki = s[CC].split(kaxis, factor=4)
    s[CC].reorder(ko, xc, ki, yc)
    s[CC].unroll(ki)
    s[CC].vectorize(yc)
    s[packed].vectorize(packed.op.axis[2])
    if parallel:
        s[C].parallel(xo)
        s[packed].parallel(packed.op.axis[0])
    return s, [A, B, C]


def parallel(n: int):
    return write_cache(n, parallel=True)


def register_blocked(n: int, mr: int = 8, nr: int = 32):
    """tecomp's schedule: an mr x nr accumulator tile held in vector registers.

    The local cache is unrolled over rows and vectorized over columns, so
    LLVM promotes it to registers; the k loop streams packed B rows.
    """
    A, B, k, packed, C = _packed_compute(n, nr)
    s = te.create_schedule(C.op)
    CC = s.cache_write(C, "local")
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[CC].compute_at(s[C], yo)
    xc, yc = s[CC].op.axis
    (kaxis,) = s[CC].op.reduce_axis
    s[CC].reorder(kaxis, xc, yc)
    s[CC].unroll(xc)
    s[CC].vectorize(yc)
    s[C].vectorize(yi)
    s[C].parallel(xo)
    s[packed].vectorize(packed.op.axis[2])
    s[packed].parallel(packed.op.axis[0])
    return s, [A, B, C]


STEPS = [
    ("naive", naive),
    ("blocking", blocking),
    ("vectorize", vectorized),
    ("loop permutation", permuted),
    ("array packing", packing),
    ("write cache", write_cache),
    ("parallel", parallel),
    ("register blocking (tecomp)", register_blocked),
]


def parallel_launch_overhead(regions: int = 2000) -> tuple[float, float]:
    """Seconds per parallel region, launched ``regions`` times inside one compiled call.

    The kernel runs a serial loop over ``regions`` rows with a parallel loop of
    two iterations inside, so libgomp starts ``regions`` parallel regions per
    call; the same kernel with a serial inner loop is the baseline. Both
    figures are per region; their difference is the launch overhead.
    """
    per_region = []
    for par in (True, False):
        A = te.placeholder((regions, 2), name="A")
        B = te.compute((regions, 2), lambda r, i: A[r, i] + 1.0, name="B")
        s = te.create_schedule(B.op)
        if par:
            s[B].parallel(B.op.axis[1])
        f = tecomp.build(s, [A, B])
        a, b = tecomp.nd.array(np.ones((regions, 2), "float32")), tecomp.nd.empty((regions, 2))
        per_region.append(median_seconds(lambda: f(a, b), repeat=7, min_repeat_ms=200) / regions)
    return per_region[0], per_region[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--quick", action="store_true", help="skip the naive step (slowest)")
    args = parser.parse_args()
    n = args.size
    flops = 2.0 * n ** 3
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    want = a @ b
    print(f"GEMM {n}x{n}x{n} float32 on {platform.processor() or platform.machine()}, "
          f"tecomp {tecomp.__version__}, numpy {np.__version__}")
    print(f"{'step':28s} {'compile s':>9s} | {'1 thr GF/s':>10s} {'x numpy':>7s} | "
          f"{'2 thr GF/s':>10s} {'x numpy':>7s}")
    numpy_best = {1: float("inf"), 2: float("inf")}
    for name, make in STEPS:
        if args.quick and name == "naive":
            continue
        start = time.perf_counter()
        s, tensors = make(n)
        f = tecomp.build(s, tensors, name="gemm")
        compile_s = time.perf_counter() - start
        c = tecomp.nd.empty((n, n))
        A_nd, B_nd = tecomp.nd.array(a), tecomp.nd.array(b)
        f(A_nd, B_nd, c)
        np.testing.assert_allclose(c.numpy(), want, rtol=1e-3, atol=1e-2)
        row = f"{name:28s} {compile_s:9.3f} |"
        for nthreads in (1, 2):
            with threads(nthreads):
                slow = name == "naive"
                secs = median_seconds(lambda: f(A_nd, B_nd, c), repeat=3 if slow else 5,
                                      min_repeat_ms=100 if slow else 300)
                numpy_s = median_seconds(lambda: a @ b)  # beside each step: drift hits both alike
            numpy_best[nthreads] = min(numpy_best[nthreads], numpy_s)
            row += f" {gflops(flops, secs):10.1f} {numpy_s / secs:7.2f} |"
        print(row.rstrip("|"))
    print(f"{'numpy (a @ b), best seen':28s} {'':9s} | {gflops(flops, numpy_best[1]):10.1f} {'':7s} | "
          f"{gflops(flops, numpy_best[2]):10.1f}")
    with threads(2):
        par_s, ser_s = parallel_launch_overhead()
    print(f"parallel launch overhead (2 threads): {(par_s - ser_s) * 1e6:.2f} us per region "
          f"({par_s * 1e6:.2f} us per parallel region vs {ser_s * 1e6:.3f} us for the same work serial)")


if __name__ == "__main__":
    main()
