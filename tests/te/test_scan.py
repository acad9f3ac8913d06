"""te.scan: recurrences lowered to one serial loop, checked through the interpreter and LLVM against numpy."""

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import ExprError, LoweringError, ScheduleError
from tecomp.tir.functor import post_order_visit
from tecomp.tir.stmt import For, ForKind


def _cumsum(m=7, n=13):
    X = te.placeholder((m, n), name="X")
    state = te.placeholder((m, n), name="state")
    init = te.compute((1, n), lambda _, i: X[0, i], name="init")
    update = te.compute((m, n), lambda t, i: state[t - 1, i] + X[t, i], name="update")
    return X, te.scan(init, update, state, inputs=[X]), update


def _loops(func):
    found = []
    post_order_visit(func.body, lambda n: found.append(n) if isinstance(n, For) else None)
    return found


def test_cumulative_sum_over_rows(check, rng):
    X, res, _ = _cumsum()
    x = rng.standard_normal((7, 13)).astype("float32")
    check(te.create_schedule(res.op), [X, res], [x], np.cumsum(x, axis=0))


def test_scan_is_one_serial_loop_over_the_steps():
    X, res, _ = _cumsum(m=9)
    func = tecomp.lower(te.create_schedule(res.op), [X, res])["main"]
    scan_loops = [f for f in _loops(func) if f.loop_var.name == "scan.idx"]
    assert len(scan_loops) == 1
    assert scan_loops[0].kind is ForKind.SERIAL and scan_loops[0].extent.value == 8


def test_scheduled_update_and_consumer(check, rng):
    """The update split and vectorized, the scan read by a later stage (its buffer allocated inside)."""
    X, res, update = _cumsum(m=7, n=32)
    out = te.compute((7, 32), lambda t, i: res[t, i] * 2.0, name="out")
    s = te.create_schedule(out.op)
    _, inner = s[update].split(update.op.axis[1], factor=8)
    s[update].vectorize(inner)
    x = rng.standard_normal((7, 32)).astype("float32")
    check(s, [X, out], [x], np.cumsum(x, axis=0) * 2)


def test_two_states_and_two_init_rows(check, rng):
    """a[t] = a[t-1] + b[t-2] * x[t], b[t] = a[t-1] - b[t-1]; two rows of init."""
    m, n = 11, 5
    X = te.placeholder((m, n), name="X")
    A0 = te.placeholder((2, n), name="A0")
    sa, sb = te.placeholder((m, n), name="sa"), te.placeholder((m, n), name="sb")
    ia = te.compute((2, n), lambda r, i: A0[r, i], name="ia")
    ib = te.compute((2, n), lambda r, i: A0[r, i] * 0.5, name="ib")
    ua = te.compute((m, n), lambda t, i: sa[t - 1, i] + sb[t - 2, i] * X[t, i], name="ua")
    ub = te.compute((m, n), lambda t, i: sa[t - 1, i] - sb[t - 1, i], name="ub")
    ra, rb = te.scan([ia, ib], [ua, ub], [sa, sb])
    x = rng.standard_normal((m, n)).astype("float32")
    a0 = rng.standard_normal((2, n)).astype("float32")
    a, b = np.zeros((m, n), "float32"), np.zeros((m, n), "float32")
    a[:2], b[:2] = a0, a0 * 0.5
    for t in range(2, m):
        a[t] = a[t - 1] + b[t - 2] * x[t]
        b[t] = a[t - 1] - b[t - 1]
    check(te.create_schedule([ra.op]), [X, A0, ra, rb], [x, a0], [a, b], rtol=1e-4)


@pytest.mark.parametrize("projection_in_loop", [False, True])
def test_body_with_a_reduction_and_a_stage_outside_the_loop(check, rng, projection_in_loop):
    """h[t] = tanh(h[t-1] @ R + x[t] @ W): the input product runs once before the loop (or, moved
    there with compute_at, one row per step inside it), the recurrent product inside it."""
    steps, batch, hidden, inp = 7, 3, 13, 5
    X = te.placeholder((steps, batch, inp), name="X")
    W = te.placeholder((inp, hidden), name="W")
    R = te.placeholder((hidden, hidden), name="R")
    H0 = te.placeholder((batch, hidden), name="H0")
    ki = te.reduce_axis((0, inp), name="ki")
    xw = te.compute((steps + 1, batch, hidden),
                    lambda t, b, j: te.sum(X[te.max(t - 1, 0), b, ki] * W[ki, j], axis=ki), name="xw")
    state = te.placeholder((steps + 1, batch, hidden), name="h")
    init = te.compute((1, batch, hidden), lambda _, b, j: H0[b, j], name="init")
    k = te.reduce_axis((0, hidden), name="k")
    hr = te.compute((steps + 1, batch, hidden), lambda t, b, j: te.sum(state[t - 1, b, k] * R[k, j], axis=k),
                    name="hr")
    update = te.compute((steps + 1, batch, hidden), lambda t, b, j: te.tanh(hr[t, b, j] + xw[t, b, j]),
                        name="update")
    res = te.scan(init, update, state)
    s = te.create_schedule(res.op)
    assert s[xw].attach_type == "root" and s[hr].attach_type == "scope" and s[update].attach_type == "scope"
    if projection_in_loop:
        s[xw].compute_at(s[res], res.op.scan_axis)
    x = rng.standard_normal((steps, batch, inp)).astype("float32")
    w = rng.standard_normal((inp, hidden)).astype("float32") * 0.3
    r = rng.standard_normal((hidden, hidden)).astype("float32") * 0.3
    h0 = rng.standard_normal((batch, hidden)).astype("float32")
    want = [h0]
    for t in range(steps):
        want.append(np.tanh(want[-1] @ r + x[t] @ w))
    func = check(s, [X, W, R, H0, res], [x, w, r, h0], np.stack(want), rtol=1e-4, atol=1e-5)
    allocs = {}
    post_order_visit(func.body, lambda n: allocs.setdefault(n.buffer.name, n.buffer.shape)
                     if type(n).__name__ == "Allocate" else None)
    assert int(np.prod([d.value for d in allocs["hr"]])) == batch * hidden
    rows = 1 if projection_in_loop else steps + 1
    assert int(np.prod([d.value for d in allocs["xw"]])) == rows * batch * hidden


def test_scan_stage_schedule_errors():
    X, res, update = _cumsum()
    s = te.create_schedule(res.op)
    with pytest.raises(ScheduleError, match="is a scan"):
        s[res].split(res.op.scan_axis, factor=2)
    with pytest.raises(ScheduleError, match="only loop of scan"):
        s[update].compute_at(s[res], res.op.spatial_axis[0][0])


def test_body_stage_moved_out_of_the_loop_is_rejected():
    X, res, update = _cumsum()
    s = te.create_schedule(res.op)
    s[update].compute_root()
    with pytest.raises(LoweringError, match="update"):
        tecomp.lower(s, [X, res])


def test_mismatched_shapes_are_rejected():
    X = te.placeholder((7, 13), name="X")
    state = te.placeholder((7, 13), name="state")
    init = te.compute((1, 12), lambda _, i: X[0, i], name="init")
    update = te.compute((7, 13), lambda t, i: state[t - 1, i] + X[t, i], name="update")
    with pytest.raises(ExprError, match="shape"):
        te.scan(init, update, state)
    with pytest.raises(ExprError, match="placeholder"):
        te.scan(update, update, init)


def test_update_reading_the_previous_row_is_vectorized(rng):
    """The update stores row t and loads row t - 1 of the same buffer: lanes stay independent."""
    X, res, update = _cumsum(m=5, n=16)
    s = te.create_schedule(res.op)
    _, inner = s[update].split(update.op.axis[1], factor=8)
    s[update].vectorize(inner)
    func = tecomp.lower(s, [X, res])["main"]
    assert "scan[ramp(" in str(func) and not any(f.loop_var.name.startswith("i.inner") for f in _loops(func))


def _shifted_copy(shift, lanes=8, n=24):
    """``for i (vectorized lanes): A[i + 8] = A[i + 8 + shift] + 1`` on a buffer of ``n`` floats."""
    from tecomp.tir import op as tir_op
    from tecomp.tir.buffer import Buffer
    from tecomp.tir.expr import BufferLoad, Var
    from tecomp.tir.stmt import BufferStore, PrimFunc

    a = Buffer("A", "float32", (tir_op.const(n, "int32"),))
    i = Var("i", "int32")
    store = BufferStore(a, tir_op.add(BufferLoad(a, (tir_op.add(i, 8 + shift),)), 1.0), (tir_op.add(i, 8),))
    loop = For(i, tir_op.const(0, "int32"), tir_op.const(lanes, "int32"), ForKind.VECTORIZED, store)
    return PrimFunc("shifted", (a,), loop, ())


@pytest.mark.parametrize("shift,vectorized", [(-8, True), (3, True), (0, True), (-1, False), (-7, False)])
def test_vectorized_loads_of_the_stored_buffer_respect_lane_order(shift, vectorized):
    from tecomp.lower.vectorize import vectorize_loops
    from tecomp.tir import interpreter

    func = _shifted_copy(shift)
    lowered = vectorize_loops(func.body)
    assert isinstance(lowered, For) != vectorized
    data = np.arange(24, dtype="float32")
    want = data.copy()
    for i in range(8):  # the serial loop
        want[i + 8] = want[i + 8 + shift] + 1
    got = data.copy()
    interpreter.run(type(func)(func.name, func.params, lowered, func.size_vars), [got])
    np.testing.assert_array_equal(got, want)
