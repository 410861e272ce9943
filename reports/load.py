"""Reading run directories into one table of samples, one row per (entry, instance).

An entry is what the leaderboard ranks: a model in one mode, prompt style and setup (the
evaluation settings that change what the model is asked: endpoint, API kind, temperature,
seed, system prompt, budgets). Its label (``model:mode``, with ``:style`` when the runs hold
more than one style, and the settings that set it apart when one model and mode was run with
several setups, e.g. ``m:pencil [api=chat]``) names it in every table, plot legend and in
``--compare``. Only samples of the same entry and instance (and repeat) count as duplicates.
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

KEY = ("model", "mode", "style", "setup", "instance_id", "repeat")
# Recorded settings that do not change what the model is asked, so they do not split entries.
NOT_SETUP = frozenset({"data", "mode", "style", "max_tokens", "timeout", "retries", "concurrency", "samples"})


@dataclass(frozen=True)
class RunData:
    """Samples of one or more runs (``entry`` and ``size`` columns added), with the records
    and evaluation configurations they came from; ``duplicates`` counts rows dropped because
    an earlier run directory already held the same entry, instance and repeat."""

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
        setups = {(row.model, row.mode, row.style): setup_of(row.config) for row in evaluation.itertuples()}
        samples["setup"] = [setups.get(key, "{}") for key in
                            zip(samples["model"], samples["mode"], samples["style"], strict=True)]
        frames.append(samples.assign(run=position))
        evaluations.append(evaluation.assign(run=str(run_dir)))
        for instance_id, record in records.items():
            instances.setdefault(instance_id, record)
    samples = pd.concat(frames, ignore_index=True)
    before = len(samples)
    samples = samples.drop_duplicates(subset=list(KEY), keep="first")
    samples = samples.sort_values(list(KEY), kind="stable").reset_index(drop=True)
    several_styles = samples["style"].nunique() > 1
    base = {key: f"{key[0]}:{key[1]}:{key[2]}" if several_styles else f"{key[0]}:{key[1]}"
            for key in set(zip(samples["model"], samples["mode"], samples["style"], strict=True))}
    labels = entry_labels(base, set(zip(samples["model"], samples["mode"], samples["style"], samples["setup"],
                                        strict=True)))
    samples["entry"] = [labels[key] for key in
                        zip(samples["model"], samples["mode"], samples["style"], samples["setup"], strict=True)]
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


def setup_of(config: str) -> str:
    """The canonical JSON of the settings of an evaluation that set its entry apart."""
    values = json.loads(config)
    return json.dumps({name: value for name, value in values.items() if name not in NOT_SETUP and value is not None},
                      sort_keys=True)


def entry_labels(base: Mapping[tuple[str, str, str], str],
                 keys: set[tuple[str, str, str, str]]) -> dict[tuple[str, str, str, str], str]:
    """Labels of (model, mode, style, setup): the base label, and where one base label has
    several setups, the settings in which they differ."""
    by_base: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for model, mode, style, setup in keys:
        by_base.setdefault((model, mode, style), []).append(json.loads(setup))
    labels = {}
    for model, mode, style, setup in keys:
        label = base[(model, mode, style)]
        setups = by_base[(model, mode, style)]
        if len(setups) > 1:
            mine = json.loads(setup)
            names = sorted({name for other in setups for name in other})
            differing = [name for name in names if len({json.dumps(o.get(name)) for o in setups}) > 1]
            label += " [" + ", ".join(f"{name}={mine.get(name)}" for name in differing) + "]"
        labels[(model, mode, style, setup)] = label
    return labels


def size_label(task: str, params: str) -> str:
    """The task's own short label of a size (``operands=2 digits=5``), from canonical JSON."""
    values = json.loads(params)
    try:
        return get_task(task).params(values).label()
    except ValueError:  # a task or knob this version no longer knows: keep the stored values
        return " ".join(f"{name}={value}" for name, value in sorted(values.items()))
