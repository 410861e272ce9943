"""Re-checking a dataset: trace invariants and the independent oracle, record by record."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pencilbench.generators.dataset import trace_problems
from pencilbench.generators.registry import get_task
from pencilbench.solvers.registry import check_answer


def record_problems(record: Mapping[str, Any]) -> list[str]:
    """Everything wrong with one record (empty when it is sound)."""
    try:
        task = get_task(record["task"])
        task.params(record["params"])
    except ValueError as error:
        return [str(error)]
    found = trace_problems(record)
    try:
        verdict = check_answer(record["task"], record["problem"], record["answer"].split())
    except ValueError as error:
        return [*found, str(error)]
    if not verdict.correct:
        found.append("the oracle rejects the gold answer")
    return found


def size_label(record: Mapping[str, Any]) -> str:
    """The short label of a record's size, or its raw parameters when they are invalid."""
    try:
        return get_task(record["task"]).params(record["params"]).label()
    except ValueError:
        return json.dumps(record["params"], sort_keys=True)


@dataclass(frozen=True)
class SizeSummary:
    """Verification and trace-length figures of one (task, size)."""

    task: str
    size: str
    count: int
    verified: int
    cot_peak_mean: float
    cot_peak_max: int
    pencil_peak_mean: float
    pencil_peak_max: int


def summarize(records: Iterable[Mapping[str, Any]]) -> tuple[list[SizeSummary], list[tuple[str, str]]]:
    """Per-size summaries, and (record id, problem) for every failure."""
    groups: dict[tuple[str, str], list[tuple[bool, int, int]]] = {}
    failures: list[tuple[str, str]] = []
    for record in records:
        problems = record_problems(record)
        failures.extend((record["id"], problem) for problem in problems)
        stats = record["stats"]
        key = (record["task"], size_label(record))
        groups.setdefault(key, []).append(
            (not problems, stats["prompt_tokens"] + stats["cot_tokens"], stats["pencil_max_context"])
        )
    summaries = []
    for (task, size), rows in groups.items():
        cot = [row[1] for row in rows]
        pencil = [row[2] for row in rows]
        summaries.append(SizeSummary(task, size, len(rows), sum(row[0] for row in rows),
                                     sum(cot) / len(cot), max(cot), sum(pencil) / len(pencil), max(pencil)))
    return summaries, failures
