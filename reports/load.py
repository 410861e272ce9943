"""Reading run directories into one table of samples, one row per (entry, instance).

An entry is what the leaderboard ranks: a (model, mode) pair, and the prompt style too when
the runs hold more than one style. Its label (``model:mode`` or ``model:mode:style``) names
it in every table, plot legend and in ``--compare``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pencilbench.bench.errors import UserError
from pencilbench.bench.store import ResultStore, is_run_dir
from pencilbench.generators.registry import get_task

KEY = ("model", "mode", "style", "instance_id")


@dataclass(frozen=True)
class RunData:
    """Samples of one or more runs (``entry`` and ``size`` columns added), with the records
    and evaluation configurations they came from; ``duplicates`` counts rows dropped because
    an earlier run directory already held the same (model, mode, style, instance)."""

    run_dirs: tuple[str, ...]
    samples: pd.DataFrame
    instances: Mapping[str, Mapping[str, Any]]
    evaluations: pd.DataFrame
    duplicates: int

    def entries(self) -> list[str]:
        return sorted(self.samples["entry"].unique())

    def tasks(self) -> list[str]:
        return sorted(self.samples["task"].unique())


def load_runs(run_dirs: Sequence[str | Path]) -> RunData:
    """Every finished sample of the given runs; ``UserError`` for anything that is not a run."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    frames, evaluations, instances = [], [], {}
    for position, run_dir in enumerate(run_dirs):
        samples, evaluation, records = _read_run(Path(run_dir))
        frames.append(samples.assign(run=position))
        evaluations.append(evaluation.assign(run=str(run_dir)))
        for instance_id, record in records.items():
            instances.setdefault(instance_id, record)
    samples = pd.concat(frames, ignore_index=True)
    before = len(samples)
    samples = samples.drop_duplicates(subset=list(KEY), keep="first")
    samples = samples.sort_values(list(KEY), kind="stable").reset_index(drop=True)
    several_styles = samples["style"].nunique() > 1
    samples["entry"] = [
        f"{model}:{mode}:{style}" if several_styles else f"{model}:{mode}"
        for model, mode, style in zip(samples["model"], samples["mode"], samples["style"], strict=True)
    ]
    labels = {key: size_label(*key) for key in set(zip(samples["task"], samples["params"], strict=True))}
    samples["size"] = [labels[key] for key in zip(samples["task"], samples["params"], strict=True)]
    return RunData(
        run_dirs=tuple(str(path) for path in run_dirs),
        samples=samples,
        instances=instances,
        evaluations=pd.concat(evaluations, ignore_index=True),
        duplicates=before - len(samples),
    )


def _read_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict[str, Any]]]:
    if not is_run_dir(run_dir):
        raise UserError(f"{run_dir} is not a pencilbench run directory (no results store in it)")
    try:
        with ResultStore(run_dir) as store:
            samples, evaluations, records = store.samples(), store.evaluations(), store.instances()
    except sqlite3.DatabaseError as error:
        raise UserError(f"cannot read the results store of {run_dir}: {error}") from None
    if samples.empty:
        raise UserError(f"run {run_dir} has no finished samples yet")
    return samples, evaluations, records


def size_label(task: str, params: str) -> str:
    """The task's own short label of a size (``operands=2 digits=5``), from canonical JSON."""
    values = json.loads(params)
    try:
        return get_task(task).params(values).label()
    except ValueError:  # a task or knob this version no longer knows: keep the stored values
        return " ".join(f"{name}={value}" for name, value in sorted(values.items()))
