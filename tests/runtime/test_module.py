"""Loaded libraries: load_module, argument checking, timing, export, threads.

The libraries are small C files following the tecomp ABI, compiled with gcc,
so these tests need neither llvmlite nor the compiler.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tecomp import config
from tecomp.error import ArgumentError, TecompError
from tecomp.runtime import Module, cpu, cuda, load_module, nd, set_num_threads
from tecomp.runtime.ndarray import NDArray
from tecomp.runtime.threads import get_num_threads

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc to build test libraries")

METADATA = {
    "format": 1,
    "tecomp_version": "0.1.0",
    "target": "llvm",
    "functions": [
        {"name": "vadd",
         "params": [{"name": n, "dtype": "float32", "shape": ["n"]} for n in "ABC"],
         "size_vars": [{"name": "n", "dtype": "int32"}]},
        {"name": "scale2d",
         "params": [{"name": "X", "dtype": "float64", "shape": [4, "m"]},
                    {"name": "Y", "dtype": "float64", "shape": [4, "m"]}],
         "size_vars": [{"name": "m", "dtype": "int64"}]},
        {"name": "noop2d",
         "params": [{"name": "Z", "dtype": "int8", "shape": ["r", "c"]}],
         "size_vars": [{"name": "r", "dtype": "int64"}, {"name": "c", "dtype": "int32"}]},
        {"name": "fail", "params": [], "size_vars": []},
        {"name": "nthreads", "params": [{"name": "out", "dtype": "int32", "shape": [1]}], "size_vars": []},
    ],
}

FUNCTIONS_C = """
#include <stdint.h>
#include <omp.h>

static int64_t calls = 0;
int64_t test_call_count(void) { return calls; }

int32_t vadd(void** args, int64_t* sv) {
    const float* a = args[0]; const float* b = args[1]; float* c = args[2];
    for (int64_t i = 0; i < sv[0]; ++i) c[i] = a[i] + b[i];
    ++calls;
    return 0;
}

int32_t scale2d(void** args, int64_t* sv) {
    const double* x = args[0]; double* y = args[1];
    for (int64_t i = 0; i < 4 * sv[0]; ++i) y[i] = 2.0 * x[i];
    return 0;
}

int32_t noop2d(void** args, int64_t* sv) { return 0; }
int32_t fail(void** args, int64_t* sv) { return 7; }
int32_t nthreads(void** args, int64_t* sv) { ((int32_t*)args[0])[0] = omp_get_max_threads(); return 0; }
"""


def _c_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _metadata_c(text: str) -> str:
    return f"const char* __tecomp_metadata(void) {{ return {_c_string(text)}; }}\n"


def _compile(directory: Path, name: str, source: str) -> Path:
    src = directory / f"{name}.c"
    src.write_text(source)
    out = directory / f"{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-fopenmp", str(src), "-o", str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def libdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("libs")


@pytest.fixture(scope="module")
def lib_path(libdir: Path) -> Path:
    return _compile(libdir, "testlib", FUNCTIONS_C + _metadata_c(json.dumps(METADATA)))


@pytest.fixture(scope="module")
def mod(lib_path: Path) -> Module:
    return load_module(lib_path)


def _vectors(n: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32), np.zeros(n, np.float32))


# ---- loading and calling ---------------------------------------------------------------------

def test_module_describes_its_functions(mod: Module, lib_path: Path) -> None:
    assert mod.entry_name == "vadd"
    assert mod.function_names == ("vadd", "scale2d", "noop2d", "fail", "nthreads")
    assert mod.target == "llvm"
    assert mod.library_path == str(lib_path)
    assert mod.imported_modules == []
    assert mod["vadd"] is mod.get_function("vadd")


def test_call_with_numpy_arrays_writes_into_them(mod: Module) -> None:
    a, b, c = _vectors()
    mod(a, b, c)
    np.testing.assert_allclose(c, a + b)


def test_call_with_ndarrays(mod: Module) -> None:
    a, b, _ = _vectors(1000)
    c = nd.empty((1000,), "float32", cpu(0))
    mod["vadd"](nd.array(a), nd.array(b), c)
    np.testing.assert_allclose(c.numpy(), a + b)


def test_call_mixing_ndarrays_and_numpy_with_constant_dims(mod: Module) -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    y = nd.empty((4, 3), "float64")
    mod["scale2d"](x, y)
    np.testing.assert_array_equal(y.numpy(), 2 * x)


def test_unknown_function_lists_available(mod: Module) -> None:
    with pytest.raises(TecompError, match=r"no function 'vmul'.*vadd, scale2d"):
        mod["vmul"]


def test_nonzero_return_code_raises(mod: Module) -> None:
    with pytest.raises(TecompError, match="fail failed.*error code 7"):
        mod["fail"]()


# ---- argument checking -----------------------------------------------------------------------

def test_arity_mismatch(mod: Module) -> None:
    a, b, _ = _vectors()
    with pytest.raises(ArgumentError, match=r"vadd expects 3 arguments \(A, B, C\), got 2"):
        mod(a, b)


@pytest.mark.parametrize("bad", [[1.0] * 10, 3.0, None, "x"])
def test_non_array_argument(mod: Module, bad: object) -> None:
    a, _, c = _vectors()
    with pytest.raises(ArgumentError, match=rf"vadd: argument 1 \(B\): expected a tecomp NDArray or a numpy "
                                            rf"array, got {type(bad).__name__}"):
        mod(a, bad, c)


def test_dtype_mismatch(mod: Module) -> None:
    a, b, c = _vectors()
    with pytest.raises(ArgumentError, match=r"vadd: argument 1 \(B\): expected dtype float32, got float64"):
        mod(a, b.astype(np.float64), c)
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): expected dtype float32, got >f4"):
        mod(a, b, c.astype(">f4"))


def test_rank_mismatch(mod: Module) -> None:
    a, b, _ = _vectors()
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): expected 1 dimensions \(shape \[n\]\), got 2"):
        mod(a, b, np.zeros((2, 5), np.float32))


def test_constant_extent_mismatch(mod: Module) -> None:
    x = np.zeros((5, 3))
    with pytest.raises(ArgumentError, match=r"scale2d: argument 0 \(X\): expected shape \[4, m\], got \(5, 3\): "
                                            r"dimension 0 is 5, expected 4"):
        mod["scale2d"](x, np.zeros((4, 3)))


def test_inconsistent_size_var(mod: Module) -> None:
    a, _, c = _vectors(10)
    with pytest.raises(ArgumentError, match=r"vadd: argument 1 \(B\): dimension 0 is 12, but size var n is 10 "
                                            r"from argument 0 \(A\) dimension 0"):
        mod(a, np.zeros(12, np.float32), c)
    with pytest.raises(ArgumentError, match=r"scale2d: argument 1 \(Y\).*size var m is 3"):
        mod["scale2d"](np.zeros((4, 3)), np.zeros((4, 2)))


def test_int32_size_var_overflow(mod: Module) -> None:
    z = np.empty((0, 3_000_000_000), np.int8)  # zero-size: no memory, but c does not fit int32
    with pytest.raises(ArgumentError, match=r"noop2d: argument 0 \(Z\): size var c = 3000000000 does not fit"):
        mod["noop2d"](z)
    mod["noop2d"](np.empty((3_000_000_000, 0), np.int8))  # r is int64


def test_wrong_device(mod: Module) -> None:
    a, b, c = _vectors()
    on_gpu = object.__new__(NDArray)  # a CUDA array as the cuda backend will make one
    on_gpu._array, on_gpu._device, on_gpu.data_ptr = b, cuda(0), b.ctypes.data
    with pytest.raises(ArgumentError, match=r"vadd: argument 1 \(B\): array is on cuda\(0\)"):
        mod(a, on_gpu, c)


def test_non_contiguous_numpy_is_refused(mod: Module) -> None:
    a, b, _ = _vectors(20)
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): numpy array is not C-contiguous"):
        mod(a[:10], b[:10], np.zeros(20, np.float32)[::2])
    x = np.zeros((3, 4)).T
    with pytest.raises(ArgumentError, match=r"scale2d: argument 0 \(X\): numpy array is not C-contiguous"):
        mod["scale2d"](x, np.zeros((4, 3)))


def test_read_only_numpy_is_refused(mod: Module) -> None:
    a, b, c = _vectors()
    c.flags.writeable = False
    with pytest.raises(ArgumentError, match=r"argument 2 \(C\): numpy array is read-only"):
        mod(a, b, c)


def test_failed_check_leaves_outputs_untouched(mod: Module) -> None:
    a, b, c = _vectors()
    with pytest.raises(ArgumentError):
        mod(a, b.astype(np.float64), c)
    assert not c.any()


# ---- sources ---------------------------------------------------------------------------------

def test_loaded_library_has_no_source(mod: Module) -> None:
    with pytest.raises(TecompError, match=r"no source in format 'll'; available: none"):
        mod.get_source("ll")
    with pytest.raises(TecompError, match="available: none"):
        mod.get_source()


def test_sources_are_produced_lazily_once(lib_path: Path) -> None:
    m = load_module(lib_path)
    made = []
    m.sources["ll"] = "define void @vadd()"
    m.sources["asm"] = lambda: made.append(1) or "vadd:\n  ret"
    assert m.get_source() == m.get_source("ll") == "define void @vadd()"
    assert m.get_source("asm") == m.get_source("asm") == "vadd:\n  ret"
    assert made == [1]
    with pytest.raises(TecompError, match=r"format 'cu'; available: 'll', 'asm'"):
        m.get_source("cu")


# ---- timing ----------------------------------------------------------------------------------

def _call_count(lib_path: Path) -> int:
    counter = ctypes.CDLL(str(lib_path)).test_call_count  # dlopen of the same path: the same library
    counter.restype = ctypes.c_int64
    return counter()


def test_time_evaluator_counts_warmup_number_and_repeat(mod: Module, lib_path: Path) -> None:
    a, b, c = _vectors()
    before = _call_count(lib_path)
    result = mod.time_evaluator("vadd", cpu(0), number=3, repeat=4)(a, b, c)
    assert _call_count(lib_path) - before == 1 + 3 * 4
    assert len(result.results) == 4 and all(t > 0 for t in result.results)
    assert result.min <= result.median <= result.max
    assert result.mean == pytest.approx(sum(result.results) / 4)
    assert result.std >= 0
    np.testing.assert_allclose(c, a + b)


def test_time_evaluator_min_repeat_ms_grows_number(mod: Module, lib_path: Path) -> None:
    a, b, c = _vectors()
    before, start = _call_count(lib_path), time.perf_counter()
    result = mod.time_evaluator(mod.entry_name, cpu(0), number=1, repeat=2, min_repeat_ms=20)(a, b, c)
    assert time.perf_counter() - start >= 0.040
    assert _call_count(lib_path) - before > 1 + 2
    assert len(result.results) == 2


def test_time_evaluator_checks_arguments_and_settings(mod: Module) -> None:
    a, b, _ = _vectors()
    with pytest.raises(ArgumentError, match="vadd expects 3 arguments"):
        mod.time_evaluator("vadd", cpu(0))(a, b)
    for bad in ({"number": 0}, {"number": 2.5}, {"repeat": 0}, {"min_repeat_ms": -1}):
        with pytest.raises(TecompError, match=f"{next(iter(bad))} must be"):
            mod.time_evaluator("vadd", cpu(0), **bad)
    with pytest.raises(TecompError, match="runs on the CPU"):
        mod.time_evaluator("vadd", cuda(0))
    with pytest.raises(TecompError, match="no function 'nope'"):
        mod.time_evaluator("nope", cpu(0))


# ---- export and loading without the compiler ------------------------------------------------

def test_export_library_and_load_without_compiler_deps(mod: Module, tmp_path: Path) -> None:
    out = tmp_path / "deep" / "dir" / "vadd.so"
    with pytest.raises(TecompError, match="directory .*deep/dir does not exist"):
        mod.export_library(out)  # a missing directory is an error, never created silently
    out.parent.mkdir(parents=True)
    mod.export_library(out)
    blocker = tmp_path / "blocker"
    for name in ("llvmlite", "xgboost", "sqlite_utils"):
        (blocker / name).mkdir(parents=True)
        (blocker / name / "__init__.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import tecomp.runtime as rt
        try:
            import llvmlite
        except ImportError:
            pass
        else:
            sys.exit("llvmlite was importable")
        m = rt.load_module({str(out)!r})
        a, b = np.arange(5, dtype=np.float32), np.ones(5, np.float32)
        c = rt.nd.empty((5,), "float32")
        m(a, b, c)
        assert (c.numpy() == a + b).all()
        print("ok", sorted(k for k in sys.modules if k.split('.')[0] in ('llvmlite', 'xgboost')))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok []"


def test_reloading_a_path_after_re_export_gets_the_new_library(mod: Module, libdir: Path,
                                                               tmp_path: Path) -> None:
    only_fail = {**METADATA, "functions": [f for f in METADATA["functions"] if f["name"] == "fail"]}
    other = load_module(_compile(libdir, "only_fail", FUNCTIONS_C + _metadata_c(json.dumps(only_fail))))
    path = tmp_path / "lib.so"
    mod.export_library(path)
    first = load_module(path)
    inode = path.stat().st_ino
    other.export_library(path)
    assert path.stat().st_ino != inode  # a new file, not the loaded one rewritten in place
    second = load_module(path)
    assert first.function_names[0] == "vadd" and second.function_names == ("fail",)
    a, b, c = _vectors()
    first(a, b, c)
    np.testing.assert_allclose(c, a + b)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lib.so"]


def test_export_library_onto_itself_is_harmless(mod: Module, lib_path: Path) -> None:
    mod.export_library(lib_path)
    assert load_module(lib_path).entry_name == "vadd"


# ---- invalid libraries -----------------------------------------------------------------------

def _bad_metadata(**changes: object) -> str:
    return json.dumps({**METADATA, **changes})


@pytest.mark.parametrize("name, source, message", [
    ("nometa", FUNCTIONS_C, "exports no __tecomp_metadata"),
    ("badjson", FUNCTIONS_C + _metadata_c("{not json"), "is not valid JSON"),
    ("format2", FUNCTIONS_C + _metadata_c(_bad_metadata(format=2)), "metadata format 2 is not supported"),
    ("noformat", FUNCTIONS_C + _metadata_c(json.dumps({"functions": []})), "metadata has no 'format'"),
    ("nofuncs", FUNCTIONS_C + _metadata_c(_bad_metadata(functions=[])), "lists no functions"),
    ("missing", FUNCTIONS_C + _metadata_c(_bad_metadata(functions=[
        {"name": "vmul", "params": [], "size_vars": []}])), "'vmul', but the library does not export it"),
    ("baddtype", FUNCTIONS_C + _metadata_c(_bad_metadata(functions=[
        {"name": "fail", "params": [{"name": "A", "dtype": "complex64", "shape": [1]}], "size_vars": []}])),
     r"param 0 \(A\): unsupported dtype 'complex64'"),
    ("badshape", FUNCTIONS_C + _metadata_c(_bad_metadata(functions=[
        {"name": "fail", "params": [{"name": "A", "dtype": "float32", "shape": ["k"]}], "size_vars": []}])),
     "shape entry 'k' is neither"),
    ("unboundvar", FUNCTIONS_C + _metadata_c(_bad_metadata(functions=[
        {"name": "fail", "params": [], "size_vars": [{"name": "n", "dtype": "int32"}]}])),
     r"size vars \['n'\] appear in no parameter shape"),
])
def test_invalid_library_metadata(libdir: Path, name: str, source: str, message: str) -> None:
    path = _compile(libdir, name, source)
    with pytest.raises(TecompError, match=message) as info:
        load_module(path)
    assert str(path) in str(info.value)


def test_file_that_is_not_a_shared_library(tmp_path: Path) -> None:
    text = tmp_path / "notes.so"
    text.write_text("hello")
    with pytest.raises(TecompError, match=re.escape(f"{text} is not a shared library")):
        load_module(text)
    with pytest.raises(TecompError, match="cannot read library"):
        load_module(tmp_path / "absent.so")


def test_executable_is_not_loaded(tmp_path: Path) -> None:
    src = tmp_path / "main.c"
    src.write_text("int main(void) { return 0; }\n")
    for flag in ("-no-pie", "-pie"):
        exe = tmp_path / f"main{flag}"
        subprocess.run(["gcc", flag, "-fPIE" if flag == "-pie" else "-fno-pie", str(src), "-o", str(exe)],
                       check=True)
        with pytest.raises(TecompError, match=re.escape(str(exe))):
            load_module(exe)


# ---- threads and configuration ---------------------------------------------------------------

@pytest.fixture
def restore_threads():
    before = get_num_threads()
    yield
    set_num_threads(before)


def test_set_num_threads_reaches_compiled_code_in_every_thread(mod: Module, restore_threads: None) -> None:
    out = np.zeros(1, np.int32)
    set_num_threads(1)
    assert get_num_threads() == 1
    mod["nthreads"](out)
    assert out[0] == 1
    set_num_threads(3)
    seen = []
    worker = threading.Thread(target=lambda: (mod["nthreads"](out), seen.append(int(out[0]))))
    worker.start()
    worker.join()
    assert seen == [3]


def test_set_num_threads_rejects_bad_counts() -> None:
    for bad in (0, -1, 1.5, True):
        with pytest.raises(TecompError, match="positive integer"):
            set_num_threads(bad)


def test_tecomp_num_threads_is_honoured(lib_path: Path) -> None:
    script = ("import tecomp.runtime as rt, numpy as np; m = rt.load_module(%r); o = np.zeros(1, np.int32); "
              "m['nthreads'](o); print(rt.get_num_threads(), o[0])" % str(lib_path))
    env = dict(os.environ, PYTHONPATH=str(REPO), TECOMP_NUM_THREADS="2")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["2", "2"]


def test_config_knobs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("TECOMP_NUM_THREADS", "TECOMP_CACHE_DIR", "TECOMP_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    assert config.num_threads() == config.available_cores() >= 1
    assert config.cache_dir() == Path("~/.cache/tecomp").expanduser()
    assert config.log_level() == "WARNING"
    monkeypatch.setenv("TECOMP_NUM_THREADS", "3")
    monkeypatch.setenv("TECOMP_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("TECOMP_LOG_LEVEL", "debug")
    assert (config.num_threads(), config.cache_dir(), config.log_level()) == (3, tmp_path / "c", "DEBUG")
    assert not (tmp_path / "c").exists()
    for value in ("0", "two", "-4"):
        monkeypatch.setenv("TECOMP_NUM_THREADS", value)
        with pytest.raises(TecompError, match=f"TECOMP_NUM_THREADS must be a positive integer, got '{value}'"):
            config.num_threads()
    monkeypatch.setenv("TECOMP_LOG_LEVEL", "loud")
    with pytest.raises(TecompError, match="TECOMP_LOG_LEVEL must be one of"):
        config.log_level()


@pytest.mark.parametrize("value, level, warned", [("info", "20", False), ("loud", "0", True), ("", "0", False)])
def test_importing_tecomp_applies_the_log_level(value: str, level: str, warned: bool) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), TECOMP_LOG_LEVEL=value)
    script = "import logging, tecomp; print(logging.getLogger('tecomp').level)"
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == [level], proc.stderr
    assert ("TECOMP_LOG_LEVEL must be one of" in proc.stderr) == warned
