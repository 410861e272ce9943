"""Einstein oracle: a CNF encoding solved with python-sat, sharing nothing with the trace.

Variable ``p(v, h)`` says value v is in house h. Each value is in exactly one house, each
house holds exactly one value of every attribute, and each clue becomes, for every house
h, ``p(a, h) -> OR of p(b, k) over the houses k the clue allows``. A blocking clause on
the first model shows whether the solution is unique. (At 6x6 this is about twelve times
faster than python-constraint.)

Scoring: ``exact`` (the tokens equal the gold answer), ``value`` (the asked value is
right), ``puzzle`` (every cell of the grid right) and ``cells`` (the share of cells right;
a grid that cannot be read counts every cell wrong). ``Score.correct`` is the asked value
and the whole grid right, whatever the order of values within a house; ``Score.partial``
is the cell accuracy.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pencilbench.solvers.score import Score
from pysat.solvers import Solver

# Which (house of a, house of b) pairs each two-value clue allows.
RELATIONS: Mapping[str, Callable[[int, int], bool]] = {
    "same": lambda a, b: a == b,
    "not_same": lambda a, b: a != b,
    "left": lambda a, b: a + 1 == b,
    "right": lambda a, b: a == b + 1,
    "next_to": lambda a, b: abs(a - b) == 1,
    "left_of": lambda a, b: a < b,
    "right_of": lambda a, b: a > b,
}


def solutions(problem: Mapping[str, Any], limit: int = 2) -> list[dict[str, list[str]]]:
    """Up to ``limit`` solutions, each ``{attribute: [value of house 1, ...]}``."""
    n = problem["houses"]
    attributes: Mapping[str, Sequence[str]] = problem["attributes"]
    values = [value for group in attributes.values() for value in group]
    index = {value: i for i, value in enumerate(values)}
    if len(index) != len(values) or any(len(group) != n for group in attributes.values()):
        raise ValueError("every attribute needs one distinct value per house")

    def var(value: str, house: int) -> int:
        try:
            return index[value] * n + house
        except KeyError:
            raise ValueError(f"clue names an unknown value {value!r}") from None

    cnf: list[list[int]] = []
    for value in values:
        cnf.append([var(value, h) for h in range(1, n + 1)])
        cnf.extend([-var(value, h), -var(value, k)] for h in range(1, n + 1) for k in range(h + 1, n + 1))
    for group in attributes.values():
        for h in range(1, n + 1):
            cnf.append([var(value, h) for value in group])
            cnf.extend([-var(u, h), -var(w, h)] for i, u in enumerate(group) for w in group[i + 1:])
    for clue in problem["clues"]:
        kind, a = clue["kind"], clue["a"][1]
        if kind in ("at", "not_at"):
            if not 1 <= clue["house"] <= n:
                raise ValueError(f"clue house {clue['house']} is outside 1..{n}")
            cnf.append([var(a, clue["house"]) * (1 if kind == "at" else -1)])
            continue
        if kind not in RELATIONS:
            raise ValueError(f"unknown clue kind {kind!r}")
        allowed, b = RELATIONS[kind], clue["b"][1]
        for h in range(1, n + 1):
            cnf.append([-var(a, h)] + [var(b, k) for k in range(1, n + 1) if allowed(h, k)])
    found = []
    with Solver(name="m22", bootstrap_with=cnf) as solver:
        while len(found) < limit and solver.solve():
            model = [literal for literal in solver.get_model() if literal > 0]
            house = {values[(literal - 1) // n]: (literal - 1) % n for literal in model}
            grid = {}
            for name, group in attributes.items():
                row = [""] * n
                for value in group:
                    row[house[value]] = value
                grid[name] = row
            found.append(grid)
            solver.add_clause([-literal for literal in model])
    return found


@lru_cache(maxsize=4096)
def _gold(problem_json: str) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    try:
        return _solve_gold(json.loads(problem_json))
    except (KeyError, TypeError, IndexError, AttributeError, StopIteration) as error:
        raise ValueError(f"malformed einstein problem: {error!r}") from None


def _solve_gold(problem: Mapping[str, Any]) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    found = solutions(problem)
    if len(found) != 1:
        raise ValueError(f"the puzzle has {'no' if not found else 'more than one'} solution")
    grid = found[0]
    if problem.get("solution") not in (None, grid):
        raise ValueError("the puzzle's stated solution is not the one its clues determine")
    tokens: list[str] = []
    question = problem["question"]
    if question["ask"] != "grid":
        given = question["given"][1]
        home = next(row.index(given) for row in grid.values() if given in row)
        tokens.append(grid[question["ask"]][home])
    for h in range(problem["houses"]):
        tokens.append(f"h{h + 1}")
        tokens.extend(row[h] for row in grid.values())
    return grid, tuple(tokens)


def gold_answer(problem: Mapping[str, Any]) -> tuple[str, ...]:
    """The answer tokens the clues determine; ``ValueError`` unless exactly one solution."""
    return _gold(json.dumps(problem))[1]


@dataclass(frozen=True)
class Grade:
    """Every figure the oracle gives one answer."""

    exact: bool
    value: bool  # the asked value (always true for the grid question)
    puzzle: bool
    cells: float


def grade(problem: Mapping[str, Any], answer: Sequence[str]) -> Grade:
    """Read ``[asked value] h1 <values> h2 <values> ...``; values within a house may come in
    any order, and a cell given two values counts as wrong."""
    grid, gold = _gold(json.dumps(problem))
    n = problem["houses"]
    tokens = list(answer)
    markers = {f"h{h}": h - 1 for h in range(1, n + 1)}
    first = next((i for i, token in enumerate(tokens) if token in markers), len(tokens))
    value = True
    if problem["question"]["ask"] != "grid":
        value = tokens[:first] == [gold[0]]
    attribute_of = {v: name for name, group in problem["attributes"].items() for v in group}
    given: dict[tuple[int, str], str | None] = {}  # None: the cell was filled twice
    house = None
    for token in tokens[first:]:
        if token in markers:
            house = markers[token]
        elif house is not None and token in attribute_of:
            cell = (house, attribute_of[token])
            given[cell] = token if cell not in given else None
    right = sum(given.get((h, name)) == row[h] for name, row in grid.items() for h in range(n))
    total = n * len(grid)
    return Grade(tuple(tokens) == gold, value, right == total, right / total)


def check(problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    """Right when the asked value and every cell are right; partial credit: cell accuracy."""
    result = grade(problem, answer)
    return Score(result.value and result.puzzle, result.cells)
