"""What the lm-evaluation-harness tasks written by ``pencilbench export lm-eval`` call.

``load_split`` reads a task's Parquet file (records plus the prompt text ``input`` and the
``mode``). ``extract_answers`` is the task's filter: it scores every response with the
pencilbench oracle, exactly as ``pencilbench eval --style instruct`` would, and returns the
gold answer for a correct response, otherwise the answer it read (empty when none). The
task's ``exact_match`` against the gold answer is then the oracle's verdict, so a satisfying
assignment other than the gold one still counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pencilbench.generators.export import record_from_row


def load_split(path: str | Path, split: str = "test") -> Any:
    """The Parquet file at ``path`` as a ``datasets.DatasetDict`` with one split."""
    import datasets

    return datasets.DatasetDict({split: datasets.Dataset.from_parquet(str(path))})


def extract_answers(resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Per document, each response replaced by its canonical answer (see the module notes)."""
    from pencilbench import score

    out = []
    for responses, doc in zip(resps, docs, strict=True):
        record = record_from_row(doc)
        answers = []
        for text in responses:
            sample = score(record, text if isinstance(text, str) else "", doc["mode"], "instruct")
            answers.append(record["answer"] if sample.correct else sample.parsed_answer or "")
        out.append(answers)
    return out
