"""conv2d_nchw and the pooling operators against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import OperatorError
from tecomp.schedules.conv2d import conv2d_nchw, schedule_conv2d_nchw
from tecomp.schedules.pooling import (
    avg_pool2d,
    global_avg_pool2d,
    max_pool2d,
    schedule_pool,
)

from references import ref_conv, ref_pool


def _build(s, args):
    return tecomp.build(tecomp.lower(s, args)["main"], target="llvm")


def _shape(t):
    return tuple(d.value for d in t.shape)


# ----------------------------------------------------------------------------- conv2d

CONV_CASES = {
    "3x3_pad1": {"x": (1, 2, 6, 6), "w": (3, 2, 3, 3), "padding": 1},
    "stride2": {"x": (1, 2, 7, 7), "w": (2, 2, 3, 3), "strides": 2, "padding": 1},
    "dilation2": {"x": (1, 2, 7, 6), "w": (2, 2, 3, 3), "dilation": 2, "padding": (2, 1)},
    "groups2": {"x": (1, 4, 5, 5), "w": (6, 2, 3, 3), "groups": 2, "padding": 1},
    "depthwise": {"x": (1, 3, 6, 6), "w": (3, 1, 3, 3), "groups": 3, "padding": 1},
    "odd_batch2_asym": {"x": (2, 3, 5, 7), "w": (2, 3, 2, 3), "padding": (1, 0, 0, 2), "strides": (2, 1)},
    "1x1_bias_relu": {"x": (1, 3, 4, 5), "w": (4, 3, 1, 1), "bias": True, "activation": "relu"},
    "bias_clip": {"x": (1, 2, 6, 6), "w": (2, 2, 3, 3), "padding": 1, "bias": True, "activation": ("clip", -1.0, 1.5)},
}


def _conv_problem(rng, case):
    x_np = rng.uniform(-1, 1, case["x"]).astype("float32")
    w_np = rng.uniform(-1, 1, case["w"]).astype("float32")
    x, w = te.placeholder(case["x"], name="x"), te.placeholder(case["w"], name="w")
    kwargs = {k: v for k, v in case.items() if k not in ("x", "w", "bias")}
    args, inputs, b_np = [x, w], [x_np, w_np], None
    if case.get("bias"):
        b = te.placeholder((case["w"][0],), name="b")
        b_np = rng.uniform(-1, 1, case["w"][0]).astype("float32")
        args, inputs, kwargs["bias"] = args + [b], inputs + [b_np], b
    out = conv2d_nchw(x, w, **kwargs)
    ref_kwargs = {k: v for k, v in kwargs.items() if k != "bias"}
    expected = ref_conv(x_np, w_np, bias=b_np, **ref_kwargs)
    return out, args + [out], inputs, expected


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_default_schedule(check, rng, name):
    out, args, inputs, expected = _conv_problem(rng, CONV_CASES[name])
    check(schedule_conv2d_nchw(out), args, inputs, expected, rtol=1e-4, atol=1e-4)


def test_conv2d_resnet_layer(rng):
    x, w = te.placeholder((1, 64, 56, 56), name="x"), te.placeholder((64, 64, 3, 3), name="w")
    out = conv2d_nchw(x, w, padding=1)
    mod = _build(schedule_conv2d_nchw(out), [x, w, out])
    x_np = rng.uniform(-1, 1, _shape(x)).astype("float32")
    w_np = rng.uniform(-1, 1, _shape(w)).astype("float32")
    got = np.zeros(_shape(out), "float32")
    mod(x_np, w_np, got)
    np.testing.assert_allclose(got, ref_conv(x_np, w_np, padding=1), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("index", [0, 5, 17, 23])
def test_conv2d_template_configs(rng, index):
    args = ((2, 4, 9, 11), (6, 2, 3, 3), 1, 1, 1, 2, "float32")
    task = autotvm.task.create("schedules/conv2d_nchw", args, target="llvm")
    assert len(task.config_space) == 24
    s, tensors = task.instantiate(task.config_space.get(index))
    x_np = rng.uniform(-1, 1, args[0]).astype("float32")
    w_np = rng.uniform(-1, 1, args[1]).astype("float32")
    got = np.zeros(_shape(tensors[2]), "float32")
    _build(s, tensors)(x_np, w_np, got)
    np.testing.assert_allclose(got, ref_conv(x_np, w_np, padding=1, groups=2), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kwargs, argument", [
    ({"w": (3, 3, 3, 3)}, "kernel"),
    ({"w": (3, 2, 3, 3), "groups": 2}, "groups"),
    ({"strides": 0}, "strides"),
    ({"dilation": (1, -1)}, "dilation"),
    ({"padding": -1}, "padding"),
    ({"w": (2, 2, 9, 3)}, "kernel"),
    ({"dtype": "int32"}, "data"),
    ({"activation": "gelu"}, "activation"),
])
def test_conv2d_errors(kwargs, argument):
    kwargs = dict(kwargs)
    x = te.placeholder((1, 2, 6, 6), kwargs.pop("dtype", "float32"), name="x")
    w = te.placeholder(kwargs.pop("w", (2, 2, 3, 3)), x.dtype, name="w")
    with pytest.raises(OperatorError, match=f"conv2d_nchw: argument {argument}"):
        conv2d_nchw(x, w, **kwargs)


# ----------------------------------------------------------------------------- pooling

POOL_CASES = [
    ("max", {"kernel": 3, "strides": 2, "padding": 1}),
    ("max", {"kernel": 2, "strides": 2, "padding": 0, "ceil_mode": True}),
    ("max", {"kernel": (3, 2), "strides": (1, 2), "padding": (1, 0, 0, 1)}),
    ("avg", {"kernel": 3, "strides": 2, "padding": 1}),
    ("avg", {"kernel": 3, "strides": 2, "padding": 1, "count_include_pad": True}),
    ("avg", {"kernel": 2, "strides": 2, "padding": 1, "ceil_mode": True, "count_include_pad": True}),
]


@pytest.mark.parametrize("kind, kwargs", POOL_CASES)
def test_pool(check, rng, kind, kwargs):
    x_np = rng.uniform(-2, 2, (2, 2, 7, 6)).astype("float32")
    x = te.placeholder(x_np.shape, name="x")
    out = (max_pool2d if kind == "max" else avg_pool2d)(x, **kwargs)
    expected = ref_pool(x_np, kind, **kwargs)
    assert _shape(out) == expected.shape
    check(schedule_pool(out), [x, out], [x_np], expected)


def test_max_pool_never_reads_padding(check):
    x_np = -np.arange(1, 37, dtype="float32").reshape(1, 1, 6, 6) - 100
    x = te.placeholder(x_np.shape, name="x")
    out = max_pool2d(x, 3, 1, 1)
    check(schedule_pool(out), [x, out], [x_np], ref_pool(x_np, "max", 3, 1, 1))


def test_global_avg_pool(check, rng):
    x_np = rng.uniform(-2, 2, (2, 3, 5, 4)).astype("float32")
    x = te.placeholder(x_np.shape, name="x")
    out = global_avg_pool2d(x)
    check(schedule_pool(out), [x, out], [x_np], x_np.mean(axis=(2, 3), keepdims=True))


@pytest.mark.parametrize("fn, kwargs, argument", [
    (max_pool2d, {"kernel": 0}, "kernel"),
    (max_pool2d, {"kernel": 9}, "kernel"),
    (avg_pool2d, {"kernel": 2, "strides": 0}, "strides"),
    (avg_pool2d, {"kernel": 2, "padding": (1, -1)}, "padding"),
])
def test_pool_errors(fn, kwargs, argument):
    x = te.placeholder((1, 1, 6, 6), name="x")
    with pytest.raises(OperatorError, match=f"{fn.__name__}: argument {argument}"):
        fn(x, **kwargs)


def test_global_avg_pool_dtype_error():
    with pytest.raises(OperatorError, match="global_avg_pool2d: argument x"):
        global_avg_pool2d(te.placeholder((1, 1, 2, 2), "int32", name="x"))


def _blocked(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2).copy()


@pytest.mark.parametrize("kind, kwargs", POOL_CASES[:1] + POOL_CASES[3:5])
def test_pool_blocked_layout(check, rng, kind, kwargs):
    x_np = rng.uniform(-2, 2, (1, 32, 7, 6)).astype("float32")
    x = te.placeholder((1, 2, 7, 6, 16), name="x")
    out = (max_pool2d if kind == "max" else avg_pool2d)(x, layout="NCHW16c", **kwargs)
    check(schedule_pool(out), [x, out], [_blocked(x_np, 16)], _blocked(ref_pool(x_np, kind, **kwargs), 16))


def test_global_avg_pool_blocked_layout(check, rng):
    x_np = rng.uniform(-2, 2, (2, 16, 5, 4)).astype("float32")
    x = te.placeholder((2, 2, 5, 4, 8), name="x")
    out = global_avg_pool2d(x, layout="NCHW8c")
    check(schedule_pool(out), [x, out], [_blocked(x_np, 8)], _blocked(x_np.mean(axis=(2, 3), keepdims=True), 8))


@pytest.mark.parametrize("shape, layout, argument", [
    ((1, 2, 5, 5, 8), "NCHW16c", "x"), ((1, 2, 5, 5), "NHWC", "layout"), ((1, 2, 5, 5), "NCHW8c", "x")])
def test_pool_layout_errors(shape, layout, argument):
    with pytest.raises(OperatorError, match=f"max_pool2d: argument {argument}"):
        max_pool2d(te.placeholder(shape), 2, layout=layout)


@pytest.mark.parametrize("kind, index", [("max", 0), ("max", 5), ("avg", 3), ("avg", 4)])
def test_pool_template_configs(check, rng, kind, index):
    args = (kind, (1, 2, 9, 8, 16), 3, 2, 1, "NCHW16c")
    task = autotvm.task.create("schedules/pool2d", args, target="llvm")
    s, tensors = task.instantiate(task.config_space.get(index % len(task.config_space)))
    x_np = rng.uniform(-2, 2, (1, 32, 9, 8)).astype("float32")
    check(s, tensors, [_blocked(x_np, 16)], _blocked(ref_pool(x_np, kind, 3, 2, 1), 16))


def test_pool_schedule_applies_the_dispatched_config(rng):
    """A blocked pool built outside its template gets the dispatched config's knobs."""
    x = te.placeholder((1, 2, 9, 8, 16), name="x")
    out = max_pool2d(x, 3, 2, 1, layout="NCHW16c")
    task = autotvm.task.create("schedules/pool2d", out.op.attrs["workload"], target="llvm")
    wanted = next(task.config_space.get(i) for i in range(len(task.config_space))
                  if task.config_space.get(i)["tile_ow"].val == 4)

    class Pick(autotvm.DispatchContext):
        def lookup(self, t):
            return wanted if t.key == task.key else None

    with Pick():
        text = str(tecomp.lower(schedule_pool(out), [x, out]))
    assert text == str(tecomp.lower(*task.instantiate(wanted)))
    assert text != str(tecomp.lower(schedule_pool(out), [x, out]))  # the fallback (tile 1) differs
