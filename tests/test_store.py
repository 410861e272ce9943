"""The results store, metrics and the eval command: resume after SIGKILL, export, tables,
and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from pencilbench.bench.cli import main
from pencilbench.bench.metrics import accuracy_within, budgets, summarize, wilson
from pencilbench.bench.store import ResultStore, Sample
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    records = [*generate(Spec("addition", {"operands": 2, "digits": 4}, "test", 0), 30),
               *generate(Spec("phop", {"length": 32, "hops": 4}, "test", 0), 30)]
    path = tmp_path_factory.mktemp("data") / "suite.parquet"
    write_records(path, records)
    return path, records


SAMPLE = Sample("m", "pencil", "compact", "i1", "addition", '{"digits":4,"operands":2}', "ok", True, 1.0, True,
                "1 2", "1 2", 30, 12, 3, 1.0, 0.01, "1 2", None, "[1,2]")


def test_rows_are_written_once(tmp_path):
    with ResultStore(tmp_path, create=True) as store:
        assert store.write(SAMPLE)
        assert not store.write(replace(SAMPLE, status="token_limit"))
        assert store.write(replace(SAMPLE, instance_id="i2", correct=False))
        assert set(store.statuses("m", "pencil", "compact")) == {("i1", 0), ("i2", 0)}
        assert store.statuses("m", "cot", "compact") == {}
        frame = store.samples()
    assert list(frame["status"]) == ["ok", "ok"] and frame["correct"].tolist() == [True, False]


def test_export_round_trips(tmp_path):
    with ResultStore(tmp_path, create=True) as store:
        store.write(SAMPLE)
        assert store.export(tmp_path / "out.jsonl") == 1
        assert store.export(tmp_path / "out.parquet") == 1
        with pytest.raises(ValueError):
            store.export(tmp_path / "out.csv")
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["instance_id"] == "i1" and row["context_lengths"] == "[1,2]"
    assert pd.read_parquet(tmp_path / "out.parquet")["peak_context"].tolist() == [30]


def test_metrics():
    assert budgets(100) == [256] and budgets(256) == [256] and budgets(257) == [256, 512]
    assert accuracy_within([True, True, False], [100, 600, 10], 512) == pytest.approx(1 / 3)
    low, high = wilson(5, 10)
    assert low < 0.5 < high
    frame = pd.DataFrame([{**SAMPLE.__dict__, "instance_id": str(i), "correct": i % 2 == 0,
                           "peak_context": 200 + 100 * i, "parse_ok": i != 3} for i in range(4)])
    [row] = summarize(frame)
    assert row["n"] == 4 and row["accuracy"] == 0.5 and row["parse_failures"] == 0.25
    assert row["peak_max"] == 500 and row["acc@256"] == 0.25 and row["acc@512"] == 0.5


def test_eval_command_prints_tables_resumes_and_exports(dataset, tmp_path, capsys):
    path, records = dataset
    argv = ["eval", "--data", str(path), "--model", "oracle", "--mode", "pencil", "--run-dir", str(tmp_path)]
    assert main([*argv, "--limit", "10"]) == 0
    out = capsys.readouterr().out
    assert "10 samples in" in out and "acc@256" in out and "95% CI" in out and "statuses: ok 10" in out
    assert main([*argv, "--export", str(tmp_path / "all.jsonl")]) == 0
    out = capsys.readouterr().out
    assert f"{len(records) - 10} samples in" in out and "(10 already done)" in out
    assert "addition" in out and "phop" in out and "1.000" in out
    assert len((tmp_path / "all.jsonl").read_text().splitlines()) == len(records)
    with ResultStore(tmp_path) as store:
        evaluations = store.evaluations()
    assert len(evaluations) == 1 and json.loads(evaluations["config"][0])["mode"] == "pencil"
    code = main([*argv, "--max-tokens", "3"])
    assert code == 2 and "max_tokens" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--model", "gpt9"], "unknown model spec"),
    (["--data", "/no/such/file.jsonl"], "cannot read dataset"),
    (["--data", "README.md"], "cannot read dataset"),
    (["--max-context", "0"], "max context"),
    (["--limit", "0"], "--limit"),
    (["--export", "x.csv"], "--export"),
])
def test_bad_input_is_one_line_and_exit_2(dataset, tmp_path, capsys, argv, message):
    base = {"--data": str(dataset[0]), "--model": "oracle", "--mode": "direct", "--run-dir": str(tmp_path)}
    extra = dict(zip(argv[::2], argv[1::2], strict=True))
    args = [item for key, value in {**base, **extra}.items() for item in (key, value)]
    code = main(["eval", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_sigkill_mid_run_loses_and_duplicates_nothing(dataset, tmp_path):
    path, records = dataset
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}

    def command(run_dir, model):
        return [sys.executable, "-m", "pencilbench", "eval", "--data", str(path), "--model", model,
                "--mode", "direct", "--run-dir", str(run_dir), "--quiet"]

    killed = tmp_path / "killed"
    process = subprocess.Popen(command(killed, "python:eval_models:slow_last_token"), cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store_path = killed / "results.sqlite"
    deadline = time.monotonic() + 30
    rows = 0
    while rows < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
        if store_path.exists():
            try:
                with sqlite3.connect(store_path) as db:
                    rows = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 5 <= rows < len(records), "the run should be killed part way"
    with ResultStore(killed) as store:
        before = store.samples().set_index("instance_id")
    assert len(before) < len(records)

    subprocess.run(command(killed, "python:eval_models:slow_last_token"), cwd=ROOT, env=env, check=True,
                   capture_output=True)
    with ResultStore(killed) as store:
        after = store.samples().set_index("instance_id")
    assert len(after) == len(records) and after.index.is_unique
    # Rows committed before the kill were kept as they were, not computed again.
    assert after.loc[before.index, "wall_time"].equals(before["wall_time"])

    reference = tmp_path / "reference"
    subprocess.run(command(reference, "python:eval_models:last_token"), cwd=ROOT, env=env, check=True,
                   capture_output=True)
    with ResultStore(reference) as store:
        expected = store.samples().set_index("instance_id")
    columns = ["status", "correct", "parsed_answer", "output", "peak_context", "generated_tokens"]
    assert after[columns].sort_index().equals(expected[columns].sort_index())
