"""A model's fused kernels as search tasks: one per distinct kernel, weighted by its calls; every
kernel's sampled candidates compute what its default schedule computes."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np

import tecomp
from tecomp import auto_scheduler
from tecomp.auto_scheduler.annotation import sample, to_steps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graph"))
import graph_models as models  # noqa: E402


def _run(sch, tensors, inputs):
    out = [np.zeros([int(d) for d in t.shape], t.dtype) for t in tensors[len(inputs):]]
    tecomp.build(sch, tensors)(*[x.copy() for x in inputs], *out)
    return out


def test_every_fused_kernel_of_a_model_is_a_task_whose_candidates_compute_correctly():
    graph, params, _ = models.mlp()
    tasks, weights = auto_scheduler.extract_tasks(graph, params, "llvm")
    assert len(tasks) == 4 and weights == [1, 1, 1, 1]       # three dense epilogues and the softmax
    assert len({t.workload_key for t in tasks}) == 4
    again, _ = auto_scheduler.extract_tasks(graph, params, "llvm")
    assert [t.workload_key for t in again] == [t.workload_key for t in tasks]  # keys are stable
    rng, np_rng = random.Random(0), np.random.default_rng(0)
    for task in tasks:
        assert not task.note and task.sketches
        n_in = len(task.tensors) - len(task.compute_dag.outputs)
        inputs = [np_rng.uniform(-1, 1, [int(d) for d in t.shape]).astype(t.dtype) for t in task.tensors[:n_in]]
        want = _run(*task.default_schedule(), inputs)
        for sketch in task.sketches[:2]:
            steps = to_steps(task.compute_dag, sample(rng, task.compute_dag, sketch))
            for got, ref in zip(_run(*task.compute_dag.apply_steps(steps), inputs), want):
                np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def _result(seconds):
    from tecomp.tuner.measure import MeasureResult
    return MeasureResult((seconds,), 0, "", 0.1, 1.0)


def test_a_build_uses_auto_scheduler_records_where_they_beat_the_template_records(tmp_path, caplog):
    from tecomp import tuner as autotvm
    from tecomp.auto_scheduler.dispatch import ApplyHistoryBest
    from tecomp.tuner.measure import MeasureInput
    from tecomp.tuner.space import FallbackConfigEntity

    graph, params, reference = models.mlp()
    tasks, _ = auto_scheduler.extract_tasks(graph, params, "llvm")
    first, last = tasks[0], tasks[-1]                   # dense+bias+relu (a template), softmax (none)
    path = tmp_path / "r.db"
    log = auto_scheduler.RecordToFile(path)
    rng = random.Random(1)
    for task in (first, last):
        log(task, [to_steps(task.compute_dag, sample(rng, task.compute_dag, task.sketches[0]))], [_result(1e-3)])
    log(first, [[["SP", 0, 0, [2]]]], [_result(1e-4)])  # faster, but its steps no longer apply
    log.close()
    x = models.random_inputs(graph, seed=3)["x"]
    with ApplyHistoryBest(path) as ctx:
        module = tecomp.graph.build(graph, "llvm", params)
    assert ctx.applied == [first.workload_name, last.workload_name]
    assert "no longer apply" in caplog.text
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)
    # the dense templates' own records, faster than the auto-scheduled one, win their kernels
    with autotvm.RecordDB(path) as db:
        for tt in autotvm.task.extract_from_graph(graph, params, "llvm"):
            if tt.name == "schedules/dense":
                db.add(MeasureInput(tt, FallbackConfigEntity(tt.config_space)), _result(1e-5))
    with autotvm.apply_history_best(path), ApplyHistoryBest(path) as ctx:
        module = tecomp.graph.build(graph, "llvm", params)
    assert ctx.applied == [last.workload_name]
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)


def test_a_build_keeps_a_kernels_own_schedule_where_it_measured_faster(tmp_path):
    from tecomp.auto_scheduler.dispatch import ApplyHistoryBest

    graph, params, reference = models.mlp()
    tasks, _ = auto_scheduler.extract_tasks(graph, params, "llvm")
    last = tasks[-1]                                    # softmax: no template
    steps = to_steps(last.compute_dag, sample(random.Random(4), last.compute_dag, last.sketches[0]))
    path = tmp_path / "r.db"
    log = auto_scheduler.RecordToFile(path)
    log(last, [None, steps], [_result(1e-4), _result(1e-3)])  # its own schedule measured faster
    log.close()
    x = models.random_inputs(graph, seed=5)["x"]
    with ApplyHistoryBest(path) as ctx:
        module = tecomp.graph.build(graph, "llvm", params)
    assert ctx.applied == []
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)
    sch, args = last.default_schedule()                 # the baseline is the kernel's build schedule,
    bare = tecomp.te.create_schedule([args[-1].op])      # not the compute's own loops
    assert str(tecomp.lower(sch, args)) != str(tecomp.lower(bare, args))


def test_tune_graph_refuses_a_search_nothing_would_stop(tmp_path):
    import pytest

    from tecomp.auto_scheduler.graph_tasks import tune_graph
    from tecomp.error import TuningError

    graph, params, _ = models.mlp()
    with pytest.raises(TuningError, match="needs trials, total_trials or a budget"):
        tune_graph(graph, params, str(tmp_path / "r.db"), None)
    assert not (tmp_path / "r.db").exists()
