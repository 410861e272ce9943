"""Parquet files laid out from row groups encoded one at a time, anywhere."""

import pickle
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pencilbench.generators import export
from pencilbench.generators.dataset import RECORD_SCHEMA, Spec, generate, make_table, map_chunks
from pencilbench.generators.export import write_generated, write_records
from pencilbench.generators.rowgroups import GroupFile, encode_group

RECORD_PROPERTIES = export._properties(RECORD_SCHEMA)


def _direct(path, schema, groups, **properties):
    with pq.ParquetWriter(path, schema, **properties) as writer:
        for group in groups:
            writer.write_table(group.combine_chunks())
    return path.read_bytes()


def _laid_out(path, schema, encoded, **properties):
    out = GroupFile(path, schema, **properties)
    for group in encoded:
        out.add(group)
    out.close()
    return path.read_bytes()


@pytest.mark.parametrize("rows", [1, 9, 64, 500])
def test_a_file_of_groups_encoded_one_at_a_time_is_the_one_pyarrow_writes(tmp_path, rows):
    table = make_table(Spec("phop", {"length": 16, "hops": 2}, "train", 4), 0, 500)
    groups = [table.slice(at, rows) for at in range(0, len(table), rows)]  # 1 to 500 groups
    direct = _direct(tmp_path / "direct.parquet", RECORD_SCHEMA, groups, **RECORD_PROPERTIES)
    encoded = [encode_group(group, **RECORD_PROPERTIES) for group in groups]
    assert _laid_out(tmp_path / "laid.parquet", RECORD_SCHEMA, encoded, **RECORD_PROPERTIES) == direct
    assert pq.read_table(tmp_path / "laid.parquet").equals(table)


def test_other_types_statistics_and_an_empty_file_lay_out_as_pyarrow_writes_them(tmp_path):
    # Lists, nulls, doubles, booleans and dictionaries put other shapes into the footer.
    table = pa.table({
        "ids": pa.array([[1, 2], None, [3], []] * 40, pa.list_(pa.int32())),
        "score": pa.array([0.5, None, -2.0, 1e300] * 40),
        "ok": pa.array([True, False, None, True] * 40),
        "name": pa.array(["a", "bb", None, "a"] * 40),
    })
    groups = [table.slice(at, 37) for at in range(0, len(table), 37)]
    for properties in ({}, {"use_dictionary": False, "compression": "zstd", "write_statistics": ["score"]}):
        direct = _direct(tmp_path / "direct.parquet", table.schema, groups, **properties)
        encoded = [encode_group(group, **properties) for group in groups]
        assert _laid_out(tmp_path / "laid.parquet", table.schema, encoded, **properties) == direct
    empty = _direct(tmp_path / "direct.parquet", table.schema, [table.schema.empty_table()])
    assert _laid_out(tmp_path / "laid.parquet", table.schema, []) == empty
    assert pq.read_table(tmp_path / "laid.parquet").num_rows == 0


def test_groups_encoded_in_other_processes_lay_out_the_same(tmp_path):
    table = make_table(Spec("addition", {"operands": 2, "digits": 3}, "test", 1), 0, 300)
    groups = [table.slice(at, 50) for at in range(0, len(table), 50)]
    with ProcessPoolExecutor(max_workers=2) as pool:
        encoded = list(pool.map(_encoded, groups))
    direct = _direct(tmp_path / "direct.parquet", RECORD_SCHEMA, groups, **RECORD_PROPERTIES)
    assert _laid_out(tmp_path / "laid.parquet", RECORD_SCHEMA, encoded, **RECORD_PROPERTIES) == direct


def _encoded(group):
    return pickle.loads(pickle.dumps(encode_group(group, **RECORD_PROPERTIES)))


def test_row_groups_restart_at_each_multiple_of_the_group_rows(monkeypatch):
    monkeypatch.setattr(export, "_GROUP_BYTES", 100)
    small, large = np.full(25, 1), np.array([1] * 3 + [200] + [1] * 21)
    assert export._group_lengths(0, small, 10) == [10, 10]  # the last 5 rows wait for more
    assert export._group_lengths(4, small, 10) == [6, 10]  # from row 4: up to row 10, then 20
    # A large row ends its group early; the next group still ends at row 10, not 10 rows on.
    assert export._group_lengths(0, large, 10) == [4, 6, 10]


def test_rows_per_group_come_from_the_mean_text_of_the_first_rows():
    text = export._GROUP_TEXT
    assert export._group_rows(np.full(20, 1000)) == min(export._BATCH, text // 1000)
    assert export._group_rows(np.full(20, 10_000)) == text // 10_000  # SAT, QBF: a few hundred
    # Only the first 8 rows count, or fewer once they reach 64 KB.
    assert export._group_rows(np.array([10_000] * 8 + [1] * 100)) == text // 10_000
    assert export._group_rows(np.array([40_000, 40_000, 1, 1, 1])) == text // 40_000
    assert export._group_rows(np.array([5 * text, 1])) == 1
    assert export._group_rows(np.array([], dtype=np.int64)) == export._BATCH


def test_the_rows_per_group_of_a_generated_file_match_a_written_one(tmp_path):
    # Records of a few KB to 30 KB: the rows per group are set from the first rows' mean,
    # which generating reads from the records it makes first, writing from its first batch.
    spec = Spec("qbf", {"variables": 8, "ratio": 2.0}, "test", 5)
    write_records(tmp_path / "written.parquet", generate(spec, 700, start=3))
    for workers in (1, 2):
        write_generated(tmp_path / "made.parquet", spec, 700, start=3, workers=workers)
        assert (tmp_path / "made.parquet").read_bytes() == (tmp_path / "written.parquet").read_bytes()
    groups = pq.ParquetFile(tmp_path / "made.parquet").metadata
    sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
    assert 8 < max(sizes) < export._BATCH and sum(sizes) == 700


def test_a_chunk_encodes_the_groups_it_holds_and_hands_on_the_rest():
    table = make_table(Spec("addition", {"operands": 2, "digits": 2}, "train", 3), 100, 150)
    parts = export._row_groups(table, 100, 16)  # rows 100..149 of the file: groups 112..127, 128..143
    kinds = [(type(part).__name__, len(part)) for part in parts]
    assert kinds == [("Table", 12), ("EncodedGroup", 16), ("EncodedGroup", 16), ("Table", 6)]
    assert [len(part) for part in export._row_groups(table.slice(0, 10), 100, 16)] == [10]


def test_pool_processes_hand_over_encoded_row_groups(tmp_path, monkeypatch):
    # Chunks end on row-group boundaries, so the processes that made the rows encode nearly
    # every group, and few rows are left for the writing process to gather and encode.
    monkeypatch.setattr(export, "_BATCH", 64)
    gathered = []
    flush = export._Sink._flush

    def counted(self, rows):
        gathered.append(rows)
        return flush(self, rows)

    spec = Spec("addition", {"operands": 2, "digits": 3}, "validation", 8)
    write_records(tmp_path / "records.parquet", generate(spec, 5000, start=37))  # groups from the file's first row
    monkeypatch.setattr(export._Sink, "_flush", counted)
    write_generated(tmp_path / "two.parquet", spec, 5000, start=37, workers=2)
    assert (tmp_path / "two.parquet").read_bytes() == (tmp_path / "records.parquet").read_bytes()
    assert sum(gathered) < 5000 // 4


def test_sized_chunks_end_on_multiples_of_the_alignment():
    spec = Spec("addition", {"operands": 2, "digits": 2})
    for workers in (1, 2):
        pieces = list(map_chunks(spec, 20000, _bounds, start=5, workers=workers, align=100))
        assert [lo for lo, _ in pieces[1:]] == [hi for _, hi in pieces[:-1]] and pieces[-1][1] == 20005
        large = [(lo, hi) for lo, hi in pieces[:-1] if hi - lo >= 100]
        assert large and all((hi - 5) % 100 == 0 for _, hi in large)
    with pytest.raises(ValueError, match="align must be >= 1"):
        list(map_chunks(spec, 10, _bounds, align=0))


def test_chunks_of_whole_row_groups_stay_whole_to_the_end():
    # Cut finer near the end, a chunk would leave its group to be encoded after every
    # record is made, by one process while the others wait.
    spec = Spec("addition", {"operands": 2, "digits": 2})
    pieces = list(map_chunks(spec, 20000, _bounds, start=5, workers=2, align=100))
    first = next(i for i, (_, hi) in enumerate(pieces) if (hi - 5) % 100 == 0)
    assert all((hi - 5) % 100 == 0 for _, hi in pieces[first:-1]) and pieces[-1][1] == 20005


def test_chunks_snap_to_groups_that_cost_up_to_six_chunks():
    from pencilbench.generators.dataset import _aligned

    # Chunks of 100 items: groups of 600 are whole chunks of their own (SAT n=10 on a busy
    # host: 980-record groups, 20 ms chunks of 220), groups of 700 are not.
    assert _aligned(0, 100, 10**6, 0, 600, 100) == 600
    assert _aligned(600, 700, 10**6, 0, 600, 100) == 1200
    assert _aligned(0, 100, 10**6, 0, 700, 100) == 100
    assert _aligned(0, 100, 450, 0, 600, 100) == 450  # never past the end


def _bounds(spec, lo, hi):
    sum(range(2000 * (hi - lo)))  # about 50 us of CPU per item
    return lo, hi


def test_bad_chunking_is_refused_before_any_record_is_made(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(export, "make_table", lambda *args: made.append(args))
    spec = Spec("qbf", {"variables": 8, "ratio": 2.0})
    for bad, message in (({"workers": 0}, "workers must be >= 1"), ({"chunk": 0}, "chunk must be >= 1")):
        with pytest.raises(ValueError, match=message):
            write_generated(tmp_path / "records.parquet", spec, 10, **bad)
    assert not made and not list(tmp_path.iterdir())
