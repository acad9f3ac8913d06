"""Blocked NCHW[x]c convolutions and layout transforms against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import OperatorError, TuningError
from tecomp.target import Target
from tecomp.schedules import elementwise
from tecomp.schedules.conv2d_nchwc import (
    MIN_TASKS,
    PADDED_CHUNK_BYTES,
    conv2d_nchwc,
    conv2d_nchwc_blocks,
    depthwise_conv2d_nchwc,
    layout_transform,
    pack_conv2d_kernel,
    pack_depthwise_kernel,
    padded_rows_per_task,
    register_tile,
    schedule_conv2d_nchwc,
    schedule_layout_transform,
)

from references import ref_conv

AVX512, AVX2 = Target("llvm -mcpu=skylake-avx512"), Target("llvm -mcpu=haswell")


def _blocked(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2).copy()


def _unblocked(y):
    n, cc, h, w, b = y.shape
    return y.transpose(0, 1, 4, 2, 3).reshape(n, cc * b, h, w)


def _shape(t):
    return tuple(d.value for d in t.shape)


def _run(s, args, inputs):
    mod = tecomp.build(s, args)
    outs = [np.zeros(_shape(a), a.dtype) for a in args[len(inputs):]]
    mod(*inputs, *outs)
    return outs


# (data NCHW, kernel OIHW, strides, padding, dilation, ib, ob)
CASES = {
    "3x3_pad1": ((1, 8, 9, 9), (32, 8, 3, 3), 1, 1, 1, 4, 16),
    "stride2_batch2": ((2, 4, 11, 10), (16, 4, 3, 3), 2, 1, 1, 4, 8),
    "dilation2_asym": ((1, 6, 9, 8), (8, 6, 3, 2), (1, 2), (2, 1, 0, 1), 2, 3, 8),
    "1x1_stride2": ((1, 16, 8, 8), (32, 16, 1, 1), 2, 0, 1, 16, 32),
    "7x7_3in": ((1, 3, 15, 15), (16, 3, 7, 7), 2, 3, 1, 3, 16),
}


@pytest.mark.parametrize("name", list(CASES))
def test_conv2d_nchwc_matches_reference(check, rng, name):
    xs, ws, strides, padding, dilation, ib, ob = CASES[name]
    x_np = rng.uniform(-1, 1, xs).astype("float32")
    w_np = rng.uniform(-1, 1, ws).astype("float32")
    x = te.placeholder((xs[0], xs[1] // ib, xs[2], xs[3], ib), name="x")
    w = te.placeholder((ws[0] // ob, ws[1] // ib, ws[2], ws[3], ib, ob), name="w")
    out = conv2d_nchwc(x, w, strides, padding, dilation)
    expected = ref_conv(x_np, w_np, strides, padding, dilation)
    w_packed = w_np.reshape(ws[0] // ob, ob, ws[1] // ib, ib, *ws[2:]).transpose(0, 2, 4, 5, 3, 1).copy()
    check(schedule_conv2d_nchwc(out), [x, w, out], [_blocked(x_np, ib), w_packed], _blocked(expected, ob),
          rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("xs, ws, groups, strides, ib, ob", [
    ((1, 48, 13, 13), (48, 8, 3, 3), 6, 2, 8, 8),     # RegNet: 8 channels per group
    ((1, 32, 7, 9), (64, 8, 3, 3), 4, 1, 4, 16),       # more outputs than inputs per group
    ((2, 12, 9, 9), (12, 6, 3, 3), 2, 1, 3, 6),        # odd blocks
])
def test_grouped_conv2d_nchwc_matches_reference(check, rng, xs, ws, groups, strides, ib, ob):
    """A grouped conv runs blocked: each output block reads only the input blocks of its group."""
    x_np = rng.uniform(-1, 1, xs).astype("float32")
    w_np = rng.uniform(-1, 1, ws).astype("float32")
    x = te.placeholder((xs[0], xs[1] // ib, xs[2], xs[3], ib), name="x")
    w = te.placeholder(ws, name="w")
    out = conv2d_nchwc(x, pack_conv2d_kernel(w, ib, ob), strides, 1, groups=groups)
    expected = ref_conv(x_np, w_np, strides, 1, groups=groups)
    check(schedule_conv2d_nchwc(out), [x, w, out], [_blocked(x_np, ib), w_np], _blocked(expected, ob),
          rtol=1e-4, atol=1e-4)


def test_blocks_fill_the_vectors_where_the_preferred_ones_do_not_divide(check, rng):
    """1000 output channels: with AVX-512, 40-channel blocks (40 of 48 lanes used) come before 8
    (half of 16); with AVX2, 8 fills its vectors."""
    xs, ws = (1, 64, 13, 13), (200, 64, 1, 1)
    with AVX512:
        assert conv2d_nchwc_blocks((1, 64, 13, 13), (1000, 64, 1, 1)) == (16, 40)
        assert conv2d_nchwc_blocks(xs, ws)[1] == 40
    with AVX2:
        assert conv2d_nchwc_blocks((1, 64, 13, 13), (1000, 64, 1, 1)) == (8, 8)
        assert conv2d_nchwc_blocks((1, 64, 56, 56), (64, 64, 3, 3)) == (8, 16)  # two vectors out
    x_np, w_np = rng.uniform(-1, 1, xs).astype("float32"), rng.uniform(-1, 1, ws).astype("float32")
    x, w = te.placeholder((1, 4, 13, 13, 16), name="x"), te.placeholder(ws, name="w")
    out = conv2d_nchwc(x, pack_conv2d_kernel(w, 16, 40))
    check(schedule_conv2d_nchwc(out), [x, w, out], [_blocked(x_np, 16), w_np], _blocked(ref_conv(x_np, w_np), 40),
          rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("target, out_w, wanted, lanes, tile", [
    (AVX512, 13, 13, 40, 7),    # 13 x 3 vectors would spill; 13 is prime: 7 columns and a tail of 6, not 1
    (AVX512, 111, 14, 32, 14),  # 111 = 3 x 37: 14-column tiles and a tail of 13, not 3
    (AVX512, 56, 14, 32, 14),   # a divisor that fits is kept
    (AVX512, 28, 4, 16, 4),     # a tuned divisor that fits is kept
    (AVX512, 7, 14, 16, 7),
    (AVX2, 56, 14, 16, 6),      # 12 of 16 registers: 6 columns of two vectors, a tail of 2
    (AVX2, 56, 14, 8, 12),      # 12 columns of one vector
    (AVX2, 7, 14, 16, 4),       # 4 + 3
    (AVX2, 13, 13, 40, 2),      # five vectors per column
])
def test_register_tile_fits_the_registers_with_a_peeled_tail(target, out_w, wanted, lanes, tile):
    with target:
        assert register_tile(out_w, wanted, lanes) == tile


def test_a_prime_width_conv_runs_its_tail_tile_without_guards(check, rng):
    """13 output columns in tiles of 7: loop partitioning peels the 6-column tail, so the
    accumulation carries no bounds check (only the tail's copy-out loop keeps one); the numbers
    match numpy."""
    xs, ws = (1, 32, 13, 13), (80, 32, 3, 3)
    x, w = te.placeholder((1, 2, 13, 13, 16), name="x"), te.placeholder(ws, name="w")
    out = conv2d_nchwc(x, pack_conv2d_kernel(w, 16, 40), 1, 1)
    with AVX512:  # 28 accumulators: 9 columns of three vectors at most
        s = schedule_conv2d_nchwc(out)
    lines = str(tecomp.lower(s, [x, w, out])).splitlines()
    loops = [line.strip() for line in lines if line.strip().startswith(("for (", "parallel for ("))]
    guarded = [k for k, line in enumerate(lines) if "if (" in line]
    assert loops.count("for (x.inner, 7) {") == 2  # the main tile and the peeled tail
    for k in guarded:  # the innermost loop around every guard is the copy-out of the tile
        assert next(line for line in reversed(lines[:k]) if "for (" in line).strip() == "for (x.inner, 7) {"
    x_np, w_np = rng.uniform(-1, 1, xs).astype("float32"), rng.uniform(-1, 1, ws).astype("float32")
    check(schedule_conv2d_nchwc(out), [x, w, out], [_blocked(x_np, 16), w_np],
          _blocked(ref_conv(x_np, w_np, 1, 1), 40), rtol=1e-4, atol=1e-4)


def test_depthwise_padding_is_computed_per_output_row():
    """A depthwise conv pads only the kh input rows of one channel block that an output row reads,
    inside the parallel row loop, instead of copying the whole padded input first (here one row
    per task: grouping the 7 output rows would leave 2 tasks)."""
    x, k = te.placeholder((1, 2, 13, 13, 16), name="x"), te.placeholder((2, 3, 3, 16), name="k")
    out = depthwise_conv2d_nchwc(x, k, 2, 1)
    assert padded_rows_per_task(out, out.op.input_tensors[0]) == 1
    text = str(tecomp.lower(schedule_conv2d_nchwc(out), [x, k, out]))
    row_loop = text.index("parallel for")
    assert text.index("allocate pad[float32 * 720]") > row_loop  # 3 rows x 15 columns x 16 lanes


@pytest.mark.parametrize("blocks, size, kernel, stride, rows", [
    (16, 7, 3, 1, 7),  # a 7x7 map: one task per channel block, its 9 padded rows once
    (8, 27, 3, 2, 7),  # stride 2: 14 output rows in tasks of 7 read 15 padded rows
    (4, 21, 5, 1, 3),  # 7 rows would leave 12 tasks, 3 leave 28
    (2, 224, 3, 1, 4),  # 224 wide: 6 padded rows of 226 x 16 lanes fit the chunk, 9 or 10 would not
    (2, 197, 3, 1, 1),  # a prime height: no grouping divides it
])
def test_depthwise_tasks_pad_their_rows_once(check, rng, blocks, size, kernel, stride, rows):
    """A depthwise task groups output rows so that it pads the input rows they share once: rows
    dividing the height, padded rows within PADDED_CHUNK_BYTES, at least MIN_TASKS tasks where
    grouping leaves enough."""
    b, c, pad = 16, blocks * 16, kernel // 2
    x = te.placeholder((1, blocks, size, size, b), name="x")
    k = te.placeholder((blocks, kernel, kernel, b), name="k")
    out = depthwise_conv2d_nchwc(x, k, stride, pad)
    padded = out.op.input_tensors[0]
    assert padded_rows_per_task(out, padded) == rows
    padded_elements = ((rows - 1) * stride + kernel) * (size + 2 * pad) * b
    assert rows == 1 or (blocks * _shape(out)[2] // rows >= MIN_TASKS and padded_elements * 4 <= PADDED_CHUNK_BYTES)
    text = str(tecomp.lower(schedule_conv2d_nchwc(out), [x, k, out]))
    assert text.index(f"allocate pad[float32 * {padded_elements}]") > text.index("parallel for")
    x_np = rng.uniform(-1, 1, (1, c, size, size)).astype("float32")
    w_np = rng.uniform(-1, 1, (c, 1, kernel, kernel)).astype("float32")
    w_packed = w_np[:, 0].reshape(blocks, b, kernel, kernel).transpose(0, 2, 3, 1).copy()
    check(schedule_conv2d_nchwc(out), [x, k, out], [_blocked(x_np, b), w_packed],
          _blocked(ref_conv(x_np, w_np, stride, pad, groups=c), b), rtol=1e-4, atol=1e-4)


def test_grouped_template_blocks_divide_a_group():
    task = autotvm.task.create("schedules/conv2d_nchwc", ((1, 48, 14, 14), (48, 8, 3, 3), (1, 1), (1, 1, 1, 1),
                                                         (1, 1), "float32"), target="llvm")
    assert all(8 % c["tile_ic"].val == 0 and 8 % c["tile_oc"].val == 0
               for c in (task.config_space.get(i) for i in range(len(task.config_space))))


def test_nchw_in_and_out_with_packing_and_fused_epilogue(rng):
    """NCHW data and OIHW kernel packed in the program, bias + residual add + relu fused, NCHW out."""
    x_np = rng.uniform(-1, 1, (1, 8, 7, 7)).astype("float32")
    w_np = rng.uniform(-1, 1, (32, 8, 3, 3)).astype("float32")
    b_np = rng.uniform(-1, 1, (32,)).astype("float32")
    r_np = rng.uniform(-1, 1, (1, 32, 7, 7)).astype("float32")
    x, w = te.placeholder(x_np.shape, name="x"), te.placeholder(w_np.shape, name="w")
    b, r = te.placeholder(b_np.shape, name="b"), te.placeholder(r_np.shape, name="r")
    conv = conv2d_nchwc(layout_transform(x, "NCHW", "NCHW4c"), pack_conv2d_kernel(w, 4, 16), 1, 1, bias=b)
    y = elementwise.relu(elementwise.add(conv, layout_transform(r, "NCHW", "NCHW16c")))
    s = schedule_conv2d_nchwc(y)
    (got_blocked,) = _run(s, [x, w, b, r, y], [x_np, w_np, b_np, r_np])
    blocked = te.placeholder(_shape(y), name="blocked")  # unpacking is a kernel of its own in a model
    out = layout_transform(blocked, "NCHW16c", "NCHW")
    (got,) = _run(te.create_schedule(out.op), [blocked, out], [got_blocked])
    expected = np.maximum(ref_conv(x_np, w_np, padding=1, bias=b_np) + r_np, 0)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("strides, padding, dilation", [(1, 1, 1), (2, (0, 1, 1, 0), 1), (1, 2, 2)])
def test_depthwise_conv2d_nchwc(check, rng, strides, padding, dilation):
    c, b = 32, 16
    x_np = rng.uniform(-1, 1, (1, c, 9, 10)).astype("float32")
    w_np = rng.uniform(-1, 1, (c, 1, 3, 3)).astype("float32")
    bias_np = rng.uniform(-1, 1, (c,)).astype("float32")
    x = te.placeholder((1, c // b, 9, 10, b), name="x")
    w = te.placeholder((c // b, 3, 3, b), name="w")
    bias = te.placeholder((c,), name="bias")
    out = depthwise_conv2d_nchwc(x, w, strides, padding, dilation, bias=bias, activation=("clip", 0.0, 6.0))
    expected = ref_conv(x_np, w_np, strides, padding, dilation, groups=c, bias=bias_np,
                        activation=("clip", 0.0, 6.0))
    w_packed = w_np[:, 0].reshape(c // b, b, 3, 3).transpose(0, 2, 3, 1).copy()
    check(schedule_conv2d_nchwc(out), [x, w, bias, out], [_blocked(x_np, b), w_packed, bias_np],
          _blocked(expected, b), rtol=1e-4, atol=1e-4)


def test_layout_transforms_round_trip(rng):
    x_np = rng.uniform(-1, 1, (2, 24, 3, 5)).astype("float32")
    x = te.placeholder(x_np.shape, name="x")
    to8 = layout_transform(x, "NCHW", "NCHW8c")
    to4 = layout_transform(to8, "NCHW8c", "NCHW4c")
    back = layout_transform(to4, "NCHW4c", "NCHW")
    s = te.create_schedule(back.op)
    got8, got4, got = _run(s, [x, to8, to4, back], [x_np])
    np.testing.assert_array_equal(got8, _blocked(x_np, 8))
    np.testing.assert_array_equal(got4, _blocked(x_np, 4))
    np.testing.assert_array_equal(got, x_np)
    np.testing.assert_array_equal(_unblocked(got8), x_np)


@pytest.mark.parametrize("block,width", [(24, 112), (16, 56), (8, 13), (16, 7), (3, 197)])
def test_scheduled_transform_out_of_blocks(check, rng, block, width):
    """Per (channel block, row) task, the block's channels inside: any width, 16 or 8 lanes or none."""
    x_np = rng.uniform(-1, 1, (1, 2 * block, 3, width)).astype("float32")
    x = te.placeholder((1, 2, 3, width, block), name="x")
    out = layout_transform(x, f"NCHW{block}c", "NCHW")
    s = schedule_layout_transform(out)
    text = str(tecomp.lower(s, [x, out], simple_mode=True))
    assert f"for (ch.inner, {block})" in text, text
    check(s, [x, out], [_blocked(x_np, block)], x_np, rtol=0, atol=0)


def test_packed_kernels(rng):
    w_np = rng.uniform(-1, 1, (32, 8, 3, 2)).astype("float32")
    d_np = rng.uniform(-1, 1, (32, 1, 3, 3)).astype("float32")
    w, d = te.placeholder(w_np.shape, name="w"), te.placeholder(d_np.shape, name="d")
    pw, pd = pack_conv2d_kernel(w, 4, 16), pack_depthwise_kernel(d, 8)
    got_w, got_d = _run(te.create_schedule([pw.op, pd.op]), [w, d, pw, pd], [w_np, d_np])
    assert got_w[1, 0, 2, 1, 3, 5] == w_np[16 + 5, 3, 2, 1]
    assert got_d[2, 1, 0, 7] == d_np[16 + 7, 0, 1, 0]


@pytest.mark.parametrize("index", [0, 7, 30])
def test_conv2d_nchwc_template_configs(rng, index):
    args = ((1, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32")
    task = autotvm.task.create("schedules/conv2d_nchwc", args, target="llvm")
    config = task.config_space.get(index % len(task.config_space))
    s, (data, kernel, out) = task.instantiate(config)
    ib, ob = config["tile_ic"].val, config["tile_oc"].val
    assert _shape(data)[-1] == ib and _shape(out)[-1] == ob
    x_np = rng.uniform(-1, 1, args[0]).astype("float32")
    w_np = rng.uniform(-1, 1, args[1]).astype("float32")
    w_packed = w_np.reshape(32 // ob, ob, 16 // ib, ib, 3, 3).transpose(0, 2, 4, 5, 3, 1).copy()
    (got,) = _run(s, [data, kernel, out], [_blocked(x_np, ib), w_packed])
    np.testing.assert_allclose(_unblocked(got), ref_conv(x_np, w_np, padding=1), rtol=1e-4, atol=1e-4)


def test_depthwise_template_config(rng):
    args = ((1, 32, 10, 10), (32, 1, 3, 3), (2, 2), (1, 1, 1, 1), (1, 1), "float32")
    task = autotvm.task.create("schedules/depthwise_conv2d_nchwc", args, target="llvm")
    config = task.config_space.get(len(task.config_space) - 1)
    s, (data, kernel, out) = task.instantiate(config)
    b = config["tile_c"].val
    x_np = rng.uniform(-1, 1, args[0]).astype("float32")
    w_np = rng.uniform(-1, 1, args[1]).astype("float32")
    w_packed = w_np[:, 0].reshape(32 // b, b, 3, 3).transpose(0, 2, 3, 1).copy()
    (got,) = _run(s, [data, kernel, out], [_blocked(x_np, b), w_packed])
    np.testing.assert_allclose(_unblocked(got), ref_conv(x_np, w_np, 2, 1, groups=32), rtol=1e-4, atol=1e-4)


@pytest.fixture
def avx512():
    with AVX512:
        yield


def test_blocks_follow_the_dispatched_config(avx512):
    args = ((1, 16, 14, 14), (32, 16, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32")
    assert conv2d_nchwc_blocks(args[0], args[1], 1, 1) == (16, 32)  # the fallback's first choices
    task = autotvm.task.create("schedules/conv2d_nchwc", args)
    wanted = next(c for c in (task.config_space.get(i) for i in range(len(task.config_space)))
                  if c["tile_ic"].val == 8 and c["tile_oc"].val == 16)

    class Pick(autotvm.DispatchContext):
        def lookup(self, t):
            return wanted if t.key == task.key else None

    with Pick():
        assert conv2d_nchwc_blocks(args[0], args[1], 1, 1) == (8, 16)
    assert conv2d_nchwc_blocks((1, 32, 8, 8), (32, 1, 3, 3), 1, 1) == (16, 16)  # depthwise


def test_fixed_blocks_leave_only_the_register_tile_to_tune(rng):
    """A model's conv asks for its workload with its blocks fixed: every config of that task
    runs in those blocks (here 8 in, 16 out on 24 -> 48 channels, a 7-wide output) and agrees
    with numpy."""
    args = ((1, 24, 7, 7), (48, 24, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32", (8, 16))
    task = autotvm.task.create("schedules/conv2d_nchwc", args, target="llvm")
    assert len(task.config_space) == len(task.config_space.knobs["tile_ow"]) * 2
    x_np = rng.uniform(-1, 1, args[0]).astype("float32")
    w_np = rng.uniform(-1, 1, args[1]).astype("float32")
    w_packed = w_np.reshape(3, 16, 3, 8, 3, 3).transpose(0, 2, 4, 5, 3, 1).copy()
    for index in range(len(task.config_space)):
        s, (data, kernel, out) = task.instantiate(task.config_space.get(index))
        assert _shape(data)[-1] == 8 and _shape(out)[-1] == 16
        (got,) = _run(s, [data, kernel, out], [_blocked(x_np, 8), w_packed])
        np.testing.assert_allclose(_unblocked(got), ref_conv(x_np, w_np, padding=1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, stride", [((1, 16, 13, 13), 1), ((1, 16, 14, 14), 2)])
def test_a_register_tile_over_two_output_blocks_agrees_with_numpy(rng, shape, stride):
    """``tile_ocn`` = 2 computes two output channel blocks per register tile (each broadcast input
    value feeds both); offered where the blocks pair up in an ungrouped conv, and every config
    of the space agrees with numpy (a prime width, and stride 2)."""
    args = (shape, (32, 16, 3, 3), (stride, stride), (1, 1, 1, 1), (1, 1), "float32", (8, 8))
    task = autotvm.task.create("schedules/conv2d_nchwc", args, target="llvm")
    assert [e.val for e in task.config_space.knobs["tile_ocn"].entities] == [1, 2]
    grouped = autotvm.task.create("schedules/conv2d_nchwc", (shape, (32, 8, 3, 3)) + args[2:], target="llvm")
    assert [e.val for e in grouped.config_space.knobs["tile_ocn"].entities] == [1]
    x_np = rng.uniform(-1, 1, shape).astype("float32")
    w_np = rng.uniform(-1, 1, (32, 16, 3, 3)).astype("float32")
    w_packed = w_np.reshape(4, 8, 2, 8, 3, 3).transpose(0, 2, 4, 5, 3, 1).copy()
    for index in range(len(task.config_space)):
        config = task.config_space.get(index)
        s, (data, kernel, out) = task.instantiate(config)
        (got,) = _run(s, [data, kernel, out], [_blocked(x_np, 8), w_packed])
        np.testing.assert_allclose(_unblocked(got), ref_conv(x_np, w_np, stride, 1), rtol=1e-4, atol=1e-4,
                                   err_msg=str(config))


@pytest.mark.parametrize("width, default", [(13, 64), (7, 16)])
def test_a_1x1_conv_with_weights_beyond_l1_reduces_in_chunks(rng, width, default):
    """A 1x1 conv over 600 channels (38 KB of weights per 16-channel output block) accumulates
    whole rows while each chunk of input channels runs through the row's register tiles: 64
    channels by default with three tiles a row, 16 with two. Every chunk agrees with numpy,
    including a last chunk of 3 input blocks and two output blocks per tile; 480 channels
    (30 KB) get no chunk knob."""
    shape, kshape = (1, 600, width, width), (32, 600, 1, 1)
    args = (shape, kshape, (1, 1), (0, 0, 0, 0), (1, 1), "float32", (8, 16))
    task = autotvm.task.create("schedules/conv2d_nchwc", args, target="llvm")
    space = task.config_space
    assert [e.val for e in space.knobs["ic_chunk"].entities][0] == default
    small = autotvm.task.create("schedules/conv2d_nchwc", ((1, 480, width, width), (32, 480, 1, 1)) + args[2:],
                                target="llvm")
    assert "ic_chunk" not in small.config_space.knobs
    x_np = rng.uniform(-1, 1, shape).astype("float32")
    w_np = rng.uniform(-1, 1, kshape).astype("float32")
    w_packed = w_np.reshape(2, 16, 75, 8, 1, 1).transpose(0, 2, 4, 5, 3, 1).copy()
    want = ref_conv(x_np, w_np)
    fallback = autotvm.FallbackConfigEntity(space)
    for chunk in (0, 16, 32, 64):
        for ocn in (1, 2):
            positions = space.positions(fallback.index)
            positions["ic_chunk"] = space.knobs["ic_chunk"].position_of(chunk)
            positions["tile_ocn"] = space.knobs["tile_ocn"].position_of(ocn)
            s, (data, kernel, out) = task.instantiate(space.get(space.index_of(positions)))
            (got,) = _run(s, [data, kernel, out], [_blocked(x_np, 8), w_packed])
            np.testing.assert_allclose(_unblocked(got), want, rtol=1e-4, atol=1e-4, err_msg=f"chunk {chunk}, {ocn}")


@pytest.mark.parametrize("name, args", [
    ("schedules/conv2d_nchwc", ((1, 24, 7, 7), (48, 24, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32", (5, 16))),
    ("schedules/conv2d_nchwc", ((1, 24, 7, 7), (48, 24, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32", (8,))),
    ("schedules/depthwise_conv2d_nchwc", ((1, 32, 9, 9), (32, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), "float32",
                                          (8, 16))),
])
def test_fixed_blocks_that_do_not_fit_are_refused(name, args):
    with pytest.raises(TuningError, match="blocks"):
        autotvm.task.create(name, args, target="llvm")


@pytest.mark.parametrize("build, argument", [
    (lambda: conv2d_nchwc(te.placeholder((1, 2, 5, 5, 4)), te.placeholder((2, 3, 3, 3, 4, 8))), "kernel"),
    (lambda: conv2d_nchwc(te.placeholder((1, 2, 5, 5)), te.placeholder((2, 2, 3, 3, 4, 8))), "data"),
    (lambda: conv2d_nchwc(te.placeholder((1, 2, 5, 5, 4)), te.placeholder((2, 2, 3, 3, 4, 8)), 0), "strides"),
    (lambda: conv2d_nchwc(te.placeholder((1, 2, 5, 5, 4)), te.placeholder((2, 2, 7, 3, 4, 8))), "kernel"),
    (lambda: depthwise_conv2d_nchwc(te.placeholder((1, 2, 5, 5, 4)), te.placeholder((2, 3, 3, 8))), "kernel"),
    (lambda: conv2d_nchwc(te.placeholder((1, 2, 5, 5, 4)), te.placeholder((2, 2, 3, 3, 4, 8)),
                          activation="gelu"), "activation"),
    (lambda: conv2d_nchwc(te.placeholder((1, 3, 5, 5, 4)), te.placeholder((2, 1, 3, 3, 4, 8)), groups=2), "groups"),
    (lambda: conv2d_nchwc(te.placeholder((1, 4, 5, 5, 4)), te.placeholder((3, 2, 3, 3, 4, 8)), groups=2), "kernel"),
])
def test_conv2d_nchwc_errors(build, argument):
    with pytest.raises(OperatorError, match=f"conv2d_nchwc: argument {argument}"):
        build()


@pytest.mark.parametrize("src, dst, shape, argument", [
    ("NCHW", "NCHW5c", (1, 8, 2, 2), "dst_layout"),
    ("NHWC", "NCHW4c", (1, 8, 2, 2), "src_layout"),
    ("NCHW8c", "NCHW", (1, 2, 2, 2, 4), "x"),
])
def test_layout_transform_errors(src, dst, shape, argument):
    with pytest.raises(OperatorError, match=f"layout_transform: argument {argument}"):
        layout_transform(te.placeholder(shape), src, dst)
