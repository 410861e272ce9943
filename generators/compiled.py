"""Compiled kernels for the per-item hot loops of generation.

Sampling, search, enumeration and trace checks run once or more per generated item, so they
are written as plain Python over numpy arrays and compiled by numba. ``kernel`` compiles a
function on its first call and caches the machine code on disk (next to the module, or in
numba's user cache when that folder is read-only), so later processes load it instead of
compiling. Kernels emit traces as token ids: positions in the task's ``vocabulary(params)``,
whose first entries are always the special tokens, so ``[CALL]``, ``[SEP]``, ``[RETURN]``
and ``[ANSWER]`` are ids 0 to 3 in every task.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numba import njit
from pencilbench.generators.pencil import SPECIAL_TOKENS

kernel = njit(cache=True, nogil=True)

CALL_ID, SEP_ID, RETURN_ID, ANSWER_ID = range(len(SPECIAL_TOKENS))


@functools.lru_cache(maxsize=64)
def token_table(vocabulary: tuple[str, ...]) -> np.ndarray:
    """The vocabulary as an object array, so a run of ids becomes tokens in one indexing."""
    if vocabulary[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
        raise ValueError("a vocabulary must start with the special tokens")
    return np.array(vocabulary, dtype=object)


def tokens_of(ids: np.ndarray, vocabulary: tuple[str, ...]) -> list[str]:
    """The tokens a kernel's ids stand for."""
    return token_table(vocabulary)[ids].tolist()


def ids_of(tokens: Sequence[str], vocabulary: tuple[str, ...]) -> np.ndarray:
    """Ids of tokens in ``vocabulary`` (``ValueError`` names a token outside it)."""
    index = _index(vocabulary)
    try:
        return np.fromiter((index[token] for token in tokens), dtype=np.int32, count=len(tokens))
    except KeyError as missing:
        raise ValueError(f"token {missing.args[0]!r} is not in the vocabulary") from None


@functools.lru_cache(maxsize=64)
def _index(vocabulary: tuple[str, ...]) -> dict[str, int]:
    return {token: i for i, token in enumerate(vocabulary)}
