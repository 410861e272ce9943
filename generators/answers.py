"""Finding the one final answer in free model text, shared by every task's ``parse_answer``.

Models wrap answers in prose, reasoning blocks and Markdown. After any ``<think>`` block is
removed (an unclosed one runs to the end), every answer *statement* is read: the text after
``Answer:`` (also ``answer is:``, ``answer =``; Markdown emphasis ignored) up to the end of
its line or the next such marker, and the contents of every ``\\boxed{...}``. The rule:

- a statement that names more than one candidate (``12 or 13``, ``12. Actually, 13``) is a
  hedge, and a reply holding a hedge has no answer;
- every statement that names a candidate must name the same answer (several ``Answer:``
  lines that disagree are no answer), and a restatement of the same answer is fine;
- text with no statement, or only statements naming no candidate, has no answer.

What a candidate is belongs to each task (a number, a verdict, a symbol, an assignment, a
grid); a task's reader returns the one answer of a statement, ``None`` when it names none,
and raises :class:`HedgedAnswer` when it names more than one. No answer is a parse failure,
never an exception, and every step is linear in the length of the text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

Reader = Callable[[str], tuple[str, ...] | None]

_THINK = re.compile(r"<think>.*?(?:</think>|\Z)", re.DOTALL | re.IGNORECASE)
# Possessive quantifiers: a long run of whitespace after "answer" is scanned once.
_MARKER = re.compile(r"answer\s*+(?:is\s*+)?[:=]", re.IGNORECASE)
_BOXED = "\\boxed{"
_BRACE = re.compile(r"[{}]")
_DECORATION = re.compile(r"[*_`$]")


class HedgedAnswer(Exception):
    """A statement names more than one candidate answer."""


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (an unclosed one runs to the end)."""
    return _THINK.sub(" ", text)


def statements(text: str) -> list[str]:
    """The text of every answer statement (``Answer:`` spans, then ``\\boxed{}`` contents)."""
    text = _DECORATION.sub("", strip_think(text))
    # The text between one marker and the next, up to its first line break.
    found = [part.partition("\n")[0] for part in _MARKER.split(text)[1:]]
    found.extend(_boxed(text))
    return found


def _boxed(text: str) -> Iterator[str]:
    """Contents of each outermost closed ``\\boxed{...}`` (braces may nest inside)."""
    at = text.find(_BOXED)
    while at >= 0:
        start = at + len(_BOXED)
        depth, stop = 1, -1
        for brace in _BRACE.finditer(text, start):
            depth += 1 if brace.group() == "{" else -1
            if depth == 0:
                stop = brace.start()
                break
        if stop < 0:
            return  # unclosed: the rest of the text is inside it
        yield text[start:stop]
        at = text.find(_BOXED, stop + 1)


def one_answer(text: str, read: Reader) -> tuple[str, ...] | None:
    """The one final answer of ``text`` under the rule above, each statement read by
    ``read``; ``None`` when there is none, or more than one."""
    answers: set[tuple[str, ...]] = set()
    for statement in set(statements(text)):  # order does not matter; repeats are read once
        try:
            answer = read(statement)
        except HedgedAnswer:
            return None
        if answer is not None:
            answers.add(answer)
            if len(answers) > 1:  # statements that disagree
                return None
    return answers.pop() if answers else None


def single(candidates: list[str]) -> str | None:
    """The one distinct candidate of a statement, ``None`` for none; raises
    :class:`HedgedAnswer` when there are several."""
    distinct = set(candidates)
    if len(distinct) > 1:
        raise HedgedAnswer(f"{len(distinct)} candidates")
    return distinct.pop() if distinct else None


def complete_lines(text: str) -> str:
    """The text up to its last line break: what a reply cut off mid-line finished writing."""
    return text[: text.rfind("\n") + 1]
