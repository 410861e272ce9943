"""``pencilbench report RUN_DIR... --out DIR``: leaderboards and plots from stored results.

The report package (and matplotlib with it) is imported only when the command runs, so the
other commands start fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUT = Path("report")


def register(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report",
        help="write Markdown, HTML and CSV leaderboards with plots from run directories",
        description="Read the results stores of one or more run directories (never calling a model) and "
        "write leaderboard.md, leaderboard.html (self-contained), leaderboard.csv, sizes.csv "
        "and plots/*.png. When runs repeat a sample, the first run given wins.",
    )
    report.add_argument(
        "runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories written by eval"
    )
    report.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    report.add_argument(
        "--compare",
        nargs=2,
        action="append",
        default=[],
        metavar=("A", "B"),
        help="paired comparison of two entries, named as in the leaderboard (model:mode); may be repeated",
    )
    report.set_defaults(run=run_report)


def write_report(runs: list[Path], out: Path, comparisons: list[tuple[str, str]] = ()) -> Path:
    """Write the report and print where it is; returns the HTML page's path."""
    from pencilbench.bench.manifest import warn
    from pencilbench.reports.build import build_report

    files = build_report(runs, out, comparisons)
    if files.warning:
        warn(files.warning)
    print(
        f"report: {files.html} (also {files.markdown.name}, {files.csv.name}, {files.sizes_csv.name}, "
        f"and {len(files.plots)} plots in {out}/plots)"
    )
    return files.html


def run_report(args: argparse.Namespace) -> int:
    write_report(args.runs, args.out, [tuple(pair) for pair in args.compare])
    return 0
