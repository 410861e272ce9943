"""Writing and reading datasets as JSONL or Parquet (chosen by the file suffix).

Parquet columns follow the record schema with an explicit Arrow schema. The nested fields
``params``, ``problem`` and ``stats`` are stored as JSON text, because their shape differs
between tasks; ``read_records`` turns them back into objects, so both formats load into the
same records. ``pandas.read_parquet`` reads the files directly. A dataset may also be a
folder of Parquet parts (``part-00000.parquet``, ...), written in parallel; it reads as the
parts in name order.

Records carry ``schema_version``; records written before that field existed read as
version 1, and records of a newer version than this package knows are refused.

Files are written to a temporary name and renamed when complete, so an interrupted export
never leaves a truncated dataset behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pencilbench.generators.dataset import FIELDS, SCHEMA_VERSION
from pencilbench.generators.pencil import segments

JSON_FIELDS = ("params", "problem", "stats")
RECORD_SCHEMA = pa.schema(
    [(name, pa.int64() if name in ("seed", "index", "schema_version") else pa.string()) for name in FIELDS]
)
# Fields a record may lack because it was written by an older version, with the value they mean.
OLDER_DEFAULTS = {"schema_version": 1}
SEGMENT_FIELDS = ("id", "segment", "tokens", "loss_start")
SEGMENT_SCHEMA = pa.schema(
    [("id", pa.string()), ("segment", pa.int64()), ("tokens", pa.string()), ("loss_start", pa.int64())]
)
FORMATS = (".jsonl", ".parquet")
_BATCH = 2048


def check_format(path: str | Path) -> str:
    suffix = Path(path).suffix
    if suffix not in FORMATS:
        raise ValueError(f"{path}: the file name must end in .jsonl or .parquet")
    return suffix


def part_files(folder: str | Path) -> list[Path]:
    """The Parquet parts of a dataset folder, in name order."""
    return sorted(Path(folder).glob("part-*.parquet"))


def write_records(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write records; return how many."""
    return _write(path, records, RECORD_SCHEMA, record_row)


def segment_rows(records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The PENCIL training segments of each record, as rows."""
    for record in records:
        cut = segments(record["prompt"].split(), record["pencil"].split())
        for number, segment in enumerate(cut):
            yield {"id": record["id"], "segment": number, "tokens": " ".join(segment.tokens),
                   "loss_start": segment.loss_start}


def write_segments(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write the training segments of ``records``; return how many segments."""
    return _write(path, segment_rows(records), SEGMENT_SCHEMA, dict)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Load a dataset written by :func:`write_records` (or a folder of Parquet parts);
    ``ValueError`` names what is wrong."""
    if Path(path).is_dir():
        parts = part_files(path)
        if not parts:
            raise ValueError(f"{path}: a folder without Parquet parts (part-*.parquet)")
        return [record for part in parts for record in _read_parquet(part)]
    suffix = check_format(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".jsonl":
        return list(_read_jsonl(Path(path)))
    return _read_parquet(Path(path))


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    missing = _missing(table.column_names)
    if missing:
        raise ValueError(f"{path}: not a pencilbench dataset (missing column {missing!r})")
    present = [name for name in FIELDS if name in table.column_names]
    return [_upgrade(record_from_row(row), path) for row in table.select(present).to_pylist()]


def record_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record from a Parquet row (its JSON-text fields parsed); other columns are kept."""
    return {**row, **{name: json.loads(row[name]) for name in JSON_FIELDS}}


def _missing(names: Iterable[str]) -> str | None:
    """The first required field not in ``names`` (older records may lack a few fields)."""
    known = set(names)
    return next((name for name in FIELDS if name not in known and name not in OLDER_DEFAULTS), None)


def _upgrade(record: dict[str, Any], where: object) -> dict[str, Any]:
    """Fill in what older records lack; refuse records of a newer layout."""
    for name, value in OLDER_DEFAULTS.items():
        if record.get(name) is None:
            record[name] = value
    version = record["schema_version"]
    if not isinstance(version, int) or not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"{where}: record schema_version {version!r} is not one this pencilbench reads "
                         f"(1..{SCHEMA_VERSION}); upgrade pencilbench")
    return record


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ValueError(f"{path}:{number}: not a JSON object") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            missing = _missing(record)
            if missing:
                raise ValueError(f"{path}:{number}: not a pencilbench record (missing {missing!r})")
            yield _upgrade(record, f"{path}:{number}")


def record_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a Parquet row: the nested fields as JSON text."""
    row = {name: record[name] for name in FIELDS}
    for name in JSON_FIELDS:
        row[name] = json.dumps(record[name])  # key order is data: einstein prompts list attributes in it
    return row


def _write(path: str | Path, rows: Iterable[Mapping[str, Any]], schema: pa.Schema, to_row: Any) -> int:
    path = Path(path)
    suffix = check_format(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    count = 0
    try:
        if suffix == ".jsonl":
            with partial.open("w", encoding="utf-8") as out:
                for row in rows:
                    out.write(json.dumps(row, ensure_ascii=False) + "\n")
                    count += 1
        else:
            with pq.ParquetWriter(partial, schema) as writer:
                batch: list[dict[str, Any]] = []
                for row in rows:
                    batch.append(to_row(row))
                    if len(batch) == _BATCH:
                        writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                        count, batch = count + len(batch), []
                if batch or count == 0:
                    writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                    count += len(batch)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count
