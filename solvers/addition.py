"""Addition oracle: Python integers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pencilbench.solvers.score import Score


def check(problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    """Exact sum; partial credit is the share of digits right, aligned from the least
    significant end, over the longer of the two numbers."""
    text = "".join(answer)
    if not text.isdigit() or not text.isascii():
        return Score.wrong()
    gold = str(sum(int(operand) for operand in problem["operands"]))
    given = text.lstrip("0") or "0"
    same = sum(a == b for a, b in zip(reversed(gold), reversed(given)))
    return Score(given == gold, same / max(len(gold), len(given)))
