"""Several samples per instance: pass@k and maj@k, repeats in the results store, and stores
written before repeats existed."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from itertools import combinations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pencilbench.bench.cli import main
from pencilbench.bench.metrics import majority_correct, pass_at_k, sampling_summary
from pencilbench.bench.store import ResultStore, Sample
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records

SAMPLE = Sample("m", "direct", "compact", "i1", "addition", '{"digits":4,"operands":2}', "ok", True, 1.0, True,
                "1 2", "1 2", 30, 12, 0, None, 0.01, "1 2", None, "[1,2]")

# The samples table as stores wrote it before repeats and model token counts were kept.
OLD_SAMPLES = """
CREATE TABLE samples (
    model TEXT NOT NULL, mode TEXT NOT NULL, style TEXT NOT NULL, instance_id TEXT NOT NULL,
    task TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL,
    correct INTEGER NOT NULL, partial REAL NOT NULL, parse_ok INTEGER NOT NULL,
    parsed_answer TEXT, gold_answer TEXT NOT NULL,
    peak_context INTEGER NOT NULL, generated_tokens INTEGER NOT NULL, reductions INTEGER NOT NULL,
    trace_rate REAL, wall_time REAL NOT NULL, output TEXT NOT NULL, error TEXT,
    context_lengths TEXT,
    PRIMARY KEY (model, mode, style, instance_id)
);
"""


@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_is_the_share_of_k_subsets_with_a_correct_sample(case):
    n, c, k = case
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(combinations(outcomes, k))
    assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)


def test_majority_vote():
    assert majority_correct(["7", "8", "7"], [True, False, True])
    assert not majority_correct(["8", "8", "7"], [False, False, True])
    assert majority_correct(["7", "8"], [True, False])  # a tie goes to the answer seen first
    assert not majority_correct([None, None], [False, False])
    assert majority_correct([None, "7", None], [False, True, False])  # no answer, no vote


def test_sampling_summary_per_size():
    rows = [replace(SAMPLE, instance_id=i, repeat=r, correct=ok, parsed_answer=answer)
            for i, r, ok, answer in [("a", 0, True, "1 2"), ("a", 1, False, "3"), ("a", 2, False, "3"),
                                     ("b", 0, False, "4"), ("b", 1, False, "5"), ("b", 2, True, "1 2")]]
    frame = pd.DataFrame([vars(row) for row in rows])
    (row,) = sampling_summary(frame, 3)
    assert row["instances"] == 2 and row["pass1"] == pytest.approx(1 / 3)
    assert row["passk"] == 1.0 and row["majk"] == 0.0
    (two,) = sampling_summary(frame, 2)
    assert two["passk"] == pytest.approx((pass_at_k(3, 1, 2) * 2) / 2)
    assert two["majk"] == 0.5  # a: 1 2 against 3, a tie won by the first; b: 4 against 5


def test_an_old_store_is_migrated_with_every_row(tmp_path):
    db = sqlite3.connect(tmp_path / "results.sqlite")
    db.executescript(OLD_SAMPLES)
    columns = [name for name in vars(SAMPLE) if name not in ("repeat", "model_tokens")]
    db.execute(f"INSERT INTO samples ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
               [getattr(SAMPLE, name) for name in columns])
    db.commit()
    db.close()
    with ResultStore(tmp_path) as store:
        frame = store.samples()
        assert len(frame) == 1 and frame["repeat"].tolist() == [0] and pd.isna(frame["model_tokens"][0])
        assert frame["output"][0] == SAMPLE.output and frame["context_lengths"][0] == SAMPLE.context_lengths
        assert store.write(replace(SAMPLE, repeat=1, model_tokens=9))
        assert not store.write(replace(SAMPLE, repeat=1))
        assert set(store.statuses("m", "direct", "compact")) == {("i1", 0), ("i1", 1)}
    with ResultStore(tmp_path) as store:  # opening again changes nothing
        assert len(store.samples()) == 2


def test_eval_with_samples_adds_repeats_and_resumes(tmp_path, capsys):
    records = list(generate(Spec("addition", {"operands": 2, "digits": 3}, "test", 2), 4))
    data = tmp_path / "suite.jsonl"
    write_records(data, records)
    argv = ["eval", "--data", str(data), "--model", "random", "--mode", "direct", "--run-dir",
            str(tmp_path / "run"), "--samples", "2", "--quiet"]
    assert main(argv) == 0
    assert main([*argv[:-3], "--samples", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "pass@3" in out and "maj@3" in out and "4 samples in" in out
    with ResultStore(tmp_path / "run") as store:
        frame = store.samples()
    assert len(frame) == 12 and sorted(set(frame["repeat"])) == [0, 1, 2]
    # the random model draws a different answer for each repeat
    assert frame.groupby("instance_id")["parsed_answer"].nunique().max() > 1
