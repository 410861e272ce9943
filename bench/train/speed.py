"""Decoding speed of a Hugging Face model through the harness, with and without the KV cache
kept across calls (in PENCIL mode: kept up to each reduction, against recomputing the
reduced context after every one). Greedy decoding gives the same outputs both ways; the
figures say what keeping the cache saves."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pencilbench.bench.adapters.hf import HFAdapter
from pencilbench.bench.adapters.wrapper import CallPolicy, Client
from pencilbench.bench.harness import EvalConfig, default_max_tokens, evaluate
from pencilbench.bench.store import ResultStore


@dataclass(frozen=True)
class SpeedRow:
    reuse_cache: bool
    samples: int
    seconds: float
    generated_tokens: int
    computed_tokens: int  # context tokens run through the model (the cache spares the rest)
    context_tokens: int  # context tokens of every call
    outputs: tuple[str, ...]

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / max(self.seconds, 1e-9)


def decode_speed(model: str, records: Sequence[Mapping[str, Any]], *, mode: str = "pencil",
                 max_context: int | None = None, batch: int = 16, device: str = "cpu",
                 repeats: int = 3) -> list[SpeedRow]:
    """Evaluate ``records`` keeping the cache and recomputing; the fastest round of each."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    config = EvalConfig(mode, "compact", default_max_tokens(records, mode, "compact"), max_context)
    loaded = HFAdapter(model, device=device)
    _run(loaded, records[:1], config, 1)  # warm-up, untimed
    best: dict[bool, SpeedRow] = {}
    for _ in range(repeats):
        for reuse in (True, False):
            adapter = HFAdapter(model, device=device, max_batch_size=batch, reuse_cache=reuse,
                                model=loaded.model, tokenizer=loaded.tokenizer)
            row = _run(adapter, records, config, batch)
            if reuse not in best or row.seconds < best[reuse].seconds:
                best[reuse] = row
    return [best[True], best[False]]


def _run(adapter: HFAdapter, records: Sequence[Mapping[str, Any]], config: EvalConfig, batch: int) -> SpeedRow:
    with tempfile.TemporaryDirectory() as run_dir, ResultStore(run_dir, create=True) as store:
        client = Client(adapter, CallPolicy(concurrency=batch))
        try:
            summary = evaluate(records, client, config, store, adapter.name, progress=False)
        finally:
            client.close()
        outputs = tuple(store.samples()["output"])
    return SpeedRow(adapter.reuse_cache, summary.written, summary.seconds, summary.tokens,
                    adapter.stats["computed_tokens"], adapter.stats["prompt_tokens"], outputs)
