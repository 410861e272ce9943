"""The ``import pencilbench`` API: generate, load, score and reward agree with the command
line and with what the harness stores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import asdict

import pytest
from pencilbench.bench.adapters import AdapterOptions, make_adapter
from pencilbench.bench.adapters.wrapper import CallPolicy, Client
from pencilbench.bench.harness import EvalConfig, default_max_tokens, evaluate
from pencilbench.bench.store import ResultStore
from pencilbench.generators.dataset import Spec
from pencilbench.generators.dataset import generate as generate_records
from pencilbench.generators.export import write_records
from pencilbench.generators.registry import TASKS

import pencilbench

IGNORED = ("wall_time", "model")  # wall time differs between runs; the model name is the caller's


@pytest.fixture(scope="module")
def suite():
    return [record for task in TASKS.values() for record in
            pencilbench.generate(task.name, 2, seed=3, split="test", **task.quickstart_sizes[0])]


def stored(records, spec, mode, style, tmp_path):
    adapter = make_adapter(spec, AdapterOptions(records, mode, style))
    config = EvalConfig(mode, style, default_max_tokens(records, mode, style))
    with ResultStore(tmp_path / f"{spec}-{mode}-{style}", create=True) as store:
        evaluate(records, Client(adapter, CallPolicy(retries=1, backoff=0)), config, store, spec, progress=False)
        return {row["instance_id"]: row for row in store.samples().to_dict("records")}


def same(sample, row):
    for key, value in asdict(sample).items():
        if key not in IGNORED:
            theirs = None if isinstance(row[key], float) and math.isnan(row[key]) else row[key]
            assert value == theirs, (key, value, theirs)


def test_import_is_cheap_and_loads_no_submodule():
    code = ("import sys, pencilbench; print(sorted(m for m in sys.modules "
            "if m.startswith(('numpy', 'pandas', 'pencilbench.'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True).stdout.replace("'", '"'))
    assert loaded == ["pencilbench.generators"]
    assert set(pencilbench.__all__) == {"__version__", "generate", "load", "score", "reward"}


def test_generate_gives_the_command_line_bytes():
    ours = pencilbench.generate("sat", 5, seed=2, split="validation", variables=6, start=3)
    theirs = list(generate_records(Spec("sat", {"variables": "6"}, "validation", 2), 5, start=3))
    assert [json.dumps(r, sort_keys=True) for r in ours] == [json.dumps(r, sort_keys=True) for r in theirs]
    assert [r["index"] for r in ours] == [3, 4, 5, 6, 7]


def test_generate_rejects_bad_parameters_with_the_range():
    with pytest.raises(ValueError, match=r"variables must be in \[3, 100\]"):
        pencilbench.generate("sat", 1, variables=2)
    with pytest.raises(ValueError, match="unknown task"):
        pencilbench.generate("chess", 1)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_load_reads_both_formats(suite, tmp_path, suffix):
    write_records(tmp_path / f"data{suffix}", suite)
    assert pencilbench.load(tmp_path / f"data{suffix}") == suite


@pytest.mark.parametrize("style", ["compact", "instruct"])
@pytest.mark.parametrize("mode", ["direct", "cot"])
@pytest.mark.parametrize("spec", ["oracle", "random"])
def test_score_is_the_stored_row(suite, spec, mode, style, tmp_path):
    """Re-scoring what a model wrote gives exactly the row ``evaluate`` stored for it."""
    rows = stored(suite, spec, mode, style, tmp_path)
    for record in suite:
        row = rows[record["id"]]
        same(pencilbench.score(record, row["output"], mode, style), row)


def test_score_replays_pencil_reductions_like_the_loop(suite, tmp_path):
    rows = stored(suite, "oracle", "pencil", "compact", tmp_path)
    for record in suite:
        sample = pencilbench.score(record, record["pencil"], "pencil", "compact")
        same(sample, rows[record["id"]])
        assert sample.peak_context == record["stats"]["pencil_max_context"]
        assert sample.reductions == record["stats"]["reductions"] and sample.trace_rate == 1.0


def test_score_applies_budgets_and_protocol_errors(suite):
    record = next(r for r in suite if r["task"] == "addition")
    assert pencilbench.score(record, record["pencil"], "pencil", "compact", max_context=5).status == "context_overflow"
    assert pencilbench.score(record, record["cot"], "cot", "compact", max_tokens=2).status == "token_limit"
    broken = pencilbench.score(record, "[RETURN] " + record["pencil"], "pencil", "compact")
    assert broken.status == "protocol_error" and not broken.correct


def test_reward_is_a_float_for_any_text(suite):
    for record in suite:
        assert pencilbench.reward(record, "Answer: " + record["answer"]) == 1.0
        assert pencilbench.reward(record, record["cot"], "cot", "compact") == 1.0
        for junk in ("", "no idea", "Answer: [RETURN] ???", "\x00" * 10):
            assert pencilbench.reward(record, junk) == 0.0
            assert pencilbench.reward(record, junk, "pencil") == 0.0


def test_reward_gives_partial_credit_on_request():
    record = pencilbench.generate("addition", 1, seed=0, operands=2, digits=4)[0]
    digits = record["answer"].split()
    wrong_last = [*digits[:-1], str((int(digits[-1]) + 1) % 10)]  # a wrong first digit could be a 0
    text = "Answer: " + "".join(wrong_last)
    assert pencilbench.reward(record, text) == 0.0
    assert pencilbench.reward(record, text, partial=True) == pytest.approx((len(digits) - 1) / len(digits))
