"""Export: one .so per model, loaded in a fresh process without compiler dependencies, run from C;
bad libraries raise GraphError instead of crashing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import graph_models as models
import tecomp
import tecomp.graph
from tecomp import te
from tecomp.error import GraphError
from tecomp.graph.module import FORMAT_VERSION

# Installed before tecomp is imported in the child: any import of the compiler's dependencies fails.
BLOCK_COMPILER = textwrap.dedent("""
    import sys
    class _Blocked:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"llvmlite", "xgboost", "onnx", "onnxruntime", "sqlite_utils"}:
                raise ImportError(f"blocked import of {name}")
    sys.meta_path.insert(0, _Blocked())
""")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, built):
    """name -> (path of the exported cnn/transformer/mlp library, module it came from)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name in models.MODELS:
        module = built(name)[3]
        path = root / f"{name}.so"
        module.export_library(path)
        out[name] = (path, module)
    return out


def _input(module, seed=0):
    """A random input for a module, from the optimized graph it carries."""
    return models.random_inputs(tecomp.graph.Graph.from_json(json.dumps(module.info["graph"])), seed)["x"]


def test_export_is_one_file_and_loads_in_process(exported):
    path, module = exported["transformer"]
    loaded = tecomp.graph.load(path)
    x = _input(loaded)
    np.testing.assert_array_equal(loaded.run(x=x)[0], module.run(x=x)[0])
    assert loaded.memory_plan == module.memory_plan
    assert loaded.weights_bytes > 0 and "kernel calls" in loaded.summary()


def test_fresh_process_without_compiler_dependencies_gets_the_same_outputs(exported, tmp_path):
    inputs = {name: _input(module, seed=5) for name, (_, module) in exported.items()}
    expected = {name: module.run(x=inputs[name])[0] for name, (_, module) in exported.items()}
    paths = {name: str(path) for name, (path, _) in exported.items()}
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = BLOCK_COMPILER + textwrap.dedent(f"""
        import numpy as np
        import tecomp.graph
        inputs = np.load({str(tmp_path / 'inputs.npz')!r})
        paths = {paths!r}
        outputs = {{name: tecomp.graph.load(paths[name]).run(x=inputs[name])[0] for name in inputs.files}}
        np.savez({str(tmp_path / 'outputs.npz')!r}, **outputs)
        compiler = [m for m in sys.modules if m.startswith(("tecomp.codegen", "tecomp.graph.builder", "tecomp.tuner"))]
        assert not compiler, compiler
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = np.load(tmp_path / "outputs.npz")
    for name, want in expected.items():
        np.testing.assert_array_equal(got[name], want)


def test_profile_times_each_step(exported):
    path, module = exported["cnn"]
    loaded = tecomp.graph.load(path)
    x = np.zeros(loaded.inputs[0].shape, "float32")
    profile = loaded.profile(x, repeat=2)
    assert [p.label for p in profile] == [s["label"] for s in loaded.steps]
    assert len(profile) == loaded.kernel_count and all(p.seconds >= 0 for p in profile)
    assert any("conv2d" in p.label for p in profile)


@pytest.fixture(scope="module")
def run_model_binary(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to compile the C example")
    binary = tmp_path_factory.mktemp("c") / "run_model"
    subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(binary), "examples/c/run_model.c", "-ldl"],
                   check=True, capture_output=True, text=True)
    return binary


def _parse_c_outputs(stdout: str) -> list[np.ndarray]:
    outs = []
    for line in stdout.splitlines():
        if line.startswith("output "):
            values = line.split(":", 1)[1].split()
            outs.append(np.array([float(v) for v in values if v != "..."], "float32"))
    return outs


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_c_example_runs_the_exported_model(exported, run_model_binary, tmp_path, name):
    path, module = exported[name]
    x = _input(module, seed=9)
    x.tofile(tmp_path / "x.bin")
    proc = subprocess.run([str(run_model_binary), str(path), str(tmp_path / "x.bin"), "--profile"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    (got,) = _parse_c_outputs(proc.stdout)
    want = module.run(x=x)[0].reshape(-1)[:64]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert proc.stdout.count("\nstep ") == module.kernel_count


def test_c_program_may_dlclose_the_model(exported, run_model_binary):
    # closing the model must not unmap libgomp under its idle worker threads (it crashed 1 run in 3)
    path, _ = exported["mlp"]
    for _ in range(12):
        proc = subprocess.run([str(run_model_binary), str(path)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.returncode


def test_c_example_rejects_a_wrong_input_file(exported, run_model_binary, tmp_path):
    path, _ = exported["mlp"]
    (tmp_path / "short.bin").write_bytes(b"\0" * 8)
    proc = subprocess.run([str(run_model_binary), str(path), str(tmp_path / "short.bin")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must hold exactly" in proc.stderr


# ---------------------------------------------------------------------------- bad libraries

def _copy_with(src, dst, edit):
    data = bytearray(src.read_bytes())
    dst.write_bytes(edit(data))
    return dst


def test_truncated_library(exported, tmp_path):
    path, _ = exported["cnn"]
    for fraction in (0.1, 0.5, 0.9, 0.999):
        bad = _copy_with(path, tmp_path / f"cut{fraction}.so", lambda d: bytes(d[:int(len(d) * fraction)]))
        with pytest.raises(GraphError, match="truncated or corrupt"):
            tecomp.graph.load(bad)


def test_files_that_are_not_model_libraries(exported, tmp_path):
    (tmp_path / "text.so").write_text("not a library")
    with pytest.raises(GraphError, match="not a shared library"):
        tecomp.graph.load(tmp_path / "text.so")
    (tmp_path / "empty.so").write_bytes(b"")
    with pytest.raises(GraphError, match="not a shared library"):
        tecomp.graph.load(tmp_path / "empty.so")
    with pytest.raises(GraphError, match="no model library at"):
        tecomp.graph.load(tmp_path / "missing.so")
    a = te.placeholder((4,), name="a")
    b = te.compute((4,), lambda i: a[i] + 1, name="b")
    tecomp.build(te.create_schedule(b.op), [a, b]).export_library(tmp_path / "kernel.so")
    with pytest.raises(GraphError, match="not a tecomp model: it exports no tecomp_model_info"):
        tecomp.graph.load(tmp_path / "kernel.so")


def test_incompatible_format_version(exported, tmp_path):
    path, _ = exported["mlp"]
    field = f'"format_version": {FORMAT_VERSION}'.encode()
    newer = f'"format_version": {FORMAT_VERSION + 1}'.encode()
    assert len(field) == len(newer)
    bad = _copy_with(path, tmp_path / "newer.so", lambda d: bytes(d).replace(field, newer))
    with pytest.raises(GraphError, match=f"format version {FORMAT_VERSION + 1}.*this tecomp reads version "
                                         f"{FORMAT_VERSION}: rebuild"):
        tecomp.graph.load(bad)


def test_corrupt_weights(exported, built, tmp_path):
    path, _ = exported["mlp"]
    params = built("mlp")[1]
    marker = params["b1"].tobytes()[:16]  # the bias is stored as it is

    def flip(data):
        at = bytes(data).index(marker)
        data[at] ^= 0xFF
        return bytes(data)

    bad = _copy_with(path, tmp_path / "flipped.so", flip)
    with pytest.raises(GraphError, match="weights do not match their checksum"):
        tecomp.graph.load(bad)


def test_export_replaces_a_loaded_library_safely(exported, tmp_path):
    mlp, cnn = exported["mlp"][1], exported["cnn"][1]
    target = tmp_path / "model.so"
    mlp.export_library(target)
    first = tecomp.graph.load(target)
    cnn.export_library(target)
    second = tecomp.graph.load(target)
    assert first.input_names == second.input_names == ["x"]
    assert first.inputs[0].shape == (8, 64) and second.inputs[0].shape == (1, 3, 16, 16)
    assert first.run(np.zeros((8, 64), "float32"))[0].shape == (8, 10)
