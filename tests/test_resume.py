"""Runs that fail say so, and rerunning finishes the job: failed samples are tried again
with their history kept, the exit status and one line tell what failed, one eval at a time
holds a run directory, unreadable stores and unusable datasets are refused before any work."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import eval_models
import pytest
from pencilbench.bench.cli import main
from pencilbench.bench.commands.eval import EXIT_MODEL_ERRORS, failure_summary
from pencilbench.bench.manifest import Piece, write_manifest
from pencilbench.bench.store import STORE_NAME, ResultStore, Sample, lock_run_dir
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records

SAMPLE = Sample("m", "direct", "compact", "i1", "addition", '{"digits":4,"operands":2}', "model_error", False, 0.0,
                False, None, "1 2", 5, 0, 0, None, 0.01, "", "HTTP 503: busy (after 5 attempts)", "[]")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    spec = Spec("addition", {"operands": 2, "digits": 3}, "test", 5)
    records = list(generate(spec, 6))
    path = tmp_path_factory.mktemp("data") / "suite.jsonl"
    write_records(path, records)
    write_manifest(path, [Piece.of(spec, 0, len(records))], len(records))
    return path, records


def eval_argv(path, run_dir, model="python:eval_models:outage", *extra):
    return ["eval", "--data", str(path), "--model", model, "--mode", "direct", "--run-dir", str(run_dir),
            "--retries", "1", "--backoff", "0", *extra]


def test_a_failed_row_gives_way_to_its_retry_and_stays_in_the_history(tmp_path):
    with ResultStore(tmp_path, create=True) as store:
        assert store.write(SAMPLE)
        assert store.statuses("m", "direct", "compact") == {("i1", 0): "model_error"}
        assert store.write(replace(SAMPLE, error="HTTP 500: boom (after 5 attempts)"))
        assert store.write(replace(SAMPLE, status="ok", correct=True, error=None, output="1 2"))
        assert not store.write(replace(SAMPLE, status="ok", output="other"))  # a finished row stays
        frame, history = store.samples(), store.failed_attempts()
    assert list(frame["status"]) == ["ok"] and list(frame["output"]) == ["1 2"]
    assert [error.split(":")[0] for error in history["error"]] == ["HTTP 503", "HTTP 500"]
    assert set(history["instance_id"]) == {"i1"}


def test_rerunning_retries_failed_samples_and_exit_status_says_so(dataset, tmp_path, capsys):
    path, records = dataset
    eval_models.OUTAGE["on"] = True
    try:
        assert main(eval_argv(path, tmp_path)) == EXIT_MODEL_ERRORS
        out, err = capsys.readouterr()
        assert f"statuses: model_error {len(records)}" in out
        assert err.splitlines() == [f"pencilbench: error: {len(records)} of {len(records)} samples failed: "
                                    "ConnectionError: server down; run the same command again to retry them"]
        # Still down: tried again, still failing, the history grows.
        assert main(eval_argv(path, tmp_path)) == EXIT_MODEL_ERRORS
        assert f"({len(records)} failed before and tried again)" not in capsys.readouterr().out
        eval_models.OUTAGE["on"] = False
        # --no-retry-errors keeps the failures: nothing is asked and the status stays 3.
        assert main(eval_argv(path, tmp_path, "python:eval_models:outage", "--no-retry-errors")) == EXIT_MODEL_ERRORS
        assert "0 samples in" in capsys.readouterr().out
        # The server is back: the same command finishes the job.
        assert main(eval_argv(path, tmp_path)) == 0
        out, err = capsys.readouterr()
        assert f"{len(records)} samples in" in out and f"{len(records)} failed before and tried again" in out
        assert f"statuses: ok {len(records)}" in out and err == ""
    finally:
        eval_models.OUTAGE["on"] = True
    with ResultStore(tmp_path) as store:
        frame, history = store.samples(), store.failed_attempts()
    assert len(frame) == len(records) == frame["instance_id"].nunique() and set(frame["status"]) == {"ok"}
    assert len(history) == 2 * len(records) and set(history["instance_id"]) == {r["id"] for r in records}
    assert main(eval_argv(path, tmp_path)) == 0
    assert "0 samples in" in capsys.readouterr().out


def test_failure_summary_names_the_commonest_causes_and_the_key():
    errors = ["HTTP 401: {\"error\": \"bad key\"} (after 1 attempt)"] * 20
    line = failure_summary(errors, 20, "OPENAI_API_KEY")
    assert line.startswith("20 of 20 samples failed: HTTP 401 unauthorized; is OPENAI_API_KEY set?")
    mixed = ["timed out after 5 s (after 3 attempts)"] * 3 + ["HTTP 500: x (after 3 attempts)"] * 2 + ["boom"]
    assert failure_summary(mixed, 10, None).startswith(
        "6 of 10 samples failed: timed out after 5 s (3), HTTP 500 internal server error (2) and 1 other causes;")


def test_a_held_run_directory_is_refused_in_one_line(dataset, tmp_path, capsys):
    path, _ = dataset
    with lock_run_dir(tmp_path):
        code = main(eval_argv(path, tmp_path, "oracle"))
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "is in use by another eval" in err
        assert not (tmp_path / STORE_NAME).exists()
    assert main(eval_argv(path, tmp_path, "oracle")) == 0  # released with the context


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 40, b"SQLite format 3\x00" + b"\xff" * 200])
def test_an_unreadable_store_is_refused_and_left_alone(dataset, tmp_path, capsys, content):
    path, _ = dataset
    store = tmp_path / STORE_NAME
    store.write_bytes(content)
    for argv in (eval_argv(path, tmp_path, "oracle"), ["report", str(tmp_path), "--out", str(tmp_path / "r")]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
        assert str(store) in err and store.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([STORE_NAME, ".lock"])


def test_an_unreadable_response_cache_is_one_line(dataset, tmp_path, capsys):
    path, _ = dataset
    (tmp_path / "cache.sqlite").write_bytes(b"garbage" * 100)
    code = main(eval_argv(path, tmp_path, f"cmd:python {eval_models.__file__}"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "not a database" in err


BAD_RECORDS = [
    ("answer", None, "answer is null"),
    ("task", None, "task is null"),
    ("task", "chess", "unknown task 'chess'"),
    ("params", {"operands": 999, "digits": 3}, "operands must be in [2, 128]"),
    ("prompt", 7, "prompt is int, not str"),
    ("answer", "  ", "answer is empty"),
]


def test_eval_checks_every_record_before_any_call(dataset, tmp_path, capsys):
    _, records = dataset
    broken = [dict(record) for record in records]
    for record, (field, value, _) in zip(broken, BAD_RECORDS, strict=False):
        record[field] = value
    del broken[-1]["cot"]
    broken.append(dict(records[0]))
    data = tmp_path / "bad.jsonl"
    data.write_text("".join(json.dumps(record) + "\n" for record in broken))
    # read_records refuses a missing field by line; the rest are named by id
    code = main(eval_argv(data, tmp_path / "run", "python:eval_models:broken"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and ":6: not a pencilbench record (missing 'cot')" in err
    broken[-2]["cot"] = records[-1]["cot"]
    data.write_text("".join(json.dumps(record) + "\n" for record in broken))
    code = main(eval_argv(data, tmp_path / "run", "python:eval_models:broken", "--limit", "1"))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert f"7 of {len(broken)} records are unusable" in err
    for record, (_, _, problem) in zip(broken[:5], BAD_RECORDS, strict=False):
        assert f"{record['id']}: {problem}" in err
    assert "and 2 more" in err
    assert not (tmp_path / "run").exists(), "nothing may be written before the records are checked"
    # The ones past the first five are named too once those are fixed.
    data.write_text("".join(json.dumps(record) + "\n" for record in [*records, broken[5], broken[6]]))
    capsys.readouterr()
    code = main(eval_argv(data, tmp_path / "run", "python:eval_models:broken"))
    err = capsys.readouterr().err
    assert code == 2 and f"{records[5]['id']}: answer is empty" in err and f"{records[0]['id']}: duplicate id" in err


@pytest.mark.parametrize("flag, value, message", [
    ("--backoff", "-1", "--backoff must be in [0, 3600] seconds"),
    ("--max-backoff", "1e9", "--max-backoff must be in [0, 3600] seconds"),
    ("--retries", "101", "--retries must be in [0, 100]"),
])
def test_retry_settings_out_of_range_are_one_line(dataset, tmp_path, capsys, flag, value, message):
    code = main([*eval_argv(dataset[0], tmp_path, "oracle"), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err


def test_a_suite_run_with_failed_samples_exits_as_eval_does(tmp_path, capsys):
    argv = ["run", "smoke", "--model", "python:eval_models:outage", "--modes", "direct", "--retries", "0",
            "--out", str(tmp_path / "job")]
    eval_models.OUTAGE["on"] = True
    try:
        assert main(argv) == EXIT_MODEL_ERRORS
        out, err = capsys.readouterr()
        assert "statuses: model_error 25" in out
        assert "pencilbench: error: 25 of 25 samples failed: ConnectionError: server down" in err
        assert (tmp_path / "job" / "report" / "leaderboard.csv").exists()  # the job still reports
        eval_models.OUTAGE["on"] = False
        assert main(argv) == 0
        assert "25 failed before and tried again" in capsys.readouterr().out
    finally:
        eval_models.OUTAGE["on"] = True


def test_a_run_stopped_while_creating_its_store_runs_again(dataset, tmp_path, monkeypatch):
    path, records = dataset
    real_connect = sqlite3.connect

    def interrupted(*args, **kwargs):  # Ctrl-C once SQLite has created its (empty) file
        real_connect(*args, **kwargs).close()
        raise KeyboardInterrupt

    monkeypatch.setattr(sqlite3, "connect", interrupted)
    assert main(eval_argv(path, tmp_path, "python:eval_models:last_token")) == 130
    monkeypatch.undo()
    assert not (tmp_path / STORE_NAME).exists()  # a store appears whole or not at all
    assert main(eval_argv(path, tmp_path, "python:eval_models:last_token")) == 0
    with ResultStore(tmp_path) as store:
        assert len(store.samples()) == len(records)
    assert sorted(item.name for item in tmp_path.iterdir()) == [".lock", STORE_NAME]
