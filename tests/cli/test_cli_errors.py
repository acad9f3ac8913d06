"""Command-line misuse: every user error is one line on stderr and a non-zero exit, never a traceback;
output paths are checked before any work; a closed pipe and Ctrl-C end quietly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tecomp.cli import main

sys.path.insert(0, str(Path(__file__).parents[1] / "graph"))
import graph_models as models  # noqa: E402


def _cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "tecomp.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})}, **kwargs)


def _one_line_error(done, command, message):
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tecomp {command}: error:") and message in last, done.stderr


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """A compiled two-layer MLP (input x: float32[2, 64]) and its files."""
    graph, params, _ = models.mlp(batch=2)
    root = tmp_path_factory.mktemp("cli_errors")
    (root / "mlp.json").write_text(graph.to_json())
    np.savez(root / "params.npz", **params)
    np.save(root / "x.npy", models.random_inputs(graph, seed=1)["x"])
    assert main(["compile", str(root / "mlp.json"), "--params", str(root / "params.npz"), "-o",
                 str(root / "mlp.so"), "--quiet"]) == 0
    return root


# ------------------------------------------------------------------ output paths, before any work

@pytest.mark.parametrize("where, message", [
    ("/proc/x.so", "cannot write -o /proc/x.so"),
    ("{tmp}", "is a directory"),
    ("{tmp}/afile/x.so", "is not a directory"),
    ("{tmp}/no/such/dir/x.so", "directory {tmp}/no/such/dir does not exist"),
])
def test_compile_checks_the_output_path_first(tmp_path, capsys, where, message):
    (tmp_path / "afile").write_text("x")
    out = where.format(tmp=tmp_path)
    # the model does not even exist: the output path is the first thing checked
    assert main(["compile", str(tmp_path / "missing.onnx"), "-o", out]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err
    assert not (tmp_path / "no").exists()  # no directory created
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no probe left


def test_run_save_and_records_export_check_their_paths_first(tmp_path, capsys):
    assert main(["run", str(tmp_path / "missing.so"), "--save", str(tmp_path / "none" / "o")]) == 1
    assert "cannot write --save" in capsys.readouterr().err
    db = tmp_path / "r.db"
    from tecomp.tuner.records import RecordDB
    RecordDB(db).close()
    assert main(["records", str(db), "--export", str(tmp_path)]) == 1
    assert f"--export {tmp_path} is a directory" in capsys.readouterr().err


def test_a_library_is_written_with_the_umask_mode(mlp, tmp_path):
    old = os.umask(0o027)
    try:
        assert main(["compile", str(mlp / "mlp.json"), "--params", str(mlp / "params.npz"), "-o",
                     str(tmp_path / "m.so"), "--quiet"]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / "m.so").stat().st_mode & 0o777 == 0o750


# ------------------------------------------------------------------ run: inputs, repeat, save

@pytest.mark.parametrize("args, message", [
    (["--input", "x={root}/x.npy", "--input", "x={root}/x.npy"], "input 'x' is already given"),
    (["--input", "{root}/x.npy", "--input", "x={root}/x.npy"], "input 'x' is already given"),
    (["--input", "nope={root}/x.npy"], "no input named 'nope'; its inputs are x"),
    (["--input", "x={root}/mlp.json"], "not a .npy or .npz file"),
    (["--input", "x={root}/absent.npy"], "cannot read it"),
])
def test_bad_inputs_fail_before_anything_is_printed(mlp, capsys, args, message):
    assert main(["run", str(mlp / "mlp.so"), *[a.format(root=mlp) for a in args]]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and message in captured.err and captured.err.count("\n") == 1


@pytest.mark.parametrize("repeat", ["0", "-3", "two"])
def test_repeat_must_be_positive(mlp, repeat):
    done = _cli("run", mlp / "mlp.so", "--repeat", repeat)
    assert done.returncode == 2 and "Traceback" not in done.stderr and done.stdout == ""
    assert "argument --repeat: " in done.stderr and "is not a positive integer" in done.stderr


def test_save_reports_the_file_written(mlp, tmp_path, capsys):
    assert main(["run", str(mlp / "mlp.so"), "--save", str(tmp_path / "adir")]) == 0
    assert f"outputs saved to {tmp_path / 'adir.npz'}" in capsys.readouterr().out
    assert (tmp_path / "adir.npz").exists()


def test_params_that_are_not_an_npz(mlp, tmp_path, capsys):
    assert main(["compile", str(mlp / "mlp.json"), "--params", str(mlp / "x.npy"), "-o", str(tmp_path / "o.so")]) == 1
    assert "expected a .npz" in capsys.readouterr().err
    assert main(["compile", str(mlp / "mlp.json"), "--params", str(mlp / "mlp.json"), "-o",
                 str(tmp_path / "o.so")]) == 1
    assert "not a .npy or .npz file" in capsys.readouterr().err


# ------------------------------------------------------------------ messages in command-line words

def test_a_dynamic_shape_asks_for_the_shape_option(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 13])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    done = _cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so")
    _one_line_error(done, "compile", "give its static shape with --shape x=D0,D1,...")
    assert "shape={" not in done.stderr
    done = _cli("compile", tmp_path / "m.onnx", "-o", tmp_path / "m.so", "--shape", "y=1,13")
    _one_line_error(done, "compile", "--shape names")


def test_version():
    done = _cli("--version")
    assert done.returncode == 0 and done.stdout.startswith("tecomp ")


# ------------------------------------------------------------------ logging, pipes, Ctrl-C

def _db_with_many_tasks(path, n):
    from tecomp.tuner.records import Record, RecordDB

    with RecordDB(path) as db:
        db.add_records(Record(task_key=f'["t{k}",[]]', target="llvm", config={"index": 0, "entities": {}},
                              costs=(1e-3,), error_no=0, error_msg="", all_cost=0.1, timestamp=1.0, version="0")
                       for k in range(n))


def test_log_level_is_validated_and_honoured(tmp_path):
    import sqlite3

    db = tmp_path / "r.db"
    _db_with_many_tasks(db, 2)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE records SET costs = '{' WHERE id = 1")
    _one_line_error(_cli("records", db, env={"TECOMP_LOG_LEVEL": "chatty"}), "records",
                    "TECOMP_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    assert "skipping 1 malformed" in _cli("records", db).stderr
    quiet = _cli("records", db, env={"TECOMP_LOG_LEVEL": "error"})
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_a_closed_pipe_ends_quietly(tmp_path):
    db = tmp_path / "r.db"
    _db_with_many_tasks(db, 3000)  # far more output than a pipe buffers
    done = subprocess.run(["bash", "-c", f"'{sys.executable}' -m tecomp.cli records '{db}' | head -n 2"],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.count("\n") == 2 and done.stderr == ""


def test_ctrl_c_exits_130_without_a_traceback(mlp, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "tecomp.cli", "compile", str(mlp / "mlp.json"), "--params",
                             str(mlp / "params.npz"), "-o", str(tmp_path / "m.so")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert "no --records" in proc.stdout.readline()  # it is at work
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    # 130 with one line; or death by SIGINT (a shell reports the same status 130), seen once on
    # a loaded machine where the signal did not become a KeyboardInterrupt inside main()
    assert proc.returncode in (130, -signal.SIGINT), err
    if proc.returncode == 130:
        assert err.strip().splitlines()[-1] == "tecomp compile: interrupted"


def test_tune_checks_a_new_records_path_first(tmp_path, capsys):
    assert main(["tune", str(tmp_path / "missing.onnx"), "--records", str(tmp_path / "no" / "t.db")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write --records" in err and "does not exist" in err


@pytest.mark.parametrize("args, message", [
    (["tune", "m.onnx", "--trials", "0"], "argument --trials: '0' is not a positive integer"),
    (["tune", "m.onnx", "--early-stopping", "-1"], "argument --early-stopping: '-1' is not a positive integer"),
])
def test_counts_must_be_positive(args, message):
    done = _cli(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr and message in done.stderr


def test_missing_records_and_import_files_fail_first(tmp_path, capsys):
    assert main(["compile", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.so"),
                 "--records", str(tmp_path / "none.db")]) == 1
    assert "--records" in capsys.readouterr().err
    assert main(["records", str(tmp_path / "new.db"), "--import", str(tmp_path / "none.jsonl")]) == 1
    assert "--import" in capsys.readouterr().err and not (tmp_path / "new.db").exists()


def test_sigterm_stops_a_tune_cleanly_and_removes_its_build_directory(mlp, tmp_path):
    """SIGTERM unwinds like Ctrl-C: exit 143, one line, worker pools closed, no tecomp-build-* left."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "tecomp.cli", "tune", str(mlp / "mlp.json"), "--params",
                             str(mlp / "params.npz"), "--records", str(tmp_path / "r.db"), "--trials", "500",
                             "--tuner", "random", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TMPDIR": str(scratch)})
    deadline = time.monotonic() + 120
    while not any(scratch.glob("tecomp-build-*")) and time.monotonic() < deadline:
        time.sleep(0.2)  # until candidates are being built
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "tecomp tune: terminated"
    assert not list(scratch.glob("tecomp-build-*"))
