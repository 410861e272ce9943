"""The one list of oracles, keyed by task name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pencilbench.solvers import addition, einstein, phop, qbf, sat
from pencilbench.solvers.score import Score

Oracle = Callable[[Mapping[str, Any], Sequence[str]], Score]

ORACLES: dict[str, Oracle] = {
    "addition": addition.check,
    "einstein": einstein.check,
    "phop": phop.check,
    "qbf": qbf.check,
    "sat": sat.check,
}


def check_answer(task: str, problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    """Score ``answer`` (compact tokens) for ``problem`` of ``task``."""
    try:
        oracle = ORACLES[task]
    except KeyError:
        raise ValueError(f"no oracle for task {task!r}; known: {', '.join(ORACLES)}") from None
    return oracle(problem, answer)
