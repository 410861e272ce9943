"""lm-evaluation-harness loads and runs a ``pencilbench export lm-eval`` folder (tox env
``lmeval``; skipped without lm-eval). The model is a stand-in that answers from the
documents, so no weights are needed."""

from __future__ import annotations

import pytest
from pencilbench.bench.commands.export import export_lm_eval, load_checked
from pencilbench.generators.export import write_records

import pencilbench

lm_eval = pytest.importorskip("lm_eval")
pytest.importorskip("datasets")
from lm_eval.api.model import LM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402


class Scripted(LM):
    """Writes ``reply(doc)`` for each request; no likelihoods."""

    def __init__(self, reply):
        super().__init__()
        self.reply = reply
        self.prompts = []

    def generate_until(self, requests):
        self.prompts.extend(request.args[0] for request in requests)
        return [self.reply(request.doc) for request in requests]

    def loglikelihood(self, requests):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lm")
    records = (pencilbench.generate("sat", 6, seed=5, split="test", variables=5)
               + pencilbench.generate("addition", 3, seed=5, split="test", digits=3))
    write_records(tmp / "data.jsonl", records)
    checked, _ = load_checked([str(tmp / "data.jsonl")])
    tasks = export_lm_eval(checked, tmp / "tasks", "cot")
    return tmp / "tasks", tasks, records


def run(folder, reply):
    path, tasks, _ = folder
    manager = TaskManager(include_path=str(path), include_defaults=False)
    model = Scripted(reply)
    results = lm_eval.simple_evaluate(model=model, tasks=["pencilbench"], task_manager=manager)["results"]
    return {task: results[task]["exact_match,pencilbench"] for task in tasks}, model


def test_task_manager_finds_every_task_and_the_tag(folder):
    """Next to lm-eval's own tasks, as ``lm_eval --include_path DIR`` loads them."""
    path, tasks, _ = folder
    manager = TaskManager(include_path=str(path))
    assert set(tasks) | {"pencilbench"} <= set(manager.all_tasks)


def test_gold_answers_score_one_through_the_oracle_filter(folder):
    def reply(doc):
        answer = doc["answer"].split()
        if answer[0] == "SAT":  # the same assignment, reordered: right, though not the gold string
            answer = ["SAT", *reversed(answer[1:])]
        return "Let me think.\nAnswer: " + " ".join(answer)

    scores, model = run(folder, reply)
    assert scores == dict.fromkeys(folder[1], 1.0)
    assert all(prompt.startswith("Think step by step") for prompt in model.prompts)


def test_wrong_and_malformed_answers_score_zero(folder):
    scores, _ = run(folder, lambda doc: "Answer: 7" if doc["task"] == "addition" else "I cannot tell")
    assert scores == dict.fromkeys(folder[1], 0.0)
