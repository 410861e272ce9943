"""The model adapter protocol: one method that continues a context.

An adapter only turns a context into a continuation. Retries, timeouts, concurrency and
caching belong to the wrapper in ``bench.adapters.wrapper``, so no adapter repeats them.
Adapters signal a failed call by raising :class:`AdapterError`; anything else they raise
is treated the same way (retried, then recorded against the sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Request:
    """Continue ``context`` for at most ``max_tokens`` tokens, stopping at any of ``stop``.

    In the compact prompt style ``context`` is space-joined task tokens; in the instruct
    style it is natural-language text. ``context[:prompt_chars]`` is the prompt and the
    rest is what the model generated so far (chat endpoints send them as two messages).
    ``instance`` names the dataset record being solved; only the replay adapters
    (``oracle``, ``random``) look at it, real models never see it. ``repeat`` numbers the
    samples drawn for one instance (``eval --samples K``), so sampled repeats are distinct
    requests: a sampling adapter varies its seed with it, and the response cache keys on it.
    """

    context: str
    stop: tuple[str, ...] = ()
    max_tokens: int = 256
    prompt_chars: int | None = None
    instance: str | None = None
    repeat: int = 0

    @property
    def prompt(self) -> str:
        return self.context if self.prompt_chars is None else self.context[: self.prompt_chars]

    @property
    def generated(self) -> str:
        return "" if self.prompt_chars is None else self.context[self.prompt_chars :]


@dataclass(frozen=True)
class Completion:
    """A continuation. ``text`` excludes the stop string; ``stop`` names the one that
    ended it (``None`` when the model ended on its own or hit ``max_tokens``).
    ``finish_reason`` is ``"stop"``, ``"length"`` (``max_tokens`` reached) or
    ``"server_limit"`` (the server stopped for length before ``max_tokens``: its own
    context window ran out). ``stop_unknown`` is set when the model stopped but the server
    did not say whether a stop string or the end of text ended it (llama.cpp's
    OpenAI-compatible servers); the harness then infers it. Token counts are the server's
    own (``usage``), ``None`` when it reports none."""

    text: str
    finish_reason: str = "stop"
    stop: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stop_unknown: bool = False


class AdapterError(Exception):
    """A call that failed. ``retryable`` calls are tried again after a back-off of at
    least ``retry_after`` seconds (a server's ``Retry-After``)."""

    def __init__(self, message: str, *, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class Adapter(Protocol):
    """Anything with ``complete``. Optional extras the harness uses when present:
    ``complete_batch(requests) -> list[Completion]`` (one call for many samples),
    ``count_tokens(text) -> int`` (context lengths in the model's own tokens),
    ``check()`` (fail fast on an unreachable model, raising ``UserError``) and
    ``reset()`` (called after a call timed out, e.g. to restart a subprocess)."""

    name: str

    def complete(self, request: Request) -> Completion: ...
