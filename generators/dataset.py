"""Building instance records: one pure function of (task, params, split, seed, index).

The record schema (one JSONL line or Parquet row) is::

    id, task, split, seed, index, params{}, problem{}, prompt, question, answer, cot,
    pencil, stats{prompt_tokens, cot_tokens, pencil_tokens, pencil_max_context,
    reductions, ...task statistics}, generator_version, schema_version

``prompt``, ``answer``, ``cot`` and ``pencil`` are space-joined compact tokens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from pencilbench.generators.pencil import ANSWER, SPECIAL_TOKENS, Replay, final_answer, replay, strip_markers
from pencilbench.generators.registry import get_task
from pencilbench.generators.seeding import (
    MAX_ATTEMPTS,
    check_seed,
    check_split,
    home_split,
    item_rng,
    stable_id,
    stratum,
)
from pencilbench.generators.task import Task, TaskParams

T = TypeVar("T")
FIELDS = ("id", "task", "split", "seed", "index", "params", "problem", "prompt", "question",
          "answer", "cot", "pencil", "stats", "generator_version", "schema_version")
# The record layout's version: 2 added ``schema_version`` itself; records without the field
# are version 1 and are read as such.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Spec:
    """What to generate: a task at one size, one split and one seed."""

    task: str
    params: Mapping[str, Any]
    split: str = "train"
    seed: int = 0

    def resolve(self) -> tuple[Task, TaskParams]:
        """The task and its validated ``Params``; ``ValueError`` on bad input."""
        check_split(self.split)
        check_seed(self.seed)
        task = get_task(self.task)
        return task, task.params(self.params)


def draw_problem(task: Task, params: TaskParams, split: str, seed: int, index: int) -> dict[str, Any]:
    """Problem ``index`` of the stream; it always belongs to ``split`` (see ``seeding``)."""
    key = params.key()
    place = stratum(task.name, key, split, seed, index)
    rng = item_rng(task.name, key, split, seed, index)

    def keep(part: Mapping[str, Any]) -> bool:
        return home_split(part) == split

    for _ in range(MAX_ATTEMPTS):
        problem = task.sample(params, rng, place, keep)
        if keep(task.split_part(problem)):
            return problem
    raise ValueError(
        f"{task.name} at {params.label()} has too few distinct problems to fill split {split!r}"
    )


def make_record(task: Task, params: TaskParams, split: str, seed: int, index: int) -> dict[str, Any]:
    """Instance ``index`` as a full record, its gold trace checked on the way."""
    problem = draw_problem(task, params, split, seed, index)
    return record_from_problem(task, params, problem, split=split, seed=seed, index=index)


def record_from_problem(task: Task, params: TaskParams, problem: Mapping[str, Any], *,
                        split: str, seed: int, index: int) -> dict[str, Any]:
    """A record for a given problem (also used for problems users bring themselves).

    The trace is replayed once: its invariants are checked on the tokens (the CoT and the
    statistics are derived from them here), and the text fields are checked to split back
    into exactly those tokens, so :func:`trace_problems` would find the written record sound.
    """
    prompt = task.prompt(params, problem)
    trace = task.trace(params, problem)
    cot = strip_markers(trace.pencil)
    run = replay(prompt, trace.pencil)
    stats = {
        "prompt_tokens": len(prompt),
        "cot_tokens": len(cot),
        "pencil_tokens": len(trace.pencil),
        "pencil_max_context": run.peak_context,
        "reductions": run.reductions,
        **trace.stats,
    }
    texts = {name: " ".join(tokens) for name, tokens in
             (("prompt", prompt), ("answer", trace.answer), ("cot", cot), ("pencil", trace.pencil))}
    record = {
        "id": f"{task.name}-{split}-{seed}-{stable_id(params.key()):08x}-{index}",
        "task": task.name,
        "split": split,
        "seed": seed,
        "index": index,
        "params": params.to_dict(),
        "problem": dict(problem),
        "prompt": texts["prompt"],
        "question": task.question(params, problem),
        "answer": texts["answer"],
        "cot": texts["cot"],
        "pencil": texts["pencil"],
        "stats": stats,
        "generator_version": f"{task.name}-v{task.version}",
        "schema_version": SCHEMA_VERSION,
    }
    problems = _invariant_problems(prompt, list(trace.pencil), list(trace.answer), cot, run)
    problems += [f"a {name} token is empty or holds white space" for name, tokens in
                 (("prompt", prompt), ("answer", trace.answer), ("pencil", trace.pencil))
                 if texts[name].split() != list(tokens)]
    if problems:
        raise RuntimeError(f"gold trace of {record['id']} is invalid: {problems[0]}")
    return record


def trace_problems(record: Mapping[str, Any]) -> list[str]:
    """Every broken trace invariant of a record (empty when the record is sound)."""
    prompt, pencil = record["prompt"].split(), record["pencil"].split()
    answer, cot = record["answer"].split(), record["cot"].split()
    if any(token in SPECIAL_TOKENS for token in prompt):
        return ["the prompt holds a marker or [ANSWER]"]
    run = replay(prompt, pencil)
    found = _invariant_problems(prompt, pencil, answer, cot, run)
    if cot != strip_markers(pencil):
        found.append("the CoT is not the PENCIL trace without its markers")
    stats = record["stats"]
    expected = {"prompt_tokens": len(prompt), "cot_tokens": len(cot), "pencil_tokens": len(pencil),
                "pencil_max_context": run.peak_context, "reductions": run.reductions}
    for name, value in expected.items():
        if stats.get(name) != value:
            found.append(f"stats.{name} is {stats.get(name)}, the trace gives {value}")
    return found


def _invariant_problems(prompt: list[str], pencil: list[str], answer: list[str], cot: list[str],
                        run: Replay) -> list[str]:
    """The invariants every trace keeps, given its replay (the CoT is checked by callers
    that did not derive it from the trace themselves)."""
    found = []
    if any(token in SPECIAL_TOKENS for token in prompt):
        found.append("the prompt holds a marker or [ANSWER]")
    if run.fault is not None:
        found.append(f"protocol error {run.fault.error.value} at token {run.fault.position}")
    if not answer or any(token in SPECIAL_TOKENS for token in answer):
        found.append("the answer is empty or holds a marker or [ANSWER]")
    if list(run.final) != [ANSWER, *answer]:
        found.append("reducing the PENCIL trace does not leave exactly [ANSWER] and the answer")
    if final_answer(cot) != tuple(answer):
        found.append("the CoT does not end with its one [ANSWER] and the answer")
    return found


def make_records(spec: Spec, start: int, stop: int) -> list[dict[str, Any]]:
    """Records ``start .. stop - 1`` of a stream, built in this process."""
    task, params = spec.resolve()
    return [make_record(task, params, spec.split, spec.seed, i) for i in range(start, stop)]


def map_chunks(spec: Spec, count: int, work: Callable[[Spec, int, int], T], *, start: int = 0,
               workers: int = 1, chunk: int | None = None) -> Iterator[T]:
    """``work(spec, lo, hi)`` over consecutive chunks of items, results in chunk order.

    With ``workers > 1`` the chunks run in a process pool (``work`` must be picklable), a
    few chunks ahead of the consumer. The default chunk is 64 items, smaller when that would
    leave fewer than eight chunks per worker (so no worker idles at the end). Each worker
    process keeps its own warm state (caches, solvers) from chunk to chunk; items do not
    depend on it, so the bytes are the same.
    """
    spec.resolve()  # fail fast on bad input, in this process
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be >= 0, got {count} and {start}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if chunk is None:
        chunk = 64 if workers == 1 else max(1, min(64, count // (8 * workers)))
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    pieces = ((lo, min(lo + chunk, start + count)) for lo in range(start, start + count, chunk))
    if workers == 1:
        for lo, hi in pieces:
            yield work(spec, lo, hi)
        return
    with ProcessPoolExecutor(max_workers=workers) as pool:
        window: deque[Future[T]] = deque()
        for lo, hi in pieces:
            window.append(pool.submit(work, spec, lo, hi))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def generate(spec: Spec, count: int, *, start: int = 0, workers: int = 1,
             chunk: int | None = None) -> Iterator[dict[str, Any]]:
    """Records ``start .. start + count - 1`` in order; the same bytes for any ``workers``."""
    for records in map_chunks(spec, count, make_records, start=start, workers=workers, chunk=chunk):
        yield from records
