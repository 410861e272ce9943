"""``pencilbench quickstart``: the main job on built-in defaults.

It generates a small suite of every task (each task's ``quickstart_sizes``), checks it as
``pencilbench solve`` does, and prints the summary. It then evaluates the built-in ``oracle``
and ``random`` models in every mode into ``OUT/run`` and prints their tables, and ends by
writing the leaderboard report of that run to ``OUT/report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pencilbench.bench.commands.data import summary_table
from pencilbench.bench.commands.eval import evaluate_modes
from pencilbench.bench.commands.report import write_report
from pencilbench.bench.errors import UserError
from pencilbench.bench.manifest import Piece, write_manifest
from pencilbench.bench.verify import summarize
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import read_records, write_records
from pencilbench.generators.registry import TASKS
from tqdm import tqdm

QUICKSTART_DIR = Path("data/out/quickstart")


def register(commands: argparse._SubParsersAction) -> None:
    quick = commands.add_parser("quickstart", help="generate, verify and evaluate a small suite of every task")
    quick.add_argument("--out", type=Path, default=QUICKSTART_DIR, help=f"output folder (default {QUICKSTART_DIR})")
    quick.add_argument("-n", "--count", type=int, default=20, help="instances per task and size (default 20)")
    quick.add_argument("--seed", type=int, default=0)
    quick.set_defaults(run=run_quickstart)


def build_suite(out: Path, count: int, seed: int) -> Path:
    """Write the quickstart suite (test split) to ``out/suite.jsonl``, with its manifest."""
    specs = [Spec(task.name, size, "test", seed) for task in TASKS.values() for size in task.quickstart_sizes]
    records = (record for spec in specs for record in generate(spec, count))
    bar = tqdm(records, total=count * len(specs), desc="generate suite", unit="inst")
    path = out / "suite.jsonl"
    written = write_records(path, bar)
    write_manifest(path, [Piece.of(spec, 0, count) for spec in specs], written)
    return path


def run_quickstart(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise UserError(f"--count must be >= 1, got {args.count}")
    suite = build_suite(args.out, args.count, args.seed)
    summaries, failures = summarize(read_records(suite))
    print(f"\nsuite: {suite}\n{summary_table(summaries)}")
    if failures:
        for record_id, problem in failures[:20]:
            print(f"FAIL {record_id}: {problem}")
        return 1
    status = evaluate_modes(suite, args.out / "run", ("oracle", "random"))
    write_report([args.out / "run"], args.out / "report")
    return status
