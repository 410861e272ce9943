"""Shallow cues in SAT labels: how well a logistic regression on polarity statistics
separates satisfiable from unsatisfiable formulas without solving them.

A benchmark whose labels a model can guess from surface statistics rewards guessing, not
reasoning. The features are the ones that betray independently drawn random formulas: the
sum over variables of |positive - negative occurrences| (formulas whose variables lean one
way are easier to satisfy), the number of duplicate clauses (fewer distinct constraints),
the number of pure literals (variables that occur with one sign only, free to satisfy every
clause they are in), and the clause count. Held-out accuracy near 50% means the labels carry
no such cue; the regression is a few lines of numpy (Newton's method on the L2-regularised
log-loss over standardised features), so the check needs nothing beyond the core install.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.dataset import Spec, draw_problem
from pencilbench.generators.sat import python_sat_verdict

FEATURES = ("polarity_imbalance", "duplicate_clauses", "pure_literals", "clauses")


def polarity_features(problem: Mapping[str, Any]) -> list[float]:
    """The shallow statistics of one CNF formula (``problem["clauses"]``), in ``FEATURES`` order."""
    clauses = problem["clauses"]
    positive: dict[int, int] = {}
    negative: dict[int, int] = {}
    for clause in clauses:
        for literal in clause:
            side = positive if literal > 0 else negative
            side[abs(literal)] = side.get(abs(literal), 0) + 1
    variables = positive.keys() | negative.keys()
    imbalance = sum(abs(positive.get(v, 0) - negative.get(v, 0)) for v in variables)
    pure = sum(1 for v in variables if not positive.get(v) or not negative.get(v))
    distinct = {tuple(sorted(clause)) for clause in clauses}
    return [float(imbalance), float(len(clauses) - len(distinct)), float(pure), float(len(clauses))]


@dataclass(frozen=True)
class Logistic:
    """A fitted logistic regression over standardised features."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # bias first

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _design(x, self.mean, self.scale) @ self.weights > 0


def _design(x: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
    return np.hstack([np.ones((len(x), 1)), (x - mean) / scale])


def fit_logistic(x: np.ndarray, y: np.ndarray, *, l2: float = 1e-3, steps: int = 50) -> Logistic:
    """Minimise the mean log-loss plus ``l2/2 * |w|^2`` (bias included) by Newton's method;
    the small penalty keeps the weights finite when the classes separate."""
    if len(x) == 0:
        raise ValueError("fit_logistic needs at least one example")
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale == 0] = 1.0
    design = _design(x, mean, scale)
    weights = np.zeros(design.shape[1])
    target = y.astype(float)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(design @ weights)))
        gradient = design.T @ (p - target) / len(x) + l2 * weights
        hessian = (design.T * (p * (1 - p))) @ design / len(x) + l2 * np.eye(len(weights))
        step = np.linalg.solve(hessian, gradient)
        weights -= step
        if np.abs(step).max() < 1e-10:
            break
    return Logistic(mean, scale, weights)


@dataclass(frozen=True)
class CueReport:
    """Accuracies of the shallow classifier, and the share of the commoner test label (the
    accuracy of always guessing it)."""

    train_accuracy: float
    test_accuracy: float
    test_majority: float
    train_size: int
    test_size: int


def labelled_problems(params: Mapping[str, Any], split: str, seed: int, count: int,
                      *, start: int = 0) -> tuple[list[dict[str, Any]], list[bool]]:
    """Problems ``start .. start + count - 1`` of a SAT stream (no traces, which the check
    does not need) and their labels, decided by python-sat rather than taken from the
    sampler."""
    task, size = Spec("sat", params, split, seed).resolve()
    problems = [draw_problem(task, size, split, seed, i) for i in range(start, start + count)]
    return problems, [python_sat_verdict(problem["clauses"]) for problem in problems]


def shallow_accuracy(train: Sequence[Mapping[str, Any]], train_labels: Sequence[bool],
                     test: Sequence[Mapping[str, Any]], test_labels: Sequence[bool]) -> CueReport:
    """Fit on the ``train`` problems, score on the held-out ``test`` problems."""
    if not train or not test:
        raise ValueError("shallow_accuracy needs at least one training and one test problem")
    if len(train) != len(train_labels) or len(test) != len(test_labels):
        raise ValueError("shallow_accuracy needs one label per problem")
    x_train = np.array([polarity_features(problem) for problem in train])
    x_test = np.array([polarity_features(problem) for problem in test])
    y_train, y_test = np.array(train_labels, dtype=bool), np.array(test_labels, dtype=bool)
    model = fit_logistic(x_train, y_train)
    share = float(y_test.mean())
    return CueReport(float((model.predict(x_train) == y_train).mean()),
                     float((model.predict(x_test) == y_test).mean()), max(share, 1 - share),
                     len(train), len(test))
