"""``pencilbench perf``: end-to-end generation speed, memory and trace lengths per task and size.

Every figure is measured on the path ``pencilbench generate`` runs: records built with their
gold traces, every check on (trace invariants, oracle check), written to a Parquet file. Each
size runs in a fresh process, so its peak memory is its own. ``inst/s`` is wall time; ``inst/
cpu-s`` divides by the CPU time of the measuring process and its workers, which is what one
core gives and moves little when other programs share the machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from statistics import median_low
from typing import Any

from pencilbench.bench.commands.eval import add_executor_arguments, check_executor
from pencilbench.bench.errors import UserError
from pencilbench.bench.tables import format_table
from pencilbench.generators.dataset import Spec
from pencilbench.generators.export import read_records, write_generated
from pencilbench.generators.pencil import replay
from pencilbench.generators.registry import TASKS, get_task

# The sizes of the published comparison, with the PENCIL code's inst/s on one core where it
# was measured (Yang et al. 2025's generators, same sizes; QBF at PENCIL's clause ratio 2.0)
# and the floor set for this package: a multiple of PENCIL, or inst/s where PENCIL has none.
GOALS: tuple[tuple[str, Mapping[str, Any], float | None, str], ...] = (
    ("sat", {"variables": 10, "ratio": 4.3}, 799.0, "10x"),
    ("qbf", {"variables": 10, "ratio": 2.0}, 344.0, "10x"),
    ("einstein", {"houses": 5, "attributes": 5}, 2.8, "50x"),
    ("addition", {"operands": 2, "digits": 4}, None, "30000"),
    ("phop", {"length": 32, "hops": 4}, None, "30000"),
)
LARGE: tuple[tuple[str, Mapping[str, Any]], ...] = (
    ("sat", {"variables": 100}),
    ("qbf", {"variables": 20}),
    ("einstein", {"houses": 8, "attributes": 8}),
    ("phop", {"length": 8192, "hops": 256}),
    ("addition", {"operands": 128, "digits": 256}),
)
KEY_FIGURES = ("inst/s", "inst/cpu-s", "peak MB")
# Rounds of runs (one process, the pool, processes apart) for --workers above 1: on a
# shared host a single run can be a quarter slower than the next, and the median of three
# rounds moved with one of them.
SPEED_UP_PAIRS = 5
# The speed-up --goals asks of N processes: 1.8 on 2 cores.
SCALING_FLOOR = 0.9


def register(commands: argparse._SubParsersAction) -> None:
    perf = commands.add_parser(
        "perf", help="benchmark generation end to end (traces, checks, Parquet) per task and size"
    )
    perf.add_argument("--task", action="append", help="only this task (repeatable; default all)")
    perf.add_argument("--seconds", type=float, default=2.0,
                      help="time spent generating per size (default 2)")
    add_executor_arguments(perf, "instances/s of Ray tasks generating einstein 5x5 and sat n=20")
    perf.add_argument("--ray-workers", default="1,2", metavar="N,N,...",
                      help="with --executor ray: Ray tasks in flight, one figure each (default 1,2)")
    perf.add_argument("--workers", type=int, default=1,
                      help="generate with this many processes; above 1 each size is also run with one, "
                      f"in {SPEED_UP_PAIRS} rounds, and the table shows the median speed-up and every round's, "
                      "the speed-up of as many processes each writing its own share to a file of its own "
                      "(what this machine gives that many processes on this work) and how much of it "
                      "the pool reached, the share of the CPU time spent in the main process (it writes, "
                      "and generates while it waits) and whether the files are byte for byte equal")
    which = perf.add_mutually_exclusive_group()
    which.add_argument("--goals", action="store_true",
                       help="the sizes compared with the PENCIL code, against this package's floors")
    which.add_argument("--large", action="store_true",
                       help="large sizes (SAT n=100, QBF n=20, Einstein 8x8, p-hop 8192, addition 128x256)")
    perf.add_argument("--save", metavar="FILE", help="also write the figures as JSON (a baseline for --compare)")
    perf.add_argument("--compare", metavar="FILE", help="show the figures next to a baseline saved with --save")
    perf.set_defaults(run=run_perf)


def measure(task_name: str, params: Mapping[str, Any], seconds: float, workers: int = 1) -> dict[str, Any]:
    """Figures for one size, measured in a fresh process (see the module notes)."""
    with ProcessPoolExecutor(max_workers=1) as pool:
        return pool.submit(_measure_here, task_name, dict(params), seconds, workers).result()


def _measure_here(task_name: str, params: dict[str, Any], seconds: float, workers: int) -> dict[str, Any]:
    spec = Spec(task_name, params, split="train", seed=0)
    with tempfile.TemporaryDirectory(prefix="pencilbench-perf-") as folder:
        probe, size = Path(folder) / "probe.parquet", 1
        write_generated(probe, spec, 1)  # warms imports and caches
        while True:  # a rate from at least a tenth of the time asked for
            took, _, _ = _timed(write_generated, probe, spec, size)
            if took >= seconds / 10:
                break
            size *= 4
        count = max(4 * workers, min(10**6, math.ceil(seconds * size / took)))
        out = Path(folder) / "out.parquet"
        wall, cpu, own = _timed_write(out, spec, count, workers)
        row: dict[str, Any] = {"task": task_name, "size": spec.resolve()[1].label(), "workers": workers,
                               "n": count, "inst/s": count / wall, "inst/cpu-s": count / cpu}
        if workers > 1:
            row.update(_speed_ups(Path(folder), spec, count, workers, (wall, cpu, own)))
        # High-water mark of generating (reading the file back below would raise it).
        peak_kib = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
        records = read_records(out)
    traces = [(r["prompt"].split(), r["pencil"].split()) for r in records]
    replay_time, _, _ = _timed(_replay_all, traces)
    stats = [r["stats"] for r in records]
    cot = [s["prompt_tokens"] + s["cot_tokens"] for s in stats]
    peak = [s["pencil_max_context"] for s in stats]
    row.update({
        "peak MB": peak_kib / 1024,
        "replay tok/s": sum(len(p) for _, p in traces) / max(replay_time, 1e-9),
        "prompt": sum(s["prompt_tokens"] for s in stats) / len(stats),
        "CoT mean": sum(cot) / len(cot),
        "CoT max": max(cot),
        "PENCIL peak mean": sum(peak) / len(peak),
        "PENCIL peak max": max(peak),
    })
    return row


def _speed_ups(folder: Path, spec: Spec, count: int, workers: int,
               first: tuple[float, float, float]) -> dict[str, Any]:
    """Figures of the pool against one process, in rounds of three runs: one process, the
    pool (its first run is ``first``), and ``workers`` processes apart, each writing a
    ``workers``-th of the records to a file of its own with nothing shared. Runs of a
    round follow one another, so that what else the machine runs weighs on all alike; the
    median round is the figure. The runs apart show what this machine gives that many
    processes on this work (on a shared virtual machine, often well under ``workers``)."""
    single, pooled = folder / "single.parquet", folder / "out.parquet"
    cuts = [count * k // workers for k in range(workers + 1)]
    shares = [(folder / f"apart-{k}.parquet", spec, cuts[k], cuts[k + 1] - cuts[k]) for k in range(workers)]
    rounds = []
    with ProcessPoolExecutor(max_workers=workers) as apart:
        list(apart.map(_write_share, [(path, spec, 0, 1) for path, *_ in shares]))  # started and warm
        for repeat in range(SPEED_UP_PAIRS):
            alone, _, _ = _timed_write(single, spec, count, 1)
            wall, cpu, own = _timed_write(pooled, spec, count, workers) if repeat else first
            separate, _, _ = _timed(lambda: list(apart.map(_write_share, shares)))
            rounds.append((alone / wall, alone / separate, separate / wall, wall, cpu, own))
    speed_up, _, _, wall, cpu, own = median_low(rounds)
    return {"inst/s": count / wall, "inst/cpu-s": count / cpu, "speed-up": speed_up,
            "speed-ups": "-".join(f"{r[0]:.2f}" for r in sorted(rounds)),
            "apart": median_low(r[1] for r in rounds),
            "of apart": f"{100 * median_low(r[2] for r in rounds):.0f}%",
            "main CPU": f"{100 * own / cpu:.0f}%",
            "same bytes": "yes" if single.read_bytes() == pooled.read_bytes() else "NO"}


def _write_share(share: tuple[Path, Spec, int, int]) -> None:
    path, spec, start, count = share
    path.unlink(missing_ok=True)
    write_generated(path, spec, count, start=start)


def _timed_write(path: Path, spec: Spec, count: int, workers: int) -> tuple[float, float, float]:
    """``_timed`` of writing ``count`` records to ``path``; a file left there by an earlier
    run is removed first, as freeing its pages (tens of ms) is no part of generating."""
    path.unlink(missing_ok=True)
    return _timed(write_generated, path, spec, count, workers=workers)


def _replay_all(traces: Sequence[tuple[list[str], list[str]]]) -> None:
    for prompt, pencil in traces:
        replay(prompt, pencil)


def _timed(work: Any, *args: Any, **kwargs: Any) -> tuple[float, float, float]:
    """Wall seconds of ``work(...)``, CPU seconds of this process and the workers it waited
    for, and CPU seconds of this process alone."""
    before, wall = os.times(), time.perf_counter()
    work(*args, **kwargs)
    after, wall = os.times(), time.perf_counter() - wall
    own = after[0] - before[0] + after[1] - before[1]  # user and system
    cpu = own + after[2] - before[2] + after[3] - before[3]  # and the children's
    return wall, max(cpu, 1e-9), own


def run_perf(args: argparse.Namespace) -> int:
    check_executor(args)
    if args.seconds <= 0:
        raise UserError(f"--seconds must be > 0, got {args.seconds}")
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    if args.executor == "ray":
        local = [flag for flag, given in (("--task", args.task), ("--workers", args.workers != 1),
                                          ("--goals", args.goals), ("--large", args.large),
                                          ("--save", args.save), ("--compare", args.compare)) if given]
        if local:
            raise UserError(f"{', '.join(local)} measure local generation; --executor ray measures only "
                            "its fixed sizes over --ray-workers")
        from pencilbench.bench.ray_executor import perf_table

        print(perf_table(args.ray_workers, args.seconds, args.ray_address))
        return 0
    baseline = _load_baseline(args.compare) if args.compare else None
    names = args.task or list(TASKS)
    for name in names:
        get_task(name)
    if args.goals:
        sizes = [(name, params) for name, params, _, _ in GOALS if name in names]
    elif args.large:
        sizes = [(name, params) for name, params in LARGE if name in names]
    else:
        sizes = [(name, params) for name in names for params in TASKS[name].benchmark_sizes]
    rows = []
    for name, params in sizes:
        rows.append(measure(name, params, args.seconds, args.workers))
        print(f"  measured {rows[-1]['task']} {rows[-1]['size']}", flush=True)
    if args.goals:
        for row, (_, _, pencil, floor) in zip(rows, [g for g in GOALS if g[0] in names], strict=True):
            row.update(_against_goal(row, pencil, floor))
    shown = _columns(rows, goals=args.goals, large=args.large)
    print("per size: a fresh process generating to Parquet with every check; inst/cpu-s is per core; "
          "CoT lengths count the prompt; peaks are max live context in tokens")
    if "apart" in shown:
        print(f"speed-up: one process's time over the pool's, median of {SPEED_UP_PAIRS} rounds; apart: the same "
              f"for {args.workers} processes each writing its own share, nothing shared (what this machine gives "
              f"{args.workers} processes on this work); of apart: how much of that the pool reached "
              "(their time over its)")
    print(format_table(shown, [[row.get(column, "") for column in shown] for row in rows]))
    if baseline is not None:
        print(f"\nagainst {args.compare}")
        print(compare_table(baseline, rows))
    if args.save:
        _save(args.save, rows)
        print(f"saved {len(rows)} rows to {args.save}")
    return 0


def _against_goal(row: Mapping[str, Any], pencil: float | None, floor: str) -> dict[str, Any]:
    per_core = row["inst/cpu-s"]
    scaling = {}
    if "speed-up" in row:
        least = SCALING_FLOOR * row["workers"]
        scaling = {"speed-up floor": f"{least:.1f}x", "speed-up met": "yes" if row["speed-up"] >= least else "no"}
    if pencil is None:
        return {"PENCIL inst/s": "-", "x PENCIL": "-", "floor": f"{int(floor):,} inst/s",
                "met": "yes" if per_core >= int(floor) else "no", **scaling}
    times = float(floor.rstrip("x"))
    return {"PENCIL inst/s": pencil, "x PENCIL": per_core / pencil, "floor": floor,
            "met": "yes" if per_core >= times * pencil else "no", **scaling}


def _columns(rows: Sequence[Mapping[str, Any]], *, goals: bool, large: bool) -> list[str]:
    columns = ["task", "size", "workers", "n", "inst/s", "inst/cpu-s"]
    scaling = any("speed-up" in row for row in rows)
    if scaling:
        columns += ["speed-up", "speed-ups", "apart", "of apart", "main CPU", "same bytes"]
    if goals:
        return columns + ["PENCIL inst/s", "x PENCIL", "floor", "met"] + (
            ["speed-up floor", "speed-up met"] if scaling else []) + ["peak MB"]
    columns.append("peak MB")
    if large:
        return columns + ["PENCIL peak max"]
    return columns + ["replay tok/s", "prompt", "CoT mean", "CoT max", "PENCIL peak mean", "PENCIL peak max"]


def _save(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    document = {"format": "pencilbench-perf-1", "cpus": os.cpu_count(), "rows": list(rows)}
    try:
        Path(path).write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    except OSError as error:
        raise UserError(f"{path}: cannot write ({error.strerror})") from None


def _load_baseline(path: str) -> list[dict[str, Any]]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{path}: not a JSON file") from None
    rows = document.get("rows") if isinstance(document, dict) else None
    if (not isinstance(rows, list)
            or not all(isinstance(row, dict) and {"task", "size", "workers"} <= set(row) for row in rows)):
        raise UserError(f"{path}: not a baseline written by `pencilbench perf --save`")
    return rows


def compare_table(baseline: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> str:
    """Each current figure next to the baseline's for the same task, size and workers."""
    before = {(row["task"], row["size"], row["workers"]): row for row in baseline}
    table = []
    for row in rows:
        old = before.get((row["task"], row["size"], row["workers"]))
        for figure in KEY_FIGURES:
            was = old.get(figure) if old else None
            if not isinstance(was, int | float):
                table.append([row["task"], row["size"], row["workers"], figure, "-", row[figure], "-"])
                continue
            table.append([row["task"], row["size"], row["workers"], figure, float(was), row[figure],
                          f"{row[figure] / was:.2f}x" if was else "-"])
    return format_table(["task", "size", "workers", "figure", "baseline", "now", "now/baseline"], table)
