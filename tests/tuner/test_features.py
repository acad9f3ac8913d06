"""Loop-IR feature vectors: fixed length, deterministic, schedule-sensitive, fast, versioned."""


import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp.tuner.cost_model import CostModelError, XGBoostCostModel
from tecomp.tuner.features import FEATURE_LENGTH, FEATURE_NAMES, FEATURE_VERSION, extract_features


def _matmul(n):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    return A, B, C, k


def naive(n=64):
    A, B, C, _ = _matmul(n)
    return te.create_schedule(C.op), [A, B, C]


def blocked(n=64, bn=16, permute=False, vectorize=False):
    A, B, C, k = _matmul(n)
    s = te.create_schedule(C.op)
    xo, yo, xi, yi = s[C].tile(C.op.axis[0], C.op.axis[1], bn, bn)
    ko, ki = s[C].split(k, factor=4)
    s[C].reorder(*((xo, yo, ko, xi, ki, yi) if permute else (xo, yo, ko, ki, xi, yi)))
    if vectorize:
        s[C].vectorize(yi)
    return s, [A, B, C]


def register_blocked(n=512, mr=8, nr=32):
    A = te.placeholder((n, n), name="A")
    B = te.placeholder((n, n), name="B")
    k = te.reduce_axis((0, n), name="k")
    packed = te.compute((n // nr, n, nr), lambda x, y, z: B[y, x * nr + z], name="packedB")
    C = te.compute((n, n), lambda i, j: te.sum(A[i, k] * packed[j // nr, k, j % nr], axis=k), name="C")
    s = te.create_schedule(C.op)
    acc = s.cache_write(C, "local")
    io, jo, ii, ji = s[C].tile(C.op.axis[0], C.op.axis[1], mr, nr)
    s[acc].compute_at(s[C], jo)
    ai, aj = s[acc].op.axis
    s[acc].reorder(s[acc].op.reduce_axis[0], ai, aj)
    s[acc].unroll(ai)
    s[acc].vectorize(aj)
    s[C].vectorize(ji)
    s[C].parallel(io)
    s[packed].vectorize(packed.op.axis[2])
    s[packed].parallel(packed.op.axis[0])
    return s, [A, B, C]


def upsample(n=64):
    A = te.placeholder((n,), name="A")
    B = te.compute((2 * n,), lambda i: A[i // 2] * 2.0, name="B")
    return te.create_schedule(B.op), [A, B]


def symbolic():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    return te.create_schedule(B.op), [A, B]


SCHEDULES = [naive, blocked, lambda: blocked(permute=True), lambda: blocked(permute=True, vectorize=True),
             register_blocked, upsample, symbolic]


def features(make):
    s, args = make()
    return extract_features(tecomp.lower(s, args)["main"])


def slot(name):
    return FEATURE_NAMES.index(name)


def test_fixed_length_and_finite_for_every_schedule():
    assert len(FEATURE_NAMES) == FEATURE_LENGTH
    for make in SCHEDULES:
        vec = features(make)
        assert vec.shape == (FEATURE_LENGTH,) and vec.dtype == np.float32
        assert np.all(np.isfinite(vec))


def test_deterministic_across_lowerings():
    for make in SCHEDULES:
        np.testing.assert_array_equal(features(make), features(make))


def test_changes_when_the_schedule_changes():
    vectors = [features(make) for make in SCHEDULES[:5]]
    for i in range(len(vectors)):
        for j in range(i + 1, len(vectors)):
            assert not np.array_equal(vectors[i], vectors[j]), (i, j)


def test_strides_of_the_naive_matmul():
    vec = features(naive)
    log = lambda x: np.log2(1 + x)  # noqa: E731
    # innermost loop k; the buffers: C (stored), then A and B (equal touch counts: by name)
    assert vec[slot("L0.extent")] == pytest.approx(log(64))
    assert vec[slot("L0.serial")] == 1
    assert vec[slot("L0.B0.stride")] == 0                        # C[i, j] does not move with k
    assert vec[slot("L0.B1.stride")] == pytest.approx(log(1))   # A[i, k]
    assert vec[slot("L0.B2.stride")] == pytest.approx(log(64))  # B[k, j]
    assert vec[slot("L1.B2.stride")] == pytest.approx(log(1))   # B[k, j] along j
    assert vec[slot("global.float_ops")] == pytest.approx(log(2 * 64 ** 3))


def test_vectorized_and_parallel_loops_show():
    plain = features(lambda: blocked(permute=True))
    vec = features(lambda: blocked(permute=True, vectorize=True))
    assert plain[slot("B0.lanes")] == pytest.approx(np.log2(2))
    assert vec[slot("B0.lanes")] == pytest.approx(np.log2(17))
    assert vec[slot("global.vector_lanes")] == pytest.approx(np.log2(17))
    rb = features(register_blocked)
    assert rb[slot("global.parallel_loops")] == 2
    assert rb[slot("L2.parallel")] == 1
    assert rb[slot("B0.local")] == 1                              # the accumulator tile
    assert rb[slot("siblings.count")] == pytest.approx(np.log2(9))  # 8 unrolled rows


def test_non_affine_index_counts_as_scattered():
    vec = features(upsample)
    assert vec[slot("L0.B1.stride")] == pytest.approx(np.log2(1 + 64))  # A[i // 2]: A's size


def test_cost_model_refuses_other_feature_layouts(tmp_path):
    rng = np.random.default_rng(0)
    xs = np.stack([features(make) for make in SCHEDULES] * 3) + rng.random((3 * len(SCHEDULES), 1))
    model = XGBoostCostModel(None, "reg")
    model.fit(xs, rng.random(len(xs)))
    assert model.predict(xs).shape == (len(xs),)
    with pytest.raises(CostModelError, match="features"):
        model.predict(xs[:, :-3])
    model.save(tmp_path / "model.json")
    assert np.allclose(XGBoostCostModel.load(tmp_path / "model.json").predict(xs), model.predict(xs))
    newer = XGBoostCostModel.load(tmp_path / "model.json", feature_version=FEATURE_VERSION + 1)
    with pytest.raises(CostModelError, match="version"):
        newer.predict(xs)
    with pytest.raises(CostModelError, match="version"):
        model.fit_log([(xs[0], 1.0)], feature_version=FEATURE_VERSION + 1)
