"""Seeding: every instance is a pure function of (task, params, split, seed, index).

Instance ``i`` draws from one PCG64 stream whose 128-bit state and increment are a BLAKE2b
digest of ``(task, params, split, seed, i)``. Items are random access, so sharding,
resuming and parallel generation give the same bytes. :func:`next_word` and
:func:`next_double` draw the same numbers as numpy in compiled code, so a task can draw and
solve a whole chunk of items in one kernel call (:class:`Stream`).

Splits never share a problem: every problem has a home split, a function of a hash of its
canonical JSON (sorted keys, no spaces), and an item keeps drawing from its stream until it
gets a problem whose home is its own split. The three splits each own a third of the problem
space. The hash (:func:`split_index`, 64-bit FNV-1a with a final avalanche) is a compiled
kernel, so a task's compiled sampler can test its candidates where it draws them, by hashing
the same canonical JSON bytes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.compiled import kernel

SPLITS = ("train", "validation", "test")
MAX_ATTEMPTS = 1000


@functools.lru_cache(maxsize=4096)
def stable_id(text: str) -> int:
    """A 32-bit id of a string that does not change between runs or machines."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def problem_hash(problem: Mapping[str, Any]) -> str:
    """Hex digest of a problem's canonical JSON: the identity used for deduplication."""
    return hashlib.sha256(canonical_json(problem)).hexdigest()


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def canonical_json(problem: Mapping[str, Any]) -> bytes:
    """The bytes a problem's home split is hashed from: JSON, sorted keys, no spaces."""
    return _CANONICAL.encode(problem).encode()


def home_split(problem: Mapping[str, Any]) -> str:
    return SPLITS[split_index(np.frombuffer(canonical_json(problem), dtype=np.uint8))]


@dataclass(frozen=True)
class SplitTest:
    """The test an item applies to its candidates' split parts: is their home ``split``?

    A compiled sampler may run it where it draws, comparing ``index`` with
    :func:`split_index` of each candidate's canonical JSON bytes (see :class:`Template`).
    """

    split: str

    @property
    def index(self) -> int:
        return SPLITS.index(self.split)

    def __call__(self, part: Mapping[str, Any]) -> bool:
        return home_split(part) == self.split


_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_MIX_1, _MIX_2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_SPLIT_COUNT = np.uint64(len(SPLITS))


@kernel
def split_index(data):  # noqa: ANN001, ANN201 (compiled)
    """The home split (an index into ``SPLITS``) of canonical JSON bytes (a uint8 array)."""
    h = _FNV_OFFSET
    for byte in data:
        h = (h ^ np.uint64(byte)) * _FNV_PRIME
    h ^= h >> np.uint64(30)
    h *= _MIX_1
    h ^= h >> np.uint64(27)
    h *= _MIX_2
    h ^= h >> np.uint64(31)
    return int(h % _SPLIT_COUNT)


@dataclass(frozen=True, eq=False)
class Template:
    """ASCII text of a fixed shape with the places its variable bytes go: a compiled sampler
    fills a problem's canonical JSON with each candidate's bytes to test their home splits
    with :func:`split_index`, where building each candidate's JSON would cost more than
    drawing it, and a chunk solver writes a run of problems' JSON texts and questions at
    once. Built from a text whose variable bytes are all ``placeholder``, a byte that occurs
    nowhere else in it."""

    bytes: np.ndarray
    slots: np.ndarray

    @classmethod
    def of(cls, text: str, placeholder: str) -> Template:
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        return cls(data, np.flatnonzero(data == ord(placeholder)))

    @classmethod
    def canonical(cls, part: Mapping[str, Any], placeholder: str) -> Template:
        """A problem part's canonical JSON, the bytes its home split is hashed from."""
        return cls.of(canonical_json(part).decode("ascii"), placeholder)

    def fill(self, fills: np.ndarray) -> np.ndarray:
        """The text for each row of ``fills`` (one text's variable bytes per row), a row of
        bytes each."""
        rows = np.empty((len(fills), len(self.bytes)), dtype=np.uint8)
        rows[:] = self.bytes
        rows[:, self.slots] = fills
        return rows

    def texts(self, fills: np.ndarray) -> list[str]:
        """The text for each row of ``fills`` (ASCII bytes), as strings."""
        width, block = len(self.bytes), self.fill(fills).tobytes().decode("ascii")
        return [block[start : start + width] for start in range(0, len(block), width)]


@kernel
def json_int(out, at, value):  # noqa: ANN001, ANN201 (compiled)
    """Write the integer ``value`` in decimal, as JSON writes it, at ``out[at:]`` (a uint8
    buffer); return the position after it. With :func:`json_int_rows` and
    :func:`json_bytes`, compiled samplers write their candidates' canonical JSON for
    :func:`split_index`."""
    magnitude = np.uint64(value)
    if value < 0:
        out[at] = 45  # -
        at += 1
        magnitude = np.uint64(-(value + 1)) + np.uint64(1)  # also right for -2**63
    digits, rest = 1, magnitude // np.uint64(10)
    while rest:
        digits += 1
        rest //= np.uint64(10)
    for place in range(digits - 1, -1, -1):
        out[at + place] = np.uint64(48) + magnitude % np.uint64(10)
        magnitude //= np.uint64(10)
    return at + digits


@kernel
def json_int_rows(out, at, rows, spaced=False):  # noqa: ANN001, ANN201 (compiled)
    """Write a matrix of integers as a JSON list of lists, its items apart by ``,`` (as
    canonical JSON has them) or, ``spaced``, by ``, `` (as ``json.dumps`` writes them);
    return the position after it."""
    out[at] = 91  # [
    at += 1
    for row in range(rows.shape[0]):
        if row:
            at = _json_comma(out, at, spaced)
        out[at] = 91
        at += 1
        for column in range(rows.shape[1]):
            if column:
                at = _json_comma(out, at, spaced)
            at = json_int(out, at, rows[row, column])
        out[at] = 93  # ]
        at += 1
    out[at] = 93
    return at + 1


@kernel
def _json_comma(out, at, spaced):  # noqa: ANN001, ANN202 (compiled)
    out[at] = 44  # ,
    if spaced:
        out[at + 1] = 32
        return at + 2
    return at + 1


@kernel
def first_at_home(fills, template, slots, split):  # noqa: ANN001, ANN201 (compiled)
    """The first row of ``fills`` whose text (``template``, a :class:`Template`'s bytes,
    with the row's bytes at ``slots``) has its home in ``split``; -1 when none has."""
    text = template.copy()
    for row in range(fills.shape[0]):
        for k in range(len(slots)):
            text[slots[k]] = fills[row, k]
        if split_index(text) == split:
            return row
    return -1


@kernel
def json_bytes(out, at, text):  # noqa: ANN001, ANN201 (compiled)
    """Copy fixed JSON text (a uint8 array) to ``out[at:]``; return the position after it."""
    out[at : at + len(text)] = text
    return at + len(text)


def too_few_problems(task: str, label: str, split: str) -> ValueError:
    """The error of an item that found no problem at home in ``MAX_ATTEMPTS`` draws."""
    return ValueError(f"{task} at {label} has too few distinct problems to fill split {split!r}")


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
    return (_stratum_offset(task, params_key, split, seed) + index * _GOLDEN) % 1.0


def _stratum_offset(task: str, params_key: str, split: str, seed: int) -> float:
    return stable_id(f"{task}|{params_key}|{split}|{seed}") / 2**32


def item_digest(task: str, params_key: str, split: str, seed: int, index: int) -> bytes:
    """The 32 bytes item ``index``'s stream starts from: its PCG64 state and increment."""
    digest = _stream_hash(task, params_key, split, seed)
    digest.update(b"%d" % index)
    return digest.digest()


def _stream_hash(task: str, params_key: str, split: str, seed: int) -> Any:
    """BLAKE2b fed with what every item of a stream hashes first."""
    return hashlib.blake2b(f"{task}\0{params_key}\0{split}\0{seed}\0".encode(), digest_size=32)


@dataclass(frozen=True)
class Stream:
    """The items of one (task, size, split, seed): what a task's compiled chunk solver needs
    to draw items ``lo .. hi - 1`` exactly as :func:`item_rng` and :func:`stratum` give them."""

    task: str
    params_key: str
    split: str
    seed: int

    def states(self, lo: int, hi: int) -> np.ndarray:
        """Each item's PCG64 at the start of its stream, one row of four 64-bit words per
        item (``[state low, state high, increment low, increment high]``), for
        :func:`next_word` and :func:`next_double`: :func:`item_digest` of each, its common
        start hashed once."""
        start = _stream_hash(self.task, self.params_key, self.split, self.seed)
        digests = []
        for index in range(lo, hi):
            digest = start.copy()
            digest.update(b"%d" % index)
            digests.append(digest.digest())
        states = np.frombuffer(b"".join(digests), dtype="<u8").reshape(hi - lo, 4).astype(np.uint64)
        states[:, 2] |= np.uint64(1)
        return states

    def strata(self, lo: int, hi: int) -> np.ndarray:
        """Each item's :func:`stratum` (the same arithmetic, on arrays)."""
        offset = _stratum_offset(self.task, self.params_key, self.split, self.seed)
        return (offset + np.arange(lo, hi, dtype=np.int64).astype(np.float64) * _GOLDEN) % 1.0


def rng_state(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's state as the four words :func:`next_word` advances."""
    state = rng.bit_generator.state
    if state["bit_generator"] != "PCG64" or state["has_uint32"]:
        raise ValueError("compiled draws need a PCG64 generator with no buffered 32-bit half")
    words = (state["state"]["state"], state["state"]["inc"])
    return np.array([part for word in words for part in (word & _LOW, word >> 64)], dtype=np.uint64)


def set_rng_state(rng: np.random.Generator, words: np.ndarray) -> None:
    """Move a PCG64 generator to the state ``words`` (after a compiled draw advanced it)."""
    low, high, inc_low, inc_high = (int(word) for word in words)
    rng.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                               "state": {"state": high << 64 | low, "inc": inc_high << 64 | inc_low}}


_LOW = (1 << 64) - 1
# PCG64 (numpy's, XSL-RR output) advances a 128-bit state by this multiplier, in halves.
_PCG_MULT_HIGH, _PCG_MULT_LOW = np.uint64(0x2360ED051FC65DA4), np.uint64(0x4385DF649FCCF645)
_HALF = np.uint64(0xFFFFFFFF)


@kernel
def _product_high(a, b):  # noqa: ANN001, ANN202 (compiled)
    """The high 64 bits of the 128-bit product of two 64-bit words."""
    a_low, a_high, b_low, b_high = a & _HALF, a >> np.uint64(32), b & _HALF, b >> np.uint64(32)
    cross_1, cross_2 = a_low * b_high, a_high * b_low
    middle = ((a_low * b_low) >> np.uint64(32)) + (cross_1 & _HALF) + (cross_2 & _HALF)
    return a_high * b_high + (cross_1 >> np.uint64(32)) + (cross_2 >> np.uint64(32)) + (middle >> np.uint64(32))


@kernel
def next_word(state):  # noqa: ANN001, ANN201 (compiled)
    """The next 64-bit word of a PCG64 stream (``state``: four words, see
    :meth:`Stream.states`), the word ``random_raw`` gives; advances ``state``."""
    low, high = state[0], state[1]
    new_low = low * _PCG_MULT_LOW
    new_high = _product_high(low, _PCG_MULT_LOW) + low * _PCG_MULT_HIGH + high * _PCG_MULT_LOW
    new_low += state[2]
    new_high += state[3] + (np.uint64(1) if new_low < state[2] else np.uint64(0))
    state[0], state[1] = new_low, new_high
    shift = new_high >> np.uint64(58)
    word = new_high ^ new_low
    return (word >> shift) | (word << ((np.uint64(64) - shift) & np.uint64(63)))


@kernel
def next_double(state):  # noqa: ANN001, ANN201 (compiled)
    """The next uniform number in [0, 1) of a PCG64 stream, the one ``Generator.random``
    gives."""
    return float(next_word(state) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


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
    digest = item_digest(task, params_key, split, seed, index)
    streams = _STREAMS
    streams.bits.state = {
        "bit_generator": "PCG64",
        "state": {"state": int.from_bytes(digest[:16], "little"), "inc": int.from_bytes(digest[16:], "little") | 1},
        "has_uint32": 0,
        "uinteger": 0,
    }
    return streams.rng
