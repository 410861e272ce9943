"""What every adapter gets for free: retries with jittered exponential back-off, per-call
timeouts, bounded concurrency and a response cache.

The harness hands a :class:`Client` the requests of several samples at once
(:meth:`Client.complete_many`). Each comes back as a :class:`Completion`, or as a
:class:`ModelFailure` once its retries are spent; the harness records that failure against
its sample and carries on, so a flaky model never stops a run. A failure's message is cut
to :data:`MAX_ERROR_CHARS` on one line: it is stored with the sample, and a server's error
page is no place for megabytes of HTML.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sqlite3
import statistics
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pencilbench.bench.adapters.base import Adapter, AdapterError, Completion, Request

MAX_ERROR_CHARS = 300


def short_error(text: str) -> str:
    """``text`` on one line, cut to :data:`MAX_ERROR_CHARS` characters."""
    line = " ".join(text.split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True)
class CallPolicy:
    """How calls are made. ``timeout`` (seconds, ``None`` = wait forever) bounds each
    attempt. Attempt ``k`` that fails waits ``backoff * 2**k`` seconds, shortened by a
    random share of up to ``jitter`` (so clients that failed together do not retry in
    step), at least the server's ``Retry-After``, and never more than ``max_backoff``: a
    server asking for an hour, or forever, does not stall the run."""

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 30.0
    jitter: float = 0.5
    timeout: float | None = None
    concurrency: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.retries <= 100:
            raise ValueError(f"retries must be in [0, 100], got {self.retries}")
        if not (0 <= self.backoff <= 3600 and 0 <= self.max_backoff <= 3600):
            raise ValueError(f"backoff and max_backoff must be in [0, 3600] seconds, "
                             f"got {self.backoff} and {self.max_backoff}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], got {self.jitter}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if not 1 <= self.concurrency <= 1024:
            raise ValueError(f"concurrency must be in [1, 1024], got {self.concurrency}")

    def delay(self, attempt: int, retry_after: float | None, draw: float = 0.0) -> float:
        """Seconds to wait after failed attempt ``attempt`` (from 0); ``draw`` in [0, 1)
        picks the jitter. A ``retry_after`` that is not a number of seconds >= 0 is ignored,
        an infinite one is capped."""
        wait = self.backoff * 2 ** min(attempt, 64) * (1 - self.jitter * draw)
        hint = retry_after if retry_after is not None and not math.isnan(retry_after) and retry_after > 0 else 0.0
        return min(self.max_backoff, max(wait, hint))


@dataclass(frozen=True)
class ModelFailure:
    """A request that failed for good: ``message`` says why and after how many attempts."""

    message: str


@dataclass(frozen=True)
class CallLoad:
    """How the calls of a run loaded the model, measured on the calls themselves (cache hits
    and batched calls not counted): ``in_flight`` is the mean number of calls running at once
    while any ran; ``alone`` and ``crowded`` are the median seconds of a call started with no
    other call running and of one started with ``concurrency`` calls running (itself
    included); ``None`` where no call started that way."""

    calls: int
    in_flight: float
    alone: float | None
    crowded: float | None
    concurrency: int

    @property
    def served_at_once(self) -> float | None:
        """About how many calls the model served at once: ``concurrency`` when a call costs
        as long in a crowd as alone, 1 when the calls queue one behind another (each then
        takes ``concurrency`` times as long)."""
        if self.alone is None or self.crowded is None or self.crowded <= 0 or self.concurrency < 2:
            return None
        return min(float(self.concurrency), max(1.0, self.concurrency * self.alone / self.crowded))


def call_load(spans: Sequence[tuple[float, float, int]], concurrency: int) -> CallLoad:
    """:class:`CallLoad` of calls given as ``(start, end, calls running at the start)``."""
    busy, reach = 0.0, -math.inf
    for start, end, _ in sorted(spans):
        busy += max(0.0, end - max(start, reach))
        reach = max(reach, end)
    total = sum(end - start for start, end, _ in spans)
    alone = [end - start for start, end, load in spans if load == 1]
    crowded = [end - start for start, end, load in spans if load >= concurrency > 1]
    return CallLoad(len(spans), total / busy if busy > 0 else 0.0,
                    statistics.median(alone) if alone else None,
                    statistics.median(crowded) if crowded else None, concurrency)


class ResponseCache:
    """Completions by request, so a resumed run does not pay twice for calls it already made.

    The key is the model spec, every generation setting that is not part of the request
    (``settings``: endpoint, API kind, temperature, seed, system prompt, ...) and the whole
    request (context, stop strings, token cap, repeat number), so a call made with other
    settings is never answered from the cache. In memory (least recently used entries
    dropped beyond ``capacity``), and also in a SQLite file when ``path`` is given. Only the
    thread that drives the run touches it.
    """

    def __init__(self, model: str, path: str | Path | None = None, capacity: int = 100_000,
                 settings: Mapping[str, Any] | None = None) -> None:
        self.model = model
        self.settings = dict(settings or {})
        self.capacity = capacity
        self.memory: OrderedDict[str, Completion] = OrderedDict()
        self.db: sqlite3.Connection | None = None
        if path is not None:
            self.db = sqlite3.connect(path, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT)")

    def key(self, request: Request) -> str:
        text = json.dumps([self.model, self.settings, asdict(request)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, request: Request) -> Completion | None:
        key = self.key(request)
        if key in self.memory:
            self.memory.move_to_end(key)
            return self.memory[key]
        if self.db is None:
            return None
        row = self.db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        completion = Completion(**json.loads(row[0]))
        self._remember(key, completion)
        return completion

    def put(self, request: Request, completion: Completion) -> None:
        key = self.key(request)
        self._remember(key, completion)
        if self.db is not None:
            with self.db:
                self.db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?)",
                                (key, json.dumps(asdict(completion))))

    def _remember(self, key: str, completion: Completion) -> None:
        self.memory[key] = completion
        if len(self.memory) > self.capacity:
            self.memory.popitem(last=False)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


class Client:
    """An adapter behind retries, timeouts, a concurrency bound and an optional cache."""

    def __init__(self, adapter: Adapter, policy: CallPolicy = CallPolicy(), *,
                 cache: ResponseCache | None = None, sleep: Callable[[float], None] = time.sleep,
                 draw: Callable[[], float] = random.random) -> None:
        self.adapter = adapter
        self.policy = policy
        self.cache = cache
        self.sleep = sleep
        self.draw = draw
        self.calls = 0  # attempts made, failed ones included
        self.spans: list[tuple[float, float, int]] = []  # (start, end, calls running at the start)
        self._running = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(policy.concurrency) if policy.concurrency > 1 else None
        self._batch = getattr(adapter, "complete_batch", None)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.cache is not None:
            self.cache.close()

    @property
    def streams(self) -> bool:
        """Whether calls should be started one at a time as slots free up (several threads,
        no batching), so one slow call does not hold up the others."""
        return self._pool is not None and self._batch is None

    def submit(self, request: Request) -> Future[Completion | ModelFailure]:
        """Start one call on the pool (answered at once from the cache when possible); hand
        the result to :meth:`remember` when it arrives."""
        hit = self.cache.get(request) if self.cache is not None else None
        if hit is None and self._pool is not None:
            return self._pool.submit(self._with_retries, request)
        future: Future[Completion | ModelFailure] = Future()
        future.set_result(hit if hit is not None else self._with_retries(request))
        return future

    def remember(self, request: Request, result: Completion | ModelFailure) -> None:
        if self.cache is not None and isinstance(result, Completion):
            self.cache.put(request, result)

    def complete_many(self, requests: Sequence[Request]) -> list[Completion | ModelFailure]:
        """One result per request, in order; at most ``policy.concurrency`` calls at a time."""
        if self.cache is None and len(requests) == 1 and self._batch is None:
            return [self._with_retries(requests[0])]
        results: list[Completion | ModelFailure | None] = [None] * len(requests)
        missing = []
        for i, request in enumerate(requests):
            hit = self.cache.get(request) if self.cache is not None else None
            if hit is None:
                missing.append(i)
            else:
                results[i] = hit
        fresh = self._fetch([requests[i] for i in missing])
        for i, result in zip(missing, fresh, strict=True):
            results[i] = result
            self.remember(requests[i], result)
        return results  # type: ignore[return-value]

    def _fetch(self, requests: list[Request]) -> list[Completion | ModelFailure]:
        if not requests:
            return []
        if self._batch is not None:
            try:
                self._count()
                out = self._batch(requests)
                if len(out) == len(requests) and all(isinstance(c, Completion) for c in out):
                    return list(out)
            except Exception:  # noqa: BLE001 - a failed batch is retried request by request below
                pass
        if self._pool is None or len(requests) == 1:
            return [self._with_retries(request) for request in requests]
        return list(self._pool.map(self._with_retries, requests))

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def _with_retries(self, request: Request) -> Completion | ModelFailure:
        attempt = 0
        while True:
            self._count()
            try:
                completion = self._timed_attempt(request)
                if not isinstance(completion, Completion) or not isinstance(completion.text, str):
                    raise AdapterError(f"adapter returned {type(completion).__name__}, not a Completion",
                                       retryable=False)
                return completion
            except AdapterError as error:
                problem, retryable, retry_after = str(error), error.retryable, error.retry_after
            except Exception as error:  # noqa: BLE001 - any adapter fault is data, not a crash
                problem, retryable, retry_after = f"{type(error).__name__}: {error}", True, None
            if not retryable or attempt >= self.policy.retries:
                tries = "1 attempt" if attempt == 0 else f"{attempt + 1} attempts"
                return ModelFailure(f"{short_error(problem)} (after {tries})")
            self.sleep(self.policy.delay(attempt, retry_after, self.draw()))
            attempt += 1

    def load(self, since: int = 0) -> CallLoad:
        """How the calls made since ``spans[since]`` loaded the model."""
        with self._lock:
            spans = self.spans[since:]
        return call_load(spans, self.policy.concurrency)

    def _timed_attempt(self, request: Request) -> Completion:
        with self._lock:
            self._running += 1
            running = self._running
        start = time.perf_counter()
        try:
            return self._attempt(request)
        finally:
            end = time.perf_counter()
            with self._lock:
                self._running -= 1
                self.spans.append((start, end, running))

    def _attempt(self, request: Request) -> Completion:
        timeout = self.policy.timeout
        if timeout is None:
            return self.adapter.complete(request)
        # A thread per attempt, so an attempt that hangs is abandoned without holding a
        # worker; its adapter is reset so the abandoned call cannot answer a later one.
        box: list[Completion | BaseException] = []
        done = threading.Event()

        def call() -> None:
            try:
                box.append(self.adapter.complete(request))
            except BaseException as error:  # noqa: BLE001 - handed back to the caller
                box.append(error)
            done.set()

        threading.Thread(target=call, daemon=True).start()
        if not done.wait(timeout):
            reset = getattr(self.adapter, "reset", None)
            if reset is not None:
                reset()
            raise AdapterError(f"timed out after {timeout:g} s")
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]
