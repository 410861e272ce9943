"""SAT labels without shallow cues: paired (SR(n)-style) sampling, and the logistic
regression on polarity statistics that checks it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
from pencilbench.generators.cues import fit_logistic, labelled_problems, polarity_features, shallow_accuracy
from pencilbench.generators.registry import get_task
from pencilbench.generators.sat import python_sat_verdict

TASK = get_task("sat")
HELD_OUT = 1500  # problems per split for the accuracy checks


@pytest.mark.parametrize("variables", [6, 10, 20])
def test_paired_twins_differ_in_one_sign_of_the_deciding_clause(variables):
    params = TASK.params({"variables": variables})
    for seed in range(8):
        unsat = TASK.sample(params, np.random.default_rng(seed), 0.9)["clauses"]
        sat = TASK.sample(params, np.random.default_rng(seed), 0.1)["clauses"]
        assert not python_sat_verdict(unsat) and python_sat_verdict(sat)
        only_unsat = Counter(map(tuple, unsat)) - Counter(map(tuple, sat))
        only_sat = Counter(map(tuple, sat)) - Counter(map(tuple, unsat))
        assert sum(only_unsat.values()) == sum(only_sat.values()) == 1
        (deciding,), (twin,) = only_unsat, only_sat
        assert [abs(lit) for lit in deciding] == [abs(lit) for lit in twin]
        assert sum(a != b for a, b in zip(deciding, twin)) == 1
        rest = list(unsat)
        rest.remove(list(deciding))
        assert python_sat_verdict(rest)  # the deciding clause is the one that makes it unsatisfiable


def test_deciding_clause_has_no_fixed_place():
    params = TASK.params({"variables": 8})
    places = set()
    for seed in range(20):
        unsat = TASK.sample(params, np.random.default_rng(seed), 0.9)["clauses"]
        sat = TASK.sample(params, np.random.default_rng(seed), 0.1)["clauses"]
        places.add(next(i for i, clause in enumerate(unsat) if clause not in sat))
    assert len(places) > 10


def test_sampling_knob_is_validated():
    with pytest.raises(ValueError, match="sampling must be one of paired, independent"):
        TASK.params({"sampling": "planted"})
    assert TASK.params({}).sampling == "paired"


def test_shallow_classifier_is_at_chance_on_paired_labels():
    train = labelled_problems({"variables": 10}, "train", 0, HELD_OUT)
    test = labelled_problems({"variables": 10}, "test", 0, HELD_OUT)
    report = shallow_accuracy(*train, *test)
    assert abs(report.test_majority - 0.5) <= 0.02
    assert abs(report.test_accuracy - 0.5) <= 0.03, report


def test_shallow_classifier_finds_the_cues_of_independent_labels():
    """The same check on formulas drawn independently per label: well above chance, so the
    classifier has the power to see cues when they are there."""
    size = {"variables": 10, "sampling": "independent"}
    report = shallow_accuracy(*labelled_problems(size, "train", 0, HELD_OUT),
                              *labelled_problems(size, "test", 0, HELD_OUT))
    assert report.test_accuracy >= 0.6, report


def test_polarity_features_count_what_they_say():
    problem = {"num_vars": 4, "clauses": [[1, 2, -3], [1, 2, -3], [1, -2, 4], [2, 3, 4]]}
    # imbalance |3-0| + |3-1| + |1-2| + |2-0| = 8; one duplicate; pure: 1 and 4
    assert polarity_features(problem) == [8.0, 1.0, 2.0, 4.0]


def test_logistic_regression_learns_a_linear_rule():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3)) * [1.0, 5.0, 0.0]  # a constant column must not break it
    y = 2 * x[:, 0] - 0.3 * x[:, 1] + 0.5 > 0
    model = fit_logistic(x[:300], y[:300])
    assert (model.predict(x[300:]) == y[300:]).mean() >= 0.95
    with pytest.raises(ValueError, match="at least one"):
        fit_logistic(np.zeros((0, 2)), np.zeros(0))


def test_cues_command_prints_both_samplings():
    run = subprocess.run([sys.executable, "-m", "pencilbench", "cues", "-p", "variables=6", "-n", "40"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("paired") for line in lines) and any(line.startswith("independent") for line in lines)


@pytest.mark.parametrize(("argv", "fragment"), [
    (["-p", "variables=2"], "variables must be in [3, 100]"),
    (["-p", "sampling=planted"], "sampling must be one of paired, independent"),
    (["-n", "0"], "count must be >= 1"),
])
def test_cues_command_rejects_bad_input_in_one_line(argv, fragment):
    run = subprocess.run([sys.executable, "-m", "pencilbench", "cues", *argv], capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and fragment in run.stderr and "Traceback" not in run.stderr
