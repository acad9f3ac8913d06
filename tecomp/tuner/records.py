"""The tuning records database: one SQLite file, written through sqlite-utils.

Owns the schema (tables ``meta`` and ``records``, versioned by
``SCHEMA_VERSION``), opening a file safely, concurrent appends from several
tuning processes, the best-record queries and JSON-lines export/import.

Records are data, never code: a config is stored as its ``to_json_dict()``
JSON and costs as a JSON list; nothing here pickles or evaluates. Opening a
file that is not a readable records database of a version this tecomp
understands raises :class:`RecordsError` naming the path, and never writes to
the file. This module must not import the compiler or the measurement
machinery (``MeasureInput``/``MeasureResult`` are duck-typed).

Concurrency: the file is in WAL mode, every write is one ``BEGIN IMMEDIATE``
transaction, and a write that still meets a locked database after SQLite's
busy timeout is retried with backoff, so processes appending to one file at
once lose no record.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Union

from ..error import TecompError

SCHEMA_VERSION = 1
_BUSY_TIMEOUT_S = 10.0
_WRITE_DEADLINE_S = 120.0
logger = logging.getLogger("tecomp.tuner")
_malformed_warned: dict[str, int] = {}  # database path -> malformed rows last warned about

_RECORD_COLUMNS = {
    "id": int, "task_key": str, "target": str, "config": str, "config_index": int,
    "costs": str, "mean_cost": float, "error_no": int, "error_msg": str, "all_cost": float,
    "timestamp": float, "tecomp_version": str, "tuner": str, "flop": float, "num_threads": int,
}
_ADDED_COLUMNS = {"num_threads"}  # absent from databases written before it; added on their next write
_NOT_NULL = {"task_key", "target", "config", "config_index", "costs", "error_no", "error_msg",
             "all_cost", "timestamp", "tecomp_version"}


class RecordsError(TecompError):
    """A records database or JSON-lines file that cannot be read or written (names the path)."""


@dataclass(frozen=True)
class Record:
    """One measurement as stored: plain data, no task or schedule objects."""

    task_key: str
    target: str
    config: dict
    costs: tuple
    error_no: int
    error_msg: str
    all_cost: float
    timestamp: float
    version: str
    tuner: Optional[str] = None
    flop: Optional[float] = None
    num_threads: Optional[int] = None  # threads the candidate was timed with (None: not recorded)

    @property
    def config_index(self) -> int:
        return self.config["index"]

    @property
    def mean_cost(self) -> Optional[float]:
        """Mean seconds per call of a valid measurement; None for an error."""
        if self.error_no != 0 or not self.costs:
            return None
        return sum(self.costs) / len(self.costs)

    def to_json_dict(self) -> dict:
        return {"task_key": self.task_key, "target": self.target, "config": self.config,
                "costs": list(self.costs), "error_no": self.error_no, "error_msg": self.error_msg,
                "all_cost": self.all_cost, "timestamp": self.timestamp, "version": self.version,
                "tuner": self.tuner, "flop": self.flop, "num_threads": self.num_threads}


def _tecomp_version() -> str:
    import tecomp
    return tecomp.__version__


def record_from_measure(inp: Any, res: Any, tuner: Optional[str] = None) -> Record:
    """The Record of one ``(MeasureInput, MeasureResult)`` pair."""
    flop = getattr(inp.task, "flop", None)
    return Record(task_key=inp.task.key, target=str(inp.task.target), config=inp.config.to_json_dict(),
                  costs=tuple(float(c) for c in res.costs), error_no=int(res.error_no),
                  error_msg=str(res.error_msg), all_cost=float(res.all_cost),
                  timestamp=float(res.timestamp), version=_tecomp_version(), tuner=tuner,
                  flop=float(flop) if flop else None, num_threads=getattr(res, "num_threads", None))


# ---------------------------------------------------------------- validation of JSON records

def _expect(obj: dict, key: str, kinds: tuple, optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise ValueError(f"missing field {key!r}")
    value = obj[key]
    if optional and value is None:
        return None
    if not isinstance(value, kinds) or isinstance(value, bool):
        raise ValueError(f"field {key!r} has the wrong type ({type(value).__name__})")
    return value


_INT64 = 2 ** 63


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _number(obj: dict, key: str, optional: bool = False) -> Optional[float]:
    value = _expect(obj, key, (int, float), optional)
    if value is None:
        return None
    if not _finite(value):
        raise ValueError(f"field {key!r} must be a finite number")
    return float(value)


def _int64(value: int, what: str) -> int:
    if not -_INT64 <= value < _INT64:
        raise ValueError(f"{what} {value} does not fit a 64-bit integer")
    return value


def _threads(obj: dict) -> Optional[int]:
    value = _expect(obj, "num_threads", (int,), True)
    if value is not None and not 1 <= value < _INT64:
        raise ValueError(f"field 'num_threads' must be a positive integer, got {value}")
    return value


def record_from_json_dict(obj: Any) -> Record:
    """Validate a JSON object (as written by ``Record.to_json_dict``); ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    config = _expect(obj, "config", (dict,))
    index = config.get("index")
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(config.get("entities"), dict):
        raise ValueError("field 'config' must hold an integer 'index' and an 'entities' object")
    _int64(index, "config index")
    costs = _expect(obj, "costs", (list,))
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) and _finite(c) for c in costs):
        raise ValueError("field 'costs' must be a list of finite numbers")
    return Record(task_key=_expect(obj, "task_key", (str,)), target=_expect(obj, "target", (str,)),
                  config=config, costs=tuple(float(c) for c in costs),
                  error_no=_int64(_expect(obj, "error_no", (int,)), "error_no"),
                  error_msg=_expect(obj, "error_msg", (str,)),
                  all_cost=_number(obj, "all_cost"), timestamp=_number(obj, "timestamp"),
                  version=_expect(obj, "version", (str,)), tuner=_expect(obj, "tuner", (str,), True),
                  flop=_number(obj, "flop", True), num_threads=_threads(obj))


def _row(rec: Record) -> dict:
    return {"task_key": rec.task_key, "target": rec.target, "config": json.dumps(rec.config, sort_keys=True),
            "config_index": rec.config_index, "costs": json.dumps(list(rec.costs)),
            "mean_cost": rec.mean_cost, "error_no": rec.error_no, "error_msg": rec.error_msg,
            "all_cost": rec.all_cost, "timestamp": rec.timestamp, "tecomp_version": rec.version,
            "tuner": rec.tuner, "flop": rec.flop, "num_threads": rec.num_threads}


def _record(row: dict) -> Record:
    """The Record of a database row; ValueError says what is malformed (bad JSON, wrong types, missing fields)."""
    try:
        obj = {key: row[key] for key in ("task_key", "target", "error_no", "error_msg", "all_cost",
                                         "timestamp", "tuner", "flop")}
        obj["version"] = row["tecomp_version"]
        obj["num_threads"] = row.get("num_threads")
        obj["config"] = json.loads(row["config"])
        obj["costs"] = json.loads(row["costs"])
    except KeyError as exc:
        raise ValueError(f"missing column {exc}") from None
    except (TypeError, RecursionError) as exc:  # json.loads of a non-string, or absurdly nested JSON
        raise ValueError(f"unreadable JSON: {exc}") from None
    return record_from_json_dict(obj)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


# ---------------------------------------------------------------- the database

CONFIRM_TUNER = "confirm"  # records re-timing a task's fastest configs beside its default (tuner.confirm)


def preferring_threads(records: list[Record], num_threads: Optional[int]) -> list[Record]:
    """``records`` timed with ``num_threads`` threads (or not saying), if there are any; else all."""
    same = [r for r in records if num_threads is not None and r.num_threads in (None, num_threads)]
    return same or records


def _median_record(records: list[Record]) -> Record:
    """The record whose mean cost is the median of ``records``' (the lower middle of an even count)."""
    ordered = sorted(records, key=lambda r: r.mean_cost)
    return ordered[(len(ordered) - 1) // 2]


class RecordDB:
    """A records database at ``path`` (created if absent; validated if present)."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        import sqlite_utils

        self.path = str(Path(path))
        self._warned = False
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S)
        except sqlite3.Error as exc:
            raise RecordsError(f"cannot open records database {self.path}: {exc}") from None
        self._db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        try:
            self._open()
        except BaseException:
            conn.close()
            raise

    # ------------------------------------------------------------ opening
    def _open(self) -> None:
        tables = self._read(self._check_integrity)
        if not tables:
            self._write(self._create_schema)
            tables = self._read(self._table_names)
        if not {"meta", "records"} <= set(tables):
            raise RecordsError(f"{self.path} is a SQLite database but not a tecomp records database "
                               f"(it has tables {', '.join(sorted(tables))}; expected 'meta' and 'records')")
        self._check_schema()
        self._retry(self._enable_wal)

    def _table_names(self) -> list[str]:
        return self._db.table_names()

    def _check_integrity(self) -> list[str]:
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise RecordsError(f"{self.path} is a corrupt SQLite database: {'; '.join(problems[:3])}")
        return self._table_names()

    def _create_schema(self) -> None:
        # Another process may have created the schema since we looked: IF NOT EXISTS / OR IGNORE.
        self._db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
        self._db["meta"].insert_all([{"key": "schema_version", "value": str(SCHEMA_VERSION)},
                                     {"key": "created_by", "value": f"tecomp {_tecomp_version()}"}],
                                    ignore=True)
        self._db["records"].create(_RECORD_COLUMNS, pk="id", not_null=_NOT_NULL, if_not_exists=True)
        self._db["records"].create_index(["task_key", "target"], index_name="records_task_target",
                                         if_not_exists=True)

    def _check_schema(self) -> None:
        rows = list(self._read(lambda: list(self._db["meta"].rows_where("key = ?", ["schema_version"]))))
        try:
            version = int(rows[0]["value"])
        except (IndexError, KeyError, TypeError, ValueError):
            raise RecordsError(f"{self.path}: table 'meta' holds no valid schema_version; "
                               "it is not a tecomp records database") from None
        if version > SCHEMA_VERSION:
            raise RecordsError(f"{self.path} has records schema version {version}, newer than this tecomp "
                               f"({_tecomp_version()}) reads ({SCHEMA_VERSION}); upgrade tecomp")
        if version < 1:
            raise RecordsError(f"{self.path}: invalid records schema version {version}")
        missing = set(_RECORD_COLUMNS) - _ADDED_COLUMNS - set(self._read(lambda: self._db["records"].columns_dict))
        if missing:
            raise RecordsError(f"{self.path}: table 'records' lacks columns {', '.join(sorted(missing))}; "
                               "it is not a tecomp records database")

    def _enable_wal(self) -> None:
        self._db.enable_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, and no fsync per record

    # ------------------------------------------------------------ transactions
    def _read(self, fn):
        try:
            return self._retry(fn)
        except RecordsError:
            raise
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"cannot read records database {self.path}: {exc}") from None

    def _write(self, fn) -> Any:
        def transaction():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn()
                self._db.execute("COMMIT")
                return result
            except BaseException:
                if self._db.conn.in_transaction:
                    self._db.conn.rollback()
                raise
        try:
            return self._retry(transaction)
        except sqlite3.DatabaseError as exc:
            raise RecordsError(f"cannot write records database {self.path}: {exc}") from None

    def _retry(self, fn):
        """Run ``fn``, retrying while the database is locked by another process."""
        deadline = time.monotonic() + _WRITE_DEADLINE_S
        delay = 0.005
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)

    # ------------------------------------------------------------ writing
    def add(self, inp: Any, res: Any, tuner: Optional[str] = None) -> None:
        """Append one ``(MeasureInput, MeasureResult)``; ``tuner`` names the search strategy."""
        self.add_many([(inp, res)], tuner)

    def add_many(self, pairs: Iterable[tuple[Any, Any]], tuner: Optional[str] = None) -> None:
        """Append measurements in one transaction."""
        self.add_records(record_from_measure(inp, res, tuner) for inp, res in pairs)

    def add_records(self, records: Iterable[Record]) -> int:
        """Append Records in one transaction; returns how many."""
        rows = [_row(r) for r in records]
        if rows:
            self._write(lambda: self._db["records"].insert_all(rows, alter=True))
        return len(rows)

    # ------------------------------------------------------------ reading
    def _where(self, task_key: Optional[str], target: Optional[str]) -> tuple[str, list]:
        clauses, args = [], []
        if task_key is not None:
            clauses.append("task_key = ?")
            args.append(task_key)
        if target is not None:
            clauses.append("target = ?")
            args.append(str(target))
        return " AND ".join(clauses) or "1", args

    def records(self, task_key: Optional[str] = None, target: Optional[str] = None,
                num_threads: Optional[int] = None) -> Iterator[Record]:
        """Records in the order they were added, optionally of one task and target, and optionally
        timed with ``num_threads`` threads (records that do not say how many count as matching).

        A row that does not parse (bad JSON, wrong types, missing fields) is skipped; the first time
        one is met, one warning counts the malformed rows of the whole database."""
        where, args = self._where(task_key, target)
        rows = self._read(lambda: list(self._db["records"].rows_where(where, args, order_by="id")))
        parsed = self._parse(rows)
        if num_threads is not None:
            parsed = [r for r in parsed if r.num_threads in (None, num_threads)]
        return iter(parsed)

    def _parse(self, rows: list[dict]) -> list[Record]:
        parsed, bad = [], False
        for row in rows:
            try:
                parsed.append(_record(row))
            except ValueError:
                bad = True
        if bad and not self._warned:
            self._warn_malformed()
        return parsed

    def _warn_malformed(self) -> None:
        self._warned = True
        rows = self._read(lambda: list(self._db["records"].rows_where(order_by="id")))
        bad, first = 0, ""
        for row in rows:
            try:
                _record(row)
            except ValueError as exc:
                bad, first = bad + 1, first or f"row id {row.get('id')}: {exc}"
        where = os.path.realpath(self.path)
        if _malformed_warned.get(where) != bad:  # once per database and process, unless it changes
            _malformed_warned[where] = bad
            logger.warning("%s: skipping %d malformed record row(s) of %d (first: %s)",
                           self.path, bad, len(rows), first)

    def best(self, task_key: str, target: str, num_threads: Optional[int] = None) -> Optional[Record]:
        """The valid record (error_no == 0) with the smallest mean cost (the first of equals), or None.

        With ``num_threads``, records timed with that many threads (or not saying) come first (a
        schedule fast on one core may not be on several); only if there are none, the fastest of
        any count. Where the task's fastest configs were re-timed beside its default
        (``tuner.confirm``), the choice is among those configs only, by the median of their
        re-timings (a record of the config with that median)."""
        valid = [r for r in self.records(task_key, target) if r.mean_cost is not None]
        pool = preferring_threads(valid, num_threads)
        confirmed: dict[int, list[Record]] = {}
        for rec in pool:
            if rec.tuner == CONFIRM_TUNER:
                confirmed.setdefault(rec.config_index, []).append(rec)
        if confirmed:
            return min((_median_record(recs) for recs in confirmed.values()), key=lambda r: r.mean_cost)
        return min(pool, key=lambda r: r.mean_cost) if valid else None

    def measured_indices(self, task_key: str, target: str) -> set[int]:
        """Config indices measured for a task on a target, errors included (malformed rows skipped)."""
        return {r.config_index for r in self.records(task_key, target)}

    def tasks(self) -> list[tuple[str, str]]:
        """The distinct (task_key, target) pairs of readable records, in order of first record."""
        return list(dict.fromkeys((r.task_key, r.target) for r in self.records()))

    def error_counts(self, task_key: str, target: str) -> dict[int, int]:
        """error_no -> number of readable records, for one task and target."""
        counts: dict[int, int] = {}
        for r in self.records(task_key, target):
            counts[r.error_no] = counts.get(r.error_no, 0) + 1
        return dict(sorted(counts.items()))

    def __len__(self) -> int:
        return self._read(lambda: self._db["records"].count)

    # ------------------------------------------------------------ JSON lines
    def export_jsonl(self, path: Union[str, os.PathLike]) -> int:
        """Write every record as one JSON object per line; returns how many."""
        count = 0
        try:
            with open(path, "w", encoding="utf-8") as f:
                for rec in self.records():
                    f.write(json.dumps(rec.to_json_dict(), sort_keys=True) + "\n")
                    count += 1
        except OSError as exc:
            raise RecordsError(f"cannot write {path}: {exc.strerror}") from None
        return count

    def import_jsonl(self, path: Union[str, os.PathLike]) -> int:
        """Append the records of a JSON-lines file (all or none); returns how many."""
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.readlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordsError(f"cannot read {path}: {exc}") from None
        records, bad = [], []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                records.append(record_from_json_dict(json.loads(line)))
            except (ValueError, RecursionError) as exc:  # json.JSONDecodeError is a ValueError
                bad.append(f"line {number}: not a valid tuning record: {exc}")
        if bad:
            shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
            raise RecordsError(f"{path}: nothing imported, {len(bad)} bad line(s): {shown}")
        return self.add_records(records)

    def close(self) -> None:
        self._db.conn.close()

    def __enter__(self) -> "RecordDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RecordDB {self.path}>"


@contextmanager
def open_db(db: Union[RecordDB, str, os.PathLike]) -> Iterator[RecordDB]:
    """``db`` itself if it is a RecordDB, else a RecordDB opened on the path and closed after."""
    if isinstance(db, RecordDB):
        yield db
        return
    opened = RecordDB(db)
    try:
        yield opened
    finally:
        opened.close()
