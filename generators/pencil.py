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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

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


def replay(prompt: Sequence[str], generated: Iterable[str], *, lengths: bool = False) -> Replay:
    """Run a whole generation through a :class:`Reducer` (after a fault it keeps appending)."""
    reducer = Reducer(prompt)
    trail: list[int] | None = None
    if lengths:
        context, push, trail = reducer.context, reducer.push, []
        for token in generated:
            push(token)
            trail.append(len(context))
    else:
        reducer.extend(generated)
    return Replay(
        final=tuple(reducer.generated_live),
        peak_context=reducer.peak,
        reductions=reducer.reductions,
        fault=reducer.fault,
        lengths=None if trail is None else tuple(trail),
    )


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
