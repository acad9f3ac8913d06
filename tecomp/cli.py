"""The ``tecomp`` command line.

Owns argument parsing and printing; each subcommand is a thin layer over the
library (``records``: :mod:`tecomp.tuner.records`; ``compile``, ``tune``,
``run``: :mod:`tecomp.graph`, with models read by the ONNX frontend, or a
graph JSON file plus a params ``.npz``). Errors tecomp raises on purpose are
printed as one line and exit with status 1; nothing here may hold logic the
library lacks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from .error import ArgumentError, GraphError, TecompError

if TYPE_CHECKING:
    from .tuner.records import RecordDB


def _error_kind(error_no: int) -> str:
    from .tuner.measure import MeasureErrorNo
    try:
        return MeasureErrorNo(error_no).name
    except ValueError:
        return f"error {error_no}"


def _print_task(db: RecordDB, task_key: str, target: str) -> None:
    counts = db.error_counts(task_key, target)
    trials = sum(counts.values())
    errors = ", ".join(f"{_error_kind(no)} {n}" for no, n in counts.items() if no != 0) or "none"
    print(f"task {task_key}  target {target}")
    print(f"  trials {trials}  valid {counts.get(0, 0)}  errors: {errors}")
    best = db.best(task_key, target)
    if best is None:
        print("  best: no valid measurement")
        return
    speed = f"  {best.flop / best.mean_cost / 1e9:.2f} GFLOP/s" if best.flop else ""
    threads = f"  on {best.num_threads} threads" if best.num_threads else ""
    print(f"  best {best.mean_cost * 1e3:.4f} ms{speed}{threads}  config {json.dumps(best.config, sort_keys=True)}")


def _records(args: argparse.Namespace) -> None:
    from .tuner.records import RecordDB, RecordsError

    if not args.import_path and not os.path.exists(args.db):
        raise RecordsError(f"{args.db}: no such file")
    if args.import_path and not os.path.isfile(args.import_path):
        raise RecordsError(f"--import {args.import_path}: no such file")
    if args.export:
        _writable(args.export, "--export")
    with RecordDB(args.db) as db:
        if args.import_path:
            print(f"imported {db.import_jsonl(args.import_path)} records from {args.import_path}")
        tasks = db.tasks()
        if not tasks:
            print(f"{args.db}: no records")
        for task_key, target in tasks:
            _print_task(db, task_key, target)
        if args.export:
            print(f"exported {db.export_jsonl(args.export)} records to {args.export}")


# ---------------------------------------------------------------------------- models

def _shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """``name=1,3,224,224`` -> {name: (1, 3, 224, 224)}."""
    shapes = {}
    for spec in specs or ():
        name, sep, dims = spec.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            shape = ()
        if not sep or not name or not shape or min(shape) < 0:
            raise ArgumentError(f"--shape {spec!r}: expected NAME=D0,D1,... with non-negative integer dims")
        shapes[name] = shape
    return shapes


_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _array_file_kind(path: str, option: str) -> str:
    """"npy" or "npz" by the file's first bytes; ArgumentError for anything else (a text file, ...)."""
    try:
        with open(path, "rb") as f:
            head = f.read(6)
    except OSError as exc:
        raise ArgumentError(f"{option} {path}: cannot read it: {exc.strerror or exc}") from None
    if head.startswith(_NPY_MAGIC):
        return "npy"
    if head.startswith(_ZIP_MAGIC[:2]):
        return "npz"
    raise ArgumentError(f"{option} {path}: not a .npy or .npz file (write arrays with numpy.save / numpy.savez)")


def _writable(path: str, option: str) -> None:
    """Check before any work that ``option``'s file can be written (its directory exists, ...)."""
    from .runtime.module import check_output_path

    try:
        check_output_path(path, option)
    except TecompError as exc:
        raise ArgumentError(str(exc)) from None


def _load_npz(path: str, what: str) -> dict[str, Any]:
    import numpy as np

    if _array_file_kind(path, what) != "npz":
        raise ArgumentError(f"{what} {path}: a .npy array, expected a .npz of named arrays (numpy.savez)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise ArgumentError(f"{what} {path}: cannot read it as a .npz of arrays: {exc}") from None


def _frozen(specs: Sequence[str]) -> dict[str, Any]:
    """``name=file.npy`` -> {name: array} (``--freeze``: inputs that become import-time constants)."""
    import numpy as np

    values = {}
    for spec in specs or ():
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ArgumentError(f"--freeze {spec!r}: expected NAME=FILE.npy")
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArgumentError(f"--freeze {spec}: cannot read {path} as a .npy array: {exc}") from None
        if not isinstance(value, np.ndarray):
            value.close()
            raise ArgumentError(f"--freeze {spec}: cannot read {path} as a .npy array: it is a .npz archive")
        values[name] = value
    return values


def _load_model(path: str, shapes: dict, params_path: Optional[str],
                freeze: Optional[dict] = None) -> tuple[Any, dict]:
    """(graph, params) of an ONNX file (through the frontend) or of a tecomp graph JSON + params .npz."""
    if not os.path.exists(path):
        raise GraphError(f"{path}: no such model file")
    if path.endswith(".json"):
        from .graph import Graph

        graph = Graph.from_json(Path(path).read_text())
        for option, given in (("--shape", shapes), ("--freeze", freeze)):
            if given:
                raise ArgumentError(f"{option} applies to ONNX models; a graph JSON has static shapes already")
        return graph, _load_npz(params_path, "--params") if params_path else {}
    try:
        from .frontend import from_onnx
        import onnx
    except ImportError as exc:
        raise GraphError(f"reading {path} needs the ONNX frontend: {exc}") from None
    try:
        model = onnx.load(path)
    except Exception as exc:  # noqa: BLE001 - onnx raises assorted errors for unreadable files
        raise GraphError(f"{path}: not a readable ONNX model: {exc}") from None
    try:
        return from_onnx(model, shape=shapes or None, freeze=freeze or None)
    except GraphError as exc:
        raise GraphError(_cli_words(str(exc))) from None


def _cli_words(message: str) -> str:
    """A frontend message in command-line words: ``shape={'x': (...)}`` is ``--shape x=D0,D1,...``."""
    message = re.sub(r"shape=\{'([^']*)': \(\.\.\.\)\}", r"--shape \1=D0,D1,...", message)
    return re.sub(r"\b(shape|freeze)=(?=[\s,;:)]|$)", r"--\1", message)


def _dispatch(records: Optional[str]) -> Any:
    """The configs a compile uses: the records' best, else every kernel's default without a notice each."""
    if not records:
        from .graph.ops import untuned
        print("no --records: every kernel uses its default (untuned) config")
        return untuned()
    from .tuner import apply_history_best
    return apply_history_best(records)


def _auto_scheduled(records: Optional[str]) -> Any:
    """Auto-scheduler records of the database too: a kernel uses one where it beats the templates'."""
    import contextlib

    if not records:
        return contextlib.nullcontext()
    from .auto_scheduler.dispatch import ApplyHistoryBest
    return ApplyHistoryBest(records)


def _compile(args: argparse.Namespace) -> None:
    import tecomp.graph

    _writable(args.output, "-o")
    if args.records and not os.path.isfile(args.records):
        raise ArgumentError(f"--records {args.records}: no such records database")
    graph, params = _load_model(args.model, _shapes(args.shape), args.params, _frozen(args.freeze))
    with _dispatch(args.records), _auto_scheduled(args.records):
        module = tecomp.graph.build(graph, args.target, params, progress=not args.quiet)
    module.export_library(args.output)
    print(module.summary().replace(module.library_path, args.output, 1))


DEFAULT_TRIALS = 200  # per kernel


def parse_duration(text: str) -> float:
    """Seconds from ``600``, ``90s``, ``10m`` or ``1h`` (an argparse type)."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], units[text[-1]]) if text[-1:] in units else (text, 1)
    try:
        seconds = float(number) * unit
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive duration (e.g. 600, 90s, 10m, 1h)")
    return seconds


_TEMPLATE_ONLY = {"--tuner": "tuner", "--early-stopping": "early_stopping", "--retry-errors": "retry_errors"}


def _tune(args: argparse.Namespace) -> None:
    given = [flag for flag, name in _TEMPLATE_ONLY.items() if getattr(args, name)]
    if args.auto_schedule and given:
        raise ArgumentError(f"{', '.join(given)} apply to template tuning; --auto-schedule runs its own "
                            "evolutionary search (drop them, or drop --auto-schedule)")
    if args.records and not os.path.exists(args.records):
        _writable(args.records, "--records")  # a new database: its directory must exist
    graph, params = _load_model(args.model, _shapes(args.shape), args.params)
    from .config import default_records_path

    records = args.records or default_records_path()
    option = _dask_option(args) if args.scheduler else None
    try:
        if args.auto_schedule:
            _auto_schedule(args, graph, params, records, option)
        else:
            _tune_templates(args, graph, params, records, option)
    finally:
        if option is not None:
            option["runner"].close()


def _dask_option(args: argparse.Namespace) -> dict:
    """The builder and runner of ``--scheduler``'s cluster, timing as the local runner of the tuning would."""
    try:
        from .tuner.dask_measure import measure_option_for_scheduler
    except ImportError as exc:
        raise ArgumentError(f"--scheduler needs tecomp.tuner.dask_measure and distributed: {exc}") from None
    timing: dict = {}
    if args.auto_schedule:
        from .auto_scheduler.task import RUNNER_TIMING
        timing = RUNNER_TIMING
    return measure_option_for_scheduler(args.scheduler, args.target, num_threads=args.threads, **timing)


def _tune_templates(args: argparse.Namespace, graph: Any, params: Optional[dict], records: str,
                    option: Optional[dict]) -> None:
    from .graph.tuning import tune_model
    from .tuner.tuner import retrying_errors

    with retrying_errors(args.retry_errors):
        tasks = tune_model(graph, params, records, args.trials or DEFAULT_TRIALS, args.tuner or "xgb", args.target,
                           option, args.early_stopping, progress=not args.quiet, budget=args.budget,
                           num_threads=args.threads)
    print(f"tuned {len(tasks)} tasks, records in {records}")
    _print_compile_hint(args, records)


def _auto_schedule(args: argparse.Namespace, graph: Any, params: Optional[dict], records: str,
                   option: Optional[dict]) -> None:
    from .auto_scheduler.graph_tasks import tune_graph

    # a budget without --trials: the time is the only limit
    trials = args.trials or (None if args.budget else DEFAULT_TRIALS)
    tasks = tune_graph(graph, params, records, trials, args.target, args.threads, budget=args.budget,
                       measure_option=option, progress=not args.quiet)
    print(f"auto-scheduled {len(tasks)} kernels, records in {records}")
    _print_compile_hint(args, records)


def _print_compile_hint(args: argparse.Namespace, records: str) -> None:
    params = f" --params {args.params}" if args.params else ""
    target = f" --target {shlex.quote(args.target)}" if args.target != "llvm" else ""
    print(f"compile with: tecomp compile {args.model}{params}{target} -o MODEL.so --records {records}")


def _inputs(module: Any, specs: Sequence[str]) -> dict[str, Any]:
    """The model's inputs: the ``--input`` files (checked all before anything is read), random otherwise."""
    import numpy as np

    names = [t.name for t in module.inputs]
    chosen: dict[str, tuple[str, str]] = {}
    for k, spec in enumerate(specs or ()):
        name, sep, path = spec.partition("=")
        if not sep:
            if k >= len(names):
                raise ArgumentError(f"--input {spec}: the model has only {len(names)} inputs")
            name, path = names[k], spec
        if name not in names:
            raise ArgumentError(f"--input {spec}: the model has no input named {name!r}; its inputs are "
                                f"{', '.join(names)}")
        if name in chosen:
            raise ArgumentError(f"--input {spec}: input {name!r} is already given by --input {chosen[name][0]}")
        chosen[name] = (spec, path)
    given: dict[str, Any] = {}
    for name, (spec, path) in chosen.items():
        if _array_file_kind(path, "--input") != "npy":
            raise ArgumentError(f"--input {spec}: cannot read {path} as a .npy array: it is a .npz archive")
        try:
            given[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ArgumentError(f"--input {spec}: cannot read {path} as a .npy array: {exc}") from None
    rng = np.random.default_rng(0)
    for t in module.inputs:
        if t.name not in given:
            print(f"input {t.name}: random {t.dtype}{list(t.shape)} (no --input given)")
            given[t.name] = rng.standard_normal(t.shape).astype(t.dtype)
    return given


def _run(args: argparse.Namespace) -> None:
    import numpy as np

    import tecomp.graph

    save = args.save if not args.save or args.save.endswith(".npz") else args.save + ".npz"  # as numpy.savez
    if save:
        _writable(save, "--save")
    module = tecomp.graph.load(args.library)
    inputs = _inputs(module, args.input)
    outputs = module.run(**inputs)
    for spec, value in zip(module.outputs, outputs):
        flat = value.reshape(-1)
        stats = f"min {flat.min():.6g} max {flat.max():.6g} mean {flat.mean():.6g}" if flat.size else "empty"
        print(f"output {spec.name}: {value.dtype}{list(value.shape)} {stats}")
        print(f"  {np.array2string(flat[:8], precision=6)}{' ...' if flat.size > 8 else ''}")
    if save:
        np.savez(save, **{spec.name: value for spec, value in zip(module.outputs, outputs)})
        print(f"outputs saved to {save}")
    if args.repeat:
        t = module.benchmark(**inputs, repeat=args.repeat)
        print(f"latency over {args.repeat} runs: mean {t['mean'] * 1e3:.4f} ms  median {t['median'] * 1e3:.4f} ms  "
              f"min {t['min'] * 1e3:.4f} ms")
    if args.profile:
        steps = module.profile(**inputs, repeat=max(args.repeat or 10, 1))
        total = sum(s.seconds for s in steps) or 1.0
        print(f"profile (median per step, {len(steps)} steps, {total * 1e3:.4f} ms in all):")
        for k, s in sorted(enumerate(steps), key=lambda ks: -ks[1].seconds):
            print(f"  {s.seconds * 1e3:10.4f} ms {s.seconds / total:6.1%}  step {k:3d}  {s.label}")


def _add_model_arguments(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument("model", help="ONNX model (.onnx), or a tecomp graph JSON (.json) with --params")
    cmd.add_argument("--shape", action="append", metavar="NAME=D0,D1,...",
                     help="static shape of an input of an ONNX model (repeatable)")
    cmd.add_argument("--params", metavar="PARAMS.npz", help="param values of a graph JSON model")
    cmd.add_argument("--target", default="llvm",
                     help="target: llvm (default, this CPU) or cuda [-arch=sm_XY] (an NVIDIA GPU)")
    cmd.add_argument("--quiet", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tecomp", description="tecomp: a tensor-expression compiler")
    parser.add_argument("--version", action="version", version=f"tecomp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    records = commands.add_parser("records", help="summarize a tuning records database: best config per task")
    records.add_argument("db", help="records database (SQLite file written by tuning)")
    records.add_argument("--export", metavar="OUT.jsonl", help="write every record as JSON lines")
    records.add_argument("--import", dest="import_path", metavar="IN.jsonl",
                         help="append the records of a JSON-lines file first")
    records.set_defaults(run=_records)

    compile_ = commands.add_parser("compile", help="compile a model into one shared library (code + weights)")
    _add_model_arguments(compile_)
    compile_.add_argument("-o", "--output", required=True, metavar="MODEL.so", help="library to write")
    compile_.add_argument("--records", metavar="DB", help="tuning records to apply (best config per kernel)")
    compile_.add_argument("--freeze", action="append", metavar="NAME=X.npy",
                          help="an ONNX input that acts as a shape, axes or pads: its value, fixed at import "
                               "(repeatable)")
    compile_.set_defaults(run=_compile)

    tune = commands.add_parser("tune", help="tune every kernel of a model, logging to a records database")
    _add_model_arguments(tune)
    tune.add_argument("--records", metavar="DB",
                      help="records database (default: tuning/records.db under the tecomp cache dir)")
    tune.add_argument("--trials", type=_positive_int,
                      help=f"trials per kernel (default: {DEFAULT_TRIALS}; with --auto-schedule, per kernel on "
                           "average, and no limit when --budget is given)")
    tune.add_argument("--budget", type=parse_duration, metavar="TIME",
                      help="wall-clock time for the whole model (600, 90s, 10m, 1h): trials go to the kernels "
                           "that hold most of the model's estimated latency, each still capped by --trials "
                           "(with --auto-schedule, only when --trials is given)")
    tune.add_argument("--tuner", choices=("xgb", "ga", "random", "grid"),
                      help="template tuner (default: xgb)")
    tune.add_argument("--early-stopping", type=_positive_int, metavar="N", help="stop a kernel after N trials without gain")
    tune.add_argument("--threads", type=_positive_int, metavar="N",
                      help="time candidates with N threads, as the model will run (default: all cores, "
                           "or TECOMP_NUM_THREADS)")
    tune.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                      help="build and time candidates on a Dask cluster (docs/distributed.md); "
                           "with --auto-schedule too")
    tune.add_argument("--auto-schedule", action="store_true",
                      help="auto-schedule every fused kernel (no templates; docs/auto_scheduler.md)")
    tune.add_argument("--retry-errors", action="store_true",
                      help="measure again configs whose records in DB are all errors (e.g. timeouts)")
    tune.set_defaults(run=_tune)

    run = commands.add_parser("run", help="run a compiled model library and print its outputs")
    run.add_argument("library", help="model library written by tecomp compile")
    run.add_argument("--input", action="append", metavar="[NAME=]X.npy", help="an input (repeatable)")
    run.add_argument("--repeat", type=_positive_int, metavar="N", help="time N runs and print the latency")
    run.add_argument("--profile", action="store_true", help="print the time of each kernel")
    run.add_argument("--save", metavar="OUT.npz", help="write the outputs to a .npz file")
    run.set_defaults(run=_run)
    return parser


def _positive_int(text: str) -> int:
    """A positive integer (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each message."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging() -> None:
    """The ``tecomp`` logger at ``TECOMP_LOG_LEVEL`` (TecompError for an invalid value), to stderr."""
    from .config import log_level

    logger = logging.getLogger("tecomp")
    logger.setLevel(log_level())
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


def _quiet_stdout() -> None:
    """After the reader of stdout went away (``tecomp records db | head``): drop what is still buffered."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (1 for an error, 130 after Ctrl-C, 143 after
    SIGTERM: both unwind, so worker pools close and temporary directories go)."""
    args = _parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _configure_logging()
        args.run(args)
        sys.stdout.flush()
    except TecompError as exc:
        print(f"tecomp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print(f"tecomp {args.command}: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
    except BrokenPipeError:
        _quiet_stdout()
        return 128 + signal.SIGPIPE
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, to unwind like Ctrl-C."""


def _terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


if __name__ == "__main__":
    sys.exit(main())
