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

import contextlib
import dataclasses
import functools
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pencilbench.generators.dataset import (
    AHEAD,
    FIELDS,
    JSON_FIELDS,
    RECORD_SCHEMA,
    SCHEMA_VERSION,
    Shipping,
    Spec,
    check_chunking,
    make_table,
    map_chunks,
    record_from_row,
    records_of,
)
from pencilbench.generators.pencil import segments
from pencilbench.generators.rowgroups import EncodedGroup, GroupFile, encode_group

# Fields a record may lack because it was written by an older version, with the value they mean.
OLDER_DEFAULTS = {"schema_version": 1}
SEGMENT_FIELDS = ("id", "segment", "tokens", "loss_start")
SEGMENT_SCHEMA = pa.schema(
    [("id", pa.string()), ("segment", pa.int64()), ("tokens", pa.string()), ("loss_start", pa.int64())]
)
FORMATS = (".jsonl", ".parquet")
_BATCH = 2048  # rows per Parquet row group, at most
# Text a row group aims to hold. A file's rows per group are set from the mean text of its
# first rows (up to _SAMPLE_ROWS, or as many as reach _SAMPLE_TEXT), and no group straddles
# a multiple of them. At 3 MB a group of the small sizes costs at most a few chunks of
# work (60 ms for SAT, 30 ms for QBF), so a pool process's chunks hold whole groups, which
# it hands over encoded: an eighth of the bytes of the Arrow rows, and nothing left to
# encode in the writing process. Smaller groups cost more to encode per row.
_GROUP_TEXT = 3 << 20
_SAMPLE_ROWS, _SAMPLE_TEXT = 8, 64 << 10
# Text bytes after which a row group ends early. A group is encoded whole once its last row
# is in, so the last group of a run is encoded after every record is made: 8 MB keeps that
# tail to tens of ms (64 MB took a tenth of a short Einstein run), and costs a group's
# fixed 0.5 ms every 18 records or more at the largest sizes.
_GROUP_BYTES = 8 << 20
_ENCODE_ROWS = 256  # records encoded at a time by write_records (row groups are cut apart from it)
# Record columns that hold one value per stream: worth a dictionary. The texts rarely
# repeat, and trying a dictionary on them costs a tenth of the writing time.
_REPEATED = ("task", "split", "seed", "params", "generator_version", "schema_version")
# Record columns with min/max statistics, which let a reader skip row groups by them. A
# text's extremes select nothing, cost a tenth of the writing time and took two thirds of
# the footer (3 KB a row group).
_SELECTING = ("id", "index", *_REPEATED)


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
    return _write(path, records, RECORD_SCHEMA, record_table)


def segment_rows(records: Iterable[Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    """The PENCIL training segments of each record, as rows."""
    for record in records:
        cut = segments(record["prompt"].split(), record["pencil"].split())
        for number, segment in enumerate(cut):
            yield {"id": record["id"], "segment": number, "tokens": " ".join(segment.tokens),
                   "loss_start": segment.loss_start}


def write_segments(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    """Write the training segments of ``records``; return how many segments."""
    return _write(path, segment_rows(records), SEGMENT_SCHEMA, _segment_table)


def write_generated(path: str | Path, spec: Spec, count: int, *, start: int = 0, workers: int = 1,
                    segments_path: str | Path | None = None, chunk: int | None = None,
                    progress: Callable[[int], Any] | None = None) -> tuple[int, int]:
    """Generate records ``start .. start + count - 1`` straight into a file (and their
    training segments into another); return the record and segment counts.

    Each chunk is built and encoded where it is generated, in a pool process or in this one
    (see :func:`map_chunks`): as JSON lines, or as the Parquet row groups that lie wholly in
    it and the Arrow rows of the groups it shares with its neighbours. This process lays
    them out in order, encoding the shared groups once their rows are all in; the bytes are
    those of :func:`write_records` and :func:`write_segments`, for any ``workers``.
    ``progress`` is called with the size of each finished chunk.
    """
    suffix = check_format(path)
    segment_suffix = check_format(segments_path) if segments_path is not None else None
    check_chunking(spec, count, start=start, workers=workers, chunk=chunk)
    # The file's first rows, made here: they set its rows per group, which chunks end on.
    head = _leading_table(spec, start, count)
    group_rows = _group_rows(_row_bytes(head))
    encode = functools.partial(_encoded_table, group_rows=group_rows, suffix=suffix, segment_suffix=segment_suffix)
    work = functools.partial(_encoded_chunk, first=start, encode=encode)
    records, cut = _Sink(path, RECORD_SCHEMA, group_rows), None
    try:
        if segments_path is not None:
            cut = _Sink(segments_path, SEGMENT_SCHEMA)
        with _parking(workers) as shipping:
            rest = map_chunks(spec, count - len(head), work, start=start + len(head), workers=workers, chunk=chunk,
                              shipping=shipping, align=group_rows if suffix == ".parquet" else 1, origin=start)
            for encoded, encoded_segments in itertools.chain([encode(head, 0)] if len(head) else [], rest):
                records.add(*encoded)
                if cut is not None and encoded_segments is not None:
                    cut.add(*encoded_segments)
                if progress is not None:
                    progress(encoded[0])
        written = records.close(), cut.close() if cut is not None else 0
    finally:
        records.discard()
        if cut is not None:
            cut.discard()
    return written


@contextlib.contextmanager
def _parking(workers: int) -> Iterator[Shipping | None]:
    """How pool processes hand their chunks over: as files in a folder of this run in shared
    memory (``/dev/shm`` where there is one), which this process reads back. Each pool
    process rewrites its own few files in turn, so their memory stays allocated from chunk
    to chunk. Pickling a table costs a fifth to a third of what making a small record does,
    and anything large sent by pipe stalls the pool process until this one's result thread,
    which needs the interpreter lock, has read it all. ``None`` with one process."""
    if workers == 1:
        yield None
        return
    shared = Path("/dev/shm")
    folder = tempfile.mkdtemp(prefix="pencilbench-", dir=shared if shared.is_dir() else None)
    try:
        # A pool process has at most this many chunks handed over and not yet read here
        # (see ``map_chunks``), so it can reuse its files in turn.
        yield Shipping(functools.partial(_park_chunk, folder=folder, files=AHEAD * (workers - 1)), _unpark_chunk)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _Parked:
    """A part of a chunk left in the file ``path``: an Arrow table, JSON lines, or the bytes
    of ``group``."""

    path: str
    group: EncodedGroup | None = None
    lines: bool = False


_parked_chunks = itertools.count()  # chunks this (pool) process has handed over


def _park_chunk(encoded: tuple[Encoded, Encoded | None], *, folder: str, files: int) -> tuple[Any, Any]:
    slot = next(_parked_chunks) % files
    return tuple(part if part is None else (part[0], _park_parts(part[1], f"{folder}/{os.getpid()}-{slot}-{kind}"))
                 for kind, part in enumerate(encoded))


def _park_parts(payload: Payload, stem: str) -> Any:
    if isinstance(payload, bytes):
        return _park(payload, f"{stem}.jsonl")
    return [_park(part, f"{stem}-{number}") for number, part in enumerate(payload)]


def _park(part: bytes | pa.Table | EncodedGroup, path: str) -> Any:
    """``part`` written to the file ``path``, over what it held (``part`` itself when it does
    not fit there)."""
    try:
        with open(path, "r+b" if os.path.exists(path) else "wb") as out:
            if isinstance(part, pa.Table):
                with pa.ipc.new_file(out, part.schema) as writer:
                    writer.write_table(part)
            else:
                out.write(part.data if isinstance(part, EncodedGroup) else part)
            out.truncate()
    except OSError:  # a small /dev/shm (containers often have 64 MB): the part goes by pipe
        Path(path).unlink(missing_ok=True)
        return part
    if isinstance(part, EncodedGroup):
        return _Parked(path, group=dataclasses.replace(part, data=b""))
    return _Parked(path, lines=isinstance(part, bytes))


def _unpark_chunk(parked: tuple[Any, Any]) -> tuple[Encoded, Encoded | None]:
    return tuple(part if part is None else (part[0], _unpark_parts(part[1])) for part in parked)


def _unpark_parts(payload: Any) -> Payload:
    return [_unpark(part) for part in payload] if isinstance(payload, list) else _unpark(payload)


def _unpark(part: Any) -> Any:
    """A parked part read back into this process's memory (its file is then free)."""
    if not isinstance(part, _Parked):
        return part
    if part.group is None and not part.lines:
        with pa.OSFile(part.path) as source:
            return pa.ipc.open_file(source).read_all()
    data = Path(part.path).read_bytes()
    return data if part.group is None else dataclasses.replace(part.group, data=data)


# A chunk encoded for a file: JSON lines (UTF-8), or (Parquet) its rows as encoded row
# groups and as Arrow tables for the groups it shares with other chunks, in order.
Payload = bytes | list[pa.Table | EncodedGroup]
Encoded = tuple[int, Payload]


def _encoded_chunk(spec: Spec, start: int, stop: int, *, first: int,
                   encode: Callable[[pa.Table, int], tuple[Encoded, Encoded | None]]) -> tuple[Encoded, Encoded | None]:
    """Records ``start .. stop - 1`` made and encoded for a file whose first record is ``first``."""
    return encode(make_table(spec, start, stop), start - first)


def _encoded_table(table: pa.Table, row: int, *, group_rows: int, suffix: str,
                   segment_suffix: str | None) -> tuple[Encoded, Encoded | None]:
    """Records as an Arrow table, encoded as the file's rows from ``row`` on, in row groups
    that start every ``group_rows`` rows (and their segments for a file of their own)."""
    records = records_of(table) if suffix == ".jsonl" or segment_suffix is not None else []
    encoded = (len(table), _row_groups(table, row, group_rows) if suffix == ".parquet" else _jsonl(records))
    if segment_suffix is None:
        return encoded, None
    cut = list(segment_rows(records))
    return encoded, (len(cut), _encode(cut, segment_suffix, _segment_table))


def _row_groups(table: pa.Table, row: int, group_rows: int) -> list[pa.Table | EncodedGroup]:
    """A chunk of a record file starting at its row ``row``, as the row groups that lie wholly
    in it, encoded, and the rows before the first of them and after the last, as tables.
    A group starts at each multiple of ``group_rows`` rows, so groups are found from there."""
    head = min(-row % group_rows, len(table))
    parts: list[pa.Table | EncodedGroup] = [table.slice(0, head)] if head else []
    properties = _properties(RECORD_SCHEMA)
    for length in _group_lengths(row + head, _row_bytes(table.slice(head)), group_rows):
        parts.append(encode_group(table.slice(head, length), **properties))
        head += length
    if head < len(table):
        parts.append(table.slice(head))
    return parts


def _group_rows(sizes: np.ndarray) -> int:
    """Rows per row group of a file whose first rows hold text ``sizes``: as many as hold
    ``_GROUP_TEXT`` at the mean of the first ``_SAMPLE_ROWS`` (or of fewer, up to the one
    that brings them to ``_SAMPLE_TEXT``), from 1 to ``_BATCH``."""
    sample = sizes[:_SAMPLE_ROWS]
    reached = np.flatnonzero(np.cumsum(sample) >= _SAMPLE_TEXT)
    if len(reached):
        sample = sample[: reached[0] + 1]
    if not len(sample):
        return _BATCH
    return int(min(_BATCH, max(1, _GROUP_TEXT * len(sample) // max(1, int(sample.sum())))))


def _sampled(sizes: np.ndarray) -> bool:
    """Whether first rows with text ``sizes`` are all that :func:`_group_rows` reads of a
    longer file."""
    return len(sizes) >= _SAMPLE_ROWS or int(sizes.sum()) >= _SAMPLE_TEXT


def _leading_table(spec: Spec, start: int, count: int) -> pa.Table:
    """The first of ``count`` records from ``start``, as many as :func:`_group_rows` reads."""
    table = make_table(spec, start, start + min(count, 1))
    while len(table) < count and not _sampled(sizes := _row_bytes(table)):
        text = int(sizes.sum())
        more = -(-(_SAMPLE_TEXT - text) * len(table) // max(1, text))  # at the mean so far
        stop = start + min(count, _SAMPLE_ROWS, len(table) + max(1, more))
        table = pa.concat_tables([table, make_table(spec, start + len(table), stop)])
    return table


def _group_lengths(row: int, sizes: np.ndarray, group_rows: int) -> list[int]:
    """The row groups that rows with text ``sizes``, from the file's row ``row`` where a
    group starts, complete: a group ends at each multiple of ``group_rows`` rows, or
    earlier, after the row that brings its text to ``_GROUP_BYTES``. The cuts depend on the
    rows alone, so neither a file's bytes nor where a chunk can encode its groups depend on
    how its rows were chunked."""
    lengths, at = [], 0
    while at < len(sizes):
        room = group_rows - (row + at) % group_rows
        reached = np.flatnonzero(np.cumsum(sizes[at:at + room]) >= _GROUP_BYTES)
        if len(reached):
            length = int(reached[0]) + 1
        elif len(sizes) - at >= room:
            length = room
        else:
            break
        lengths.append(length)
        at += length
    return lengths


def _jsonl(rows: list[Mapping[str, Any]]) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()


def _encode(rows: list[Mapping[str, Any]], suffix: str,
            table: Callable[[list[Mapping[str, Any]]], pa.Table]) -> Payload:
    return _jsonl(rows) if suffix == ".jsonl" else [table(rows)]


def record_table(records: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Records as an Arrow table of the record schema, built column by column (the nested
    fields as JSON text, as :func:`record_row` writes them)."""
    columns: dict[str, list[Any]] = {name: [record[name] for record in records] for name in FIELDS}
    for name in JSON_FIELDS:  # key order is data (einstein prompts list attributes in it): JSON keeps it
        columns[name] = list(map(json.dumps, columns[name]))
    return pa.Table.from_pydict(columns, schema=RECORD_SCHEMA)


def _properties(schema: pa.Schema) -> dict[str, Any]:
    """How Parquet files of ``schema`` are encoded (records: dictionaries for the repeated
    columns, statistics for those that select records)."""
    if schema != RECORD_SCHEMA:
        return {}
    return {"use_dictionary": list(_REPEATED), "write_statistics": list(_SELECTING)}


def _row_bytes(table: pa.Table) -> np.ndarray:
    """The bytes of text each row of a table holds (its string columns)."""
    sizes = np.zeros(len(table), dtype=np.int64)
    for column in table.columns:
        if pa.types.is_string(column.type):
            sizes += pc.binary_length(column).to_numpy(zero_copy_only=False)
    return sizes


def _segment_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(list(rows), schema=SEGMENT_SCHEMA)


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


def _write(path: str | Path, rows: Iterable[Mapping[str, Any]], schema: pa.Schema,
           table: Callable[[list[Mapping[str, Any]]], pa.Table]) -> int:
    sink = _Sink(path, schema)
    try:
        batch: list[Mapping[str, Any]] = []
        for row in rows:
            batch.append(row)
            if len(batch) == _ENCODE_ROWS:
                sink.add(len(batch), _encode(batch, sink.suffix, table))
                batch = []
        sink.add(len(batch), _encode(batch, sink.suffix, table))
        return sink.close()
    finally:
        sink.discard()


class _Sink:
    """A dataset file being written under a temporary name, renamed when complete.

    Parquet rows arrive as encoded row groups and as tables; the tables' rows wait here
    until their row group is complete (see :func:`_group_lengths`), then are encoded here.
    The rows per group are set from the first rows (see :func:`_group_rows`) unless given.
    """

    def __init__(self, path: str | Path, schema: pa.Schema, group_rows: int | None = None) -> None:
        self.path = Path(path)
        self.suffix = check_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.schema, self.count, self.done = schema, 0, False
        self.group_rows = group_rows
        self.pending: list[pa.Table] = []  # the rows of the group being gathered
        self.pending_bytes = np.zeros(0, dtype=np.int64)  # the text bytes of each pending row
        if self.suffix == ".jsonl":
            self.text = self.partial.open("wb")
        else:
            self.properties = _properties(schema)  # the groups gathered here, and the file's footer
            self.groups = GroupFile(self.partial, schema, **self.properties)

    def add(self, rows: int, encoded: Payload) -> None:
        self.count += rows
        if isinstance(encoded, bytes):
            self.text.write(encoded)
            return
        for part in encoded:
            if not len(part):
                continue
            if isinstance(part, EncodedGroup):
                if self.pending or self.group_rows is None:
                    raise RuntimeError("a row group arrived before the rows ahead of it were complete")
                self.groups.add(part)
                continue
            self.pending.append(part)
            self.pending_bytes = np.concatenate((self.pending_bytes, _row_bytes(part)))
            if self.group_rows is None and _sampled(self.pending_bytes):
                self.group_rows = _group_rows(self.pending_bytes)
            if self.group_rows is not None:
                for length in _group_lengths(self.groups.rows, self.pending_bytes, self.group_rows):
                    self._flush(length)

    def _flush(self, rows: int) -> None:
        table = pa.concat_tables(self.pending)
        self.groups.add(encode_group(table.slice(0, rows), **self.properties))
        rest = table.slice(rows)
        self.pending = [rest] if len(rest) else []
        self.pending_bytes = self.pending_bytes[rows:]

    def close(self) -> int:
        """Finish the file and move it into place; return the row count."""
        if self.suffix == ".jsonl":
            self.text.close()
        else:
            if self.pending:
                self._flush(len(self.pending_bytes))
            self.groups.close()
        os.replace(self.partial, self.path)
        self.done = True
        return self.count

    def discard(self) -> None:
        """Remove the temporary file of an unfinished write (nothing once closed)."""
        if self.done:
            return
        if self.suffix == ".jsonl":
            self.text.close()
        else:
            self.groups.discard()
        self.partial.unlink(missing_ok=True)
