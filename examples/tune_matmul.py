"""Tune a matmul template with the XGBoost tuner, then build it with the best config found.

The README's "Tuning in brief", runnable as it stands:

    python examples/tune_matmul.py [TRIALS]     # default 100; records in ./tune.db

No ``if __name__ == "__main__":`` guard is needed: the template travels to the tuner's
worker processes by value. Rerunning with the same database skips configs already measured.
"""

import sys

import numpy as np

import tecomp
from tecomp import te
from tecomp import tuner as autotvm


@autotvm.template("example/matmul")
def matmul(N, L, M, dtype):
    A = te.placeholder((N, L), name="A", dtype=dtype)
    B = te.placeholder((L, M), name="B", dtype=dtype)
    k = te.reduce_axis((0, L), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    cfg = autotvm.get_config()                       # the config space, then each config tried
    cfg.define_split("tile_y", C.op.axis[0], num_outputs=2)
    cfg.define_split("tile_x", C.op.axis[1], num_outputs=2)
    cfg.define_knob("vectorize", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, C.op.axis[0])
    xo, xi = cfg["tile_x"].apply(s, C, C.op.axis[1])
    s[C].reorder(yo, xo, k, yi, xi)
    if cfg["vectorize"].val:
        s[C].vectorize(xi)
    return s, [A, B, C]


N = L = M = 256
trials = int(sys.argv[1]) if len(sys.argv) > 1 else 100

task = autotvm.task.create("example/matmul", args=(N, L, M, "float32"), target="llvm")
measure = autotvm.measure_option(builder=autotvm.LocalBuilder(), runner=autotvm.LocalRunner(number=5))
tuner = autotvm.tuner.XGBTuner(task)
tuner.tune(n_trial=trials, measure_option=measure,
           callbacks=[autotvm.callback.progress_bar(trials), autotvm.callback.log_to_db("tune.db")])

with autotvm.apply_history_best("tune.db"):
    s, args = matmul(N, L, M, "float32")             # the template, now with the best config
    f = tecomp.build(s, args)

rng = np.random.default_rng(0)
a, b = rng.random((N, L), dtype=np.float32), rng.random((L, M), dtype=np.float32)
c = np.zeros((N, M), dtype=np.float32)
f(a, b, c)
np.testing.assert_allclose(c, a @ b, rtol=1e-4)
print(f"best of {len(tuner.visited)} configs: {tuner.best_flops / 1e9:.2f} GFLOP/s, {tuner.best_config}")
