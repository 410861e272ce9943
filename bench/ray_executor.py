"""Scale-out on Ray (optional extra ``ray``): generation jobs and model calls as Ray work.

Generation: each part of ``bench.parts`` is one Ray task running the ordinary item-level
generator and writing its own Parquet file. A task whose worker dies is retried by Ray and
writes the same bytes (parts are renamed into place when complete).

Evaluation: :class:`RayClient` is a :class:`Client` whose calls run in Ray actors, each
holding its own adapter (built from the model spec where the actor runs, so the model only
has to be reachable from the cluster) behind the usual retries and timeouts. The harness
keeps driving every sample in this process and the driver alone writes the results store,
so resuming and exactly-once hold as for local runs. An actor that dies is restarted and
its unfinished calls are retried.

Without ``address`` a local Ray is started (``num_cpus`` of it, default all CPUs);
``--ray-address auto`` or ``ray://HOST:10001`` joins an existing cluster, whose nodes need
pencilbench installed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

from pencilbench.bench.adapters import AdapterOptions, make_adapter
from pencilbench.bench.adapters.base import Completion, Request
from pencilbench.bench.adapters.wrapper import CallPolicy, Client, ModelFailure, ResponseCache
from pencilbench.bench.errors import UserError
from pencilbench.bench.manifest import Piece
from pencilbench.bench.parts import write_part
from pencilbench.bench.tables import format_table
from pencilbench.generators.dataset import Spec, generate

RETRIES = 3  # restarts of a dead worker, and retries of the work it had
PERF_CHUNK = 8


def connect(address: str | None = None, num_cpus: int | None = None) -> Any:
    """The ``ray`` module, connected (a local Ray without ``address``)."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs the optional extra: pip install 'pencilbench[ray]'") from None
    if not ray.is_initialized():
        try:
            if address is None:
                ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise UserError(f"cannot start or reach Ray at {address or 'a local cluster'}: {error}") from None
    return ray


def _part_task(folder: Path, number: int, piece: Piece) -> int:
    return write_part(folder, number, piece)


def write_parts(jobs: Sequence[tuple[Path, int, Piece]], address: str | None,
                progress: Callable[[int], object]) -> int:
    """Run every part job as a Ray task; returns the records written."""
    ray = connect(address)
    task = ray.remote(max_retries=RETRIES)(_part_task)
    pending = [task.remote(*job) for job in jobs]
    total = 0
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        count = ray.get(done[0])
        progress(count)
        total += count
    return total


class _Caller:
    """A Ray actor's state: one adapter behind the usual retries and timeouts."""

    def __init__(self, spec: str, options: AdapterOptions, policy: CallPolicy) -> None:
        self.client = Client(make_adapter(spec, options), policy)

    def call(self, request: Request) -> Completion | ModelFailure:
        return self.client.complete_many([request])[0]


class RayClient(Client):
    """A :class:`Client` whose calls run in Ray actors (see the module docstring).

    ``adapter`` is the driver's own adapter, used only for what the harness asks of it in
    this process (``count_tokens``); the calls go to ``policy.concurrency`` slots spread over
    at most as many actors as the cluster has CPUs.
    """

    def __init__(self, adapter: Any, spec: str, options: AdapterOptions, policy: CallPolicy, *,
                 cache: ResponseCache | None = None, address: str | None = None) -> None:
        one_at_a_time = replace(policy, concurrency=1)  # per call, in the actor; no local threads
        super().__init__(adapter, one_at_a_time, cache=cache)
        self.policy = policy  # the harness keeps ``policy.concurrency`` calls in flight
        ray = connect(address)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        count = min(policy.concurrency, cpus)
        per_actor = math.ceil(policy.concurrency / count)
        actor = ray.remote(num_cpus=1, max_restarts=RETRIES, max_task_retries=RETRIES,
                           max_concurrency=per_actor)(_Caller)
        self._actors = [actor.remote(spec, options, one_at_a_time) for _ in range(count)]
        self._load = [0] * count
        self._ray = ray

    @property
    def streams(self) -> bool:
        return True

    def submit(self, request: Request) -> Future[Completion | ModelFailure]:
        """Send one call to the least busy actor; the future holds a :class:`ModelFailure`
        when Ray gives up on it (an actor that died more often than it may restart)."""
        outcome: Future[Completion | ModelFailure] = Future()
        hit = self.cache.get(request) if self.cache is not None else None
        if hit is not None:
            outcome.set_result(hit)
            return outcome
        self._count()
        with self._lock:
            slot = min(range(len(self._actors)), key=self._load.__getitem__)
            self._load[slot] += 1

        def settle(call: Future[Completion | ModelFailure]) -> None:
            with self._lock:
                self._load[slot] -= 1
            try:
                outcome.set_result(call.result())
            except Exception as error:  # noqa: BLE001 - a call Ray gave up on is a failed call, not a crash
                outcome.set_result(ModelFailure(f"ray: {type(error).__name__}: {error}"))

        self._actors[slot].call.remote(request).future().add_done_callback(settle)
        return outcome

    def complete_many(self, requests: Sequence[Request]) -> list[Completion | ModelFailure]:
        results = [future.result() for future in [self.submit(request) for request in requests]]
        for request, result in zip(requests, results, strict=True):
            self.remember(request, result)
        return results

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        super().close()


# The sizes ``pencilbench perf --executor ray`` measures: a slow and a fast generator.
PERF_SIZES = (("einstein", {"houses": 5, "attributes": 5}), ("sat", {"variables": 20}))


def perf_table(workers: str, seconds: float, address: str | None) -> str:
    """Instances/s of each ``PERF_SIZES`` entry for each worker count in ``workers`` ("1,2")."""
    try:
        counts = [int(part) for part in workers.split(",")]
    except ValueError:
        raise UserError(f"--ray-workers must be comma-separated integers, got {workers!r}") from None
    if not counts or min(counts) < 1:
        raise UserError(f"--ray-workers must be integers >= 1, got {workers!r}")
    if seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {seconds}")
    ray = connect(address)
    rows = []
    for task, params in PERF_SIZES:
        label = Spec(task, params).resolve()[1].label()
        for count in counts:
            rate = generation_rate(task, params, count, seconds, address)
            rows.append((task, label, count, f"{rate:,.1f}"))
    cpus = int(ray.cluster_resources().get("CPU", 0))
    return (f"Ray generation, {cpus} CPUs in the cluster; chunks of {PERF_CHUNK} instances\n"
            + format_table(("task", "size", "workers", "inst/s"), rows))


def generation_rate(task: str, params: dict[str, Any], workers: int, seconds: float, address: str | None) -> float:
    """Instances per second of ``workers`` Ray tasks generating chunks of one size for
    about ``seconds`` (a benchmark figure, not a test)."""
    ray = connect(address)
    chunk = PERF_CHUNK
    job = ray.remote(_chunk_task)
    spec = Spec(task, params, "train", 0)
    spec.resolve()
    ray.get([job.remote(spec, 0, 1) for _ in range(workers)])  # start the workers before timing
    started, made, next_start = time.perf_counter(), 0, 0
    pending = []
    while True:
        while len(pending) < workers:
            pending.append(job.remote(spec, next_start, chunk))
            next_start += chunk
        done, pending = ray.wait(pending, num_returns=1)
        made += ray.get(done[0])
        if time.perf_counter() - started >= seconds:
            break
    made += sum(ray.get(pending))
    return made / (time.perf_counter() - started)


def _chunk_task(spec: Spec, start: int, count: int) -> int:
    return sum(1 for _ in generate(spec, count, start=start))
