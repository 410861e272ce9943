"""A word-level tokenizer over the declared vocabulary of the tasks in a dataset.

Compact tokens are whitespace-free words from a closed vocabulary, so one word is one token
id. The markers and ``[ANSWER]`` are added tokens (never split, and kept when decoding drops special tokens);
padding, unknown, begin and end are special tokens. Every encoded text starts with the begin
token; the end token closes a generation. The result is saved with ``save_pretrained`` and
loads with ``AutoTokenizer.from_pretrained``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pencilbench.generators.pencil import SPECIAL_TOKENS
from pencilbench.generators.registry import get_task
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIALS = (PAD, UNK, BOS, EOS)


def dataset_vocabulary(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """Sorted union of the declared vocabularies of every (task, size) in the records."""
    sizes = {(r["task"], tuple(sorted(r["params"].items()))) for r in records}
    words: set[str] = set()
    for task_name, params in sizes:
        task = get_task(task_name)
        words.update(task.vocabulary(task.params(dict(params))))
    return sorted(words)


def build_tokenizer(words: Iterable[str]) -> PreTrainedTokenizerFast:
    """The tokenizer: special tokens first, then the markers and ``[ANSWER]``, then the other words in order."""
    words = list(dict.fromkeys(words))
    clash = sorted(set(words) & set(SPECIALS))
    if clash:
        raise ValueError(f"the vocabulary may not contain the reserved token {clash[0]}")
    if any(not word or any(ch.isspace() for ch in word) for word in words):
        raise ValueError("vocabulary words must be non-empty and free of whitespace")
    ordered = [*SPECIALS, *SPECIAL_TOKENS, *(w for w in words if w not in SPECIAL_TOKENS)]
    vocab = {word: i for i, word in enumerate(ordered)}
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in SPECIAL_TOKENS])
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, unk_token=UNK,
                                   bos_token=BOS, eos_token=EOS)
