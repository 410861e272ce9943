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


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of an instance sampled ``n`` times with ``c`` correct (Chen et al.
    2021): the chance that at least one of ``k`` samples drawn without replacement from the
    ``n`` is correct, ``1 - C(n-c, k) / C(n, k)``."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_correct(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """maj@k of one instance: whether the most frequent parsed answer among its samples is
    correct (samples without an answer do not vote; a tie goes to the answer seen first)."""
    votes: dict[str, int] = {}
    right: dict[str, bool] = {}
    for answer, ok in zip(answers, correct, strict=True):
        if answer is None:
            continue
        votes[answer] = votes.get(answer, 0) + 1
        right.setdefault(answer, bool(ok))
    if not votes:
        return False
    return right[max(votes, key=votes.__getitem__)]


def sampling_summary(samples: pd.DataFrame, k: int) -> list[dict[str, Any]]:
    """One row per (model, mode, style, task, size) for runs with several samples per
    instance: instances, mean pass@1 (over every sample), pass@k (the unbiased estimator
    over every sample an instance has) and maj@k (majority vote of the first ``k``
    samples), averaged over the instances that have at least ``k`` samples."""
    if samples.empty:
        return []
    rows = []
    keys = ["model", "mode", "style", "task", "params"]
    for key, group in samples.groupby(keys, sort=True):
        pass1, passk, majk = [], [], []
        for _, item in group.sort_values("repeat").groupby("instance_id", sort=True):
            n, c = len(item), int(item["correct"].astype(bool).sum())
            pass1.append(c / n)
            if n >= k:
                passk.append(pass_at_k(n, c, k))
                first = item.iloc[:k]
                answers = [None if not ok or pd.isna(a) else str(a)
                           for a, ok in zip(first["parsed_answer"], first["parse_ok"], strict=True)]
                majk.append(majority_correct(answers, first["correct"].astype(bool).tolist()))
        row = dict(zip(keys, key, strict=True))
        row.update(instances=len(pass1), k=k, pass1=float(sum(pass1) / len(pass1)),
                   passk=float(sum(passk) / len(passk)) if passk else None,
                   majk=float(sum(majk) / len(majk)) if majk else None)
        rows.append(row)
    return rows
