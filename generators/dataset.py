"""Building instance records: one pure function of (task, params, split, seed, index).

The record schema (one JSONL line or Parquet row) is::

    id, task, split, seed, index, params{}, problem{}, prompt, question, answer, cot,
    pencil, stats{prompt_tokens, cot_tokens, pencil_tokens, pencil_max_context,
    reductions, ...task statistics}, generator_version, schema_version

``prompt``, ``answer``, ``cot`` and ``pencil`` are space-joined compact tokens.
"""

from __future__ import annotations

import functools
import gc
import json
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from pencilbench.generators.compiled import kernel
from pencilbench.generators.pencil import (
    ANSWER_ID,
    FAULTS,
    ids_of,
    replay_codes,
    strip_marker_ids,
    texts_of,
)
from pencilbench.generators.registry import get_task
from pencilbench.generators.seeding import (
    MAX_ATTEMPTS,
    SplitTest,
    Stream,
    check_seed,
    check_split,
    item_rng,
    stable_id,
    stratum,
    too_few_problems,
)
from pencilbench.generators.task import Ragged, Solved, Task, TaskParams

T = TypeVar("T")
FIELDS = ("id", "task", "split", "seed", "index", "params", "problem", "prompt", "question",
          "answer", "cot", "pencil", "stats", "generator_version", "schema_version")
# The record layout's version: 2 added ``schema_version`` itself; records without the field
# are version 1 and are read as such.
SCHEMA_VERSION = 2
# The nested fields, stored as JSON text in Parquet (their shape differs between tasks).
JSON_FIELDS = ("params", "problem", "stats")
RECORD_SCHEMA = pa.schema(
    [(name, pa.int64() if name in ("seed", "index", "schema_version") else pa.string()) for name in FIELDS]
)


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

    keep = SplitTest(split)
    for _ in range(MAX_ATTEMPTS):
        problem = task.sample(params, rng, place, keep)
        if keep(task.split_part(problem)):
            return problem
    raise too_few_problems(task.name, params.label(), split)


def make_record(task: Task, params: TaskParams, split: str, seed: int, index: int) -> dict[str, Any]:
    """Instance ``index`` as a full record, its gold trace checked on the way."""
    return records_of(chunk_table(task, params, split, seed, index, index + 1))[0]


def record_from_problem(task: Task, params: TaskParams, problem: Mapping[str, Any], *,
                        split: str, seed: int, index: int) -> dict[str, Any]:
    """A record for a given problem (also used for problems users bring themselves)."""
    names = record_ids(task, params, split, seed, index, index + 1)
    solved = solve_problems(task, params, [problem], names)
    return records_of(_table(task, params, split, seed, index, names, solved))[0]


def record_ids(task: Task, params: TaskParams, split: str, seed: int, lo: int, hi: int) -> list[str]:
    """The ids of records ``lo .. hi - 1``: ``task-split-seed-size-index``, where ``size`` is
    a 32-bit hash of the size's knobs."""
    stem = f"{task.name}-{split}-{seed}-{stable_id(params.key()):08x}-"
    return [stem + str(index) for index in range(lo, hi)]


def solve_items(task: Task, params: TaskParams, split: str, seed: int, lo: int,
                names: Sequence[str]) -> Solved:
    """Items ``lo ..`` (one per record id in ``names``) of a stream, drawn and solved: by
    the task's chunk solver where it has one (:meth:`Task.solve_chunk`), else one at a time."""
    hi = lo + len(names)
    solved = task.solve_chunk(params, Stream(task.name, params.key(), split, seed), lo, hi)
    if solved is not None:
        return solved
    problems = [draw_problem(task, params, split, seed, i) for i in range(lo, hi)]
    return solve_problems(task, params, problems, names)


def solve_problems(task: Task, params: TaskParams, problems: Sequence[Mapping[str, Any]],
                   names: Sequence[str]) -> Solved:
    """Problems solved one at a time by the task's own methods; ``names`` (the record ids)
    name a trace whose tokens are not in the task's vocabulary."""
    vocabulary = _vocabulary(task, params)
    prompts, pencils, answers, stats, questions = [], [], [], [], []
    for problem, name in zip(problems, names, strict=True):
        trace = task.trace(params, problem)
        try:
            prompts.append(ids_of(task.prompt(params, problem), vocabulary))
            pencils.append(trace.ids if trace.ids is not None else ids_of(trace.pencil, vocabulary))
            answers.append(ids_of(trace.answer, vocabulary))
        except ValueError as error:
            raise RuntimeError(f"gold trace of {name} is invalid: {error}") from None
        questions.append(task.question(params, problem))
        stats.append(trace.stats)
    columns = {key: np.array([item[key] for item in stats]) for key in (stats[0] if stats else ())}
    return Solved([json.dumps(dict(problem)) for problem in problems], questions, Ragged.of(prompts),
                  Ragged.of(pencils), Ragged.of(answers), columns)


def chunk_table(task: Task, params: TaskParams, split: str, seed: int, lo: int, hi: int) -> pa.Table:
    """Records ``lo .. hi - 1`` as an Arrow table of the record schema, every gold trace checked."""
    names = record_ids(task, params, split, seed, lo, hi)
    return _table(task, params, split, seed, lo, names, solve_items(task, params, split, seed, lo, names))


def _table(task: Task, params: TaskParams, split: str, seed: int, lo: int, names: Sequence[str],
           solved: Solved) -> pa.Table:
    """Solved problems as records, their traces checked on the way (as vocabulary ids, in
    one compiled call: the invariants, every id in the task's vocabulary, no marker in a
    prompt); the CoT and the statistics are derived here. The vocabulary's tokens hold no
    white space, so the text fields split back into exactly those tokens and
    :func:`trace_problems` finds every written record sound."""
    count, vocabulary = len(solved), _vocabulary(task, params)
    prompts, pencils, answers = solved.prompts, solved.pencils, solved.answers
    *cot, peak, reductions, fault, position, broken = _check_traces(
        prompts.values, prompts.offsets, pencils.values, pencils.offsets, answers.values, answers.offsets,
        len(vocabulary))
    cot = Ragged(*cot)
    bad = np.flatnonzero(fault | broken)
    if len(bad):
        first = int(bad[0])
        problem_text = _invariant_problems(int(fault[first]), int(position[first]), int(broken[first]))[0]
        raise RuntimeError(f"gold trace of {names[first]} is invalid: {problem_text}")
    stats = {"prompt_tokens": np.diff(prompts.offsets), "cot_tokens": np.diff(cot.offsets),
             "pencil_tokens": np.diff(pencils.offsets), "pencil_max_context": peak, "reductions": reductions,
             **solved.stats}

    def repeated(value: Any, kind: pa.DataType | None = None) -> pa.Array:
        return pa.array([value] * count, kind or pa.string())

    columns = {
        "id": pa.array(names, pa.string()),
        "task": repeated(task.name),
        "split": repeated(split),
        "seed": repeated(seed, pa.int64()),
        "index": pa.array(np.arange(lo, lo + count, dtype=np.int64)),
        "params": repeated(_params_text(params)),
        "problem": pa.array(solved.problems, pa.string()),
        "prompt": texts_of(prompts, vocabulary),
        "question": pa.array(solved.questions, pa.string()),
        "answer": texts_of(answers, vocabulary),
        "cot": texts_of(cot, vocabulary),
        "pencil": texts_of(pencils, vocabulary),
        "stats": pa.array(_json_rows(stats, count), pa.string()),
        "generator_version": repeated(f"{task.name}-v{task.version}"),
        "schema_version": repeated(SCHEMA_VERSION, pa.int64()),
    }
    return pa.Table.from_pydict(columns, schema=RECORD_SCHEMA)


@functools.lru_cache(maxsize=256)
def _params_text(params: TaskParams) -> str:
    return json.dumps(params.to_dict())


def _json_rows(columns: Mapping[str, np.ndarray], count: int) -> list[str]:
    """``json.dumps`` of each row's ``{name: value}``, from one array per name, without
    building the dicts: integers and floats through one format (``%r`` is how JSON writes
    a finite float), anything else through ``json.dumps``."""
    pieces, values = [], []
    for name, column in columns.items():
        if column.dtype.kind in "iu":
            piece, value = "%d", column.tolist()
        elif column.dtype.kind == "f" and np.isfinite(column).all():
            piece, value = "%r", column.tolist()
        else:
            piece, value = "%s", [json.dumps(item) for item in column.tolist()]
        pieces.append(f"{json.dumps(name).replace('%', '%%')}: {piece}")
        values.append(value)
    if not values:
        return ["{}"] * count
    layout = "{" + ", ".join(pieces) + "}"
    return [layout % row for row in zip(*values, strict=True)]


def records_of(table: pa.Table) -> list[dict[str, Any]]:
    """Records (dicts, the nested fields parsed) from a table of the record schema."""
    return [record_from_row(row) for row in table.to_pylist()]


def record_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record from a Parquet row (its JSON-text fields parsed); other columns are kept."""
    return {**row, **{name: json.loads(row[name]) for name in JSON_FIELDS}}


def trace_problems(record: Mapping[str, Any]) -> list[str]:
    """Every broken trace invariant of a record (empty when the record is sound)."""
    prompt, pencil = record["prompt"].split(), record["pencil"].split()
    answer, cot = record["answer"].split(), record["cot"].split()
    task = get_task(record["task"])
    vocabulary = _vocabulary(task, task.params(record["params"]))
    try:
        prompt_ids, ids = ids_of(prompt, vocabulary), ids_of(pencil, vocabulary)
        answer_ids, cot_ids = ids_of(answer, vocabulary), ids_of(cot, vocabulary)
    except ValueError as error:
        return [f"{error} of {task.name} at this size"]
    if len(prompt_ids) and prompt_ids.min() <= ANSWER_ID:
        return ["the prompt holds a marker or [ANSWER]"]
    derived_cot, peak, reductions, fault, position, broken = _check_trace(len(prompt), ids, answer_ids)
    found = _invariant_problems(fault, position, broken)
    if not np.array_equal(cot_ids, derived_cot):
        found.append("the CoT is not the PENCIL trace without its markers")
    stats = record["stats"]
    expected = {"prompt_tokens": len(prompt), "cot_tokens": len(cot), "pencil_tokens": len(pencil),
                "pencil_max_context": peak, "reductions": reductions}
    for name, value in expected.items():
        if stats.get(name) != value:
            found.append(f"stats.{name} is {stats.get(name)}, the trace gives {value}")
    return found


@functools.lru_cache(maxsize=256)
def _vocabulary(task: Task, params: TaskParams) -> tuple[str, ...]:
    return task.vocabulary(params)


# What the bits of a trace check's verdict mean, lowest bit first.
_BROKEN = (
    "the answer is empty or holds a marker or [ANSWER]",
    "reducing the PENCIL trace does not leave exactly [ANSWER] and the answer",
    "the CoT does not end with its one [ANSWER] and the answer",
    "the prompt, trace or answer holds an id outside the task's vocabulary",
    "the prompt holds a marker or [ANSWER]",
)


def _invariant_problems(fault: int, position: int, broken: int) -> list[str]:
    """The broken invariants a ``_check_trace`` verdict names."""
    found = [f"protocol error {FAULTS[fault].value} at token {position}"] if fault else []
    return found + [text for bit, text in enumerate(_BROKEN) if broken >> bit & 1]


@kernel
def _check_trace(prompt_len, pencil, answer):  # noqa: ANN001, ANN202 (compiled)
    """The invariants every trace keeps, on vocabulary ids, in one call: the CoT the trace
    stands for, the replay (peak, reductions, fault and its position) and a bit set of the
    broken invariants (see ``_BROKEN``)."""
    cot = strip_marker_ids(pencil)
    kept, peak, reductions, fault, position, _ = replay_codes(pencil, prompt_len, False)
    broken = 0
    if len(answer) == 0 or answer.min() <= ANSWER_ID:
        broken |= 1
    if len(kept) != len(answer) + 1 or pencil[kept[0]] != ANSWER_ID:
        broken |= 2
    else:
        for k in range(len(answer)):
            if pencil[kept[k + 1]] != answer[k]:
                broken |= 2
    boundaries = 0
    for token in cot:
        boundaries += token == ANSWER_ID
    start = len(cot) - len(answer) - 1
    if boundaries != 1 or start < 0 or cot[start] != ANSWER_ID:
        broken |= 4
    else:
        for k in range(len(answer)):
            if cot[start + 1 + k] != answer[k]:
                broken |= 4
    return cot, peak, reductions, fault, position, broken


@kernel
def _outside(ids, lowest, size):  # noqa: ANN001, ANN202 (compiled)
    for token in ids:
        if token < lowest or token >= size:
            return True
    return False


@kernel
def _check_traces(prompts, prompt_offsets, pencils, pencil_offsets, answers, answer_offsets, size):  # noqa: ANN001, ANN202
    """:func:`_check_trace` over a chunk of rows, with every id inside a vocabulary of
    ``size`` tokens and no marker in a prompt: the CoTs (as rows), and per row the peak,
    reductions, fault, its position and the bit set of broken invariants."""
    count = len(prompt_offsets) - 1
    cot_offsets = np.zeros(count + 1, np.int64)
    cot = np.empty(len(pencils), np.int32)
    peak = np.zeros(count, np.int64)
    reductions, fault = np.zeros(count, np.int64), np.zeros(count, np.int64)
    position, broken = np.zeros(count, np.int64), np.zeros(count, np.int64)
    for row in range(count):
        prompt = prompts[prompt_offsets[row] : prompt_offsets[row + 1]]
        pencil = pencils[pencil_offsets[row] : pencil_offsets[row + 1]]
        answer = answers[answer_offsets[row] : answer_offsets[row + 1]]
        cot_offsets[row + 1] = cot_offsets[row]
        if _outside(prompt, 0, size) or _outside(pencil, 0, size) or _outside(answer, 0, size):
            broken[row] = 8
            continue
        if _outside(prompt, ANSWER_ID + 1, size):
            broken[row] = 16
            continue
        row_cot, peak[row], reductions[row], fault[row], position[row], broken[row] = _check_trace(
            len(prompt), pencil, answer)
        cot[cot_offsets[row] : cot_offsets[row] + len(row_cot)] = row_cot
        cot_offsets[row + 1] += len(row_cot)
    return cot[: cot_offsets[count]], cot_offsets, peak, reductions, fault, position, broken


def make_records(spec: Spec, start: int, stop: int) -> list[dict[str, Any]]:
    """Records ``start .. stop - 1`` of a stream, built in this process."""
    return records_of(make_table(spec, start, stop))


def make_table(spec: Spec, start: int, stop: int) -> pa.Table:
    """Records ``start .. stop - 1`` of a stream as an Arrow table, built in this process."""
    task, params = spec.resolve()
    return chunk_table(task, params, spec.split, spec.seed, start, stop)


# What one chunk aims to cost: long enough that the cost per chunk (a few hundred
# microseconds of messaging in a pool, a few kernel calls) stays small, short enough that
# every process stays busy to the end, large instances are held a few at a time and a
# chunk's arrays stay in the processor's caches.
CHUNK_SECONDS = 0.02
AHEAD = 4  # chunks queued for each pool process: enough to keep it busy while this one works
# Chunks hold whole groups of ``align`` items when a group costs at most this many chunks:
# a pool process then hands its groups over finished (SAT n=10 with two processes reached
# 95-96% of two processes apart so, 92% without), while the last chunks of the run, whole
# groups, end at most this many times ``CHUNK_SECONDS`` apart. Four missed SAT n=10
# (groups of 980 records) on a busy host, where a core makes 11,000 of them a second.
ALIGN_CHUNKS = 6
HANDOVER_SECONDS = 0.0005  # the interpreter's switch interval while a pool runs (see map_chunks)


@dataclass(frozen=True)
class Shipping:
    """How a pool process hands a result over faster than by pickling it: ``pack`` runs
    there on the result, ``unpack`` here on what it returned (both picklable)."""

    pack: Callable[[Any], Any]
    unpack: Callable[[Any], Any]


def check_chunking(spec: Spec, count: int, *, start: int = 0, workers: int = 1, chunk: int | None = None) -> None:
    """Raise ``ValueError`` for arguments :func:`map_chunks` refuses, before any work."""
    spec.resolve()  # fail fast on bad input, in this process
    if count < 0 or start < 0:
        raise ValueError(f"count and start must be >= 0, got {count} and {start}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")


def map_chunks(spec: Spec, count: int, work: Callable[[Spec, int, int], T], *, start: int = 0,
               workers: int = 1, chunk: int | None = None, shipping: Shipping | None = None,
               align: int = 1, origin: int | None = None) -> Iterator[T]:
    """``work(spec, lo, hi)`` over consecutive chunks of items, results in chunk order.

    With ``workers > 1`` the chunks run in ``workers - 1`` pool processes (``work`` must be
    picklable; their results cross by ``shipping`` when given), ``AHEAD`` chunks each ahead
    of the consumer, and in this process while the next result is not ready.
    Unless ``chunk`` fixes their size, chunks start at 8 items and are then sized from the
    CPU time each took to cost about ``CHUNK_SECONDS``, and with a pool never more than a
    share of what is left small enough that every process stays busy to the end (nor less
    than an eighth of a sized chunk, where the cost per chunk would dominate). When a sized
    chunk holds at least ``1 / ALIGN_CHUNKS`` of ``align`` items, chunks end on multiples
    of ``align`` items from ``origin`` (``start`` by default; where the consumer cuts its
    output, such as Parquet row groups), to the end: the consumer then has nothing to put
    together once the last one is in. Each process keeps its own warm state (caches,
    solvers) from chunk to chunk; items do not depend on it or on the chunking, so the
    bytes are the same.
    """
    check_chunking(spec, count, start=start, workers=workers, chunk=chunk)
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    origin = start if origin is None else origin
    end = start + count
    if workers == 1:
        lo, size = start, chunk or 8
        while lo < end:
            hi = min(lo + size, end) if chunk is not None else _aligned(lo, lo + size, end, origin, align, size)
            seconds, items, result = _timed_work(work, spec, lo, hi)
            lo += items
            if chunk is None:
                size = _next_size(items, seconds)
            yield result
        return
    # Workers are forked from this process: objects it holds now are frozen out of the
    # garbage collector, so the workers' collections do not walk (and copy, page by page)
    # the whole inherited heap; that cost a fifth of their CPU time.
    gc.freeze()
    # The pool's chunks go out and its results come in through threads of this process,
    # which need the interpreter lock: at the default switch interval (5 ms) each of their
    # steps waits that long for this thread's Python code to yield it, which held the pool's
    # first chunk back by about 20 ms (Einstein).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(HANDOVER_SECONDS)
    try:
        yield from _pooled(spec, end, work, start, workers, chunk, shipping, align, origin)
    finally:
        sys.setswitchinterval(interval)
        gc.unfreeze()


def _pooled(spec: Spec, end: int, work: Callable[[Spec, int, int], T], start: int, workers: int,
            chunk: int | None, shipping: Shipping | None, align: int, origin: int) -> Iterator[T]:
    """Chunks run in ``workers - 1`` pool processes, each kept up to ``AHEAD`` chunks ahead
    (and less than is left), and in this one: whenever the next result in order is not
    ready, this process does the next chunk itself instead of waiting, so ``workers``
    processes generate, only the pool's share of the results is handed over, and this
    process's writing between results is taken from its own share."""
    slots: deque[Future[tuple[float, int, Any]] | tuple[float, int, T]] = deque()  # in chunk order
    lo, size, in_pool, pool_items = start, chunk or 8, 0, 0

    def next_range() -> tuple[int, int]:
        if chunk is not None:
            return lo, min(lo + chunk, end)
        share = max(1, size // 8, min(size, (end - lo) // (AHEAD * workers)))
        return lo, _aligned(lo, lo + share, end, origin, align, size)

    with ProcessPoolExecutor(max_workers=workers - 1) as pool:
        while lo < end or slots:
            while lo < end and in_pool < AHEAD * (workers - 1):
                piece = next_range()
                # A chunk goes to the pool only while each pool process would hold less
                # than is left for this one to do: it would otherwise still have chunks to
                # do when this process runs out of them.
                if pool_items + piece[1] - lo >= (end - lo) * (workers - 1):
                    break
                slots.append(pool.submit(_timed_work, work, spec, *piece, shipping and shipping.pack))
                lo, in_pool, pool_items = piece[1], in_pool + 1, pool_items + piece[1] - piece[0]
            head = slots[0] if slots else None
            if lo < end and (head is None or isinstance(head, Future) and not head.done()):
                seconds, items, result = _timed_work(work, spec, *next_range())
                slots.append((seconds, items, result))
                lo += items
            else:
                slots.popleft()
                if not isinstance(head, Future):
                    yield head[2]
                    continue
                seconds, items, result = head.result()
                in_pool, pool_items = in_pool - 1, pool_items - items
                yield shipping.unpack(result) if shipping is not None else result
            if chunk is None:  # sized from the latest measure, here or in the pool
                size = _next_size(items, seconds)


def _aligned(lo: int, hi: int, end: int, origin: int, align: int, size: int) -> int:
    """Where a chunk from ``lo`` meant to end at ``hi`` ends: at ``end`` at the latest, and
    when chunks are sized to hold at least ``1 / ALIGN_CHUNKS`` of ``align`` items
    (``size``), at the multiple of ``align`` from ``origin`` nearest to ``hi`` (past ``lo``)."""
    if hi >= end:
        return end
    if ALIGN_CHUNKS * size >= align:
        nearest = origin + max((hi - origin + align // 2) // align, (lo - origin) // align + 1) * align
        return min(nearest, end)
    return hi


def _next_size(items: int, seconds: float) -> int:
    """Items a chunk should hold to cost about ``CHUNK_SECONDS``, given what one cost."""
    return max(1, int(items * CHUNK_SECONDS / max(seconds, 1e-6)))


def _timed_work(work: Callable[[Spec, int, int], T], spec: Spec, lo: int, hi: int,
                pack: Callable[[T], Any] | None = None) -> tuple[float, int, Any]:
    """``work(spec, lo, hi)``, packed for shipping when ``pack`` is given, with the CPU
    seconds it took in this (worker) process."""
    before = time.process_time()
    result = work(spec, lo, hi)
    if pack is not None:
        result = pack(result)
    return time.process_time() - before, hi - lo, result


def generate(spec: Spec, count: int, *, start: int = 0, workers: int = 1,
             chunk: int | None = None) -> Iterator[dict[str, Any]]:
    """Records ``start .. start + count - 1`` in order; the same bytes for any ``workers``."""
    for records in map_chunks(spec, count, make_records, start=start, workers=workers, chunk=chunk):
        yield from records
