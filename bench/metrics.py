"""Statistics shared by the harness tables and the reports."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pencilbench.bench.harness import BUDGET_STOPS


def wilson(successes: int, total: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); ``(0, 1)`` when empty."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


FIRST_BUDGET = 256


def budgets(largest: int) -> list[int]:
    """Context budgets for a table: powers of two from 256 up to the first that holds
    ``largest`` (the largest peak context seen)."""
    out = [FIRST_BUDGET]
    while out[-1] < largest:
        out.append(out[-1] * 2)
    return out


def accuracy_within(correct: Sequence[bool], peaks: Sequence[int], budget: int) -> float:
    """Share of samples solved within a context budget: correct and peak context <= budget."""
    if not correct:
        return 0.0
    return sum(bool(c) and p <= budget for c, p in zip(correct, peaks, strict=True)) / len(correct)


def summarize(samples: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per (model, mode, style, task, size): n, accuracy with its Wilson 95%
    interval, mean partial credit, parse-failure rate (share of samples with no parsable
    answer, those stopped by an error, or by a budget before finishing an answer, included),
    the share of samples stopped by a budget or the reply byte cap (``stopped``; such a
    sample is still scored on the answer it finished, so it may count as correct), mean and
    max peak context, and accuracy within each budget of :func:`budgets` (keys ``acc@B``)
    over the whole frame."""
    if samples.empty:
        return []
    grid = budgets(int(samples["peak_context"].max()))
    rows = []
    keys = ["model", "mode", "style", "task", "params"]
    for key, group in samples.groupby(keys, sort=True):
        correct, peaks = group["correct"].astype(bool).tolist(), group["peak_context"].tolist()
        n, solved = len(group), int(sum(correct))
        low, high = wilson(solved, n)
        row = dict(zip(keys, key, strict=True))
        row.update(n=n, accuracy=solved / n, ci_low=low, ci_high=high,
                   partial=float(group["partial"].mean()),
                   parse_failures=float((~group["parse_ok"].astype(bool)).mean()),
                   stopped=float(group["status"].isin(BUDGET_STOPS).mean()),
                   peak_mean=float(group["peak_context"].mean()), peak_max=int(group["peak_context"].max()))
        row.update({f"acc@{b}": accuracy_within(correct, peaks, b) for b in grid})
        rows.append(row)
    return rows
