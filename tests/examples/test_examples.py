"""The README's main job, run as a user runs it (a short budget, records in a temp file)."""

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
