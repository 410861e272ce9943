"""A local Hugging Face causal language model as an adapter (needs the ``train`` extra).

Requests are decoded greedily in batches with left padding. After each request the key and
value cache of its sequence is kept; a later request whose token ids start with the same
prefix (in PENCIL mode the reduced context keeps the prompt and what earlier reductions
kept) starts from that cache instead of recomputing the prefix. The kept caches form a small
least-recently-used pool, so requests need no sequence identity.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from pencilbench.bench.adapters.base import Completion, Request
from pencilbench.bench.errors import UserError
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache
from transformers.utils import logging as hf_logging


@dataclass(frozen=True)
class _Entry:
    """The cache of one finished sequence: per layer keys and values ``[heads, len(ids), dim]``."""

    ids: np.ndarray
    kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]


@dataclass(frozen=True)
class _Row:
    """One request of a batch: its token ids and how many leading ids a cache entry covers."""

    request: Request
    ids: list[int]
    entry: _Entry | None
    reusable: int


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


class HFAdapter:
    """Greedy decoding of a causal LM saved with ``save_pretrained`` (model and tokenizer).

    ``reuse_cache=False`` recomputes every context from scratch (for speed comparisons);
    ``cache_entries`` bounds how many sequence caches are kept (default: four batches' worth).
    ``model`` and ``tokenizer`` may be passed already loaded (training evaluates the model
    it is training this way); ``path`` then only names it. ``stats`` counts the context
    tokens of all calls, those actually run through the model, and the generated tokens.
    """

    def __init__(self, path: str | Path, *, device: str = "cpu", max_batch_size: int = 16,
                 reuse_cache: bool = True, cache_entries: int | None = None,
                 model: torch.nn.Module | None = None, tokenizer: object | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if cache_entries is not None and cache_entries < 0:
            raise ValueError(f"cache_entries must be >= 0, got {cache_entries}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("device cuda was asked for but torch sees no CUDA device")
        self.name = f"hf:{path}"
        self.device = torch.device(device)
        if model is None or tokenizer is None:
            if not Path(path, "config.json").is_file():
                raise UserError(f"{path} holds no Hugging Face model (no config.json)")
            hf_logging.disable_progress_bar()  # loading a small model is quick; the bar is noise
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path)
        self.tokenizer = tokenizer
        self.model = model.to(self.device).eval()
        self.max_batch_size = max_batch_size
        self.reuse_cache = reuse_cache
        self.cache_entries = 4 * max_batch_size if cache_entries is None else cache_entries
        self.eos_id = tokenizer.eos_token_id
        pad = tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next_key = 0
        self._lock = threading.Lock()
        self.stats = {"prompt_tokens": 0, "computed_tokens": 0, "generated_tokens": 0}

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(self, request: Request) -> Completion:
        return self.complete_batch([request])[0]

    def complete_batch(self, requests: Sequence[Request]) -> list[Completion]:
        """Decode all requests; rows needing similar amounts of fresh computation share a batch."""
        with self._lock:
            rows = [self._plan(request) for request in requests]
            order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids) - rows[i].reusable)
            results: list[Completion | None] = [None] * len(rows)
            for start in range(0, len(order), self.max_batch_size):
                chunk = order[start : start + self.max_batch_size]
                for i, completion in zip(chunk, self._generate([rows[i] for i in chunk]), strict=True):
                    results[i] = completion
            return results  # type: ignore[return-value]

    def _plan(self, request: Request) -> _Row:
        ids = list(self.tokenizer(request.context)["input_ids"])
        if not ids:
            ids = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.pad_id]
        best, best_len = None, 0
        if self.reuse_cache:
            target = np.asarray(ids)
            for key, entry in self._entries.items():
                length = _common_prefix(entry.ids, target)
                if length > best_len:
                    best, best_len = key, length
        if best is None:
            return _Row(request, ids, None, 0)
        self._entries.move_to_end(best)
        # At least the last token is fed to the model: its logits start the continuation.
        return _Row(request, ids, self._entries[best], min(best_len, len(ids) - 1))

    def _keep(self, ids: list[int], kv: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> None:
        if not self.reuse_cache or self.cache_entries == 0:
            return
        self._entries[self._next_key] = _Entry(np.asarray(ids), kv)
        self._next_key += 1
        while len(self._entries) > self.cache_entries:
            self._entries.popitem(last=False)

    @torch.no_grad()
    def _generate(self, rows: list[_Row]) -> list[Completion]:
        """Greedy decoding of one batch.

        Layout: every row ends at the same column. The fresh block is ``width`` columns wide,
        enough for the row with the most uncached tokens; a row with a cache entry takes its
        last ``width`` tokens fresh and the rest from the cache, so the cache block stays
        left-padded like an ordinary batch.
        """
        out: list[Completion | None] = [None] * len(rows)
        live = [i for i, row in enumerate(rows) if row.request.max_tokens > 0]
        for i, row in enumerate(rows):
            if row.request.max_tokens <= 0:
                out[i] = Completion("", "length", None, len(row.ids), 0)
        if not live:
            return out  # type: ignore[return-value]
        rows = [rows[i] for i in live]
        lengths = [len(row.ids) for row in rows]
        width = max(n - row.reusable for n, row in zip(lengths, rows, strict=True))
        cached = [max(0, n - width) for n in lengths]
        prefix = max(cached)
        total = prefix + width
        fresh = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), total), dtype=torch.long)
        positions = torch.zeros((len(rows), width), dtype=torch.long)
        for b, (row, n, c) in enumerate(zip(rows, lengths, cached, strict=True)):
            new = row.ids[c:]
            fresh[b, width - len(new):] = torch.tensor(new)
            mask[b, total - n:] = 1
            positions[b, width - len(new):] = torch.arange(c, n)
        cache = DynamicCache(config=self.model.config)
        if prefix:
            cache = DynamicCache(ddp_cache_data=self._stack(rows, cached, prefix), config=self.model.config)
        self.stats["prompt_tokens"] += sum(lengths)
        self.stats["computed_tokens"] += sum(n - c for n, c in zip(lengths, cached, strict=True))

        mask = mask.to(self.device)
        logits = self.model(input_ids=fresh.to(self.device), attention_mask=mask,
                            position_ids=positions.to(self.device), past_key_values=cache,
                            use_cache=True).logits[:, -1]
        active = list(range(len(rows)))  # indexes into rows, aligned with the batch dimension
        generated: list[list[int]] = [[] for _ in rows]
        starts = [total - n for n in lengths]  # first real column of each row
        last_pos = torch.tensor(lengths, dtype=torch.long, device=self.device) - 1
        while True:
            tokens = logits.argmax(-1).tolist()
            keep: list[int] = []
            for b, r in enumerate(active):
                generated[r].append(tokens[b])
                done = self._finish(rows[r], generated[r])
                if done is None:
                    keep.append(b)
                    continue
                out[live[r]] = done
                self.stats["generated_tokens"] += len(generated[r])
                start = starts[r]
                self._keep(rows[r].ids + generated[r][:-1],
                           tuple((layer.keys[b, :, start:].clone(), layer.values[b, :, start:].clone())
                                 for layer in cache.layers))
            if not keep:
                return out  # type: ignore[return-value]
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.device)
                cache.batch_select_indices(index)
                mask, last_pos = mask[index], last_pos[index]
                active = [active[b] for b in keep]
                tokens = [tokens[b] for b in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            last_pos = last_pos + 1
            logits = self.model(input_ids=torch.tensor(tokens, device=self.device)[:, None],
                                attention_mask=mask, position_ids=last_pos[:, None],
                                past_key_values=cache, use_cache=True).logits[:, -1]

    def _stack(self, rows: list[_Row], cached: list[int],
               prefix: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, the batch's cached keys and values, left-padded with zeros to ``prefix``."""
        layers = []
        sample = next(row.entry for row, c in zip(rows, cached, strict=True) if c)
        for layer, (k0, _) in enumerate(sample.kv):
            heads, _, dim = k0.shape
            keys = k0.new_zeros((len(rows), heads, prefix, dim))
            values = k0.new_zeros((len(rows), heads, prefix, dim))
            for b, (row, c) in enumerate(zip(rows, cached, strict=True)):
                if c:
                    k, v = row.entry.kv[layer]
                    keys[b, :, prefix - c:] = k[:, :c]
                    values[b, :, prefix - c:] = v[:, :c]
            layers.append((keys, values))
        return layers

    def _finish(self, row: _Row, generated: list[int]) -> Completion | None:
        """The completion if the row is done after its latest token, else ``None``."""
        request, n = row.request, len(row.ids)
        if self.eos_id is not None and generated[-1] == self.eos_id:
            return Completion(self.tokenizer.decode(generated[:-1]), "stop", None, n, len(generated))
        if request.stop:
            tail = self.tokenizer.decode(generated[-(max(map(len, request.stop)) + 1):])
            for stop in request.stop:
                if tail.endswith(stop):
                    text = self.tokenizer.decode(generated)
                    cut = len(text) - len(stop) if text.endswith(stop) else text.rfind(stop)
                    return Completion(text[:cut], "stop", stop, n, len(generated))
        if len(generated) >= request.max_tokens:
            return Completion(self.tokenizer.decode(generated), "length", None, n, len(generated))
        return None
