"""pencilbench: synthetic long-reasoning benchmarks with gold CoT and PENCIL traces.

The Python API, for use from notebooks, training loops and other tools::

    import pencilbench
    records = pencilbench.generate("sat", 100, seed=0, split="test", variables=10)
    sample = pencilbench.score(records[0], "Answer: UNSAT", mode="direct", style="instruct")
    reward = pencilbench.reward(records[0], model_text)   # 1.0 or 0.0, for RL trainers
    records = pencilbench.load("data.jsonl")

The installed package owns the project's four parts as subpackages, so nothing else in
site-packages is shadowed: ``pencilbench.generators`` (tasks, traces, datasets),
``pencilbench.solvers`` (independent oracles), ``pencilbench.bench`` (the harness and the
command line) and ``pencilbench.reports`` (leaderboards). The functions below import them
when called, so ``import pencilbench`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pencilbench.generators import __version__

if TYPE_CHECKING:
    from pencilbench.bench.store import Sample

__all__ = ["__version__", "generate", "load", "reward", "score"]


def generate(task: str, n: int, seed: int = 0, split: str = "train", *, workers: int = 1,
             start: int = 0, **params: Any) -> list[dict[str, Any]]:
    """Records ``start .. start + n - 1`` of ``task`` at the size ``params`` (the task's knobs,
    e.g. ``variables=10``); the same bytes as ``pencilbench generate`` with the same
    arguments. ``ValueError`` names the allowed range of a bad argument."""
    from pencilbench.generators.dataset import Spec
    from pencilbench.generators.dataset import generate as records

    return list(records(Spec(task, params, split, seed), n, start=start, workers=workers))


def load(path: str | Path) -> list[dict[str, Any]]:
    """The records of a dataset file (``.jsonl`` or ``.parquet``) written by ``generate``."""
    from pencilbench.generators.export import read_records

    return read_records(path)


def score(record: Mapping[str, Any], text: str, mode: str = "direct", style: str = "instruct", *,
          max_tokens: int | None = None, max_context: int | None = None, model: str = "text") -> Sample:
    """Score a model's whole output for one record, exactly as ``pencilbench eval`` stores it.

    ``style="instruct"`` reads the answer from free text (``Answer: ...``) and counts words;
    ``"compact"`` expects the task's tokens. In ``mode="pencil"`` every ``[RETURN]`` in
    ``text`` reduces the live context, as in the inference loop. ``max_tokens`` defaults to
    what ``eval`` would use for this record alone; ``max_context`` to no budget. The result
    is the stored row: ``.correct``, ``.partial``, ``.status``, ``.parsed_answer``,
    ``.peak_context`` and the rest.
    """
    from pencilbench.bench.harness import EvalConfig, default_max_tokens, score_output

    budget = max_tokens if max_tokens is not None else default_max_tokens([record], mode, style)
    return score_output(record, text, EvalConfig(mode, style, budget, max_context), model)


def reward(record: Mapping[str, Any], text: str, mode: str = "direct", style: str = "instruct", *,
           partial: bool = False, max_tokens: int | None = None, max_context: int | None = None) -> float:
    """A reward for reinforcement learning: 1.0 when ``text`` answers ``record`` correctly,
    else 0.0 (malformed text, a budget exceeded or a broken PENCIL protocol score 0.0).
    ``partial=True`` gives the task's partial credit in [0, 1] instead (Einstein cells,
    addition digits), which is also 0.0 for a sample that did not finish normally."""
    sample = score(record, text, mode, style, max_tokens=max_tokens, max_context=max_context)
    return float(sample.partial) if partial else float(sample.correct)
