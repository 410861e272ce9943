"""The inference loop: drive a model through dataset records in one mode, score each
sample with the task's oracle and write it to the results store as soon as it finishes.

Modes: ``direct`` (prompt to answer), ``cot`` (one continuation, no reduction) and
``pencil`` (``[RETURN]`` is a stop string; at each one the live context is reduced with the
one reduction engine, ``generators.pencil.Reducer``, and the reduced context is sent back
for the next call, until the model ends on its own).

Stop strings. In the instruct style every request also carries :data:`END_STOPS` (a blank
line and the next ``Problem:``), since a base model does not end on its own after the
answer: the sample ends there and its answer is read from the text before them. A server
that does not say which stop string ended a reply (``Completion.stop_unknown``) leaves
``[RETURN]`` to be inferred: it is taken to have ended the reply when the live trace holds
an open frame (a ``[SEP]`` whose ``[RETURN]`` is still to come), since a trace that ends
for good has none; otherwise the reply ended the sample. A sample that produced no text at
all ends with status ``empty_reply``; one whose answer does not parse after an empty
reply says so in its error.

Lengths. In the compact style every length is in compact tokens. In the instruct style it
is in pieces (words and markers, see ``bench.prompts``), or, when the adapter has
``count_tokens``, in the model's own tokens: the prompt counts ``count_tokens(prompt)`` and
each generated piece ``count_tokens(piece)``. Token counts that an HTTP API reports come
per call, not per token, so they cannot place a budget or draw a sawtooth; they are not used.

Budgets. ``max_tokens`` bounds the tokens generated per sample (``[RETURN]`` stop tokens
included); ``max_context`` bounds the live context (prompt plus live generated tokens,
counted before a reduction erases anything). Each call asks for one token more than the
budgets allow; a model that uses it, or stops for length, would have exceeded them and the
sample ends with status ``token_limit`` or ``context_overflow`` (also when a server's own
context window ran out first, ``finish_reason="server_limit"``). Nothing is truncated to
fit. The peak context of an overflowing sample includes the token that went over, and a
prompt longer than ``max_context`` overflows without a call.

Reply size. ``max_reply_bytes`` bounds the text a sample's model writes, all calls
together, in UTF-8 bytes as stored (compact tokens count one separator byte each). The
first text past it is dropped and the sample ends with status ``reply_cut``, so a runaway
reply never fills the store or the parser.

Budget stops (``token_limit``, ``context_overflow``, ``reply_cut``) are scored on what the
reply finished: in the instruct style its complete lines (up to the last line break) go to
the task's parser, so a model that wrote its answer line and then rambled on is scored on
that answer and keeps the status that says it was stopped. A compact answer runs to the end
of the generation, so a compact generation that was stopped has no answer.

Answers. Compact style: direct takes the whole output; cot takes every token after the one
``[ANSWER]`` of the output, and pencil every token after the one ``[ANSWER]`` of the final
reduced output (``generators.pencil.final_answer``: no ``[ANSWER]``, two of them, or
nothing after it is a parse failure). An empty answer, or one with a token outside the
task's declared vocabulary for the size (markers and ``[ANSWER]`` excluded), is a parse
failure. Instruct style: the task's ``parse_answer`` on the final (reduced) text, which
reads the one final answer (``generators.answers``: hedged or disagreeing answers are none);
no answer, or a parser that raises, is a parse failure.

Trace rate (cot and pencil): the length of the longest common prefix of every token the
model generated, in order (erased ones and ``[RETURN]`` included, instruct pieces compared
without their whitespace), and the gold trace of the mode (``cot`` or ``pencil`` tokens),
divided by the gold trace's length. 1.0 means the model reproduced the gold trace exactly.

``context_lengths`` holds the live context length after each generated token (after the
reduction a ``[RETURN]`` triggers), so the sawtooth of a PENCIL run can be drawn.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from pencilbench.bench.adapters.base import Completion, Request
from pencilbench.bench.adapters.wrapper import CallLoad, Client, ModelFailure
from pencilbench.bench.prompts import instruct_prompt, pieces
from pencilbench.bench.store import MODEL_ERROR, ResultStore, Sample
from pencilbench.generators.answers import complete_lines
from pencilbench.generators.pencil import RETURN, SEP, SPECIAL_TOKENS, Reducer, final_answer
from pencilbench.generators.registry import get_task
from pencilbench.solvers.registry import check_answer
from pencilbench.solvers.score import Score
from tqdm import tqdm

MODES = ("direct", "cot", "pencil")
STYLES = ("compact", "instruct")
OK, CONTEXT_OVERFLOW, TOKEN_LIMIT, PROTOCOL_ERROR, REPLY_CUT, EMPTY_REPLY = (
    "ok", "context_overflow", "token_limit", "protocol_error", "reply_cut", "empty_reply")
# Statuses of a reply stopped before the model ended it; its finished part is still scored.
BUDGET_STOPS = (TOKEN_LIMIT, CONTEXT_OVERFLOW, REPLY_CUT)
INSTRUCT_MAX_TOKENS = 4096
MAX_REPLY_BYTES = 1_000_000
# Where an instruct-style reply ends for good: a model that goes on after its answer starts
# the next problem, as the prompt's worked example taught it.
END_STOPS = ("\n\nProblem:", "\n\nExample problem:")
MAX_SAMPLES = 1000


@dataclass(frozen=True)
class EvalConfig:
    """One evaluation's settings (``max_context=None``: no context budget; ``samples``:
    how many samples are drawn per instance, for pass@k and maj@k)."""

    mode: str
    style: str = "compact"
    max_tokens: int = 4096
    max_context: int | None = None
    max_reply_bytes: int = MAX_REPLY_BYTES
    samples: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {', '.join(STYLES)}, got {self.style!r}")
        if self.max_tokens < 1:
            raise ValueError(f"max tokens must be >= 1, got {self.max_tokens}")
        if self.max_context is not None and self.max_context < 1:
            raise ValueError(f"max context must be >= 1, got {self.max_context}")
        if self.max_reply_bytes < 1:
            raise ValueError(f"max reply bytes must be >= 1, got {self.max_reply_bytes}")
        if not 1 <= self.samples <= MAX_SAMPLES:
            raise ValueError(f"samples must be in [1, {MAX_SAMPLES}], got {self.samples}")


def default_max_tokens(records: Iterable[Mapping[str, Any]], mode: str, style: str) -> int:
    """The token budget when none is given: twice the longest gold generation of the mode
    plus 64 (compact style), or 4096 model tokens (instruct style)."""
    if style == "instruct":
        return INSTRUCT_MAX_TOKENS
    field = {"direct": "answer", "cot": "cot", "pencil": "pencil"}[mode]
    return 2 * max((len(record[field].split()) for record in records), default=0) + 64


class ModelFailed(Exception):
    """Thrown into a running sample when its model call failed for good."""


def _enforce_stop(completion: Completion, stop: Sequence[str]) -> tuple[str, str | None]:
    """The completion's text and the stop string that ended it, if any (cut at the first
    one, for adapters that do not honour stop strings themselves)."""
    text = completion.text
    found = [(i, s) for s in stop if (i := text.find(s)) >= 0]
    if found:
        cut, matched = min(found)
        return text[:cut], matched
    return text, completion.stop if completion.stop in stop else None


def _follow(gold: Sequence[str], matched: int, tokens: Sequence[str]) -> tuple[int, bool]:
    """Extend the matched prefix of the gold trace by ``tokens``; return the new length and
    whether the generation still follows the gold trace."""
    if list(gold[matched : matched + len(tokens)]) == list(tokens):
        return matched + len(tokens), True
    for token in tokens:
        if matched >= len(gold) or gold[matched] != token:
            break
        matched += 1
    return matched, False


def _fit_bytes(text: str, tokens: list[str], room: int, compact: bool) -> tuple[list[str], bool]:
    """The leading ``tokens`` (cut from ``text``) whose stored bytes fit in ``room``, and
    whether any were dropped. A compact token is stored with one separator byte."""
    if len(text) * 4 + len(tokens) <= room:  # fits whatever the characters are
        return tokens, False
    extra = 1 if compact else 0
    for i, token in enumerate(tokens):
        room -= len(token.encode()) + extra
        if room < 0:
            return tokens[:i], True
    return tokens, False


@functools.lru_cache(maxsize=256)
def _answer_vocabulary(task_name: str, params_key: str) -> frozenset[str]:
    """Tokens an answer of this size may use: the task's vocabulary without the markers
    and ``[ANSWER]``."""
    task = get_task(task_name)
    return frozenset(task.vocabulary(task.params(json.loads(params_key)))) - frozenset(SPECIAL_TOKENS)


def _compact_answer(mode: str, live: Sequence[str], vocabulary: frozenset[str]) -> tuple[str, ...] | None:
    """The answer of a compact output: all of it (direct), or all after its one ``[ANSWER]``."""
    answer = tuple(live) if mode == "direct" else final_answer(live)
    if not answer or not vocabulary.issuperset(answer):
        return None
    return answer


def run_sample(record: Mapping[str, Any], config: EvalConfig, model: str,
               weigh: Callable[[str], int] | None = None, repeat: int = 0) -> Generator[Request, Completion, Sample]:
    """One sample (number ``repeat`` of its instance) as a coroutine: yields requests,
    receives completions (or has :class:`ModelFailed` thrown in), returns the finished
    :class:`Sample`."""
    started = time.perf_counter()
    task = get_task(record["task"])
    params = task.params(record["params"])
    mode, compact = config.mode, config.style == "compact"
    if compact:
        prompt = record["prompt"]
        prompt_len = len(prompt.split())
        split: Callable[[str], list[str]] = str.split
    else:
        prompt = instruct_prompt(record, mode)
        prompt_len = weigh(prompt) if weigh is not None else len(pieces(prompt))
        split = pieces
    gold = record["pencil"].split() if mode == "pencil" else record["cot"].split() if mode == "cot" else []
    stop = ((RETURN,) if mode == "pencil" else ()) + (() if compact else END_STOPS)
    max_tokens = config.max_tokens
    max_context = math.inf if config.max_context is None else config.max_context

    pencil = mode == "pencil"
    reducer = Reducer()
    live = reducer.context  # in direct and cot modes it is only appended to, never reduced
    lengths: list[int] = []
    generated = matched = 0
    model_tokens: int | None = 0
    silent = False  # whether the last reply was empty
    matching = bool(gold)
    length = peak = prompt_len
    reply_room = config.max_reply_bytes
    status, error = (CONTEXT_OVERFLOW if prompt_len > max_context else OK), None  # the prompt alone
    try:
        while status == OK:
            tokens_left, context_left = max_tokens - generated, max_context - length
            cap = int(min(tokens_left, context_left)) + 1  # using the extra token means exceeding
            if compact:
                context = f"{prompt} {' '.join(live)}" if live else prompt
            else:
                context = prompt + "".join(live)
            completion = yield Request(context, stop, cap, len(prompt), record["id"], repeat)
            model_tokens = (None if model_tokens is None or completion.completion_tokens is None
                            else model_tokens + completion.completion_tokens)
            text, ended_at = _enforce_stop(completion, stop)
            silent = ended_at is None and not text.strip()
            clipped = len(text) > reply_room  # more characters than bytes left: never split it all
            if clipped:
                text = text[:reply_room]
            tokens, cut = _fit_bytes(text, split(text), reply_room, compact)
            if clipped and not cut and tokens and not text[-1].isspace():
                tokens = tokens[:-1]  # its word may go on past the clip
            if cut or clipped:
                cut, ended_at = True, None
            if len(tokens) > cap:  # an adapter that ignored the cap: what it wrote beyond is unused
                tokens, ended_at = tokens[:cap], None
            # Budgets: the token budget cuts at its limit; the first token that takes the live
            # context past its budget is kept, so the peak shows the overflow.
            if len(tokens) > tokens_left:
                tokens, status = tokens[:tokens_left], TOKEN_LIMIT
            after = (list(range(length + 1, length + len(tokens) + 1)) if weigh is None
                     else list(accumulate(map(weigh, tokens), initial=length))[1:])
            if after and after[-1] > max_context:
                keep = bisect.bisect_right(after, max_context) + 1
                tokens, after, status = tokens[:keep], after[:keep], CONTEXT_OVERFLOW
            reply_room -= sum(len(token.encode()) + compact for token in tokens)
            fault = reducer.extend(tokens) if pencil else live.extend(tokens)
            generated += len(tokens)
            lengths.extend(after)
            if after:
                length = after[-1]
                peak = max(peak, length)
            if matching:
                matched, matching = _follow(gold, matched, tokens if compact else [t.strip() for t in tokens])
            if (pencil and ended_at is None and completion.stop_unknown and completion.finish_reason == "stop"
                    and SEP in live):
                ended_at = RETURN  # an open frame: only its [RETURN] can have stopped the reply
            stopped = ended_at == RETURN
            if fault is None and status == OK and stopped:
                # The [RETURN] stop token: counted, then the reduction.
                before = length + (1 if weigh is None else weigh(RETURN))
                if generated + 1 > max_tokens:
                    status = TOKEN_LIMIT
                elif before > max_context:
                    status, peak = CONTEXT_OVERFLOW, max(peak, before)
                else:
                    generated += 1
                    peak = max(peak, before)
                    fault = reducer.push(RETURN)
                    length = prompt_len + (len(live) if weigh is None else sum(map(weigh, live)))
                    lengths.append(length)
                    if matching:
                        matched, matching = _follow(gold, matched, [RETURN])
            if fault is not None:
                status = PROTOCOL_ERROR
                error = f"{fault.error.value} at generated token {fault.position}"
            elif cut and status == OK:
                status = REPLY_CUT
            if status != OK:
                break
            if stopped:
                continue
            if ended_at is None and completion.finish_reason == "length":
                status = TOKEN_LIMIT if tokens_left <= context_left else CONTEXT_OVERFLOW
            elif ended_at is None and completion.finish_reason == "server_limit":
                status = CONTEXT_OVERFLOW
                error = "the server stopped for length before the token cap: its own context window ran out"
            break
    except ModelFailed as failure:
        status, error = MODEL_ERROR, str(failure)

    output = " ".join(live) if compact else "".join(live)
    if status == OK and generated == 0:
        status, error = EMPTY_REPLY, "the model returned no text"
    answer: tuple[str, ...] | None = None
    if compact and status == OK:
        answer = _compact_answer(mode, live, _answer_vocabulary(task.name, params.key()))
    elif not compact and (status == OK or status in BUDGET_STOPS):
        finished = output if status == OK else complete_lines(output)
        if finished:
            try:
                answer = task.parse_answer(params, record["problem"], finished)
            except Exception as problem:  # noqa: BLE001 - unparsable model text is a parse failure
                error = f"answer parser failed: {type(problem).__name__}: {problem}"
    if status == OK and answer is None and error is None and silent:
        error = "the model's last reply was empty"
    score = Score.wrong()
    if answer is not None:
        try:
            score = check_answer(task.name, record["problem"], answer)
        except Exception as problem:  # noqa: BLE001 - an answer the oracle cannot read is wrong
            error = f"oracle rejected the answer: {type(problem).__name__}: {problem}"
    return Sample(
        model=model, mode=mode, style=config.style, instance_id=record["id"], task=task.name,
        params=params.key(), status=status, correct=bool(score.correct), partial=float(score.partial),
        parse_ok=answer is not None, parsed_answer=None if answer is None else " ".join(answer),
        gold_answer=record["answer"], peak_context=int(peak), generated_tokens=generated,
        reductions=reducer.reductions, trace_rate=matched / len(gold) if gold else None,
        wall_time=time.perf_counter() - started, output=output, error=error,
        context_lengths=f"[{','.join(map(str, lengths))}]",  # a JSON list, written directly for speed
        repeat=repeat, model_tokens=model_tokens,
    )


@dataclass(frozen=True)
class RunSummary:
    """What one call of :func:`evaluate` did: samples written and skipped (already in the
    store), wall-clock and CPU seconds spent in this process (CPU time is what the loop costs
    on a busy machine), tokens generated (pencilbench tokens; ``model_tokens``: the model's
    own, as its server reported them, ``None`` when it did not for every sample), model
    calls made, how those calls loaded the model, the PENCIL reductions performed, and how
    many of the samples were tried again because their earlier model call had failed."""

    written: int
    skipped: int
    seconds: float
    tokens: int
    calls: int
    cpu_seconds: float
    model_tokens: int | None = None
    load: CallLoad | None = None
    reductions: int = 0
    retried: int = 0


def evaluate(records: Sequence[Mapping[str, Any]], client: Client, config: EvalConfig,
             store: ResultStore, model: str, *, progress: bool = True, retry_errors: bool = True,
             bar: tqdm | None = None) -> RunSummary:
    """Evaluate ``config.samples`` samples of every record, skipping those that already have
    a row for (model, mode, style) unless, with ``retry_errors``, the row says its model call
    failed; each sample is committed as it finishes, so an interrupted run resumes where it
    stopped. ``bar``: a progress bar of a larger job to advance (skipped samples included)
    instead of one of this evaluation's own.

    With several calls in flight, the first call runs alone: it measures what one call costs,
    so the summary can tell whether the model served the others at once."""
    started, cpu_started = time.perf_counter(), time.process_time()
    statuses = store.statuses(model, config.mode, config.style)
    todo = [(record, repeat) for record in records for repeat in range(config.samples)
            if (status := statuses.get((record["id"], repeat))) is None
            or (retry_errors and status == MODEL_ERROR)]
    retried = sum(statuses.get((record["id"], repeat)) == MODEL_ERROR for record, repeat in todo)
    store.add_instances({record["id"]: record for record, _ in todo}.values())
    weigh = None
    count_tokens = getattr(client.adapter, "count_tokens", None)
    if config.style == "instruct" and count_tokens is not None:
        weigh = functools.lru_cache(maxsize=1 << 16)(count_tokens)
    queue = iter(todo)
    written = tokens = reductions = 0
    model_tokens: int | None = 0
    calls, spans = client.calls, len(client.spans)
    own = bar is None
    if bar is None:
        bar = tqdm(total=len(todo), desc=f"{model} {config.mode}", unit="sample", disable=not progress)
    else:
        bar.update(len(records) * config.samples - len(todo))

    def finish(sample: Sample) -> None:
        nonlocal written, tokens, reductions, model_tokens
        written += store.write(sample)
        tokens += sample.generated_tokens
        reductions += sample.reductions
        model_tokens = (None if model_tokens is None or sample.model_tokens is None
                        else model_tokens + sample.model_tokens)
        bar.update()

    def start() -> tuple[Generator[Request, Completion, Sample], Request] | None:
        """The next sample and its first request (a sample that needs no call is stored)."""
        while (item := next(queue, None)) is not None:
            job = run_sample(item[0], config, model, weigh, item[1])
            try:
                return job, next(job)
            except StopIteration as end:
                finish(end.value)
        return None

    def advance(job: Generator[Request, Completion, Sample],
                result: Completion | ModelFailure) -> Request | None:
        """Hand a result to its sample; ``None`` once the sample is finished and stored."""
        try:
            if isinstance(result, ModelFailure):
                return job.throw(ModelFailed(result.message))
            return job.send(result)
        except StopIteration as end:
            finish(end.value)
            return None

    width = client.policy.concurrency
    lone = width > 1  # until the first call has come back
    try:
        if client.streams:
            # Threaded adapters: each sample's next call starts as soon as its last one returns.
            pending: dict[Future[Completion | ModelFailure], tuple[Any, Request]] = {}
            while True:
                while len(pending) < (1 if lone else width) and (fresh := start()) is not None:
                    pending[client.submit(fresh[1])] = fresh
                if not pending:
                    break
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                lone = False
                for future in finished:
                    job, request = pending.pop(future)
                    result = future.result()
                    client.remember(request, result)
                    following = advance(job, result)
                    if following is not None:
                        pending[client.submit(following)] = (job, following)
        else:
            # One thread or a batching adapter: the in-flight samples step together.
            active: list[tuple[Any, Request]] = []
            while True:
                while len(active) < (1 if lone else width) and (fresh := start()) is not None:
                    active.append(fresh)
                if not active:
                    break
                results = client.complete_many([request for _, request in active])
                lone = False
                stepped = [(job, advance(job, result)) for (job, _), result in zip(active, results, strict=True)]
                active = [(job, request) for job, request in stepped if request is not None]
    finally:
        if own:
            bar.close()
    return RunSummary(written, len(records) * config.samples - len(todo), time.perf_counter() - started, tokens,
                      client.calls - calls, time.process_time() - cpu_started, model_tokens,
                      client.load(spans), reductions, retried)


def score_output(record: Mapping[str, Any], text: str, config: EvalConfig, model: str = "text") -> Sample:
    """Score a finished model output as :func:`evaluate` would have scored the model that
    wrote it: ``text`` is fed through :func:`run_sample` call by call (in pencil mode up to
    each ``[RETURN]``, which the loop then reduces), so status, answer, budgets, peak context
    and trace rate are exactly what the results store would hold."""
    job = run_sample(record, config, model)
    rest = text
    try:
        request = next(job)
        while True:
            cut = min((i for i in (rest.find(s) for s in request.stop) if i >= 0), default=-1)
            if cut >= 0:
                stop = next(s for s in request.stop if rest.startswith(s, cut))
                chunk, rest = rest[:cut], rest[cut + len(stop):]
                request = job.send(Completion(chunk, "stop", stop))
            else:
                chunk, rest = rest, ""
                request = job.send(Completion(chunk, "stop"))
    except StopIteration as end:
        return end.value
