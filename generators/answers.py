"""Finding an answer in free model text, shared by every task's ``parse_answer``.

Models wrap answers in prose, reasoning blocks and Markdown. The answer is taken from the
last ``Answer: ...`` line (or the last ``\\boxed{...}``) after any ``<think>`` block is
removed; text with neither has no answer, which is a parse failure, never an exception.
"""

from __future__ import annotations

import re

_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"answer\s*(?:is)?\s*[:=]\s*(.*)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_DECORATION = re.compile(r"[*_`$]")


def strip_think(text: str) -> str:
    """Remove ``<think>...</think>`` blocks (an unclosed one runs to the end)."""
    return _THINK.sub(" ", text)


def answer_span(text: str) -> str | None:
    """The text of the final answer, or ``None`` when the model gave none."""
    text = strip_think(text)
    boxed = _BOXED.findall(text)
    for line in reversed(text.splitlines()):
        match = _ANSWER.search(_DECORATION.sub("", line))
        if match and match.group(1).strip():
            return match.group(1).strip()
    if boxed:
        return boxed[-1].strip()
    return None
