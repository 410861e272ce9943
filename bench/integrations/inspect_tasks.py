"""inspect_ai tasks: ``inspect eval pencilbench/einstein -T houses=4`` (extra ``inspect``).

The package registers this module under inspect's ``inspect_ai`` entry point, so every task
below is ``pencilbench/NAME``. Task arguments: ``n`` (instances, default 100), ``seed``,
``split`` (default test), ``mode`` (``direct``: the question alone; ``cot``, the default: the
question after a worked example, as ``pencilbench eval --style instruct``) and any size knob
of the task (``-T variables=10``). ``pencilbench/dataset -T path=FILE`` evaluates an existing
dataset file. The scorer reads the answer and checks it with the pencilbench oracle through
:func:`pencilbench.score`, so a sample is correct exactly when ``pencilbench eval`` would
count it correct (any satisfying assignment, for instance); the score's metadata carries
the status, partial credit and parsed answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from inspect_ai import Task, task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import GenerateConfig
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, scorer, stderr
from inspect_ai.solver import TaskState, generate
from pencilbench.bench.harness import INSTRUCT_MAX_TOKENS
from pencilbench.bench.prompts import instruct_prompt

import pencilbench

MODES = ("direct", "cot")  # pencil needs the reduction loop of ``pencilbench eval``


@scorer(metrics=[accuracy(), stderr()])
def oracle() -> Any:
    """Correct when the pencilbench oracle accepts the answer in the model's output."""

    async def score(state: TaskState, target: Target) -> Score:
        record, mode = state.metadata["record"], state.metadata["mode"]
        sample = pencilbench.score(record, state.output.completion, mode, "instruct")
        return Score(value=CORRECT if sample.correct else INCORRECT, answer=sample.parsed_answer,
                     explanation=f"status {sample.status}, gold answer {record['answer']}",
                     metadata={"status": sample.status, "partial": sample.partial, "parse_ok": sample.parse_ok})

    return score


def records_task(records: Sequence[Mapping[str, Any]], mode: str) -> Task:
    """An inspect Task over pencilbench records."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    samples = [Sample(input=instruct_prompt(record, mode), target=record["answer"], id=record["id"],
                      metadata={"record": dict(record), "mode": mode}) for record in records]
    return Task(dataset=MemoryDataset(samples, name="pencilbench"), solver=generate(), scorer=oracle(),
                config=GenerateConfig(max_tokens=INSTRUCT_MAX_TOKENS))


def _generated(name: str, n: int, seed: int, split: str, mode: str, params: Mapping[str, Any]) -> Task:
    return records_task(pencilbench.generate(name, n, seed, split, **params), mode)


@task
def addition(n: int = 100, seed: int = 0, split: str = "test", mode: str = "cot", **params: Any) -> Task:
    """The sum of k operands of d digits (knobs ``operands``, ``digits``)."""
    return _generated("addition", n, seed, split, mode, params)


@task
def einstein(n: int = 100, seed: int = 0, split: str = "test", mode: str = "cot", **params: Any) -> Task:
    """Zebra puzzles (knobs ``houses``, ``attributes``, ``kinds``, ``minimise``, ``question``)."""
    return _generated("einstein", n, seed, split, mode, params)


@task
def phop(n: int = 100, seed: int = 0, split: str = "test", mode: str = "cot", **params: Any) -> Task:
    """p-hop induction (knobs ``alphabet``, ``length``, ``hops``)."""
    return _generated("phop", n, seed, split, mode, params)


@task
def qbf(n: int = 100, seed: int = 0, split: str = "test", mode: str = "cot", **params: Any) -> Task:
    """Quantified Boolean formulas (knobs ``variables``, ``ratio``, ``prefix``, ``blocks``, ``target``)."""
    return _generated("qbf", n, seed, split, mode, params)


@task
def sat(n: int = 100, seed: int = 0, split: str = "test", mode: str = "cot", **params: Any) -> Task:
    """Random k-SAT (knobs ``variables``, ``width``, ``ratio``, ``target``, ``sampling``)."""
    return _generated("sat", n, seed, split, mode, params)


@task
def dataset(path: str, mode: str = "cot") -> Task:
    """Every record of a dataset file (``.jsonl`` or ``.parquet``) written by ``pencilbench generate``."""
    return records_task(pencilbench.load(path), mode)
