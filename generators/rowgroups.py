"""Parquet files laid out from row groups encoded anywhere.

A row group's bytes depend on its rows alone; only the file's footer says where each group
lies. So a group can be encoded on its own, as a one-group Parquet file, in whichever
process made its rows (:func:`encode_group`), and :class:`GroupFile` lays such groups end
to end and writes the footer that points at them. The file is byte for byte the one
pyarrow writes when given the same groups in one go, whoever encoded them.

The footer is Parquet's ``FileMetaData`` in Thrift's compact protocol. A compiled walk
finds the varints that hold a position in the file (and a group's ordinal); a group's
entry is copied byte for byte around them, and they are written again for where the
group lands.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pencilbench.generators.compiled import kernel, room_for

MAGIC = b"PAR1"

# Compact protocol types.
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)

# The structs of the footer this walks into (field ids from parquet.thrift): FileMetaData,
# its RowGroups, their ColumnChunks and those chunks' ColumnMetaData; any other struct is
# skipped over.
_FILE, _GROUP, _CHUNK, _META, _OTHER = range(5)
# What a span of the footer holds.
_NUM_ROWS, _ROW_GROUPS, _ONE_GROUP, _POSITION, _ORDINAL = range(5)


@dataclass(frozen=True)
class EncodedGroup:
    """One row group ready to be laid out: its bytes (``data``, any buffer), and its footer
    entry as ``pieces``: encoded bytes, with an ``int`` where a position relative to the
    group's first byte goes and ``None`` where the group's ordinal goes."""

    rows: int
    data: pa.Buffer | bytes
    pieces: tuple[bytes | int | None, ...]

    def __len__(self) -> int:
        return self.rows


def encode_group(table: pa.Table, **properties: Any) -> EncodedGroup:
    """``table`` encoded as one row group, with pyarrow writer ``properties``."""
    return _Footer(_one_group_file(table, properties)).group()


class GroupFile:
    """A Parquet file written a row group at a time from :class:`EncodedGroup` s."""

    def __init__(self, path: str | Path, schema: pa.Schema, **properties: Any) -> None:
        # The footer's other fields (schema, key-value metadata, writer) from an empty file.
        self.template = _Footer(_one_group_file(schema.empty_table(), properties))
        self.out = Path(path).open("wb")
        self.out.write(MAGIC)
        self.position, self.rows = len(MAGIC), 0
        self.entries: list[bytes] = []

    def add(self, group: EncodedGroup) -> None:
        self.out.write(group.data)
        self.entries.append(b"".join(
            piece if isinstance(piece, bytes)
            else _varint(_zigzag(len(self.entries) if piece is None else self.position + piece))
            for piece in group.pieces))
        self.position += len(group.data)
        self.rows += group.rows

    def close(self) -> None:
        """Write the footer and close (a file without rows holds one empty group, as
        pyarrow's do)."""
        if not self.entries:
            self.add(self.template.group())
        footer = self.template.with_groups(self.rows, self.entries)
        self.out.write(footer + struct.pack("<I", len(footer)) + MAGIC)
        self.out.close()

    def discard(self) -> None:
        self.out.close()


def _one_group_file(table: pa.Table, properties: dict[str, Any]) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, table.schema, **properties) as writer:
        # One chunk, or the pages would follow the chunks and the bytes the chunking.
        writer.write_table(table.combine_chunks(), row_group_size=max(1, len(table)))
    return sink.getvalue()


class _Footer:
    """The footer of a one-group Parquet file, with where its fields of interest lie."""

    def __init__(self, data: pa.Buffer) -> None:
        (size,) = struct.unpack_from("<I", data, len(data) - 8)
        self.data, self.start = data, len(data) - 8 - size
        self.footer = data[self.start:len(data) - 8].to_pybytes()
        found = _spans(np.frombuffer(self.footer, dtype=np.uint8))
        if found is None:
            raise ValueError("not a Parquet footer this can lay out")
        self.spans = [tuple(int(x) for x in row) for row in found]

    def _only(self, kind: int) -> tuple[int, int, int, int]:
        [span] = [span for span in self.spans if span[0] == kind]
        return span

    def group(self) -> EncodedGroup:
        _, start, end, _ = self._only(_ONE_GROUP)
        pieces: list[bytes | int | None] = []
        at = start
        for kind, first, last, value in self.spans:
            if start <= first < end and kind in (_POSITION, _ORDINAL):
                pieces += [self.footer[at:first], value - len(MAGIC) if kind == _POSITION else None]
                at = last
        pieces.append(self.footer[at:end])
        rows = self._only(_NUM_ROWS)[3]
        return EncodedGroup(rows, self.data[len(MAGIC):self.start], tuple(pieces))  # no copy of the data

    def with_groups(self, rows: int, entries: list[bytes]) -> bytes:
        """This footer with ``entries`` for its row groups, ``rows`` rows in all."""
        _, rows_at, rows_end, _ = self._only(_NUM_ROWS)
        _, groups_at, groups_end, _ = self._only(_ROW_GROUPS)
        if rows_end > groups_at:
            raise ValueError("a Parquet footer with its row groups before its row count")
        count = len(entries)
        header = bytes([count << 4 | _STRUCT]) if count < 15 else bytes([0xF0 | _STRUCT]) + _varint(count)
        return b"".join((self.footer[:rows_at], _varint(_zigzag(rows)), self.footer[rows_end:groups_at],
                         header, *entries, self.footer[groups_end:]))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


@kernel
def _varint_at(data, at):  # noqa: ANN001, ANN202 (compiled)
    value, shift = 0, 0
    while True:
        byte = np.int64(data[at])
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


@kernel
def _spans(footer):  # noqa: ANN001, ANN202 (compiled)
    """Rows of (what, start, end, value) for the spans of interest of a compact-protocol
    FileMetaData: its num_rows and row_groups list, each RowGroup, and the varints that
    hold a position in the file or a group's ordinal; ``None`` if it is not well formed.
    Walks the footer with an explicit stack of open structs and lists."""
    found = np.empty(64, np.int64)  # four numbers a span
    count = 0
    depth = 1
    is_list = np.zeros(32, np.bool_)
    context = np.full(32, _OTHER, np.int64)
    last = np.zeros(32, np.int64)  # a struct's last field id
    left = np.zeros(32, np.int64)  # a list's elements still to read
    element = np.zeros(32, np.int64)  # a list's element type
    began = np.zeros(32, np.int64)
    report = np.full(32, -1, np.int64)  # what span a container makes, once closed
    context[0] = _FILE
    at = 0
    while depth:
        top = depth - 1
        if at >= footer.size:
            return None
        if is_list[top]:
            if left[top] == 0:
                kind, inner, what = -1, _OTHER, -1
            else:
                left[top] -= 1
                kind, inner = element[top], context[top]
                what = _ONE_GROUP if inner == _GROUP else -1
        else:
            header = np.int64(footer[at])
            at += 1
            if header == 0:
                kind, inner, what = -1, _OTHER, -1
            else:
                kind = header & 0x0F
                if header >> 4:
                    number = last[top] + (header >> 4)
                else:
                    raw, at = _varint_at(footer, at)
                    number = (raw >> 1) ^ -(raw & 1)
                last[top] = number
                where = context[top]
                inner, what = _OTHER, -1
                if where == _FILE:
                    if number == 3:
                        what = _NUM_ROWS
                    elif number == 4:
                        inner, what = _GROUP, _ROW_GROUPS
                elif where == _GROUP:
                    if number == 1:
                        inner = _CHUNK
                    elif number == 5:
                        what = _POSITION
                    elif number == 7:
                        what = _ORDINAL
                elif where == _CHUNK:
                    if number == 2 or number == 4 or number == 6:
                        what = _POSITION
                    elif number == 3:
                        inner = _META
                elif where == _META:
                    if number == 9 or number == 10 or number == 11 or number == 14:
                        what = _POSITION
                if kind == _TRUE or kind == _FALSE:
                    continue
        if kind == -1:  # the open container ends here
            if report[top] >= 0:
                found = room_for(found, count, 4)
                found[count:count + 4] = (report[top], began[top], at, 0)
                count += 4
            depth -= 1
            continue
        start = at
        if kind == _I16 or kind == _I32 or kind == _I64:
            raw, at = _varint_at(footer, at)
            value = (raw >> 1) ^ -(raw & 1)
            # 0 is no position (pyarrow leaves the deprecated ColumnChunk.file_offset at 0)
            if what == _NUM_ROWS or what == _ORDINAL or what == _POSITION and value != 0:
                found = room_for(found, count, 4)
                found[count:count + 4] = (what, start, at, value)
                count += 4
        elif kind == _BINARY:
            size, at = _varint_at(footer, at)
            at += size
        elif kind == _BYTE or kind == _TRUE or kind == _FALSE:  # booleans in a list take a byte
            at += 1
        elif kind == _DOUBLE:
            at += 8
        elif kind == _STRUCT or kind == _LIST or kind == _SET:
            if depth == is_list.size:
                return None
            is_list[depth], context[depth], began[depth], report[depth] = kind != _STRUCT, inner, start, what
            last[depth] = 0
            if kind != _STRUCT:
                size = np.int64(footer[at]) >> 4
                element[depth] = footer[at] & 0x0F
                at += 1
                if size == 15:
                    size, at = _varint_at(footer, at)
                left[depth] = size
            depth += 1
        else:  # maps and anything newer: Parquet's footer holds none
            return None
    return found[:count].reshape(-1, 4)
