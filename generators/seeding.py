"""Seeding: every instance is a pure function of (task, params, split, seed, index).

Instance ``i`` draws from ``default_rng(SeedSequence(seed, spawn_key=(task, params, split,
i, attempt)))`` where the first three are stable 32-bit ids. Items are random access, so
sharding, resuming and parallel generation give the same bytes.

Splits never share a problem: every problem has a home split, a function of a hash of its
JSON, and an item keeps drawing (``attempt`` = 0, 1, ...) until it gets a problem whose home
is its own split. The three splits each own a third of the problem space.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

SPLITS = ("train", "validation", "test")
MAX_ATTEMPTS = 1000


@functools.lru_cache(maxsize=4096)
def stable_id(text: str) -> int:
    """A 32-bit id of a string that does not change between runs or machines."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def problem_hash(problem: Mapping[str, Any]) -> str:
    """Hex digest of a problem's canonical JSON: the identity used for deduplication."""
    text = json.dumps(problem, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def home_split(problem: Mapping[str, Any]) -> str:
    return SPLITS[int(problem_hash(problem)[:8], 16) % len(SPLITS)]


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


def check_seed(seed: int) -> int:
    if not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    return seed


_GOLDEN = 0.6180339887498949


def stratum(task: str, params_key: str, split: str, seed: int, index: int) -> float:
    """Item ``index``'s point in a golden-ratio sequence started at a stream-specific
    offset: any run of n consecutive items covers [0, 1) with O(log n) discrepancy."""
    offset = stable_id(f"{task}|{params_key}|{split}|{seed}") / 2**32
    return (offset + index * _GOLDEN) % 1.0


def item_rng(task: str, params_key: str, split: str, seed: int, index: int, attempt: int) -> np.random.Generator:
    key = (stable_id(task), stable_id(params_key), stable_id(split), index, attempt)
    # What default_rng does with a SeedSequence, without its argument dispatch.
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
