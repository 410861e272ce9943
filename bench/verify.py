"""Checking dataset records, in two depths.

:func:`record_errors` is what every command that reads a dataset checks first (``eval``
before any model call, ``solve`` before its deeper checks): every field present with its
type, a known task, valid parameters, a non-empty answer; a dataset also must not repeat
an id (:func:`check_dataset`). :func:`record_problems` is ``solve``'s full re-check: the
prompt and question re-rendered from the problem, the trace invariants and the oracle.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pencilbench.bench.errors import UserError
from pencilbench.generators.dataset import FIELDS, trace_problems
from pencilbench.generators.registry import get_task
from pencilbench.solvers.registry import check_answer

# The JSON type of every record field (bool is not an int here).
FIELD_TYPES: dict[str, type] = {name: str for name in FIELDS} | {
    "seed": int, "index": int, "schema_version": int, "params": dict, "problem": dict, "stats": dict}
# How many bad records an error line names before it counts the rest.
SHOWN = 5


def record_errors(record: Any) -> list[str]:
    """Why a record cannot be evaluated at all (empty when its shape is sound)."""
    if not isinstance(record, Mapping):
        return ["not a JSON object"]
    found = []
    for name, kind in FIELD_TYPES.items():
        value = record.get(name)
        if name not in record:
            found.append(f"{name} is missing")
        elif value is None:
            found.append(f"{name} is null")
        elif not isinstance(value, kind) or isinstance(value, bool):
            found.append(f"{name} is {type(value).__name__}, not {kind.__name__}")
    if found:
        return found
    if not record["id"].strip():
        return ["id is empty"]
    if not record["answer"].split():
        return ["answer is empty"]
    try:
        get_task(record["task"]).params(record["params"])
    except ValueError as error:
        return [str(error)]
    return []


def record_label(record: Any, position: int) -> str:
    """How an error line names a record: its id, or its position when it has none."""
    identifier = record.get("id") if isinstance(record, Mapping) else None
    return identifier if isinstance(identifier, str) and identifier.strip() else f"record {position + 1}"


def _repeated(record: Any, seen: set[str]) -> bool:
    """Whether the record's id is one ``seen`` already holds; the id is added to it."""
    identifier = record.get("id") if isinstance(record, Mapping) else None
    if not isinstance(identifier, str):
        return False
    if identifier in seen:
        return True
    seen.add(identifier)
    return False


def check_dataset(records: Sequence[Any], source: object) -> None:
    """``UserError`` naming the bad records (the first few, by id) when any record cannot
    be evaluated or repeats an id that came before it."""
    found: list[str] = []
    bad = 0
    seen: set[str] = set()
    for position, record in enumerate(records):
        problems = record_errors(record)
        if _repeated(record, seen):
            problems.append("duplicate id")
        label = record_label(record, position)
        found.extend(f"{label}: {problem}" for problem in problems)
        bad += bool(problems)
    if not found:
        return
    more = f"; and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    raise UserError(f"dataset {source}: {bad} of {len(records)} records are unusable: "
                    f"{'; '.join(found[:SHOWN])}{more}")


def record_problems(record: Mapping[str, Any]) -> list[str]:
    """Everything wrong with one record (empty when it is sound)."""
    found = record_errors(record)
    if found:
        return found
    task = get_task(record["task"])
    params = task.params(record["params"])
    try:
        if record["prompt"] != " ".join(task.prompt(params, record["problem"])):
            found.append("the prompt is not the one the problem renders to")
        if record["question"] != task.question(params, record["problem"]):
            found.append("the question is not the one the problem renders to")
    except (KeyError, TypeError, ValueError, IndexError) as error:
        return [f"the problem cannot be rendered: {type(error).__name__}: {error}"]
    found.extend(trace_problems(record))
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
    """Per-size summaries of the records whose shape is sound, and (record label, problem)
    for every failure, repeated ids included."""
    groups: dict[tuple[str, str], list[tuple[bool, int, int]]] = {}
    failures: list[tuple[str, str]] = []
    seen: set[str] = set()
    for position, record in enumerate(records):
        label = record_label(record, position)
        problems = record_problems(record)
        if _repeated(record, seen):
            problems.append("duplicate id")
        failures.extend((label, problem) for problem in problems)
        if record_errors(record):
            continue
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
