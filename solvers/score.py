"""The verdict an oracle gives on an answer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Score:
    """``correct``: the answer is right. ``partial``: task-specific credit in [0, 1]."""

    correct: bool
    partial: float

    @classmethod
    def wrong(cls) -> Score:
        return cls(False, 0.0)
