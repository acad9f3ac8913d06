"""A kernel built by tecomp, exported, runs in a fresh process without the compiler's dependencies."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

import tecomp
from tecomp import te

REPO = Path(__file__).resolve().parents[2]


def test_exported_parallel_kernel_runs_without_llvmlite(tmp_path):
    n = te.var("n")
    A = te.placeholder((n,), name="A")
    B = te.compute((n,), lambda i: te.sqrt(A[i]) * 2.0, name="B")
    s = te.create_schedule(B.op)
    xo, xi = s[B].split(B.op.axis[0], factor=16)
    s[B].vectorize(xi)
    s[B].parallel(xo)
    f = tecomp.build(s, [A, B], name="sqrt2")
    path = tmp_path / "out" / "sqrt2.so"
    path.parent.mkdir()  # export_library creates no directory
    f.export_library(str(path))

    blocker = tmp_path / "blocker"
    for name in ("llvmlite", "xgboost", "sqlite_utils"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked')\n")
    script = textwrap.dedent(f"""
        import numpy as np
        import tecomp
        g = tecomp.runtime.load_module({str(path)!r})
        a = np.arange(100, dtype=np.float32)
        b = tecomp.nd.empty((100,), "float32")
        g(a, b)
        np.testing.assert_allclose(b.numpy(), np.sqrt(a) * 2, rtol=1e-6)
        try:
            g(a, np.zeros(99, np.float32))
        except tecomp.ArgumentError as exc:
            print("checked:", exc)
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "checked: sqrt2: argument 1 (B)" in proc.stdout


def test_time_evaluator_on_built_kernel():
    A = te.placeholder((256,), name="A")
    B = te.compute((256,), lambda i: A[i] + 1.0, name="B")
    f = tecomp.build(te.create_schedule(B.op), [A, B])
    a, b = tecomp.nd.array(np.ones(256, "float32")), tecomp.nd.empty((256,))
    result = f.time_evaluator(f.entry_name, tecomp.cpu(0), number=5, repeat=3)(a, b)
    assert len(result.results) == 3 and all(t > 0 for t in result.results)
    assert result.min <= result.median <= result.max
    assert "fadd" in f.get_source("ll")
    assert "ret" in f.get_source("asm")
