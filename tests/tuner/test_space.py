"""Config spaces: knob sizes against hand counts, index decoding, JSON, fallback, and that points build."""

import json
import math

import numpy as np
import pytest

import tecomp
from tecomp import te
from tecomp import tuner as autotvm
from tecomp.error import TecompError, TuningError
from tecomp.tuner.space import ConfigEntity, ConfigSpace, FallbackConfigEntity


@autotvm.template("test_space/matmul")
def matmul(N, L, M, dtype):
    A = te.placeholder((N, L), name="A", dtype=dtype)
    B = te.placeholder((L, M), name="B", dtype=dtype)
    k = te.reduce_axis((0, L), name="k")
    C = te.compute((N, M), lambda i, j: te.sum(A[i, k] * B[k, j], axis=k), name="C")
    s = te.create_schedule(C.op)
    y, x = s[C].op.axis
    cfg = autotvm.get_config()
    cfg.define_split("tile_y", y, num_outputs=2)
    cfg.define_split("tile_x", x, num_outputs=3)
    yo, yi = cfg["tile_y"].apply(s, C, y)
    xo, xm, xi = cfg["tile_x"].apply(s, C, x)
    s[C].reorder(yo, xo, k, yi, xm, xi)
    cfg.define_reorder("reorder", [k, yi, xm], policy="all")
    cfg["reorder"].apply(s, C, [k, yi, xm])
    cfg.define_annotate("ann", [yi, xi], policy="try_unroll_vec")
    cfg["ann"].apply(s, C, [yi, xi])
    cfg.define_knob("unroll", [0, 1])
    if cfg["unroll"].val:
        s[C].unroll(xm)
    return s, [A, B, C]


@autotvm.template("test_space/scale")
def scale(n):
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] * 2.0 + 1.0, name="B")
    s = te.create_schedule(B.op)
    cfg = autotvm.get_config()
    cfg.define_split("tile", B.op.axis[0], policy="power2", num_outputs=3)
    _, _, inner = cfg["tile"].apply(s, B, B.op.axis[0])
    s[B].vectorize(inner)
    return s, [A, B]


@pytest.fixture(scope="module")
def mm_task():
    return autotvm.task.create("test_space/matmul", (32, 32, 32, "float32"), "llvm")


def split_sizes(extent, **kwargs):
    space = ConfigSpace()
    space.define_split("s", extent, **kwargs)
    return [e.size for e in space.knobs["s"].entities]


# ---------------------------------------------------------------- knob sizes

def test_factor_splits_match_hand_counts():
    assert split_sizes(32) == [[32, 1], [16, 2], [8, 4], [4, 8], [2, 16], [1, 32]]
    assert len(split_sizes(32, num_outputs=3)) == 21          # C(5 + 2, 2) ordered factorizations of 2^5
    sizes = split_sizes(12, num_outputs=3)
    assert len(sizes) == 18                                    # C(4, 2) * C(3, 2) for 2^2 * 3
    assert all(math.prod(s) == 12 for s in sizes)
    assert len(set(map(tuple, sizes))) == 18
    capped = split_sizes(12, num_outputs=3, max_factor=4)
    assert len(capped) == 12 and all(max(s[1:]) <= 4 for s in capped)
    assert split_sizes(1, num_outputs=3) == [[1, 1, 1]]


def test_power2_splits_round_the_outer_part_up():
    assert split_sizes(20, policy="power2") == [[20, 1], [10, 2], [5, 4], [3, 8], [2, 16]]
    sizes = split_sizes(20, policy="power2", num_outputs=3)
    assert len(sizes) == 15                                    # 2^a * 2^b <= 20: a + b <= 4
    assert all(s[0] == math.ceil(20 / (s[1] * s[2])) for s in sizes)
    assert len(split_sizes(20, policy="power2", max_factor=4)) == 3


def test_reorder_annotate_and_knob_sizes():
    axes = [te.reduce_axis((0, 4), name=f"r{i}") for i in range(3)]
    space = ConfigSpace()
    space.define_reorder("all", axes, policy="all")
    space.define_reorder("id", axes, policy="identity")
    space.define_reorder("cand", axes, policy="candidate", candidate=[axes, axes[::-1]])
    space.define_annotate("unroll", axes, policy="try_unroll")
    space.define_annotate("vec", axes, policy="try_vec")
    space.define_annotate("both", axes[:2], policy="try_unroll_vec")
    space.define_knob("k", ["a", [1, 2], None])
    sizes = {name: len(knob) for name, knob in space.knobs.items()}
    assert sizes == {"all": 6, "id": 1, "cand": 2, "unroll": 8, "vec": 2, "both": 6, "k": 3}
    assert len(space) == 6 * 1 * 2 * 8 * 2 * 6 * 3
    assert [e.perm for e in space.knobs["cand"].entities] == [[0, 1, 2], [2, 1, 0]]
    vec_anns = [e.anns for e in space.knobs["vec"].entities + space.knobs["both"].entities]
    assert all("vec" not in anns[:-1] for anns in vec_anns)
    text = str(space)
    assert all(name in text for name in sizes) and f"total: {len(space)} points" in text


def test_matmul_space_size(mm_task):
    assert len(mm_task.config_space) == 6 * 21 * 6 * 6 * 2


# ---------------------------------------------------------------- points

def test_index_decoding_covers_every_point_once(mm_task):
    space = mm_task.config_space
    seen = set()
    for index in range(len(space)):
        config = space.get(index)
        seen.add(json.dumps(config.to_json_dict()["entities"], sort_keys=True))
        assert space.index_of(space.positions(index)) == index
    assert len(seen) == len(space)
    assert type(space.get(np.int64(5)).index) is int          # tuners index with numpy ints
    with pytest.raises(TuningError, match="out of range"):
        space.get(len(space))


def test_sampled_points_build_and_match_numpy(mm_task, rng):
    space = mm_task.config_space
    # seeded, so always the same points; some far corners (32x32 unrolled bodies) take LLVM 15 s
    indices = [0, FallbackConfigEntity(space).index] + rng.choice(len(space), size=8, replace=False).tolist()
    a = rng.random((32, 32), dtype=np.float32)
    b = rng.random((32, 32), dtype=np.float32)
    for index in indices:
        s, args = mm_task.instantiate(space.get(index))
        c = np.zeros((32, 32), "float32")
        tecomp.build(s, args)(a, b, c)
        np.testing.assert_allclose(c, a @ b, rtol=1e-5, err_msg=str(space.get(index)))


def test_many_points_instantiate(mm_task):
    space = mm_task.config_space
    for index in range(0, len(space), 37):
        mm_task.instantiate(space.get(index))


def test_non_dividing_power2_points_build(rng):
    task = autotvm.task.create("test_space/scale", (20,), "llvm")
    a = rng.random(20, dtype=np.float32)
    for index in range(0, len(task.config_space), 3):
        s, args = task.instantiate(task.config_space.get(index))
        b = np.zeros(20, "float32")
        tecomp.build(s, args)(a, b)
        np.testing.assert_allclose(b, a * 2 + 1, rtol=1e-6)


# ---------------------------------------------------------------- JSON

def test_json_round_trip(mm_task):
    space = mm_task.config_space
    for index in (0, 1, 777, len(space) - 1, FallbackConfigEntity(space).index):
        text = json.dumps(space.get(index).to_json_dict())
        back = ConfigEntity.from_json_dict(space, json.loads(text))
        assert back.index == index
        assert back.to_json_dict() == space.get(index).to_json_dict()


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["entities"].update(extra=1), "unknown knobs \\['extra'\\]"),
    (lambda d: d["entities"].pop("unroll"), "missing knobs \\['unroll'\\]"),
    (lambda d: d["entities"].update(tile_y=[3, 11]), "knob tile_y .* has no value \\[3, 11\\]"),
    (lambda d: d["entities"].update(unroll=2), "knob unroll .* has no value 2"),
    (lambda d: d["entities"].update(unroll=object()), "not JSON-able"),
    (lambda d: d.update(index=d["index"] + 1), "disagrees with its entities"),
    (lambda d: d.pop("index"), "not a config record"),
])
def test_from_json_rejects_records_that_do_not_fit(mm_task, mutate, message):
    d = mm_task.config_space.get(5).to_json_dict()
    mutate(d)
    with pytest.raises(TuningError, match=message):
        ConfigEntity.from_json_dict(mm_task.config_space, d)


@pytest.mark.parametrize("foreign", [None, [1, 2], {"config": {}}, {"index": 0, "entities": []}])
def test_from_json_rejects_foreign_values(mm_task, foreign):
    with pytest.raises(TecompError, match="not a config record"):
        ConfigEntity.from_json_dict(mm_task.config_space, foreign)


# ---------------------------------------------------------------- errors

def test_unknown_knob_names_the_knobs(mm_task):
    config = mm_task.config_space.get(0)
    with pytest.raises(TuningError, match="no knob 'tile_z'.*tile_y, tile_x, reorder, ann, unroll"):
        config["tile_z"]
    with pytest.raises(TuningError, match="no knob 'tile_z'"):
        config.define_split("tile_z", 32)
    config.define_split("tile_y", 32)            # a no-op on a point
    with pytest.raises(TuningError, match="no knob 'nope'.*tile_y"):
        mm_task.config_space["nope"]


def test_split_needs_a_constant_extent():
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: A[i] + 1.0, name="B")
    space = ConfigSpace()
    with pytest.raises(TuningError, match="define_split tile: axis i has extent n"):
        space.define_split("tile", B.op.axis[0])
    s = te.create_schedule(B.op)
    outer, _ = s[B].split(B.op.axis[0], factor=4)
    with pytest.raises(TuningError, match="define_split t2: axis i.outer has no domain"):
        space.define_split("t2", outer)


@pytest.mark.parametrize("define, message", [
    (lambda sp: sp.define_split("s", 8, policy="random"), "unknown policy 'random'"),
    (lambda sp: sp.define_split("s", 8, num_outputs=1), "num_outputs must be an int >= 2"),
    (lambda sp: sp.define_split("s", 0), "extent must be positive"),
    (lambda sp: sp.define_reorder("r", [te.reduce_axis((0, 2)) for _ in range(9)]), "at most 8 axes"),
    (lambda sp: sp.define_reorder("r", [te.reduce_axis((0, 2))], policy="candidate"), "candidate= list"),
    (lambda sp: sp.define_annotate("a", [te.reduce_axis((0, 2))], policy="unroll_all"), "unknown policy"),
    (lambda sp: sp.define_knob("k", []), "non-empty list"),
    (lambda sp: sp.define_knob("k", [1, 1]), "repeat a value"),
    (lambda sp: sp.define_knob("k", [object()]), "not JSON-able"),
    (lambda sp: [sp.define_knob("k", [1]), sp.define_knob("k", [2])], "defined twice"),
])
def test_bad_definitions(define, message):
    with pytest.raises(TuningError, match=message):
        define(ConfigSpace())


def test_reorder_candidate_must_permute_the_axes():
    a, b, c = (te.reduce_axis((0, 2), name=n) for n in "abc")
    with pytest.raises(TuningError, match=r"candidate \[a, a, b\] is not a permutation"):
        ConfigSpace().define_reorder("r", [a, b, c], policy="candidate", candidate=[[a, a, b]])


# ---------------------------------------------------------------- fallback

def test_fallback_heuristic():
    a, b, c = (te.reduce_axis((0, 2), name=n) for n in "abc")
    space = ConfigSpace()
    space.define_split("big", 512, num_outputs=3)
    space.define_split("odd", 24)
    space.define_split("prime", 7)
    space.define_split("pow2", 20, policy="power2")
    space.define_reorder("order", [a, b, c])
    space.define_reorder("cand", [a, b], policy="candidate", candidate=[[b, a], [a, b]])
    space.define_annotate("vec", [a, b], policy="try_unroll_vec")
    space.define_annotate("unroll", [a, b], policy="try_unroll")
    space.define_knob("knob", ["first", "second"])
    fb = FallbackConfigEntity(space)
    assert fb["big"].size == [8, 4, 16]
    assert fb["odd"].size == [2, 12]
    assert fb["prime"].size == [1, 7]
    assert fb["pow2"].size == [2, 16]
    assert fb["order"].perm == [0, 1, 2]
    assert fb["cand"].perm == [0, 1]
    assert fb["vec"].anns == ["none", "vec"]
    assert fb["unroll"].anns == ["none", "none"]
    assert fb["knob"].val == "first"
    assert ConfigEntity.from_json_dict(space, fb.to_json_dict()).index == fb.index
