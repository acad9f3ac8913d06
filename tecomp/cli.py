"""The ``tecomp`` command line.

Owns argument parsing and printing; each subcommand is a thin layer over the
library (``records``: :mod:`tecomp.tuner.records`). Errors tecomp raises on
purpose are printed as one line and exit with status 1; nothing here may
hold logic the library lacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Optional, Sequence

from .error import TecompError

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
    print(f"  best {best.mean_cost * 1e3:.4f} ms{speed}  config {json.dumps(best.config, sort_keys=True)}")


def _records(args: argparse.Namespace) -> None:
    from .tuner.records import RecordDB, RecordsError

    if not args.import_path and not os.path.exists(args.db):
        raise RecordsError(f"{args.db}: no such file")
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tecomp", description="tecomp: a tensor-expression compiler")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    records = commands.add_parser("records", help="summarize a tuning records database: best config per task")
    records.add_argument("db", help="records database (SQLite file written by tuning)")
    records.add_argument("--export", metavar="OUT.jsonl", help="write every record as JSON lines")
    records.add_argument("--import", dest="import_path", metavar="IN.jsonl",
                         help="append the records of a JSON-lines file first")
    records.set_defaults(run=_records)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.run(args)
    except TecompError as exc:
        print(f"tecomp {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
