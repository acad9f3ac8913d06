"""api.md section 4, as a TVM user writes it, end to end on a small matmul."""

import numpy as np

import tecomp
from tecomp import te
from tecomp import tuner as autotvm


@autotvm.template("test_api/matmul")
def matmul(N, L, M, dtype):
    A = te.placeholder((N, L), name="A", dtype=dtype)
    B = te.placeholder((L, M), name="B", dtype=dtype)
    k = te.reduce_axis((0, L), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=2)
    cfg.define_knob("unroll", [0, 1])
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(yo, xo, k, yi, xi)
    if cfg["unroll"].val:
        s[C].unroll(yi)
    return s, [A, B, C]


def test_tune_then_build_with_the_best_record(tmp_path, capsys):
    db = str(tmp_path / "tune.db")
    task = autotvm.task.create("test_api/matmul", args=(64, 64, 64, "float32"), target="llvm")
    text = str(task.config_space)
    assert "tile_y" in text and "unroll" in text and len(task.config_space) == 7 * 7 * 2
    measure = autotvm.measure_option(builder=autotvm.LocalBuilder(),
                                     runner=autotvm.LocalRunner(number=5, repeat=1, timeout=10))
    tuner = autotvm.tuner.XGBTuner(task, plan_size=8, seed=0)
    tuner.tune(n_trial=16, early_stopping=100, measure_option=measure,
               callbacks=[autotvm.callback.progress_bar(16), autotvm.callback.log_to_db(db)])
    best = autotvm.RecordDB(db).best(task.key, str(task.target))
    assert best is not None and best.error_no == 0

    with autotvm.apply_history_best(db):
        with tecomp.target.Target("llvm"):
            s, args = matmul(64, 64, 64, "float32")
            f = tecomp.build(s, args)
    chosen = autotvm.ConfigEntity.from_json_dict(task.config_space, best.config)
    s_best, args_best = task.instantiate(chosen)
    assert str(tecomp.lower(s, args)) == str(tecomp.lower(s_best, args_best))
    rng = np.random.default_rng(0)
    a, b = rng.random((64, 64), dtype=np.float32), rng.random((64, 64), dtype=np.float32)
    c = np.zeros((64, 64), "float32")
    f(a, b, c)
    np.testing.assert_allclose(c, a @ b, rtol=1e-4)
