"""Task extraction from a model graph and tuned builds (apply_history_best)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import graph_models as models
import tecomp.graph
from tecomp import tuner as autotvm
from tecomp.tuner.measure import MeasureInput, MeasureResult
from tecomp.tuner.space import FallbackConfigEntity


def _tasks(name, with_params=True):
    graph, params, _ = models.MODELS[name]()
    return autotvm.task.extract_from_graph(graph, params=params if with_params else None, target="llvm")


def test_extracted_tasks_are_the_models_tunable_kernels_deduplicated():
    cnn = _tasks("cnn")
    names = [t.name for t in cnn]  # the max pool runs blocked, so it is tunable too
    assert names == ["schedules/conv2d_nchwc", "schedules/pool2d"] + ["schedules/conv2d_nchwc"] * 2 + ["schedules/dense"]
    assert cnn[0].args[:2] == ((1, 3, 16, 16), (8, 3, 3, 3))
    transformer = _tasks("transformer")
    keys = [t.key for t in transformer]
    assert len(keys) == len(set(keys))
    # q, k, v and the output projection are one 16x32x32 dense workload
    assert sum(t.args[:3] == (16, 32, 32) for t in transformer if t.name == "schedules/dense") == 1
    assert any(t.name == "schedules/batch_matmul" for t in transformer)
    assert {"schedules/softmax", "schedules/layer_norm"} <= {t.name for t in transformer}
    assert all(str(t.target) == "llvm" and t.flop > 0 for t in transformer)


def test_extraction_needs_no_param_values():
    assert [t.key for t in _tasks("cnn", with_params=False)] == [t.key for t in _tasks("cnn")]


def _record(task, config):
    return MeasureInput(task, config), MeasureResult((1e-6,), 0, "", 0.1, time.time())


def _non_fallback(task, knob):
    fallback = FallbackConfigEntity(task.config_space)[knob].val
    for index in reversed(range(len(task.config_space))):
        config = task.config_space.get(index)
        if config[knob].val != fallback:
            return config
    pytest.skip(f"{task} has a single {knob}")


def test_build_applies_tuned_configs():
    graph, params, reference = models.cnn()
    tasks = autotvm.task.extract_from_graph(graph, params, "llvm")
    conv = [t for t in tasks if t.name == "schedules/conv2d_nchwc"][1]  # 8 -> 16 channels
    chosen = _non_fallback(conv, "tile_oc")
    dense = tasks[-1]
    chosen_dense = _non_fallback(dense, "tile_n")
    with autotvm.apply_history_best([_record(conv, chosen), _record(dense, chosen_dense)]):
        module = tecomp.graph.build(graph, "llvm", params)
    optimized = tecomp.graph.Graph.from_json(json.dumps(module.info["graph"]))
    blocked = [n for n in optimized.nodes if n.op == "conv2d_nchwc"]
    assert optimized.types[blocked[1].outputs[0]].shape[-1] == chosen["tile_oc"].val
    packed = [n for n in optimized.nodes if n.op == "dense_packed"]
    assert optimized.types[packed[0].inputs[1]].shape[-1] == chosen_dense["tile_n"].val
    x = models.random_inputs(graph, seed=3)["x"]
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)
