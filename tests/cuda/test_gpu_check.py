"""benchmarks/gpu_check.sh and its Python half, on a machine without a GPU: the plan, the table, the parsing.

On a GPU host the script installs pycuda (and a cuBLAS and ORT-CUDA peer if missing), runs
``pytest -m gpu``, GEMM beside cuBLAS and the models beside ONNX Runtime within its budget.
Here only what needs no GPU runs: the dry run end to end, the table and the pytest summary.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check  # noqa: E402


def test_the_dry_run_prints_the_plan_as_one_table():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run", "--models", "mlp",
                           "--size", "1024"], capture_output=True, text=True, env={"PYTHON": sys.executable,
                                                                                    "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["check", "tecomp", "ms", "peer", "ms", "peer", "peer/tecomp", "note"]
    assert [line.split("  ")[0] for line in lines[2:]] == [
        "pytest -m gpu", "GEMM 1024^3 f32, hand schedule", "GEMM 1024^3 f32, tuned (16 trials)", "model mlp"]


def test_without_a_gpu_the_check_says_why_and_fails(capsys):
    import tecomp
    if tecomp.cuda(0).exist:
        pytest.skip("this host has a GPU")
    assert gpu_check.main(["--models", "mlp"]) == 2
    assert "no CUDA GPU here" in capsys.readouterr().err


def test_table_rows_show_times_in_ms_and_the_peers_ratio():
    text = gpu_check.table([gpu_check.Row("GEMM 4096^3 f32, hand schedule", 0.010, 0.008, "cuBLAS (torch)", "x"),
                            gpu_check.Row("model mlp", note="skipped: 30 s left")])
    assert text.splitlines()[2].split()[-7:] == ["schedule", "10.000", "8.000", "cuBLAS", "(torch)", "0.80", "x"]
    assert text.splitlines()[3].split()[2:] == ["-", "-", "-", "skipped:", "30", "s", "left"]


@pytest.mark.parametrize("output, summary", [
    ("....\n3 passed, 2 skipped, 5 deselected in 4.10s\n", "3 passed, 2 skipped, 5 deselected"),
    ("F.\n1 failed, 1 passed in 0.5s", "1 failed, 1 passed"),
    ("collecting ...", "no summary (pytest did not finish)"),
])
def test_the_pytest_summary_is_its_counts(output, summary):
    assert gpu_check.pytest_summary(output) == summary


def test_an_unknown_model_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        gpu_check.main(["--dry-run", "--models", "alexnet"])
    assert "unknown models ['alexnet']" in capsys.readouterr().err
