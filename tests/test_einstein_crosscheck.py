"""The Einstein oracle (CNF in python-sat) against a second, independent solver.

python-constraint models each value's house as a variable; both must find the same single
solution. It is too slow to be the oracle at large sizes, which is why it only checks it.
"""

import pytest
from constraint import AllDifferentConstraint, Problem
from pencilbench.generators.dataset import Spec, generate
from pencilbench.solvers.einstein import solutions

# Written out again here, from the clue definitions, so the two solvers share nothing.
HOUSES_ALLOWED = {
    "same": lambda a, b: a == b,
    "not_same": lambda a, b: a != b,
    "left": lambda a, b: b - a == 1,
    "right": lambda a, b: a - b == 1,
    "next_to": lambda a, b: a - b in (-1, 1),
    "left_of": lambda a, b: a < b,
    "right_of": lambda a, b: b < a,
}


def constraint_solutions(problem):
    n = problem["houses"]
    model = Problem()
    for group in problem["attributes"].values():
        model.addVariables(group, range(1, n + 1))
        model.addConstraint(AllDifferentConstraint(), group)
    for clue in problem["clues"]:
        a = clue["a"][1]
        if clue["kind"] == "at":
            model.addConstraint(lambda h, k=clue["house"]: h == k, [a])
        elif clue["kind"] == "not_at":
            model.addConstraint(lambda h, k=clue["house"]: h != k, [a])
        else:
            model.addConstraint(HOUSES_ALLOWED[clue["kind"]], [a, clue["b"][1]])
    return model.getSolutions()


@pytest.mark.parametrize("size", [(2, 3), (3, 3), (4, 3), (4, 4)])
def test_two_independent_solvers_agree_on_the_unique_solution(size):
    houses, attributes = size
    spec = Spec("einstein", {"houses": houses, "attributes": attributes}, "test", 4)
    for record in generate(spec, 25):
        problem = record["problem"]
        found = constraint_solutions(problem)
        assert len(found) == 1
        grid = {attr: sorted(group, key=found[0].get) for attr, group in problem["attributes"].items()}
        assert grid == problem["solution"]
        assert solutions(problem) == [problem["solution"]]
