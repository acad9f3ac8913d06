"""The README's examples (the ONNX job, the tuning script), run as a user runs them (a short
budget, records in a temp directory)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_onnx_aot_example_end_to_end(tmp_path):
    records, output = tmp_path / "records.db", tmp_path / "model.so"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "onnx_aot.py"), "--trials", "2",
                           "--records", str(records), "--output", str(output)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "agrees within rtol 1e-4" in proc.stdout
    assert "latency (median): tecomp" in proc.stdout
    assert records.stat().st_size > 0 and output.stat().st_size > 0


def test_tune_matmul_example_runs_as_the_readme_shows(tmp_path):
    script = (ROOT / "examples" / "tune_matmul.py").read_text()
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Tuning in brief"):]
    block = section[section.index("```python\n") + len("```python\n"):section.index("```\n\n")]
    assert block == script[script.index("import sys\n"):]  # the README shows the script itself
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "tune_matmul.py"), "6"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best of 6 configs" in proc.stdout and " GFLOP/s" in proc.stdout
    assert (tmp_path / "tune.db").stat().st_size > 0
