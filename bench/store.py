"""The results store of a run directory: one SQLite file (WAL), one row per finished sample.

A row is written the moment its sample finishes and committed at once, so a run killed at
any point resumes exactly where it stopped: the harness skips every (model, mode, style,
instance, repeat) that already has a row, except rows whose model call failed
(``model_error``): those are tried again, and the failed row moves to ``failed_attempts``
when its replacement is written, so ``samples`` holds each sample's latest outcome and the
error history is kept. ``repeat`` numbers the samples drawn for one instance (``eval
--samples K``); stores written before it existed are migrated on opening (their rows become
repeat 0). ``instances`` keeps the records that were evaluated, so reports can show gold
traces without the original dataset file.

One eval at a time writes to a run directory: :func:`lock_run_dir` holds an advisory lock
on ``RUN_DIR/.lock`` that the kernel releases when the process ends, however it ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from pencilbench.bench.errors import UserError

STORE_NAME = "results.sqlite"
LOCK_NAME = ".lock"
MODEL_ERROR = "model_error"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    model TEXT NOT NULL, mode TEXT NOT NULL, style TEXT NOT NULL,
    config TEXT NOT NULL, versions TEXT NOT NULL, started TEXT NOT NULL,
    PRIMARY KEY (model, mode, style)
);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, task TEXT NOT NULL, params TEXT NOT NULL, record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS failed_attempts (
    model TEXT NOT NULL, mode TEXT NOT NULL, style TEXT NOT NULL, instance_id TEXT NOT NULL,
    repeat INTEGER NOT NULL DEFAULT 0,
    error TEXT, output TEXT NOT NULL, generated_tokens INTEGER NOT NULL, wall_time REAL NOT NULL,
    replaced TEXT NOT NULL
);
"""
_SAMPLES = """
CREATE TABLE IF NOT EXISTS samples (
    model TEXT NOT NULL, mode TEXT NOT NULL, style TEXT NOT NULL, instance_id TEXT NOT NULL,
    task TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    correct INTEGER NOT NULL, partial REAL NOT NULL, parse_ok INTEGER NOT NULL,
    parsed_answer TEXT, gold_answer TEXT NOT NULL,
    peak_context INTEGER NOT NULL, generated_tokens INTEGER NOT NULL, reductions INTEGER NOT NULL,
    trace_rate REAL, wall_time REAL NOT NULL, output TEXT NOT NULL, error TEXT,
    context_lengths TEXT, repeat INTEGER NOT NULL DEFAULT 0, model_tokens INTEGER,
    PRIMARY KEY (model, mode, style, instance_id, repeat)
);
"""


@dataclass(frozen=True)
class Sample:
    """The outcome of one (model, mode, style, instance).

    ``status`` is ``ok``, ``context_overflow``, ``token_limit``, ``reply_cut`` (the reply
    byte cap), ``protocol_error`` or ``model_error``. Besides ``ok``, only the three budget
    stops can be correct: they are scored on the answer the reply finished before it was
    stopped (``parse_ok`` says whether there was one). ``params`` is the size's canonical
    JSON. ``context_lengths`` is the live context length after every generated token as a
    JSON list (``None`` when not recorded). ``generated_tokens`` counts pencilbench tokens
    (compact tokens, or instruct pieces); ``model_tokens`` the model's own tokens as its
    server reported them (``None`` when it did not, for any call).
    """

    model: str
    mode: str
    style: str
    instance_id: str
    task: str
    params: str
    status: str
    correct: bool
    partial: float
    parse_ok: bool
    parsed_answer: str | None
    gold_answer: str
    peak_context: int
    generated_tokens: int
    reductions: int
    trace_rate: float | None
    wall_time: float
    output: str
    error: str | None = None
    context_lengths: str | None = None
    repeat: int = 0
    model_tokens: int | None = None


SAMPLE_COLUMNS = tuple(f.name for f in fields(Sample))
# The columns that name one sample: a row of ``samples`` is unique on them.
SAMPLE_KEY = ("model", "mode", "style", "instance_id", "repeat")
_INSERT_SAMPLE = (f"INSERT OR IGNORE INTO samples ({', '.join(SAMPLE_COLUMNS)}) "
                  f"VALUES ({', '.join('?' for _ in SAMPLE_COLUMNS)})")
_MATCH_KEY = " AND ".join(f"{name} = ?" for name in SAMPLE_KEY)
_HISTORY = ("model", "mode", "style", "instance_id", "repeat", "error", "output", "generated_tokens", "wall_time")
_MOVE_FAILED = (f"INSERT INTO failed_attempts ({', '.join(_HISTORY)}, replaced) "
                f"SELECT {', '.join(_HISTORY)}, ? FROM samples WHERE {_MATCH_KEY} AND status = '{MODEL_ERROR}'")
_DELETE_FAILED = f"DELETE FROM samples WHERE {_MATCH_KEY} AND status = '{MODEL_ERROR}'"


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a samples table written by an older version to the current schema: the table is
    rebuilt (SQLite cannot change a primary key in place) with every row kept."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(samples)")]
    if "repeat" in columns and "model_tokens" in columns:
        return
    kept = ", ".join(name for name in columns if name in SAMPLE_COLUMNS)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("ALTER TABLE samples RENAME TO samples_old")
        db.execute(_SAMPLES)
        db.execute(f"INSERT INTO samples ({kept}) SELECT {kept} FROM samples_old")
        db.execute("DROP TABLE samples_old")
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _create(path: Path) -> None:
    """Write a new, empty store under a temporary name and rename it into place: SQLite
    creates its file empty and writes the header later, so a store created in place could be
    seen empty by a reader, or left empty by a run killed in between, and then be refused."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    for suffix in ("", "-journal"):  # left by a run killed while creating
        partial.with_name(partial.name + suffix).unlink(missing_ok=True)
    db = sqlite3.connect(partial)
    try:
        db.executescript(_SCHEMA + _SAMPLES)
    finally:
        db.close()
    os.replace(partial, path)


def is_run_dir(path: str | Path) -> bool:
    return (Path(path) / STORE_NAME).is_file()


@contextmanager
def lock_run_dir(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory's lock for the duration; ``UserError`` when another process
    holds it. ``flock`` locks belong to the open file, so they go when the process does,
    also after ``kill -9``: a stale lock cannot outlive its owner."""
    path = Path(run_dir) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise UserError(f"{run_dir} is in use by another eval (pid {owner}); wait for it to finish "
                            "or use another --run-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


class ResultStore:
    """Read and write access to ``RUN_DIR/results.sqlite``.

    A file that is not a results store (zero bytes, or not SQLite, or damaged) is refused
    with ``UserError`` before anything is written to it.
    """

    def __init__(self, run_dir: str | Path, *, create: bool = False) -> None:
        self.path = Path(run_dir) / STORE_NAME
        exists = self.path.is_file()
        if not create and not exists:
            raise FileNotFoundError(f"{run_dir} is not a pencilbench run directory (no {STORE_NAME})")
        if exists and self.path.stat().st_size == 0:
            raise UserError(f"{self.path} is empty (0 bytes), not a results store; move it away to start afresh")
        if not exists:
            _create(self.path)
        self.db = sqlite3.connect(self.path, timeout=30)
        try:
            if exists:
                verdict = self.db.execute("PRAGMA quick_check").fetchone()[0]
                if verdict != "ok":
                    raise sqlite3.DatabaseError(verdict)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA + _SAMPLES)
            _migrate(self.db)
        except sqlite3.DatabaseError as error:
            self.db.close()
            raise UserError(f"{self.path} is not a readable results store ({error}); "
                            "nothing was changed, move it away to start afresh") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_evaluation(self, model: str, mode: str, style: str, config: Mapping[str, Any],
                         versions: Mapping[str, Any], started: str) -> None:
        """Record how an evaluation was configured; the first configuration is kept on resume,
        except ``data``, which lists every data file the evaluation was run on."""
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO evaluations VALUES (?, ?, ?, ?, ?, ?)",
                (model, mode, style, json.dumps(config, sort_keys=True),
                 json.dumps(versions, sort_keys=True), started),
            )
            if "data" not in config:
                return
            row = self.db.execute("SELECT config FROM evaluations WHERE model = ? AND mode = ? AND style = ?",
                                  (model, mode, style)).fetchone()
            stored = json.loads(row[0])
            files = stored.get("data") if isinstance(stored.get("data"), list) else [stored.get("data")]
            if config["data"] not in files:
                stored["data"] = [*files, config["data"]]
                self.db.execute("UPDATE evaluations SET config = ? WHERE model = ? AND mode = ? AND style = ?",
                                (json.dumps(stored, sort_keys=True), model, mode, style))

    def add_instances(self, records: Iterable[Mapping[str, Any]]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO instances VALUES (?, ?, ?, ?)",
                ((r["id"], r["task"], json.dumps(r["params"], sort_keys=True, separators=(",", ":")),
                  json.dumps(r)) for r in records),
            )

    def statuses(self, model: str, mode: str, style: str) -> dict[tuple[str, int], str]:
        """The status of every (instance id, repeat) that has a row for this evaluation."""
        rows = self.db.execute(
            "SELECT instance_id, repeat, status FROM samples WHERE model = ? AND mode = ? AND style = ?",
            (model, mode, style),
        )
        return {(row[0], row[1]): row[2] for row in rows}

    def write(self, sample: Sample) -> bool:
        """Commit one sample; ``False`` (and nothing written) if it already had a row. A
        ``model_error`` row is not kept in the way: it moves to ``failed_attempts`` and the
        new outcome takes its place, in one transaction."""
        row = tuple(getattr(sample, name) for name in SAMPLE_COLUMNS)
        with self.db:
            if self.db.execute(_INSERT_SAMPLE, row).rowcount == 1:
                return True
            key = tuple(getattr(sample, name) for name in SAMPLE_KEY)
            self.db.execute(_MOVE_FAILED, (datetime.now(UTC).isoformat(timespec="seconds"), *key))
            if self.db.execute(_DELETE_FAILED, key).rowcount == 0:
                return False
            self.db.execute(_INSERT_SAMPLE, row)
        return True

    def failed_attempts(self) -> pd.DataFrame:
        """Every failed outcome that a later attempt replaced, oldest first."""
        return pd.read_sql_query(
            f"SELECT {', '.join(_HISTORY)}, replaced FROM failed_attempts ORDER BY rowid", self.db)

    def samples(self) -> pd.DataFrame:
        """Every sample row, ordered, with booleans as ``bool``."""
        frame = pd.read_sql_query(
            f"SELECT {', '.join(SAMPLE_COLUMNS)} FROM samples ORDER BY model, mode, style, instance_id, repeat",
            self.db,
        )
        for name in ("correct", "parse_ok"):
            frame[name] = frame[name].astype(bool)
        return frame

    def evaluations(self) -> pd.DataFrame:
        return pd.read_sql_query("SELECT * FROM evaluations ORDER BY model, mode, style", self.db)

    def export(self, path: str | Path) -> int:
        """Write every sample row to ``path`` (``.jsonl`` or ``.parquet``); return how many.

        The file is written under a temporary name and renamed, so it is never half written.
        """
        path = Path(path)
        if path.suffix not in (".jsonl", ".parquet"):
            raise ValueError(f"{path}: the export file name must end in .jsonl or .parquet")
        frame = self.samples()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        try:
            if path.suffix == ".jsonl":
                frame.to_json(partial, orient="records", lines=True, force_ascii=False)
            else:
                frame.to_parquet(partial, index=False)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return len(frame)

    def instances(self) -> dict[str, dict[str, Any]]:
        """Evaluated records by id."""
        return {row[0]: json.loads(row[1]) for row in self.db.execute("SELECT id, record FROM instances ORDER BY id")}
