"""Writing and reading datasets as JSONL or Parquet (chosen by the file suffix).

Parquet columns follow the record schema with an explicit Arrow schema. The nested fields
``params``, ``problem`` and ``stats`` are stored as JSON text, because their shape differs
between tasks; ``read_records`` turns them back into objects, so both formats load into the
same records. ``pandas.read_parquet`` reads the files directly.

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
from pencilbench.generators.dataset import FIELDS
from pencilbench.generators.pencil import segments

JSON_FIELDS = ("params", "problem", "stats")
RECORD_SCHEMA = pa.schema(
    [(name, pa.int64() if name in ("seed", "index") else pa.string()) for name in FIELDS]
)
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
    """Load a dataset written by :func:`write_records`; ``ValueError`` names what is wrong."""
    suffix = check_format(path)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if suffix == ".jsonl":
        return list(_read_jsonl(Path(path)))
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    missing = [name for name in FIELDS if name not in table.column_names]
    if missing:
        raise ValueError(f"{path}: not a pencilbench dataset (missing column {missing[0]!r})")
    return [record_from_row(row) for row in table.select(list(FIELDS)).to_pylist()]


def record_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record from a Parquet row (its JSON-text fields parsed); other columns are kept."""
    return {**row, **{name: json.loads(row[name]) for name in JSON_FIELDS}}


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
            missing = [name for name in FIELDS if name not in record]
            if missing:
                raise ValueError(f"{path}:{number}: not a pencilbench record (missing {missing[0]!r})")
            yield record


def record_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record as a Parquet row: the nested fields as JSON text."""
    row = {name: record[name] for name in FIELDS}
    for name in JSON_FIELDS:
        row[name] = json.dumps(record[name], sort_keys=True)
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
