"""Winograd 3x3 convolution in the blocked layout against numpy references."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.error import OperatorError
from tecomp.schedules import conv2d_winograd
from tecomp.schedules.conv2d_winograd import (conv2d_winograd_nchwc, pack_winograd_kernel,
                                              schedule_conv2d_winograd_nchwc, winograd_matrices, winograd_tile)

from references import ref_conv


def _blocked(x, b):
    n, c, h, w = x.shape
    return x.reshape(n, c // b, b, h, w).transpose(0, 1, 3, 4, 2).copy()


@pytest.mark.parametrize("tile", [2, 4])
def test_matrices_compute_a_tile_of_the_correlation(rng, tile):
    """A^T [(G g G^T) * (B^T d B)] A is the 3x3 correlation of one input tile, in float64."""
    a, b, g = winograd_matrices(tile)
    d = rng.uniform(-1, 1, (tile + 2, tile + 2))
    k = rng.uniform(-1, 1, (3, 3))
    direct = np.array([[(d[i:i + 3, j:j + 3] * k).sum() for j in range(tile)] for i in range(tile)])
    np.testing.assert_allclose(a.T @ ((g @ k @ g.T) * (b.T @ d @ b)) @ a, direct, rtol=1e-12, atol=1e-12)
    assert set(np.unique(np.abs(b))) <= {0.0, 1.0, 2.0, 4.0, 5.0}  # Lavin and Gray's B: no rounding in it


# (data NCHW, OC, padding, tile, ib, ob): odd sizes make partial tiles on the bottom and right
CASES = {
    "9x9_tile4": ((1, 16, 9, 9), 32, 1, 4, 16, 16),
    "prime_13_tile4": ((1, 32, 13, 13), 16, 1, 4, 16, 16),
    "wide_197_tile2": ((1, 16, 5, 197), 16, 1, 2, 16, 16),
    "batch2_asymmetric_pads": ((2, 16, 7, 11), 48, (1, 0, 2, 1), 2, 8, 16),
    "no_padding": ((1, 16, 10, 10), 16, 0, 4, 16, 8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_winograd_conv_matches_reference(check, rng, name):
    xs, oc, padding, tile, ib, ob = CASES[name]
    x_np = rng.uniform(-1, 1, xs).astype("float32")
    w_np = rng.uniform(-1, 1, (oc, xs[1], 3, 3)).astype("float32")
    x = te.placeholder((xs[0], xs[1] // ib, xs[2], xs[3], ib), name="x")
    w = te.placeholder(w_np.shape, name="w")
    out = conv2d_winograd_nchwc(x, pack_winograd_kernel(w, tile, ob), 1, padding)
    expected = ref_conv(x_np, w_np, 1, padding, 1)
    check(schedule_conv2d_winograd_nchwc(out), [x, w, out], [_blocked(x_np, ib), w_np], _blocked(expected, ob),
          rtol=1e-4, atol=1e-4)


def test_bias_activation_and_a_residual_add_run_in_the_output_transform(rng):
    xs, oc = (1, 16, 12, 12), 32
    x_np = rng.uniform(-1, 1, xs).astype("float32")
    w_np = rng.uniform(-1, 1, (oc, 16, 3, 3)).astype("float32")
    b_np = rng.uniform(-1, 1, oc).astype("float32")
    r_np = rng.uniform(-1, 1, (1, 2, 12, 12, 16)).astype("float32")
    x, w = te.placeholder((1, 1, 12, 12, 16), name="x"), te.placeholder(w_np.shape, name="w")
    bias, residual = te.placeholder((oc,), name="bias"), te.placeholder(r_np.shape, name="r")
    conv = conv2d_winograd_nchwc(x, pack_winograd_kernel(w, 4, 16), 1, 1, bias=bias, activation="relu")
    out = te.compute(conv.shape, lambda *i: conv(*i) + residual(*i), name="residual")
    s = schedule_conv2d_winograd_nchwc(out)
    assert "allocate winograd_output[" not in str(tecomp.lower(s, [x, w, bias, residual, out]))  # inlined
    got = np.zeros(r_np.shape, "float32")
    tecomp.build(s, [x, w, bias, residual, out])(_blocked(x_np, 16), w_np, b_np, r_np, got)
    expected = _blocked(np.maximum(ref_conv(x_np, w_np, 1, 1, 1) + b_np[None, :, None, None], 0), 16) + r_np
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_transform_tables_fold_to_their_non_zero_terms():
    """Each unrolled position of a transform keeps only its own entry: no select survives."""
    x, k = te.placeholder((1, 1, 8, 8, 16), name="x"), te.placeholder((6, 6, 1, 16, 16), name="k")
    out = conv2d_winograd_nchwc(x, k, 1, 1)
    text = str(tecomp.lower(schedule_conv2d_winograd_nchwc(out), [x, k, out]))
    assert "select(" not in text


def test_bad_arguments_name_what_is_wrong():
    x = te.placeholder((1, 1, 8, 8, 16), name="x")
    with pytest.raises(OperatorError, match="strides and dilation 1"):
        conv2d_winograd_nchwc(x, te.placeholder((6, 6, 1, 16, 16), name="k"), strides=2)
    with pytest.raises(OperatorError, match="pack_winograd_kernel"):
        conv2d_winograd_nchwc(x, te.placeholder((5, 5, 1, 16, 16), name="k"))
    with pytest.raises(OperatorError, match="3x3 kernel"):
        pack_winograd_kernel(te.placeholder((16, 16, 5, 5), name="w"))
    with pytest.raises(OperatorError, match="tile"):
        winograd_matrices(3)


@pytest.mark.parametrize("data, kernel, kwargs, tile", [
    ((1, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}, 4),
    ((1, 128, 28, 28), (128, 128, 3, 3), {"padding": 1}, 4),
    ((1, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}, 2),   # 4 does not divide 14, 2 does
    ((1, 512, 7, 7), (512, 512, 3, 3), {"padding": 1}, 2),     # 4 tiles of 4: the kernel would dominate
    ((1, 96, 197, 13), (96, 96, 3, 3), {"padding": 1}, 4),     # neither divides: the larger tile
    ((1, 64, 56, 56), (64, 64, 3, 3), {"padding": 1, "strides": 2}, None),
    ((1, 64, 56, 56), (64, 32, 3, 3), {"padding": 1, "groups": 2}, None),
    ((1, 64, 56, 56), (64, 64, 1, 1), {}, None),
    ((1, 8, 56, 56), (64, 8, 3, 3), {"padding": 1}, None),      # too few input channels
    ((1, 32, 14, 14), (32, 32, 3, 3), {"padding": 1}, None),    # 3.6 MFLOP: not worth its compile time
])
def test_tile_choice(data, kernel, kwargs, tile):
    assert winograd_tile(data, kernel, **kwargs) == tile


def test_min_flop_is_the_threshold():
    assert winograd_tile((1, 64, 16, 16), (64, 64, 3, 3), padding=1) is None  # 19 MFLOP
    assert 2 * 64 * 64 * 9 * 16 * 16 < conv2d_winograd.MIN_FLOP <= 2 * 64 * 64 * 9 * 32 * 32
    assert winograd_tile((1, 64, 32, 32), (64, 64, 3, 3), padding=1) == 4
