"""p-hop oracle: a forward pass that records, for every symbol, where it last occurred."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pencilbench.solvers.score import Score


def hop_target(sequence: Sequence[str], hops: int) -> str | None:
    """The symbol reached after ``hops`` hops from the last position, or ``None`` when a
    hop finds no match or stays in place (an ill-posed instance)."""
    # after[i] = largest j <= i (1-based) with sequence[j-2] == sequence[i-1], else 0.
    last_seen: dict[str, int] = {}
    after = [0] * (len(sequence) + 1)
    for i in range(1, len(sequence) + 1):
        if i >= 2:
            last_seen[sequence[i - 2]] = i  # position i follows an occurrence of sequence[i-2]
        after[i] = last_seen.get(sequence[i - 1], 0)
    position = len(sequence)
    for _ in range(hops):
        target = after[position]
        if target == 0 or target == position:
            return None
        position = target
    return sequence[position - 1]


def check(problem: Mapping[str, Any], answer: Sequence[str]) -> Score:
    """Exact symbol; there is no partial credit for a single symbol."""
    gold = hop_target(problem["sequence"], problem["hops"])
    right = gold is not None and tuple(answer) == (gold,)
    return Score(right, float(right))
