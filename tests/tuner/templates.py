"""Tuning templates shared by the tuner tests (a module, so spawned build workers can import it)."""

from tecomp import te
from tecomp import tuner as autotvm


@autotvm.template("tests/matmul_tile_vec")
def matmul_tile_vec(n, m, k):
    """C[n, m] = A[n, k] @ B[k, m] with two tile splits and an optional vectorized inner loop."""
    A = te.placeholder((n, k), name="A")
    B = te.placeholder((k, m), name="B")
    r = te.reduce_axis((0, k), name="r")
    C = te.compute((n, m), lambda i, j: te.sum(A[i, r] * B[r, j], axis=r), name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", C.op.axis[0], num_outputs=2)
    cfg.define_split("tile_x", C.op.axis[1], num_outputs=2)
    cfg.define_knob("vec", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, C.op.axis[0])
    xo, xi = cfg["tile_x"].apply(s, C, C.op.axis[1])
    s[C].reorder(yo, xo, r, yi, xi)
    if cfg["vec"].val:
        s[C].vectorize(xi)
    return s, [A, B, C]
