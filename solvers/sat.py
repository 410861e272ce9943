"""SAT oracle: checks a claimed assignment clause by clause and asks python-sat about UNSAT.

The answer is ``UNSAT``, or ``SAT`` followed by literals (``k`` true, ``-k`` false). Any
assignment that satisfies every clause is right, whoever found it; variables it leaves out
satisfy nothing. Partial credit for a ``SAT`` claim is the share of clauses it satisfies
(zero when a literal is malformed, out of range or contradicts another); an ``UNSAT`` claim
is all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pencilbench.solvers.score import Score
from pysat.solvers import Solver


def solve(problem: Mapping[str, Any]) -> list[int] | None:
    """A model of the formula as literals ``1..n`` signed, or ``None`` when unsatisfiable."""
    clauses = problem["clauses"]
    if any(not clause for clause in clauses):
        return None
    with Solver(name="glucose4", bootstrap_with=clauses) as solver:
        if not solver.solve():
            return None
        chosen = {abs(lit): lit for lit in solver.get_model() or ()}
    return [chosen.get(var, var) for var in range(1, problem["num_vars"] + 1)]


def assignment(problem: Mapping[str, Any], literals: Sequence[str]) -> set[int] | None:
    """The literals of a claimed assignment, or ``None`` when one is malformed, out of range
    or contradicts another."""
    chosen: set[int] = set()
    for token in literals:
        try:
            literal = int(token)
        except ValueError:
            return None
        if literal == 0 or abs(literal) > problem["num_vars"] or -literal in chosen:
            return None
        chosen.add(literal)
    return chosen


def check(problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    answer = tuple(answer)
    if answer == ("UNSAT",):
        right = solve(problem) is None
        return Score(right, float(right))
    if not answer or answer[0] != "SAT":
        return Score.wrong()
    chosen = assignment(problem, answer[1:])
    if chosen is None:
        return Score.wrong()
    clauses = problem["clauses"]
    satisfied = sum(any(literal in chosen for literal in clause) for clause in clauses)
    return Score(satisfied == len(clauses), satisfied / len(clauses) if clauses else 1.0)
