"""Sketch rules on small DAGs: which rules apply, and sampled candidates of every sketch computing
what numpy does (checked by the reference interpreter and the LLVM build)."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest

import tecomp
from tecomp import auto_scheduler, te
from tecomp.auto_scheduler import SearchTask
from tecomp.auto_scheduler.annotation import Candidate, crossover, mutate, sample, to_steps
from tecomp.auto_scheduler.records import RecordToFile
from tecomp.auto_scheduler.search import SketchPolicy
from tecomp.error import TuningError
from tecomp.tir import dtype as dt
from tecomp.tir.functor import post_order_visit
from tecomp.tir.stmt import BufferStore, For, ForKind
from tecomp.tuner.measure import MeasureResult

from as_workloads import (as_test_layer_norm, as_test_matmul_bias, as_test_norms, as_test_scale, as_test_softmax,
                          as_test_stencil, numpy_reference, softmax_matmul, stencil5, stencil5_bounded)


def _rules(task):
    return [{i: r[0] for i, r in enumerate(s.rules) if r is not None} for s in task.sketches]


def test_matmul_bias_sketches_tile_with_cache_or_in_the_consumer():
    task = SearchTask(func=as_test_matmul_bias, args=(24, 20, 18))
    names = {st.name: st.index for st in task.compute_dag.compute_stages()}
    c, d = names["C"], names["D"]
    assert _rules(task) == [{c: "tile_in", d: "host"}, {c: "tile_cache", d: "simple"},
                            {c: "tile", d: "simple"}]


def test_softmax_keeps_exp_at_root_and_offers_inlining_the_division():
    task = SearchTask(func=softmax_matmul, args=(16, 8))
    names = {st.name: st.index for st in task.compute_dag.compute_stages()}
    rules = _rules(task)
    assert all(r[names["e"]] == "simple" for r in rules)          # exp is not recomputed per use
    assert {r[names["p"]] for r in rules} == {"inline", "simple"}
    assert {r[names["out"]] for r in rules} == {"tile_cache", "tile"}


def test_stencil_inlines_its_elementwise_producer():
    task = SearchTask(func=as_test_stencil, args=(10,))
    assert [set(r.values()) for r in _rules(task)] == [{"inline", "simple"}]


def test_a_long_reduction_with_little_parallel_work_is_offered_rfactor():
    assert _rules(SearchTask(func=as_test_norms, args=(3, 300))) == [{1: "rfactor"}, {1: "simple"}]
    assert _rules(SearchTask(func=as_test_norms, args=(300, 300))) == [{1: "simple"}]


@pytest.mark.parametrize("func,args", [(as_test_matmul_bias, (12, 16, 8)), (softmax_matmul, (8, 12)),
                                       (as_test_stencil, (13,)), (as_test_norms, (3, 300))])
def test_sampled_candidates_compute_the_same_as_numpy(check, func, args):
    task = SearchTask(func=func, args=args)
    rng = random.Random(7)
    np_rng = np.random.default_rng(0)
    inputs = [np_rng.uniform(-1, 1, [int(d) for d in t.shape]).astype("float32") for t in task.tensors[:-1]]
    want = numpy_reference(task.workload_name, inputs)
    cands = [sample(rng, task.compute_dag, sk) for sk in task.sketches for _ in range(2)]
    cands.append(mutate(rng, task.compute_dag, crossover(rng, cands[0], cands[1])))
    for cand in cands:
        sch, tensors = task.compute_dag.apply_steps(to_steps(task.compute_dag, cand))
        check(sch, tensors, inputs, want, rtol=1e-4, atol=1e-4)


def test_tile_sizes_with_tails_still_compute_correctly(check):
    task = SearchTask(func=as_test_matmul_bias, args=(11, 13, 6))  # prime extents: tails
    rng = random.Random(3)
    np_rng = np.random.default_rng(1)
    inputs = [np_rng.uniform(-1, 1, [int(d) for d in t.shape]).astype("float32") for t in task.tensors[:-1]]
    cand = sample(rng, task.compute_dag, task.sketches[1])
    params = dict(cand.params[2])
    params["sp"] = [[1, 2, 4], [1, 2, 8]]   # 8 and 16 do not divide 11 and 13
    params["re"] = [[4]]
    cand = type(cand)(cand.sketch, cand.params[:2] + (params,) + cand.params[3:])
    sch, tensors = task.compute_dag.apply_steps(to_steps(task.compute_dag, cand))
    check(sch, tensors, inputs, numpy_reference(task.workload_name, inputs), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("mode,factor", [("vector", 16), ("parallel", 64), ("vector", 7)])
def test_rfactor_in_vector_lanes_or_parallel_chunks_computes_correctly(check, mode, factor):
    task = SearchTask(func=as_test_norms, args=(3, 300))
    rfactor_sketch = task.sketches[0]
    cand = sample(random.Random(0), task.compute_dag, rfactor_sketch)
    cand = type(cand)(rfactor_sketch, (None, {"mode": mode, "factor": factor}))
    steps = to_steps(task.compute_dag, cand)
    assert any(s[0] == "RF" for s in steps)
    inputs = [np.random.default_rng(2).uniform(-1, 1, (3, 300)).astype("float32")]
    sch, tensors = task.compute_dag.apply_steps(steps)
    check(sch, tensors, inputs, numpy_reference(task.workload_name, inputs), rtol=1e-4, atol=1e-4)


def _vector_stores_under_parallel_loops(func) -> list[int]:
    """The lane counts of the stores inside a parallel loop of ``func``."""
    lanes: list[int] = []

    def visit(node) -> None:
        if isinstance(node, For) and node.kind is ForKind.PARALLEL:
            post_order_visit(node.body, lambda n: lanes.append(dt.lanes(n.value.dtype))
                             if isinstance(n, BufferStore) else None)
    post_order_visit(func.body, visit)
    return lanes


@pytest.mark.parametrize("func,vec", [(stencil5, 8), (stencil5, 16), (stencil5, 37), (stencil5_bounded, 8),
                                      (stencil5_bounded, 16)])
def test_stencil_rows_run_in_parallel_on_vectors_and_match_numpy(check, func, vec):
    """The simple rule on a stage without reuse: rows parallel, columns in vectors of ``vec`` lanes
    (8 and 16 leave a tail of the 37 columns, 37 is the whole row); a bounded stencil's border
    conditions are peeled off the vector loop instead of keeping it serial."""
    task = SearchTask(func=func, args=(37,))
    (sketch,) = task.sketches
    index = task.compute_dag.compute_stages()[0].index
    params = [None] * len(task.compute_dag.stages)
    params[index] = {"fuse": 1, "vec": vec, "unroll": 0}
    sch, tensors = task.compute_dag.apply_steps(to_steps(task.compute_dag, Candidate(sketch, tuple(params))))
    inputs = [np.random.default_rng(4).uniform(-1, 1, [int(d) for d in tensors[0].shape]).astype("float32")]
    lowered = check(sch, tensors, inputs, numpy_reference(task.workload_name, inputs), rtol=1e-5, atol=1e-5)
    lanes = _vector_stores_under_parallel_loops(lowered)
    assert max(lanes) == min(vec, 32), lanes  # 37 lanes run as vector pieces of 32 and fewer


@pytest.mark.parametrize("shape,fused", [((300, 300), {1}), ((2, 40, 5, 40), {1, 2}), ((2, 3, 5, 40), {1, 2, 3, 4})])
def test_simple_stages_fuse_outer_loops_only_while_parallel_work_is_short(shape, fused):
    """64 parallel iterations are enough: 300 rows are not fused with the columns, 2 x 40 not with 5."""
    task = SearchTask(func=as_test_scale, args=(shape,))
    rng = random.Random(1)
    params = [sample(rng, task.compute_dag, task.sketches[0]).params[1] for _ in range(200)]
    assert {p["fuse"] for p in params} == fused


@auto_scheduler.register_workload
def as_test_batched_rows(b: int, c: int, n: int, m: int, k: int):
    A = te.placeholder((b, c, n, k), name="A")
    B = te.placeholder((k, m), name="B")
    r = te.reduce_axis((0, k), name="r")
    return [A, B, te.compute((b, c, n, m), lambda x, y, i, j: te.sum(A[x, y, i, r] * B[r, j], axis=r), name="C")]


def test_unrolling_stops_before_the_tile_body_is_copied_too_often():
    from tecomp.auto_scheduler.annotation import MAX_UNROLLED
    task = SearchTask(func=as_test_batched_rows, args=(8, 8, 8, 16, 8))
    index = next(i for i, r in enumerate(task.sketches[0].rules) if r and r[0].startswith("tile"))
    cand = sample(random.Random(0), task.compute_dag, task.sketches[0])
    params = dict(cand.params[index], unroll=2, sp=[[1, 1, 8], [1, 1, 8], [1, 1, 8], [1, 1, 16]], re=[[8]])
    cand = Candidate(cand.sketch, cand.params[:index] + (params,) + cand.params[index + 1:])
    unrolled = [s for s in to_steps(task.compute_dag, cand) if s[0] == "AN" and s[3] == "unroll"]
    assert 8 * 8 <= MAX_UNROLLED < 8 * 8 * 8
    assert len(unrolled) == 2  # two of the three 8-long spatial loops; a third would make 512 copies


ROW_HOSTED = {"as_test_softmax": {("mx", "e"), ("e", "p"), ("s", "p")},
              "as_test_layer_norm": {("total", "y"), ("var", "y")}}
# a row reduction inside its host reduces in vector lanes (rfactor), the partial results there too
IN_LANES = {"as_test_softmax": {("mx.rf", "e"), ("s.rf", "p")},
            "as_test_layer_norm": {("total.rf", "y"), ("var.rf", "y")}}


def test_row_hosts_are_the_consumers_that_read_the_producer_at_their_rows():
    """Softmax's exponentials are read by the sum and the division: the division hosts both; the
    softmax@V division inlined into the matmul leaves its sum no host."""
    assert [str(s) for s in SearchTask(func=as_test_softmax, args=(13, 197)).sketches] == [
        "1:simple->2, 2:simple->4, 3:simple->4, 4:simple"]
    assert [str(s) for s in SearchTask(func=as_test_layer_norm, args=(7, 61)).sketches] == [
        "1:simple->3, 2:simple->3, 3:simple"]
    task = SearchTask(func=softmax_matmul, args=(16, 8))
    names = {st.name: st.index for st in task.compute_dag.compute_stages()}
    for sketch in task.sketches:
        division_kept = sketch.rule(names["p"])[0] == "simple"
        assert sketch.rule(names["s"]) == ("simple", names["p"] if division_kept else None)


def _row_candidates(task, n: int = 40) -> dict:
    """Sampled candidates (fixed seed) by the (stage, host) pairs they compute at a row loop."""
    rng, found = random.Random(0), {}
    for k in range(n):
        steps = to_steps(task.compute_dag, sample(rng, task.compute_dag, task.sketches[k % len(task.sketches)]))
        sch, _ = task.compute_dag.apply_steps(steps)
        at = frozenset((st.name, st.attach_stage.name) for st in sch.stages if st.attach_type == "scope")
        found.setdefault(at, steps)
    return found


@pytest.mark.parametrize("func,args", [(as_test_softmax, (13, 197)), (as_test_layer_norm, (7, 61))])
def test_row_producers_are_sampled_at_their_consumers_row_loop_and_compute_correctly(check, tmp_path, func, args):
    """Softmax's row max and sum (and its exponentials, read by the sum and the division) and layer
    norm's row sum and variance are computed at root or at the row loop of their consumer, a row
    reduction in vector lanes or not (odd shapes: tails everywhere); every combination sampled
    matches numpy in the interpreter and through LLVM, and its record replays to the same loop IR."""
    task = SearchTask(func=func, args=args)
    found = _row_candidates(task)
    assert set().union(*found) == ROW_HOSTED[task.workload_name] | IN_LANES[task.workload_name]
    assert any(ROW_HOSTED[task.workload_name] <= at for at in found)  # everything at the host's rows at once
    inputs = [np.random.default_rng(5).uniform(-2, 2, args).astype("float32")]
    want = numpy_reference(task.workload_name, inputs)
    log = RecordToFile(tmp_path / "r.db")
    for k, (at, steps) in enumerate(found.items()):
        sch, tensors = task.compute_dag.apply_steps(steps)
        lowered = check(sch, tensors, inputs, want, rtol=1e-4, atol=1e-5)
        log(task, [steps], [MeasureResult((1.0 / (k + 2),), 0, "", 0.1, 1.0)])  # the newest is the best
        fresh = SearchTask(func=func, args=args)  # a new compute: new objects, same loop IR
        assert str(tecomp.lower(*fresh.apply_best(log.db))) == str(lowered), sorted(at)
    log.close()


def test_a_location_its_hosts_loops_do_not_allow_is_rejected_and_the_search_skips_it(caplog):
    task = SearchTask(func=as_test_softmax, args=(13, 197))
    dag, (sketch,) = task.compute_dag, task.sketches
    names = {st.name: st.index for st in dag.compute_stages()}
    cand = sample(random.Random(0), dag, sketch)
    params = list(cand.params)
    params[names["p"]] = {"fuse": 2, "vec": 16, "unroll": 0}     # p fuses its rows with its column loop
    params[names["s"]] = dict(params[names["s"]], at=1)
    bad = Candidate(sketch, tuple(params))
    with pytest.raises(TuningError, match="stage s cannot be computed at the loop over the first 1 axes of "
                                          "stage p: it has no such loop"):
        to_steps(dag, bad)
    policy = SketchPolicy(task, seed=0)
    with caplog.at_level(logging.WARNING, logger="tecomp.auto_scheduler"):
        found: dict = {}
        policy._add(found, bad)
        policy._add(found, bad)
    assert not found and caplog.text.count("skipping a candidate: stage s cannot be computed") == 1


def test_mutations_keep_row_locations_legal():
    task = SearchTask(func=as_test_softmax, args=(13, 197))
    dag, (sketch,) = task.compute_dag, task.sketches
    rng = random.Random(2)
    cand = sample(rng, dag, sketch)
    for _ in range(300):
        cand = mutate(rng, dag, cand)
        to_steps(dag, cand)  # a host's changed loops move its guests to legal locations
