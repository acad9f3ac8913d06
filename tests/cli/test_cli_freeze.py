"""``tecomp compile --freeze NAME=X.npy``: an ONNX input that acts as an operand needed at import."""

from __future__ import annotations

import numpy as np
import pytest

import tecomp.graph
from tecomp.cli import main


@pytest.fixture
def reduce_model(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=0)
    model = helper.make_model(helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [7, 13]),
                      helper.make_tensor_value_info("axes", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "reduce.onnx")
    return tmp_path / "reduce.onnx"


def test_compile_with_a_frozen_input(reduce_model, tmp_path):
    np.save(tmp_path / "axes.npy", np.array([0], "int64"))
    assert main(["compile", str(reduce_model), "-o", str(tmp_path / "r.so"), "--freeze",
                 f"axes={tmp_path / 'axes.npy'}", "--quiet"]) == 0
    module = tecomp.graph.load(tmp_path / "r.so")
    assert [t.name for t in module.inputs] == ["x"]
    x = np.linspace(-1, 1, 91, dtype="float32").reshape(7, 13)
    np.testing.assert_allclose(module.run(x)[0], x.sum(axis=0), rtol=1e-5, atol=1e-6)


def test_without_freeze_the_error_names_the_option(reduce_model, tmp_path, capsys):
    assert main(["compile", str(reduce_model), "-o", str(tmp_path / "r.so"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--freeze axes=file.npy" in err


@pytest.mark.parametrize("spec, message", [
    ("axes", "--freeze 'axes': expected NAME=FILE.npy"),
    ("axes=missing.npy", "--freeze axes=missing.npy: cannot read missing.npy as a .npy array"),
])
def test_bad_freeze_arguments(reduce_model, tmp_path, capsys, spec, message):
    assert main(["compile", str(reduce_model), "-o", str(tmp_path / "r.so"), "--freeze", spec, "--quiet"]) == 1
    assert message in capsys.readouterr().err


def test_compile_without_onnx_says_how_to_install_it(reduce_model, tmp_path):
    import subprocess
    import sys

    code = ("import sys\nsys.modules['onnx'] = None  # as if onnx were not installed\n"
            "from tecomp.cli import main\n"
            f"sys.exit(main(['compile', {str(reduce_model)!r}, '-o', {str(tmp_path / 'r.so')!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "needs the ONNX frontend: tecomp.frontend needs the onnx package, which is not installed: " \
           "pip install 'tecomp[onnx]'" in done.stderr
