"""Seeding: every instance is a pure function of (task, params, split, seed, index).

Instance ``i`` draws from one PCG64 stream whose 128-bit state and increment are a BLAKE2b
digest of ``(task, params, split, seed, i)``. Items are random access, so sharding,
resuming and parallel generation give the same bytes.

Splits never share a problem: every problem has a home split, a function of a hash of its
JSON, and an item keeps drawing from its stream until it gets a problem whose home is its
own split. The three splits each own a third of the problem space.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
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


class _Streams(threading.local):
    """One generator per thread, re-pointed at each item's stream: setting a PCG64 state
    costs about 2 us, building a generator from a ``SeedSequence`` about 12 us, and
    generation draws tens of thousands of items per second."""

    def __init__(self) -> None:
        self.bits = np.random.PCG64(0)
        self.rng = np.random.Generator(self.bits)


_STREAMS = _Streams()


def item_rng(task: str, params_key: str, split: str, seed: int, index: int) -> np.random.Generator:
    """The generator of item ``index``, at the start of its stream. It is this thread's one
    generator, so it is valid until the next call here (the item draws all its attempts
    from it)."""
    digest = hashlib.blake2b(f"{task}\0{params_key}\0{split}\0{seed}\0{index}".encode(), digest_size=32).digest()
    streams = _STREAMS
    streams.bits.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(digest[:16], "little"), "inc": int.from_bytes(digest[16:], "little") | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return streams.rng
