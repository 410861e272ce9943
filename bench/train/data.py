"""Training examples from dataset records, in CoT or PENCIL format, and their batches.

``cot``: one example per instance, the prompt then the whole chain of thought; the loss
covers everything after the prompt. ``pencil``: the segments of the PENCIL trace
(``generators.pencil.segments``), each the live context at a step followed by what the model
generates up to the next reduction; the loss covers only the tokens generated since the
previous reduction. Both end with the end token, so a model learns when to stop: in PENCIL
format that is one last segment, the fully reduced context (prompt, ``[ANSWER]`` and the
answer) and the end token. Every example starts with the begin token.

An instance with any example longer than the training context is left out whole and
counted; nothing is ever cut. Lengths are counted as the harness counts context (prompt and
live generated tokens), so the begin and end tokens do not count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pencilbench.bench.train.tokenizer import BOS, EOS
from pencilbench.generators.pencil import segments

FORMATS = ("cot", "pencil")
IGNORE = -100  # label of a position without loss


@dataclass(frozen=True)
class Example:
    """Token ids; the loss covers predicting ``ids[loss_start:]``."""

    ids: tuple[int, ...]
    loss_start: int


@dataclass(frozen=True)
class Examples:
    """The examples of a dataset and what was left out because it did not fit."""

    examples: tuple[Example, ...]
    instances: int
    over_length: int  # instances left out
    longest: int  # longest example over all instances, in context tokens (see ``context_length``)

    def loss_tokens(self) -> int:
        return sum(len(e.ids) - e.loss_start for e in self.examples)


def record_token_examples(record: Mapping[str, Any], fmt: str) -> list[tuple[list[str], int]]:
    """The examples of one record as (tokens, loss start), begin and end tokens included."""
    prompt = record["prompt"].split()
    if fmt == "cot":
        return [([BOS, *prompt, *record["cot"].split(), EOS], 1 + len(prompt))]
    if fmt == "pencil":
        # The end token goes through the reducer like any word: after the last reduction it
        # starts a segment of its own on the fully reduced context.
        return [([BOS, *s.tokens], 1 + s.loss_start)
                for s in segments(prompt, [*record["pencil"].split(), EOS])]
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")


def context_length(tokens: list[str]) -> int:
    """The live context an example stands for: its tokens without the begin and end tokens."""
    return len(tokens) - 1 - (tokens[-1] == EOS)


def build_examples(records: Iterable[Mapping[str, Any]], fmt: str, tokenizer: Any, context: int) -> Examples:
    """Token-id examples of every record whose examples all fit in ``context`` tokens."""
    vocab, unk = tokenizer.get_vocab(), tokenizer.unk_token_id
    kept: list[Example] = []
    instances = over = longest = 0
    for record in records:
        instances += 1
        pieces = record_token_examples(record, fmt)
        size = max(context_length(tokens) for tokens, _ in pieces)
        longest = max(longest, size)
        if size > context:
            over += 1
            continue
        for tokens, start in pieces:
            ids = tuple(vocab.get(token, unk) for token in tokens)
            if unk in ids:
                raise ValueError(f"record {record['id']} uses a token outside the declared vocabulary: "
                                 f"{tokens[ids.index(unk)]!r}")
            kept.append(Example(ids, start))
    return Examples(tuple(kept), instances, over, longest)


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indexes for one epoch: a pure function of the seed and the epoch.

    Examples are shuffled, sorted by length within windows of 32 batches (less padding),
    cut into batches, and the batches shuffled again.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = 32 * batch_size
    batches: list[list[int]] = []
    for lo in range(0, len(order), window):
        part = sorted(order[lo : lo + window].tolist(), key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask and labels (``IGNORE`` before the loss and on padding)."""
    width = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.ids)
        ids[row, :n] = torch.tensor(example.ids)
        labels[row, example.loss_start : n] = ids[row, example.loss_start : n]
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}
