"""The numbers of a report: rankings, per-size tables, budget curves and paired comparisons.

Every figure here is a plain function of the samples table, so the same runs give the same
numbers. Accuracy counts a sample as solved when the oracle accepted its answer (the
harness stores ``correct``; a reply stopped by a budget is scored on the answer it finished).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pencilbench.bench.errors import UserError
from pencilbench.bench.metrics import accuracy_within, wilson
from pencilbench.reports.load import RunData

BOOTSTRAP_SEED = 20250314
BOOTSTRAP_REPS = 10_000


@dataclass(frozen=True)
class Score:
    """Accuracy of one entry on one task (all sizes pooled) with its Wilson 95% interval."""

    samples: int
    correct: int
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True)
class Standing:
    """One leaderboard row. ``accuracy`` is the macro average over the entry's tasks;
    ``inseparable`` lists the ranks whose intervals overlap this one's."""

    rank: int
    entry: str
    model: str
    mode: str
    style: str
    accuracy: float
    low: float
    high: float
    inseparable: tuple[int, ...]
    tasks: Mapping[str, Score]
    samples: int
    parse_failure: float
    mean_peak_context: float
    mean_generated: float
    total_generated: int
    mean_reductions: float
    mean_model_tokens: float | None  # as the model's server counted them; None when it did not


def task_score(correct: pd.Series) -> Score:
    n, k = len(correct), int(correct.sum())
    low, high = wilson(k, n)
    return Score(n, k, k / n, low, high)


def macro_interval(scores: Sequence[Score]) -> tuple[float, float, float]:
    """Macro average of task accuracies and its Wilson interval at the effective sample size.

    Each task weighs 1/T, so the average behaves like a proportion over
    ``n_eff = 1 / sum(1 / (T^2 n_t))`` samples (Kish); with equal task sizes that is simply the
    total number of samples.
    """
    count = len(scores)
    mean = sum(s.accuracy for s in scores) / count
    effective = 1.0 / sum(1.0 / (count * count * s.samples) for s in scores)
    low, high = wilson(mean * effective, effective)
    return mean, low, high


def leaderboard(data: RunData) -> list[Standing]:
    """Entries ranked by macro accuracy (at equal accuracy the smaller mean peak context first,
    then the label), each with the ranks whose 95% intervals overlap its own."""
    rows = []
    for entry, group in data.samples.groupby("entry", sort=True):
        tasks = {task: task_score(part["correct"]) for task, part in group.groupby("task", sort=True)}
        accuracy, low, high = macro_interval(list(tasks.values()))
        first = group.iloc[0]
        rows.append(
            dict(
                entry=entry,
                model=first["model"],
                mode=first["mode"],
                style=first["style"],
                accuracy=accuracy,
                low=low,
                high=high,
                tasks=tasks,
                samples=len(group),
                parse_failure=float(1.0 - group["parse_ok"].mean()),
                mean_peak_context=float(group["peak_context"].mean()),
                mean_generated=float(group["generated_tokens"].mean()),
                total_generated=int(group["generated_tokens"].sum()),
                mean_reductions=float(group["reductions"].mean()),
                mean_model_tokens=(float(group["model_tokens"].mean()) if group["model_tokens"].notna().all()
                                   else None),
            )
        )
    rows.sort(key=lambda row: (-row["accuracy"], row["mean_peak_context"], row["entry"]))
    standings = []
    for rank, row in enumerate(rows, start=1):
        overlapping = tuple(
            other_rank
            for other_rank, other in enumerate(rows, start=1)
            if other_rank != rank and other["low"] <= row["high"] and row["low"] <= other["high"]
        )
        standings.append(Standing(rank=rank, inseparable=overlapping, **row))
    return standings


@dataclass(frozen=True)
class Size:
    """One size of a task, with the gold traces' contexts averaged over its instances."""

    params: str
    label: str
    gold_cot_context: float
    gold_pencil_context: float


def sizes(data: RunData, task: str) -> list[Size]:
    """The task's evaluated sizes, smallest gold CoT context first."""
    frame = data.samples[data.samples["task"] == task]
    out = []
    for params, group in frame.groupby("params", sort=True):
        stats = [data.instances[i]["stats"] for i in sorted(set(group["instance_id"])) if i in data.instances]
        cot = float(np.mean([s["prompt_tokens"] + s["cot_tokens"] for s in stats])) if stats else math.nan
        pencil = float(np.mean([s["pencil_max_context"] for s in stats])) if stats else math.nan
        out.append(Size(params, group["size"].iloc[0], cot, pencil))
    out.sort(key=lambda size: (math.isnan(size.gold_cot_context), size.gold_cot_context, size.params))
    return out


def size_axis(task_sizes: Sequence[Size]) -> tuple[str, list[float]] | None:
    """The one knob that varies between the sizes and its values, or ``None`` when several do
    (then sizes are shown in order of their gold CoT context)."""
    values = [json.loads(size.params) for size in task_sizes]
    varying = sorted(name for name in values[0] if len({json.dumps(v.get(name)) for v in values}) > 1)
    if len(varying) != 1 or len(values) < 2:
        return None
    name = varying[0]
    points = [v[name] for v in values]
    if not all(isinstance(p, int | float) and not isinstance(p, bool) for p in points):
        return None
    return name, [float(p) for p in points]


@dataclass(frozen=True)
class SizeRow:
    """One entry at one size of a task."""

    size: Size
    entry: str
    score: Score
    partial: float
    peak_mean: float
    peak_max: int


def size_rows(data: RunData, task: str) -> list[SizeRow]:
    frame = data.samples[data.samples["task"] == task]
    rows = []
    for size in sizes(data, task):
        at_size = frame[frame["params"] == size.params]
        for entry, group in at_size.groupby("entry", sort=True):
            rows.append(
                SizeRow(
                    size=size,
                    entry=entry,
                    score=task_score(group["correct"]),
                    partial=float(group["partial"].mean()),
                    peak_mean=float(group["peak_context"].mean()),
                    peak_max=int(group["peak_context"].max()),
                )
            )
    return rows


def budget_curve(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Macro average over tasks of the share solved within a context budget B, as a step
    function: ``shares[i]`` holds for ``budgets[i] <= B < budgets[i + 1]``."""
    tasks = sorted(frame["task"].unique())
    solved = frame[frame["correct"]]
    budgets = np.unique(solved["peak_context"].to_numpy()).astype(np.int64)
    shares = np.zeros(len(budgets))
    for task in tasks:
        peaks = np.sort(solved.loc[solved["task"] == task, "peak_context"].to_numpy())
        total = int((frame["task"] == task).sum())
        shares += np.searchsorted(peaks, budgets, side="right") / total
    return budgets, shares / len(tasks)


def solved_within(frame: pd.DataFrame, budget: int) -> float:
    """One point of :func:`budget_curve`: the harness's per-task share, averaged over tasks."""
    shares = [
        accuracy_within(part["correct"].tolist(), part["peak_context"].tolist(), budget)
        for _, part in frame.groupby("task", sort=True)
    ]
    return float(np.mean(shares))


def budget_grid(frame: pd.DataFrame, most: int = 10) -> list[int]:
    """Powers of two spanning the peak contexts seen, thinned to at most ``most`` columns
    (unlike the harness's tables, which start at 256, small runs get useful columns too)."""
    peaks = frame["peak_context"].to_numpy()
    low = max(0, math.floor(math.log2(max(1, int(peaks.min())))))
    high = math.ceil(math.log2(max(2, int(peaks.max()))))
    exponents = list(range(low, high + 1))
    step = math.ceil(len(exponents) / most)
    chosen = exponents[::-1][::step][::-1]  # thin from the top so the largest budget stays
    return [2**e for e in chosen]


@dataclass(frozen=True)
class Difference:
    """Accuracy of A minus accuracy of B on the instances both were evaluated on, with a
    paired bootstrap 95% interval; ``a_only``/``b_only`` count instances only one solved."""

    scope: str
    shared: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    low: float
    high: float
    a_only: int
    b_only: int


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    overall: Difference  # macro average over the shared tasks
    tasks: tuple[Difference, ...]


def compare(data: RunData, a: str, b: str, *, seed: int = BOOTSTRAP_SEED, reps: int = BOOTSTRAP_REPS) -> Comparison:
    """Paired comparison of two entries on their shared instances (the first sample of each,
    when an entry drew several).

    Pairs are resampled within each task (a stratified bootstrap), and the macro difference
    is recomputed for every resample. Per pair the difference is -1, 0 or +1, so resampling
    ``n`` pairs amounts to one multinomial draw of the three counts: exact and O(reps).
    """
    known = data.entries()
    for label in (a, b):
        if label not in known:
            raise UserError(f"no entry {label!r} in these runs; entries: {', '.join(known)}")
    if a == b:
        raise UserError(f"compare two different entries, got {a!r} twice")
    frame = data.samples[data.samples["repeat"] == 0]
    left = frame[frame["entry"] == a].set_index("instance_id")
    right = frame[frame["entry"] == b].set_index("instance_id")
    shared = sorted(set(left.index) & set(right.index))
    if not shared:
        raise UserError(f"{a} and {b} share no instances, so they cannot be compared pairwise")
    pairs = pd.DataFrame(
        {
            "task": left.loc[shared, "task"].to_numpy(),
            "a": left.loc[shared, "correct"].to_numpy(dtype=bool),
            "b": right.loc[shared, "correct"].to_numpy(dtype=bool),
        }
    )
    rng = np.random.default_rng(seed)
    per_task, draws = [], []
    for task, group in pairs.groupby("task", sort=True):
        a_only = int((group["a"] & ~group["b"]).sum())
        b_only = int((group["b"] & ~group["a"]).sum())
        n = len(group)
        counts = rng.multinomial(n, [a_only / n, b_only / n, 1 - (a_only + b_only) / n], size=reps)
        draw = (counts[:, 0] - counts[:, 1]) / n
        draws.append(draw)
        per_task.append(_difference(task, n, float(group["a"].mean()), float(group["b"].mean()), draw, a_only, b_only))
    macro = np.mean(draws, axis=0)
    overall = _difference(
        "macro average",
        len(pairs),
        float(np.mean([d.accuracy_a for d in per_task])),
        float(np.mean([d.accuracy_b for d in per_task])),
        macro,
        sum(d.a_only for d in per_task),
        sum(d.b_only for d in per_task),
    )
    return Comparison(a, b, overall, tuple(per_task))


def _difference(
    scope: str, shared: int, acc_a: float, acc_b: float, draws: np.ndarray, a_only: int, b_only: int
) -> Difference:
    low, high = np.quantile(draws, [0.025, 0.975])
    return Difference(scope, shared, acc_a, acc_b, acc_a - acc_b, float(low), float(high), a_only, b_only)
