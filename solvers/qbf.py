"""QBF oracle: expansion of the universal variables into a propositional formula that
python-sat decides.

For every assignment tau of the universal variables, each clause is instantiated: it is
dropped when tau satisfies one of its universal literals, its other universal literals are
removed, and each existential variable y becomes a copy indexed by tau restricted to the
universals quantified before y (the existential player may only look at those). The
formula is true exactly when the conjunction of all instances is satisfiable. The cost is
2^(universal variables) copies, fine for the sizes of this suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any

from pencilbench.solvers.score import Score
from pysat.solvers import Solver

ANSWERS = {True: "True", False: "False"}


def expand(problem: Mapping[str, Any]) -> list[list[int]] | None:
    """The propositional expansion, or ``None`` when one instance is an empty clause."""
    prefix = [(kind, var) for kind, var in problem["prefix"]]
    bound = {var for _, var in prefix}
    # Variables missing from the prefix are free: existential and outermost.
    prefix = [("e", var) for var in range(1, problem["num_vars"] + 1) if var not in bound] + prefix
    universals = [var for kind, var in prefix if kind == "a"]
    seen: list[int] = []
    before: dict[int, tuple[int, ...]] = {}  # existential -> positions of earlier universals
    for kind, var in prefix:
        if kind == "a":
            seen.append(len(seen))
        else:
            before[var] = tuple(seen)
    copies: dict[tuple[int, tuple[bool, ...]], int] = {}
    expanded: list[list[int]] = []
    for values in product((False, True), repeat=len(universals)):
        tau = dict(zip(universals, values, strict=True))
        for clause in problem["clauses"]:
            instance: list[int] | None = []
            for literal in clause:
                var = abs(literal)
                if var in tau:
                    if tau[var] == (literal > 0):
                        instance = None
                        break
                    continue
                key = (var, tuple(values[i] for i in before[var]))
                copy = copies.setdefault(key, len(copies) + 1)
                instance.append(copy if literal > 0 else -copy)
            if instance is None:
                continue
            if not instance:
                return None
            expanded.append(instance)
    return expanded


def evaluate(problem: Mapping[str, Any]) -> bool:
    """Truth of a closed prenex QBF."""
    expanded = expand(problem)
    if expanded is None:
        return False
    with Solver(name="glucose4", bootstrap_with=expanded) as solver:
        return bool(solver.solve())


def check(problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    """``True`` or ``False``; no partial credit for one bit."""
    right = tuple(answer) == (ANSWERS[evaluate(problem)],)
    return Score(right, float(right))
