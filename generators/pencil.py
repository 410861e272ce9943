"""The PENCIL reduction rule, its one incremental implementation, and what is built on it.

Rule: ``C [CALL] T [SEP] A [RETURN]  =>  C A``. When ``[RETURN]`` arrives, the last live
``[SEP]`` is matched, then the last live ``[CALL]`` before that ``[SEP]``; everything from
that ``[CALL]`` to the ``[RETURN]`` is erased except ``A``. ``A`` may hold markers of its
own (a tail call ``A = [CALL] summary`` replaces a frame by a smaller one); they stay live.

Malformed sequences never raise. The first fault is recorded on the reducer as a
:class:`ProtocolError` and returned by :meth:`Reducer.push`; from then on the reducer only
appends tokens (it performs no more reductions), so callers can stop or carry on as they like:

- ``sep_outside_frame``: a ``[SEP]`` with no live ``[CALL]`` before it;
- ``return_without_sep``: a ``[RETURN]`` with no live ``[SEP]`` before it.

The prompt is a protected prefix: it is never reduced and may not hold markers.

Answer boundary: a finished generation states its final answer after ``[ANSWER]``, which
occurs exactly once and is followed by the answer and nothing else. A gold trace closes its
root frame with ``[SEP] [ANSWER] answer [RETURN]`` (:meth:`TraceWriter.answer`), so the
reduced trace is ``[ANSWER] answer`` and the chain of thought ends with it; intermediate
results never use it, so a scorer reads the whole answer after the one boundary and never
guesses where reasoning stops. ``[ANSWER]`` is no reduction marker: the reducer treats it as
a word.
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pencilbench.generators.compiled import kernel

if TYPE_CHECKING:
    from pencilbench.generators.task import Ragged

CALL = "[CALL]"
SEP = "[SEP]"
RETURN = "[RETURN]"
MARKERS = (CALL, SEP, RETURN)
ANSWER = "[ANSWER]"
# Every token with a meaning to the trace engine or the scorer; each task declares them all.
SPECIAL_TOKENS = (*MARKERS, ANSWER)
_MARKER_SET = frozenset(MARKERS)


class ProtocolError(StrEnum):
    """Why a sequence of markers could not be reduced."""

    SEP_OUTSIDE_FRAME = "sep_outside_frame"
    RETURN_WITHOUT_SEP = "return_without_sep"


@dataclass(frozen=True)
class Fault:
    """The first protocol error of a sequence: what it was and at which generated token."""

    error: ProtocolError
    position: int


class Reducer:
    """Live context of one generation, reduced as tokens arrive.

    Positions of live ``[CALL]`` and ``[SEP]`` markers are kept in sorted lists, so each
    reduction costs the length of the kept answer plus a binary search.
    """

    __slots__ = ("context", "prompt_len", "generated", "reductions", "peak", "fault", "_calls", "_seps")

    def __init__(self, prompt: Sequence[str] = ()) -> None:
        if not _MARKER_SET.isdisjoint(prompt):
            raise ValueError("the prompt may not contain [CALL], [SEP] or [RETURN]")
        self.context: list[str] = list(prompt)
        self.prompt_len = len(self.context)
        self.generated = 0
        self.reductions = 0
        self.peak = self.prompt_len
        self.fault: Fault | None = None
        self._calls: list[int] = []
        self._seps: list[int] = []

    def push(self, token: str) -> Fault | None:
        """Append one generated token, reducing if it is a ``[RETURN]``; return a new fault."""
        context = self.context
        self.generated += 1
        context.append(token)
        if len(context) > self.peak:
            self.peak = len(context)
        if self.fault is not None or token not in _MARKER_SET:
            return None
        position = len(context) - 1
        if token == CALL:
            self._calls.append(position)
        elif token == SEP:
            if not self._calls:
                return self._fail(ProtocolError.SEP_OUTSIDE_FRAME)
            self._seps.append(position)
        else:
            self._reduce()
        return self.fault

    def extend(self, tokens: Iterable[str]) -> Fault | None:
        """Push tokens in order; return a new fault.

        Only markers cost a step each: the plain runs between them are appended in bulk,
        and the peak is taken just before each reduction and at the end (the context only
        grows in between).
        """
        tokens = tokens if isinstance(tokens, list | tuple) else list(tokens)
        if self.fault is not None:
            self._append_plain(tokens)
            return None
        context, calls, seps = self.context, self._calls, self._seps
        generated, peak, start = self.generated, self.peak, 0
        for i in [i for i, token in enumerate(tokens) if token in _MARKER_SET]:
            token = tokens[i]
            context.extend(tokens[start : i + 1])
            start = i + 1
            if token == CALL:
                calls.append(len(context) - 1)
            elif token == SEP and calls:
                seps.append(len(context) - 1)
            else:
                self.generated = generated + start  # so that a fault names this token
                if token == SEP:
                    self._fail(ProtocolError.SEP_OUTSIDE_FRAME)
                else:
                    if len(context) > peak:
                        peak = len(context)
                    self._reduce()
                if self.fault is not None:
                    break
        self.generated, self.peak = generated + start, max(peak, len(context))
        self._append_plain(tokens[start:])
        return self.fault

    def _append_plain(self, tokens: Sequence[str]) -> None:
        self.context.extend(tokens)
        self.generated += len(tokens)
        if len(self.context) > self.peak:
            self.peak = len(self.context)

    @property
    def generated_live(self) -> list[str]:
        """The live tokens after the prompt."""
        return self.context[self.prompt_len :]

    def _fail(self, error: ProtocolError) -> Fault:
        self.fault = Fault(error, self.generated - 1)
        return self.fault

    def _reduce(self) -> None:
        if not self._seps:
            self._fail(ProtocolError.RETURN_WITHOUT_SEP)
            return
        context, calls = self.context, self._calls
        seps = self._seps
        sep = seps.pop()
        # A [SEP] is only accepted with a live [CALL] before it, and a reduction never
        # erases a [CALL] that lies before a surviving [SEP], so this search succeeds.
        cut = bisect.bisect_left(calls, sep) - 1
        call = calls[cut]
        while seps and seps[-1] > call:
            seps.pop()
        later_calls = calls[cut + 1 :]  # tail calls inside the kept answer
        del calls[cut:]
        context[call:] = context[sep + 1 : -1]
        if later_calls:
            shift = sep + 1 - call
            calls.extend(position - shift for position in later_calls)
        self.reductions += 1


@dataclass(frozen=True)
class Replay:
    """What a generation did to the live context."""

    final: tuple[str, ...]  # live tokens after the prompt once everything is pushed
    peak_context: int  # max of len(prompt) + live generated tokens, counting each [RETURN]
    # before it reduces (so it equals the longest training segment)
    reductions: int
    fault: Fault | None
    lengths: tuple[int, ...] | None  # live context length after every token, if asked for


# Token ids: the special tokens open every task's vocabulary in this order, so a trace kept
# as ids is its own marker code (every id from ANSWER_ID up is a word to the reducer).
CALL_ID, SEP_ID, RETURN_ID, ANSWER_ID = range(len(SPECIAL_TOKENS))
FAULTS = (None, ProtocolError.SEP_OUTSIDE_FRAME, ProtocolError.RETURN_WITHOUT_SEP)


def replay(prompt: Sequence[str], generated: Iterable[str], *, lengths: bool = False) -> Replay:
    """Run a whole generation through the reduction rule (after a fault it keeps appending).

    The same rule as :class:`Reducer`, compiled over marker codes: the batch check of every
    generated record, where the reducer serves live generation token by token.
    """
    if not _MARKER_SET.isdisjoint(prompt):
        raise ValueError("the prompt may not contain [CALL], [SEP] or [RETURN]")
    tokens = generated if isinstance(generated, list | tuple) else list(generated)
    codes = np.fromiter(map(_CODES.get, tokens, itertools.repeat(ANSWER_ID)), dtype=np.int32, count=len(tokens))
    kept, peak, reductions, fault, position, trail = replay_codes(codes, len(prompt), lengths)
    return Replay(
        final=tuple(tokens[i] for i in kept.tolist()),
        peak_context=peak,
        reductions=reductions,
        fault=Fault(FAULTS[fault], position) if fault else None,
        lengths=tuple(trail.tolist()) if lengths else None,
    )


_CODES = {CALL: CALL_ID, SEP: SEP_ID, RETURN: RETURN_ID}


@kernel
def replay_codes(codes, prompt_len, lengths):  # noqa: ANN001, ANN202 (compiled)
    """The reduction rule over codes (CALL_ID, SEP_ID, RETURN_ID; any other id is a word).

    ``live`` holds the positions of the live generated tokens in order, ``calls`` and
    ``seps`` the places in ``live`` of the live markers, so a reduction moves only the kept
    answer. Returns the live positions, the peak context, the reductions, the fault (an index
    into ``FAULTS``: 0 none), its position, and the live length after every token when
    ``lengths`` is set.
    """
    n = len(codes)
    live = np.empty(n, np.int64)
    calls = np.empty(n, np.int64)
    seps = np.empty(n, np.int64)
    trail = np.empty(n if lengths else 0, np.int64)
    size = calls_n = seps_n = reductions = fault = 0
    position = -1
    peak = prompt_len
    for i in range(n):
        live[size] = i
        size += 1
        code = codes[i]
        if fault == 0 and code <= RETURN_ID:
            if code == CALL_ID:
                calls[calls_n] = size - 1
                calls_n += 1
            elif code == SEP_ID:
                if calls_n == 0:
                    fault, position = 1, i
                else:
                    seps[seps_n] = size - 1
                    seps_n += 1
            else:
                peak = max(peak, prompt_len + size)
                if seps_n == 0:
                    fault, position = 2, i
                else:
                    seps_n -= 1
                    sep = seps[seps_n]
                    cut = calls_n - 1  # the last live [CALL] before the [SEP]: there is one
                    while calls[cut] > sep:
                        cut -= 1
                    call = calls[cut]
                    while seps_n > 0 and seps[seps_n - 1] > call:
                        seps_n -= 1
                    shift = sep + 1 - call  # tail calls inside the kept answer move down
                    kept_calls = cut
                    for k in range(cut + 1, calls_n):
                        calls[kept_calls] = calls[k] - shift
                        kept_calls += 1
                    calls_n = kept_calls
                    kept = size - 1 - (sep + 1)
                    for k in range(kept):
                        live[call + k] = live[sep + 1 + k]
                    size = call + kept
                    reductions += 1
        if lengths:
            trail[i] = prompt_len + size
    peak = max(peak, prompt_len + size)
    return live[:size].copy(), peak, reductions, fault, position, trail


def final_answer(tokens: Sequence[str]) -> tuple[str, ...] | None:
    """The answer a finished generation states: every token after its one ``[ANSWER]``.

    ``None`` when there is no ``[ANSWER]``, more than one (an answer that is restated or
    retracted), or nothing after it.
    """
    positions = [i for i, token in enumerate(tokens) if token == ANSWER]
    if len(positions) != 1 or positions[0] == len(tokens) - 1:
        return None
    return tuple(tokens[positions[0] + 1 :])


def strip_markers(tokens: Iterable[str]) -> list[str]:
    """The chain of thought a trace stands for: the trace without its markers."""
    return [token for token in tokens if token not in MARKERS]


@kernel
def strip_marker_ids(ids):  # noqa: ANN001, ANN201 (compiled)
    """:func:`strip_markers` of a trace held as vocabulary ids."""
    kept = np.empty(len(ids), ids.dtype)
    size = 0
    for token in ids:
        if token > RETURN_ID:
            kept[size] = token
            size += 1
    return kept[:size].copy()


@dataclass(frozen=True)
class Segment:
    """One training example of a PENCIL model.

    ``tokens`` is the live context at the start of a step (prompt and what earlier
    reductions kept) followed by everything generated up to and including the next
    ``[RETURN]``, or the end. The loss covers ``tokens[loss_start:]``: only what was
    generated since the previous reduction.
    """

    tokens: tuple[str, ...]
    loss_start: int


def segments(prompt: Sequence[str], pencil: Iterable[str]) -> list[Segment]:
    """Cut a PENCIL trace into the segments a model is trained on."""
    reducer = Reducer(prompt)
    start = tuple(reducer.context)
    fresh: list[str] = []
    out: list[Segment] = []
    for token in pencil:
        reductions = reducer.reductions
        reducer.push(token)
        fresh.append(token)
        if reducer.reductions != reductions:
            out.append(Segment(start + tuple(fresh), len(start)))
            start, fresh = tuple(reducer.context), []
    if fresh:
        out.append(Segment(start + tuple(fresh), len(start)))
    return out


class TraceWriter:
    """Collects a PENCIL trace while a solver runs; solvers call it at each step they take.

    ``call`` opens a frame, ``ret`` closes it keeping only its answer, ``tail`` closes it
    while opening a new frame that starts from a summary (a tail call), and ``answer``
    closes the root frame with the final answer after the ``[ANSWER]`` boundary.
    """

    __slots__ = ("tokens",)

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def emit(self, *tokens: str) -> None:
        self.tokens.extend(tokens)

    def call(self, *tokens: str) -> None:
        self.tokens.append(CALL)
        self.tokens.extend(tokens)

    def ret(self, *answer: str) -> None:
        self.tokens.append(SEP)
        self.tokens.extend(answer)
        self.tokens.append(RETURN)

    def answer(self, *answer: str) -> None:
        self.ret(ANSWER, *answer)

    def tail(self, *summary: str) -> None:
        self.tokens.append(SEP)
        self.tokens.append(CALL)
        self.tokens.extend(summary)
        self.tokens.append(RETURN)


@functools.lru_cache(maxsize=64)
def token_table(vocabulary: tuple[str, ...]) -> np.ndarray:
    """A vocabulary as an object array, so a run of ids becomes tokens in one indexing; its
    tokens are checked once here (the special tokens first, none empty or holding white
    space), so text joined from them splits back into the same tokens."""
    if vocabulary[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
        raise ValueError("a vocabulary must start with the special tokens")
    bad = next((token for token in vocabulary if token.split() != [token]), None)
    if bad is not None:
        raise ValueError(f"vocabulary token {bad!r} is empty or holds white space")
    return np.array(vocabulary, dtype=object)


def tokens_of(ids: np.ndarray, vocabulary: tuple[str, ...]) -> list[str]:
    """The tokens ids stand for (ids are positions in ``vocabulary``)."""
    return token_table(vocabulary)[ids].tolist()


@functools.lru_cache(maxsize=64)
def _token_bytes(vocabulary: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A vocabulary's tokens as one run of UTF-8 bytes, and where each token starts."""
    encoded = [token.encode() for token in token_table(vocabulary)]
    offsets = np.cumsum([0, *map(len, encoded)])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def texts_of(rows: Ragged, vocabulary: tuple[str, ...]) -> pa.StringArray:
    """Each row of ids as its space-joined tokens, an Arrow string array built in one
    compiled pass over the rows."""
    data, offsets = _token_bytes(vocabulary)
    text, text_offsets = _join_rows(rows.values, rows.offsets, data, offsets)
    if text_offsets[-1] >= 2**31:
        raise ValueError("a chunk of records holds over 2 GiB of trace text; generate fewer at a time")
    return pa.StringArray.from_buffers(len(rows), pa.py_buffer(text_offsets.astype(np.int32)), pa.py_buffer(text))


@kernel
def _join_rows(ids, rows, data, offsets):  # noqa: ANN001, ANN202 (compiled)
    count = len(rows) - 1
    text_offsets = np.zeros(count + 1, np.int64)
    for row in range(count):
        size = max(rows[row + 1] - rows[row] - 1, 0)
        for k in range(rows[row], rows[row + 1]):
            size += offsets[ids[k] + 1] - offsets[ids[k]]
        text_offsets[row + 1] = text_offsets[row] + size
    out = np.empty(text_offsets[count], np.uint8)
    for row in range(count):
        at = text_offsets[row]
        for k in range(rows[row], rows[row + 1]):
            if k > rows[row]:
                out[at] = 32  # space
                at += 1
            for byte in range(offsets[ids[k]], offsets[ids[k] + 1]):
                out[at] = data[byte]
                at += 1
    return out, text_offsets


def ids_of(tokens: Sequence[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    """The ids of tokens; ``ValueError`` names a token outside ``vocabulary``."""
    index = _vocabulary_index(vocabulary)
    try:
        return np.fromiter(map(index.__getitem__, tokens), dtype=np.int32, count=len(tokens))
    except KeyError as missing:
        raise ValueError(f"token {missing.args[0]!r} is not in the vocabulary") from None


@functools.lru_cache(maxsize=64)
def _vocabulary_index(vocabulary: tuple[str, ...]) -> dict[str, int]:
    return {token: i for i, token in enumerate(vocabulary)}
