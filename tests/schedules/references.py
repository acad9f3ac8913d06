"""numpy references for the convolution and pooling tests."""

from __future__ import annotations

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def _pads(p):
    p = (p,) * 4 if isinstance(p, int) else tuple(p)
    return p * 2 if len(p) == 2 else p


def ref_conv(x, w, strides=1, padding=0, dilation=1, groups=1, bias=None, activation=None):
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = _pair(strides), _pair(dilation), _pads(padding)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oc_n, cpg, kh, kw = w.shape
    oh = (xp.shape[2] - (kh - 1) * dh - 1) // sh + 1
    ow = (xp.shape[3] - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((x.shape[0], oc_n, oh, ow), np.float64)
    opg = oc_n // groups
    for oc in range(oc_n):
        g = oc // opg
        for ry in range(kh):
            for rx in range(kw):
                patch = xp[:, g * cpg:(g + 1) * cpg, ry * dh:ry * dh + sh * (oh - 1) + 1:sh,
                           rx * dw:rx * dw + sw * (ow - 1) + 1:sw]
                out[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, ry, rx])
    if bias is not None:
        out += bias[None, :, None, None]
    if activation == "relu":
        out = np.maximum(out, 0)
    elif activation is not None:
        out = np.clip(out, activation[1], activation[2])
    return out.astype(x.dtype)


def ref_pool(x, kind, kernel, strides, padding, ceil_mode=False, count_include_pad=False):
    (kh, kw), (sh, sw), (pt, pl, pb, pr) = _pair(kernel), _pair(strides), _pads(padding)
    n, c, h, w = x.shape

    def size(n_in, k, s, p0, p1):
        span = n_in + p0 + p1 - k
        out = -(-span // s) + 1 if ceil_mode else span // s + 1
        return out - 1 if ceil_mode and (out - 1) * s >= n_in + p0 else out

    oh, ow = size(h, kh, sh, pt, pb), size(w, kw, sw, pl, pr)
    out = np.zeros((n, c, oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y0, x0 = i * sh - pt, j * sw - pl
            win = x[:, :, max(y0, 0):min(y0 + kh, h), max(x0, 0):min(x0 + kw, w)]
            if kind == "max":
                out[:, :, i, j] = win.max(axis=(2, 3))
                continue
            if count_include_pad:
                count = ((min(y0 + kh, h + pb) - max(y0, -pt)) * (min(x0 + kw, w + pr) - max(x0, -pl)))
            else:
                count = win.shape[2] * win.shape[3]
            out[:, :, i, j] = win.sum(axis=(2, 3)) / count
    return out


