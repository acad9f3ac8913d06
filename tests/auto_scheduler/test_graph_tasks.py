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
