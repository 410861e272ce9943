"""Held-out accuracy during training, through the harness that ``pencilbench eval`` uses.

Each evaluation is an ordinary run directory, ``OUT/evals/step-S``, that ``pencilbench
report`` reads. The mode matches the training format and the context budget is the training
context, so the figures are the ones ``pencilbench eval --max-context N`` would print.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pencilbench.bench.adapters.hf import HFAdapter
from pencilbench.bench.adapters.wrapper import CallPolicy, Client
from pencilbench.bench.errors import UserError
from pencilbench.bench.harness import EvalConfig, default_max_tokens, evaluate
from pencilbench.bench.metrics import summarize
from pencilbench.bench.store import ResultStore
from pencilbench.bench.train.loop import Evaluator, TrainConfig
from pencilbench.generators import __version__
from pencilbench.generators.export import read_records


def harness_evaluator(path: str, config: TrainConfig, *, limit: int = 64, batch: int = 16) -> Evaluator:
    """An evaluator of the first ``limit`` records of ``path`` for :func:`bench.train.loop.train`."""
    if limit < 1:
        raise UserError(f"--eval-limit must be >= 1, got {limit}")
    try:
        records = read_records(path)[:limit]
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read evaluation data {path}: {error}") from None
    if not records:
        raise UserError(f"evaluation data {path} has no records")
    eval_config = EvalConfig(config.format, "compact", default_max_tokens(records, config.format, "compact"),
                             config.context)
    name = f"hf:{config.out}"

    def run(model: Any, tokenizer: Any, step: int) -> dict[str, Any]:
        adapter = HFAdapter(config.out, model=model, tokenizer=tokenizer, device=config.device,
                            max_batch_size=batch)
        settings = {"data": str(path), "mode": eval_config.mode, "style": eval_config.style,
                    "max_tokens": eval_config.max_tokens, "max_context": eval_config.max_context, "step": step}
        with ResultStore(Path(config.out) / "evals" / f"step-{step}", create=True) as store:
            store.start_evaluation(name, eval_config.mode, eval_config.style, settings,
                                   {"pencilbench": __version__}, datetime.now(UTC).isoformat(timespec="seconds"))
            client = Client(adapter, CallPolicy(concurrency=batch))
            try:
                evaluate(records, client, eval_config, store, name, progress=False)
            finally:
                client.close()
            frame = store.samples()
        figures: dict[str, Any] = {"accuracy": round(float(frame["correct"].mean()), 4)}
        for row in summarize(frame):
            label = " ".join(f"{k}={v}" for k, v in json.loads(row["params"]).items())
            figures[f"{row['task']} {label}"] = f"{row['accuracy']:.3f} (peak {row['peak_max']})"
        return figures

    return run

