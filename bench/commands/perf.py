"""``pencilbench perf``: generation speed, replay speed and trace lengths per task and size."""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from typing import Any

from pencilbench.bench.commands.eval import add_executor_arguments, check_executor
from pencilbench.bench.tables import format_table
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.pencil import replay
from pencilbench.generators.registry import TASKS, get_task


def register(commands: argparse._SubParsersAction) -> None:
    perf = commands.add_parser(
        "perf", help="benchmark generation and reduction replay on each task's benchmark sizes"
    )
    perf.add_argument("--task", action="append", help="only this task (repeatable; default all)")
    perf.add_argument("--seconds", type=float, default=2.0,
                      help="time spent generating per size (default 2)")
    add_executor_arguments(perf, "instances/s of Ray tasks generating einstein 5x5 and sat n=20")
    perf.add_argument("--ray-workers", default="1,2", metavar="N,N,...",
                      help="with --executor ray: Ray tasks in flight, one figure each (default 1,2)")
    perf.set_defaults(run=run_perf)


def measure(task_name: str, params: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    """Generate for about ``seconds`` in this process, then replay every trace."""
    spec = Spec(task_name, params, split="train", seed=0)
    records, started = [], time.perf_counter()
    for record in generate(spec, 10**9, chunk=1):
        records.append(record)
        if time.perf_counter() - started >= seconds and len(records) >= 5:
            break
    generation = time.perf_counter() - started
    traces = [(r["prompt"].split(), r["pencil"].split()) for r in records]
    started = time.perf_counter()
    for prompt, pencil in traces:
        replay(prompt, pencil)
    replay_time = time.perf_counter() - started
    stats = [r["stats"] for r in records]
    cot = [s["prompt_tokens"] + s["cot_tokens"] for s in stats]
    pencil = [s["pencil_max_context"] for s in stats]
    return {
        "task": task_name,
        "size": spec.resolve()[1].label(),
        "inst/s": len(records) / generation,
        "replay tok/s": sum(len(p) for _, p in traces) / replay_time,
        "prompt": sum(s["prompt_tokens"] for s in stats) / len(stats),
        "CoT mean": sum(cot) / len(cot),
        "CoT max": max(cot),
        "PENCIL peak mean": sum(pencil) / len(pencil),
        "PENCIL peak max": max(pencil),
        "n": len(records),
    }


def run_perf(args: argparse.Namespace) -> int:
    check_executor(args)
    if args.executor == "ray":
        from pencilbench.bench.ray_executor import perf_table

        print(perf_table(args.ray_workers, args.seconds, args.ray_address))
        return 0
    names = args.task or list(TASKS)
    for name in names:
        get_task(name)
    rows = []
    for name in names:
        for params in TASKS[name].benchmark_sizes:
            rows.append(measure(name, params, args.seconds))
            print(f"  measured {rows[-1]['task']} {rows[-1]['size']}", flush=True)
    print("single process; CoT lengths count the prompt; peaks are max live context in tokens")
    print(format_table(list(rows[0]), [list(row.values()) for row in rows]))
    return 0
