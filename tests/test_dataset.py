"""Seeding, determinism, split disjointness and export round trips."""

import dataclasses
import json
import os
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pencilbench.bench.verify import record_problems
from pencilbench.generators.dataset import Spec, generate, make_record, map_chunks, record_from_problem, trace_problems
from pencilbench.generators.export import read_records, write_generated, write_records, write_segments
from pencilbench.generators.pencil import replay
from pencilbench.generators.registry import get_task
from pencilbench.generators.seeding import SPLITS, home_split, problem_hash
from pencilbench.generators.task import Ragged, Trace


def test_items_are_random_access():
    spec = Spec("phop", {"length": 64, "hops": 8}, "train", 11)
    whole = list(generate(spec, 40))
    assert list(generate(spec, 10, start=25)) == whole[25:35]
    task, params = spec.resolve()
    assert make_record(task, params, "train", 11, 17) == whole[17]


def test_worker_count_does_not_change_the_bytes(tmp_path):
    spec = Spec("addition", {"operands": 3, "digits": 5}, "test", 5)
    write_records(tmp_path / "one.jsonl", generate(spec, 300, workers=1))
    write_records(tmp_path / "two.jsonl", generate(spec, 300, workers=2, chunk=7))
    assert (tmp_path / "one.jsonl").read_bytes() == (tmp_path / "two.jsonl").read_bytes()


@pytest.mark.parametrize(("task", "params"), [("addition", {"operands": 2, "digits": 6}),
                                               ("phop", {"alphabet": 3, "length": 24, "hops": 4})])
def test_seeds_and_splits_never_share_a_problem(task, params):
    seen: dict[str, tuple[str, int]] = {}
    for split in SPLITS:
        for seed in (0, 1):
            for record in generate(Spec(task, params, split, seed), 1500):
                digest = problem_hash(record["problem"])
                assert home_split(get_task(task).split_part(record["problem"])) == split
                owner = seen.setdefault(digest, (split, seed))
                # A problem space of 10^12 (addition) or ~3^24 (p-hop) hardly ever repeats by
                # chance within these counts (addition: once in about 25,000 runs; at 10^8 it
                # was one run in three), so any repeat is a seeding fault.
                assert owner == (split, seed), (task, owner, split, seed)
    assert len(seen) == 3 * 2 * 1500


def test_tiny_problem_spaces_still_never_cross_splits():
    # Two one-digit operands: only 100 problems, so streams repeat, but never across splits.
    owners: dict[str, set[str]] = {}
    for split in SPLITS:
        for record in generate(Spec("addition", {"operands": 2, "digits": 1}, split, 0), 300):
            owners.setdefault(problem_hash(record["problem"]), set()).add(split)
    assert all(len(splits) == 1 for splits in owners.values())


def test_bad_split_and_seed_are_rejected():
    with pytest.raises(ValueError, match="split must be one of train, validation, test"):
        list(generate(Spec("addition", {}, "dev", 0), 1))
    with pytest.raises(ValueError, match="seed must be in"):
        list(generate(Spec("addition", {}, "train", -1), 1))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_round_trip(tmp_path, suffix):
    records = list(generate(Spec("addition", {"operands": 4, "digits": 3}), 50)) + list(
        generate(Spec("phop", {"length": 30, "hops": 5}), 50)
    )
    path = tmp_path / f"data{suffix}"
    assert write_records(path, records) == 100
    assert read_records(path) == records
    assert not list(tmp_path.glob(".*partial"))


def test_parquet_loads_in_pandas_with_json_columns(tmp_path):
    records = list(generate(Spec("phop", {"length": 30, "hops": 5}), 20))
    write_records(tmp_path / "d.parquet", records)
    frame = pd.read_parquet(tmp_path / "d.parquet")
    assert list(frame.columns)[:5] == ["id", "task", "split", "seed", "index"]
    assert json.loads(frame.loc[3, "problem"]) == records[3]["problem"]
    assert frame["seed"].dtype == "int64"


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_segments_export(tmp_path, suffix):
    records = list(generate(Spec("addition", {"operands": 3, "digits": 2}), 5))
    path = tmp_path / f"seg{suffix}"
    count = write_segments(path, records)
    rows = (pd.read_json(path, lines=True) if suffix == ".jsonl" else pd.read_parquet(path))
    assert len(rows) == count == sum(r["stats"]["reductions"] for r in records)
    first = records[0]
    mine = rows[rows["id"] == first["id"]]
    assert max(len(t.split()) for t in mine["tokens"]) == first["stats"]["pencil_max_context"]
    fresh = [t for tokens, start in zip(mine["tokens"], mine["loss_start"]) for t in tokens.split()[start:]]
    assert fresh == first["pencil"].split()


def test_stats_match_a_fresh_replay():
    for record in generate(Spec("phop", {"length": 40, "hops": 6}), 20):
        run = replay(record["prompt"].split(), record["pencil"].split())
        assert record["stats"]["pencil_max_context"] == run.peak_context
        assert record["stats"]["reductions"] == run.reductions


def test_ids_are_unique_and_name_the_stream():
    records = list(generate(Spec("addition", {}, "validation", 9), 100))
    assert len({r["id"] for r in records}) == 100
    assert records[5]["id"].startswith("addition-validation-9-") and records[5]["id"].endswith("-5")
    assert records[0]["generator_version"] == f"addition-v{get_task('addition').version}"


def test_strata_spread_evenly_over_any_run_of_items():
    from pencilbench.generators.seeding import stratum

    places = [stratum("sat", "{}", "train", 7, i) for i in range(5000)]
    for start, length in ((0, 2000), (1234, 2000), (3000, 200)):
        run = places[start : start + length]
        for target in (0.1, 0.5, 0.8):
            assert abs(sum(p < target for p in run) - target * length) <= 3
    assert stratum("sat", "{}", "train", 7, 0) != stratum("sat", "{}", "train", 8, 0)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_keeps_the_key_order_prompts_are_rendered_in(tmp_path, suffix):
    records = list(generate(Spec("einstein", {"houses": 3, "attributes": 3}, "test"), 5))
    path = tmp_path / f"data{suffix}"
    write_records(path, records)
    again = read_records(path)
    assert [json.dumps(r["problem"]) for r in again] == [json.dumps(r["problem"]) for r in records]
    assert all(record_problems(r) == [] for r in again)


@pytest.mark.parametrize(("pencil", "answer", "why"), [
    (("[CALL]", "5", "[SEP]", "[ANSWER]", "6", "[RETURN]"), ("5",),
     r"does not leave exactly \[ANSWER\] and the answer"),
    (("[CALL]", "5", "[RETURN]"), ("5",), "protocol error return_without_sep"),
    (("[CALL]", "5 6", "[SEP]", "[ANSWER]", "5", "[RETURN]"), ("5",), "token '5 6' is not in the vocabulary"),
    (("[CALL]", "", "[SEP]", "[ANSWER]", "5", "[RETURN]"), ("5",), "token '' is not in the vocabulary"),
    (("[CALL]", "[SEP]", "[ANSWER]", "x", "[RETURN]"), ("x",), "token 'x' is not in the vocabulary"),
    (("[CALL]", "[SEP]", "[RETURN]"), (), "the answer is empty"),
])
def test_a_broken_gold_trace_is_never_written(monkeypatch, pencil, answer, why):
    task, params = Spec("addition", {"operands": 2, "digits": 2}).resolve()
    monkeypatch.setattr(type(task), "trace", lambda self, params, problem: Trace(pencil, answer))
    with pytest.raises(RuntimeError, match=why):
        record_from_problem(task, params, {"operands": ["12", "34"]}, split="train", seed=0, index=0)
    monkeypatch.setattr(type(task), "solve_chunk", lambda *args: None)  # one at a time, through trace
    with pytest.raises(RuntimeError, match=why):
        make_record(task, params, "train", 0, 0)


def _values(change):
    """A change to a run of rows' ids, as a change to the rows."""
    return lambda rows: Ragged(change(rows.values).astype(np.int32), rows.offsets)


@pytest.mark.parametrize(("part", "change", "why"), [
    ("pencils", _values(lambda ids: np.where(ids == ids.max(), 999, ids)), "an id outside the task's vocabulary"),
    ("answers", _values(lambda ids: ids - 100), "an id outside the task's vocabulary"),
    ("prompts", _values(lambda ids: np.where(np.arange(len(ids)) == 3, 0, ids)), "the prompt holds a marker"),
    ("pencils", lambda rows: Ragged.of([rows.row(i)[:-1] for i in range(len(rows))]), "does not leave exactly"),
    ("answers", _values(lambda ids: (ids + 1) % 10 + 4), "does not leave exactly"),
])
def test_what_a_chunk_solver_returns_is_checked_like_any_trace(monkeypatch, part, change, why):
    task, params = Spec("addition", {"operands": 2, "digits": 3}).resolve()
    solve = type(task).solve_chunk

    def broken(self, params, stream, lo, hi):
        solved = solve(self, params, stream, lo, hi)
        return dataclasses.replace(solved, **{part: change(getattr(solved, part))})

    monkeypatch.setattr(type(task), "solve_chunk", broken)
    with pytest.raises(RuntimeError, match=f"gold trace of addition-train-0-[0-9a-f]{{8}}-0 is invalid: .*{why}"):
        make_record(task, params, "train", 0, 0)


def test_trace_problems_names_a_marker_in_the_prompt():
    record = make_record(*Spec("addition", {"operands": 2, "digits": 2}).resolve(), "train", 0, 0)
    found = trace_problems({**record, "prompt": "[CALL] " + record["prompt"]})
    assert found == ["the prompt holds a marker or [ANSWER]"]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
@pytest.mark.parametrize("room", [True, False])
def test_pool_processes_hand_chunks_over_in_shared_memory_or_else_by_pipe(tmp_path, monkeypatch, room, suffix):
    from pencilbench.generators import export

    monkeypatch.setattr(export, "_BATCH", 64)  # chunks hold whole row groups and rows of shared ones
    received = []
    unpark = export._unpark

    def counted(part):
        received.append(type(part).__name__)
        return unpark(part)

    monkeypatch.setattr(export, "_unpark", counted)
    folders = []
    make_folder = export.tempfile.mkdtemp

    def recorded(**kwargs):
        folders.append(make_folder(**kwargs))
        # No room: a folder that is not there, so every write in it fails.
        return folders[-1] if room else os.path.join(folders[-1], "full")

    monkeypatch.setattr(export.tempfile, "mkdtemp", recorded)
    spec = Spec("addition", {"operands": 3, "digits": 4}, "test", 5)
    write_records(tmp_path / f"records{suffix}", generate(spec, 3000))
    write_generated(tmp_path / f"two{suffix}", spec, 3000, workers=2)
    assert (tmp_path / f"two{suffix}").read_bytes() == (tmp_path / f"records{suffix}").read_bytes()
    by_pipe = {".parquet": {"Table", "EncodedGroup"}, ".jsonl": {"bytes"}}[suffix]
    assert received and set(received) == ({"_Parked"} if room else by_pipe)
    assert len(folders) == 1
    if room:
        assert not os.path.exists(folders[0])  # the run's folder is gone
    else:
        os.rmdir(folders[0])


def test_parquet_pages_do_not_follow_the_chunks(tmp_path):
    # Long text columns fill several data pages per row group; their bytes must not depend
    # on where the chunks that brought the rows began.
    spec = Spec("sat", {"variables": 10}, "validation", 2)
    runs = {(workers, chunk): tmp_path / f"out-{workers}-{chunk}.parquet"
            for workers, chunk in ((1, 2100), (1, 7), (2, 300))}
    for (workers, chunk), path in runs.items():
        write_generated(path, spec, 2100, workers=workers, chunk=chunk)
    first, *others = (path.read_bytes() for path in runs.values())
    assert all(other == first for other in others)


@pytest.mark.parametrize(("suffix", "group_bytes"), [(".parquet", 1 << 30), (".parquet", 4000), (".jsonl", 4000)])
def test_generated_files_have_the_bytes_of_written_records_for_any_workers(tmp_path, monkeypatch, suffix,
                                                                           group_bytes):
    from pencilbench.generators import export

    monkeypatch.setattr(export, "_BATCH", 16)  # several Parquet row groups, straddled by the chunks
    monkeypatch.setattr(export, "_GROUP_BYTES", group_bytes)  # 4000: cut by size before 16 rows
    monkeypatch.setattr(export, "_ENCODE_ROWS", 11)
    spec = Spec("addition", {"operands": 2, "digits": 2}, "train", 3)
    count = 90
    write_records(tmp_path / f"records{suffix}", generate(spec, count))
    write_segments(tmp_path / f"segments{suffix}", generate(spec, count))
    for workers, chunk in ((1, 64), (2, 7), (2, None)):
        seen: list[int] = []
        out, cut = tmp_path / f"out{workers}{suffix}", tmp_path / f"cut{workers}{suffix}"
        counts = write_generated(out, spec, count, workers=workers, chunk=chunk, segments_path=cut,
                                 progress=seen.append)
        assert out.read_bytes() == (tmp_path / f"records{suffix}").read_bytes()
        assert cut.read_bytes() == (tmp_path / f"segments{suffix}").read_bytes()
        assert counts[0] == count == sum(seen)
        assert counts[1] > count  # several segments per record
    if suffix == ".parquet":
        groups = pq.ParquetFile(tmp_path / f"records{suffix}").metadata
        sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
        assert sum(sizes) == count and max(sizes) <= 16
        assert (min(sizes[:-1]) < 16) == (group_bytes == 4000)


def test_pooled_chunks_are_sized_from_the_workers_cpu_time(monkeypatch):
    from pencilbench.generators import dataset

    monkeypatch.setattr(dataset, "CHUNK_SECONDS", 0.02)
    spec = Spec("addition", {"operands": 2, "digits": 2})
    pieces = list(map_chunks(spec, 3000, _bounds, workers=2))
    sizes = [hi - lo for lo, hi in pieces]
    assert pieces[0] == (0, 8) and sum(sizes) == 3000
    assert [lo for lo, _ in pieces[1:]] == [hi for _, hi in pieces[:-1]]  # in order, no gap
    assert max(sizes) > 8  # grown from the measured cost
    assert sizes[-1] <= max(1, 3000 // 8)  # the tail is cut small so both workers finish together


def test_the_tail_is_cut_no_finer_than_an_eighth_of_a_sized_chunk():
    spec = Spec("addition", {"operands": 2, "digits": 2})
    sizes = [hi - lo for lo, hi in map_chunks(spec, 3000, _bounds, workers=2)]
    assert min(sizes[:-1]) >= 8  # chunks of a few items cost more to hand over than to make


def test_the_pool_never_holds_as_much_as_is_left_to_hand_out(monkeypatch):
    from pencilbench.generators import dataset

    events = []

    class Watched(dataset.ProcessPoolExecutor):
        def submit(self, fn, work, spec, lo, hi, *rest):
            events.append(("queued", lo, hi))
            return super().submit(fn, work, spec, lo, hi, *rest)

    monkeypatch.setattr(dataset, "ProcessPoolExecutor", Watched)
    spec = Spec("addition", {"operands": 2, "digits": 2})
    for lo, hi, _ in map_chunks(spec, 300, _where, workers=2, chunk=5):
        events.append(("done", lo, hi))
    queued: dict[int, int] = {}
    for event, lo, hi in events:
        if event == "queued":
            held = sum(queued.values())
            assert held + hi - lo < 300 - lo  # with the chunk, less than is left to hand out
            queued[lo] = hi - lo
        else:
            queued.pop(lo, None)
    assert len(events) > 60  # the pool took some


def test_the_consuming_process_takes_chunks_while_it_waits_for_the_pool():
    spec = Spec("addition", {"operands": 2, "digits": 2})
    pieces = list(map_chunks(spec, 300, _where, workers=2, chunk=5))
    assert [lo for lo, _, _ in pieces] == list(range(0, 300, 5))  # in order, whoever did them
    assert {pid for _, _, pid in pieces} - {os.getpid()}  # the pool did some
    assert os.getpid() in {pid for _, _, pid in pieces}  # and this process others


def test_the_pool_threads_get_the_interpreter_lock_promptly_while_a_pool_runs():
    # Chunks reach the pool, and its results this process, through threads that need the
    # lock; at the default 5 ms interval the first chunk waited about 20 ms to go out.
    from pencilbench.generators import dataset

    before = sys.getswitchinterval()
    spec = Spec("addition", {"operands": 2, "digits": 2})
    seen = {interval for _, _, interval in map_chunks(spec, 300, _interval, workers=2, chunk=5)}
    assert seen == {dataset.HANDOVER_SECONDS} != {before}  # here and in the pool, forked while it ran
    assert sys.getswitchinterval() == before
    assert {interval for _, _, interval in map_chunks(spec, 30, _interval)} == {before}  # one process: left alone


def _interval(spec, lo, hi):
    sum(range(300000))
    return lo, hi, sys.getswitchinterval()


def _where(spec, lo, hi):
    sum(range(300000))  # a few ms of CPU: far more than handing the chunk over costs
    return lo, hi, os.getpid()


def _bounds(spec, lo, hi):
    sum(range(2000 * (hi - lo)))  # about 50 us of CPU per item
    return lo, hi


def test_a_failed_generation_leaves_no_file(tmp_path, monkeypatch):
    from pencilbench.generators import export

    def broken(spec, start, stop):
        raise RuntimeError("gold trace is invalid")

    monkeypatch.setattr(export, "make_table", broken)
    with pytest.raises(RuntimeError):
        write_generated(tmp_path / "out.parquet", Spec("phop", {"length": 16, "hops": 2}), 10,
                        segments_path=tmp_path / "cut.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_segments_file_leaves_no_records_file(tmp_path):
    (tmp_path / "plain").write_text("a file, not a folder")
    with pytest.raises(OSError):
        write_generated(tmp_path / "out.parquet", Spec("phop", {"length": 16, "hops": 2}), 10,
                        segments_path=tmp_path / "plain" / "cut.jsonl")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["plain"]


@pytest.mark.parametrize(("task", "params"), [("sat", {"variables": 6}), ("qbf", {"variables": 5}),
                                               ("einstein", {"houses": 3, "attributes": 3})])
def test_tasks_that_draw_candidates_test_the_split_on_them(task, params, monkeypatch):
    # The split is tested on each candidate inside the task, so an item samples once; a
    # task that drew a whole labelled problem first would be sampled about three times.
    owner = type(get_task(task))
    calls = []
    original = owner.sample

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, "sample", counted)
    # Items drawn one at a time, through sample (a chunk solver draws as its sample does).
    monkeypatch.setattr(owner, "solve_chunk", lambda self, *args: None)
    for split in SPLITS:
        records = list(generate(Spec(task, params, split, 3), 20))
        assert all(home_split(get_task(task).split_part(r["problem"])) == split for r in records)
    assert len(calls) == 3 * 20


def test_einstein_splits_own_solutions_whatever_the_clues():
    # Einstein's home split comes from everything but the clues (drawn last, at length), so
    # no solution with its question is in two splits; two houses and attributes keep it small.
    task = get_task("einstein")
    owners: dict[str, set[str]] = {}
    for split in SPLITS:
        for record in generate(Spec("einstein", {"houses": 2, "attributes": 2}, split, 0), 150):
            part = task.split_part(record["problem"])
            assert "clues" not in part and home_split(part) == split
            owners.setdefault(problem_hash(part), set()).add(split)
    assert all(len(splits) == 1 for splits in owners.values())


def test_generation_in_threads_gives_the_same_records():
    # Item generators are per thread: two threads generating at once do not share a stream.
    from concurrent.futures import ThreadPoolExecutor

    specs = [Spec("phop", {"length": 64, "hops": 8}, "train", seed) for seed in (1, 2, 3, 4)]
    alone = [list(generate(spec, 200)) for spec in specs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(lambda spec: list(generate(spec, 200)), specs))
    assert together == alone
