"""The ``pencilbench`` command line. Each subcommand lives in ``bench.commands``."""

from __future__ import annotations

import argparse
import sqlite3
import sys
from collections.abc import Sequence

from pencilbench.bench.commands import cues, data, eval, export, perf, quickstart, report, run, train
from pencilbench.bench.errors import UserError
from pencilbench.generators import __version__

COMMAND_MODULES = (data, eval, report, run, quickstart, perf, cues, export, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pencilbench",
        description="Synthetic long-reasoning benchmarks with PENCIL traces, and a context-aware evaluator.",
    )
    parser.add_argument("--version", action="version", version=f"pencilbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; user errors print one line on stderr and exit 2 (an unreadable
    SQLite file in a run directory is one of them)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (UserError, ValueError, OSError, sqlite3.DatabaseError) as error:
        print(f"pencilbench: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pencilbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
