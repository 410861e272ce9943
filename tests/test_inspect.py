"""inspect_ai runs the ``pencilbench/...`` tasks (tox env ``inspect``; skipped without
inspect_ai), found through the package's ``inspect_ai`` entry point, against inspect's mock
model."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import pencilbench

inspect_ai = pytest.importorskip("inspect_ai")
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402


@pytest.fixture(autouse=True)
def installed_metadata_only(monkeypatch):
    """Leave the checkout off ``sys.path``: ``python -m pytest`` puts the working directory
    there, and a checkout's ``pencilbench.egg-info`` would then hide the installed
    distribution from the package lookup inspect uses to name ``pencilbench/...`` tasks."""
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not (Path(p or ".") / "pencilbench.egg-info").exists()])


def mock(records, answer):
    """inspect's mock model, replying ``answer(record)`` to the record whose question it is asked."""

    def reply(messages, tools, tool_choice, config):
        text = messages[-1].text
        record = next(r for r in records if r["question"] in text)
        output = ModelOutput.from_content(model="mockllm/model", content=answer(record))
        output.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tokenizer download
        return output

    return get_model("mockllm/model", custom_outputs=reply, memoize=False)


def run(task, records, answer, tmp_path, **args):
    (log,) = inspect_ai.eval(task, model=mock(records, answer), task_args=args, display="none",
                             log_dir=str(tmp_path))
    assert log.status == "success", log.error
    return log


def test_the_entry_point_names_the_task_module():
    (point,) = [p for p in entry_points(group="inspect_ai") if p.name == "pencilbench"]
    assert point.value == "pencilbench.bench.integrations.inspect_tasks"


def test_einstein_with_task_arguments_scores_the_oracle_verdict(tmp_path):
    records = pencilbench.generate("einstein", 3, seed=0, split="test", houses=4)
    log = run("pencilbench/einstein", records, lambda r: "Reasoning...\nAnswer: " + r["answer"], tmp_path,
              n=3, houses=4)
    assert log.results.scores[0].metrics["accuracy"].value == 1.0
    assert sorted(sample.id for sample in log.samples) == sorted(r["id"] for r in records)
    assert all(s.scores["oracle"].metadata["status"] == "ok" for s in log.samples)


def test_wrong_answers_and_other_valid_assignments(tmp_path):
    records = pencilbench.generate("sat", 4, seed=1, split="test", variables=5)

    def answer(record):
        tokens = record["answer"].split()
        if tokens[0] == "SAT":  # another order of the same assignment: still right
            return "Answer: SAT " + " ".join(reversed(tokens[1:]))
        return "Answer: SAT 1 2 3 4 5"  # wrong for an unsatisfiable formula

    log = run("pencilbench/sat", records, answer, tmp_path, n=4, seed=1, variables=5)
    verdicts = {s.id: s.scores["oracle"].value for s in log.samples}
    assert verdicts == {r["id"]: "C" if r["answer"] != "UNSAT" else "I" for r in records}


def test_dataset_task_reads_a_file(tmp_path):
    from pencilbench.generators.export import write_records

    records = pencilbench.generate("addition", 2, seed=3, split="test", digits=3)
    write_records(tmp_path / "data.jsonl", records)
    log = run("pencilbench/dataset", records, lambda r: "no idea", tmp_path / "logs",
              path=str(tmp_path / "data.jsonl"), mode="direct")
    assert log.results.scores[0].metrics["accuracy"].value == 0.0
    assert all(s.scores["oracle"].metadata["parse_ok"] is False for s in log.samples)
