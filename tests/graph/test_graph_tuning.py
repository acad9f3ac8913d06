"""Task extraction from a model graph and tuned builds (apply_history_best)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import graph_models as models
import tecomp.graph
from tecomp import tuner as autotvm
from tecomp.error import TuningError
from tecomp.graph.tasks import task_calls
from tecomp.graph.tuning import TaskScheduler, tune_model
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


class _Answers(autotvm.ApplyHistoryBest):
    """Records, keeping the config each task was answered with."""

    def __init__(self, records):
        super().__init__(records)
        self.answered = {}

    def lookup(self, task):
        found = super().lookup(task)
        self.answered[task.key] = found
        return found


def _blocked_outputs(module, op="conv2d_nchwc"):
    optimized = tecomp.graph.Graph.from_json(json.dumps(module.info["graph"]))
    return [optimized.types[n.outputs[0]].shape[-1] for n in optimized.nodes if n.op == op]


def test_build_applies_tuned_configs_within_the_models_layout():
    graph, params, reference = models.cnn()
    default_blocks = _blocked_outputs(tecomp.graph.build(graph, "llvm", params))
    tasks = autotvm.task.extract_from_graph(graph, params, "llvm")
    conv = [t for t in tasks if t.name == "schedules/conv2d_nchwc"][1]  # 8 -> 16 channels
    assert conv.args[-1] == (8, default_blocks[1])  # the task of a model's conv has its blocks fixed
    chosen = _non_fallback(conv, "tile_ow")
    dense = tasks[-1]
    chosen_dense = _non_fallback(dense, "tile_n")
    answers = _Answers([_record(conv, chosen), _record(dense, chosen_dense)])
    with answers:
        module = tecomp.graph.build(graph, "llvm", params)
    assert answers.answered[conv.key].index == chosen.index
    assert _blocked_outputs(module) == default_blocks
    optimized = tecomp.graph.Graph.from_json(json.dumps(module.info["graph"]))
    packed = [n for n in optimized.nodes if n.op == "dense_packed"]
    assert optimized.types[packed[0].inputs[1]].shape[-1] == chosen_dense["tile_n"].val
    x = models.random_inputs(graph, seed=3)["x"]
    np.testing.assert_allclose(module.run(x)[0], reference(x)[0], rtol=1e-4, atol=1e-5)


def _conv_pool():
    """conv 3 -> 16 channels (channel blocks 16 or 8), then a 2x2 max pool."""
    from tecomp.graph import Graph, Node, TensorType
    types = {"x": TensorType((1, 3, 8, 8), "float32"), "w": TensorType((16, 3, 3, 3), "float32"),
             "y": TensorType((1, 16, 8, 8), "float32"), "z": TensorType((1, 16, 4, 4), "float32")}
    graph = Graph({"x": types["x"]}, {"w": types["w"]},
                  [Node("conv2d_nchw", ["x", "w"], ["y"], {"padding": 1}, name="conv"),
                   Node("max_pool2d", ["y"], ["z"], {"kernel": 2, "strides": 2}, name="pool")], ["z"], types)
    return graph, {"w": np.random.default_rng(0).uniform(-1, 1, (16, 3, 3, 3)).astype("float32")}


def _conv_conv():
    """conv 3 -> 64 channels, then conv 64 -> 64: the second receives its input in the first's
    output block (32 with AVX-512, 16 with AVX2), not in its own fallback's input block (16, 8)."""
    from tecomp.graph import Graph, Node, TensorType
    types = {"x": TensorType((1, 3, 8, 8), "float32"), "w1": TensorType((64, 3, 3, 3), "float32"),
             "w2": TensorType((64, 64, 3, 3), "float32"), "y": TensorType((1, 64, 8, 8), "float32"),
             "z": TensorType((1, 64, 8, 8), "float32")}
    graph = Graph({"x": types["x"]}, {"w1": types["w1"], "w2": types["w2"]},
                  [Node("conv2d_nchw", ["x", "w1"], ["y"], {"padding": 1}, name="conv1"),
                   Node("conv2d_nchw", ["y", "w2"], ["z"], {"padding": 1}, name="conv2")], ["z"], types)
    rng = np.random.default_rng(0)
    return graph, {"w1": rng.uniform(-1, 1, (64, 3, 3, 3)).astype("float32"),
                   "w2": rng.uniform(-1, 1, (64, 64, 3, 3)).astype("float32")}


def test_extraction_asks_for_the_workloads_the_build_runs():
    """An untuned conv takes its input in the block it arrives in; task extraction must decide
    alike (its recorder answers every task, with fallbacks, which is not a record), or a compile
    after a tune would run a conv whose workload was never tuned."""
    graph, params = _conv_conv()
    extracted = {t.key for t in autotvm.task.extract_from_graph(graph, params, "llvm")}

    class Asked(autotvm.DispatchContext):
        def __init__(self):
            self.keys = set()

        def lookup(self, task):
            self.keys.add(task.key)
            return None

    with Asked() as asked:
        tecomp.graph.build(graph, "llvm", params)
    blocked_convs = {k for k in asked.keys if json.loads(k)[0] == "schedules/conv2d_nchwc" and len(json.loads(k)[1]) == 7}
    assert len(blocked_convs) == 2 and blocked_convs <= extracted, (blocked_convs, extracted)


def _layout_free(task):
    """The lone conv's task of a model's conv: its workload without the fixed blocks."""
    return autotvm.task.create(task.name, task.args[:-1], target="llvm")


def test_tasks_under_records_follow_a_tuned_lone_convs_layout(tmp_path):
    """A lone conv tuned with its blocks as knobs sets the layout a model runs that conv in; the
    max pool after it becomes a new workload, and extraction under the records finds it."""
    graph, params = _conv_pool()
    conv, pool = autotvm.task.extract_from_graph(graph, params, "llvm")
    assert pool.name == "schedules/pool2d" and "NCHW16c" in pool.key
    chosen = _non_fallback(_layout_free(conv), "tile_oc")
    with autotvm.RecordDB(tmp_path / "r.db") as db:
        db.add(*_record(_layout_free(conv), chosen))
        tuned_conv, tuned_pool = autotvm.task.extract_from_graph(graph, params, "llvm", records=db)
    assert tuned_conv.args[-1] == (chosen["tile_ic"].val, chosen["tile_oc"].val) and tuned_conv.key != conv.key
    assert f"NCHW{chosen['tile_oc'].val}c" in tuned_pool.key and tuned_pool.key != pool.key


def test_tuning_a_model_keeps_its_layout(tmp_path):
    """The tasks of a model's convs fix their channel blocks: tuning them can make no layout
    transform appear, and a build under the records asks for exactly the tasks tuned."""
    graph, params = _conv_pool()
    before = autotvm.task.extract_from_graph(graph, params, "llvm")
    assert [name for name in before[0].config_space.knobs] == ["tile_ic", "tile_oc", "tile_ow", "unroll_kw", "tile_ocn"]
    assert [len(before[0].config_space.knobs[k]) for k in ("tile_ic", "tile_oc")] == [1, 1]
    option = autotvm.measure_option(autotvm.LocalBuilder(), autotvm.LocalRunner(number=1))
    db = tmp_path / "r.db"
    tuned = tune_model(graph, params, db, trials=3, tuner="grid", measure_option=option, progress=False)
    assert [t.key for t in tuned] == [t.key for t in before]
    with autotvm.RecordDB(db) as records:
        after = autotvm.task.extract_from_graph(graph, params, "llvm", records=records)
        assert all(records.best(t.key, "llvm") is not None for t in after)
        for task in tuned:  # a config that measured faster than the default was timed again beside it
            found = list(records.records(task.key))
            searched = [r for r in found if r.tuner != "confirm"]
            fallback = FallbackConfigEntity(task.config_space).index
            default = min(r.mean_cost for r in searched if r.config_index == fallback)
            beaten = any(r.mean_cost < default for r in searched)
            assert beaten == (len(searched) < len(found)), task
    assert [t.key for t in after] == [t.key for t in before]


def test_a_build_under_a_tuned_models_records_notices_no_fallback(tmp_path, caplog):
    """The layout pass reads a conv's blocks from its layout-free workload, which a model's tuning
    never records (its tasks fix the blocks): that probe must not say "no tuning record" when
    every kernel the build runs has one."""
    import logging
    graph, params = _conv_pool()
    option = autotvm.measure_option(autotvm.LocalBuilder(), autotvm.LocalRunner(number=1))
    db = tmp_path / "r.db"
    tune_model(graph, params, db, trials=2, tuner="grid", measure_option=option, progress=False)
    autotvm.dispatch._noticed.clear()
    caplog.set_level(logging.WARNING, logger="tecomp.tuner")
    with autotvm.apply_history_best(str(db)):
        tecomp.graph.build(graph, "llvm", params)
    assert not [r.getMessage() for r in caplog.records if "no tuning record" in r.getMessage()]
    autotvm.dispatch._noticed.clear()
    caplog.clear()
    tecomp.graph.build(graph, "llvm", params)  # without records the kernels' own notices remain
    assert any("no tuning record" in r.getMessage() for r in caplog.records)


def test_tune_model_tunes_the_workloads_its_tuned_configs_create(tmp_path):
    graph, params = _conv_pool()
    conv, pool = autotvm.task.extract_from_graph(graph, params, "llvm")
    chosen = _non_fallback(_layout_free(conv), "tile_oc")
    db = tmp_path / "r.db"
    with autotvm.RecordDB(db) as seeded:
        # an earlier session found the other channel block fastest for the lone conv
        seeded.add(MeasureInput(_layout_free(conv), chosen), MeasureResult((1e-12,), 0, "", 0.1, time.time()))
    option = autotvm.measure_option(autotvm.LocalBuilder(), autotvm.LocalRunner(number=1))
    tuned = tune_model(graph, params, db, trials=3, tuner="grid", measure_option=option, progress=False)
    assert [t.name for t in tuned] == ["schedules/conv2d_nchwc", "schedules/pool2d"] * 2
    with autotvm.RecordDB(db) as records:
        after = autotvm.task.extract_from_graph(graph, params, "llvm", records=records)
        assert all(records.best(t.key, "llvm") is not None for t in after)
    assert {t.key for t in after} <= {t.key for t in tuned}


def test_task_calls_count_the_kernels_of_one_inference():
    graph, params, _ = models.transformer()
    calls = {t.key: n for t, n in task_calls(graph, params)}
    dense = [t for t in autotvm.task.extract_from_graph(graph, params) if t.args[:3] == (16, 32, 32)]
    assert calls[dense[0].key] == 4  # q, k, v and the output projection share one workload


def test_budget_gives_slices_to_the_largest_estimated_latency_first(tmp_path):
    graph, params = _conv_pool()
    option = autotvm.measure_option(autotvm.LocalBuilder(), autotvm.LocalRunner(number=1))
    with autotvm.RecordDB(tmp_path / "r.db") as db:
        scheduler = TaskScheduler(graph, params, "llvm", db, autotvm.tuner.RandomTuner, trials=4)
        scheduler.tune_for(20.0, option, progress=False)
        conv, pool = list(scheduler.slots.values())[:2]
        assert conv.task.flop > pool.task.flop and conv.slices >= 1
        measured = {key: len(list(db.records(key, "llvm"))) for key in scheduler.slots}
    assert measured[conv.task.key] == 4  # capped by trials
    assert 0 < scheduler.estimated_seconds() < 1


def test_tune_model_rejects_a_non_positive_budget(tmp_path):
    graph, params = _conv_pool()
    with pytest.raises(TuningError, match="budget must be a positive number of seconds"):
        tune_model(graph, params, tmp_path / "r.db", trials=4, budget=0)
