"""The model adapter protocol: one method that continues a context.

An adapter only turns a context into a continuation. Retries, timeouts, concurrency and
caching belong to the wrapper in ``bench.adapters.wrapper``, so no adapter repeats them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Request:
    """Continue ``context`` for at most ``max_tokens`` tokens, stopping at any of ``stop``.

    In the compact prompt style ``context`` is space-joined task tokens; in the instruct
    style it is natural-language text.
    """

    context: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 256


@dataclass(frozen=True)
class Completion:
    """A continuation. ``text`` excludes the stop string; ``stop`` names the one that
    ended it (``None`` when the model ended on its own or hit ``max_tokens``).
    ``finish_reason`` is ``"stop"`` or ``"length"``."""

    text: str
    finish_reason: str = "stop"
    stop: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class Adapter(Protocol):
    """Anything with ``complete``; ``complete_batch`` and ``count_tokens`` are optional."""

    name: str

    def complete(self, request: Request) -> Completion: ...
