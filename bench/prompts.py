"""What the model is shown, per prompt style, and how its text is cut into tokens.

``compact``: the task's own prompt tokens, space-joined, for models trained on pencilbench
data; the model's text is split on whitespace into compact tokens.

``instruct``: the record's natural-language question (it states the ``Answer: ...``
format). In cot and pencil modes a worked example comes first: the first instance (train
split, seed 0) of the task's smallest quickstart size, built with the task's own generator,
with its gold chain of thought or PENCIL trace and its answer line. The model's text is cut
into *pieces*: each marker is a piece, and every other word keeps its surrounding
whitespace, so joining the live pieces gives back the text exactly (minus the text a
reduction erased).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pencilbench.generators.dataset import make_record
from pencilbench.generators.registry import get_task

COT_RULES = "Think step by step and write your reasoning before the answer line."
PENCIL_RULES = (
    "Think on a scratchpad that erases finished work. Open a sub-problem with [CALL], work on it, "
    "then write [SEP], its result and [RETURN]. At [RETURN] everything from that [CALL] up to the "
    "[RETURN] is erased and only the result stays, so keep results self-contained. A result may "
    "itself begin with [CALL] to continue in a fresh sub-problem from a short summary. End with "
    "the answer line."
)

_MARKER_SPLIT = re.compile(r"(\[CALL\]|\[SEP\]|\[RETURN\])")
_WORD = re.compile(r"\s*\S+\s*")


def answer_line(record: Mapping[str, Any], tokens: Sequence[str]) -> str:
    """How the instruct style states answer ``tokens`` for ``record``'s task: written
    solid (``Answer: 1234``) when the task's parser reads that back as the same tokens,
    else with spaces between tokens. The worked examples and the replay models use it."""
    task = get_task(record["task"])
    solid = f"Answer: {''.join(tokens)}"
    if task.parse_answer(task.params(record["params"]), record["problem"], solid) == tuple(tokens):
        return solid
    return f"Answer: {' '.join(tokens)}"


@functools.cache
def worked_example(task_name: str) -> dict[str, Any]:
    """The record shown as a worked example for ``task_name`` (deterministic)."""
    task = get_task(task_name)
    return make_record(task, task.params(task.quickstart_sizes[0]), "train", 0, 0)


def instruct_prompt(record: Mapping[str, Any], mode: str) -> str:
    """The instruct-style prompt of a record in ``mode``."""
    if mode == "direct":
        return f"{record['question']}\n"
    example = worked_example(record["task"])
    rules, steps = (COT_RULES, example["cot"]) if mode == "cot" else (PENCIL_RULES, example["pencil"])
    return (f"{rules}\n\nExample problem:\n{example['question']}\n\nExample solution:\n{steps}\n"
            f"{answer_line(example, example['answer'].split())}\n\nProblem:\n{record['question']}\n\nSolution:\n")


def pieces(text: str) -> list[str]:
    """Instruct-style tokens: markers alone, other words with their whitespace.

    Whitespace that stands alone between two markers is dropped; nothing else is lost.
    """
    out: list[str] = []
    for i, chunk in enumerate(_MARKER_SPLIT.split(text)):
        if i % 2:
            out.append(chunk)
        elif chunk:
            out.extend(_WORD.findall(chunk))
    return out
