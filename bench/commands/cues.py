"""``pencilbench cues``: can SAT labels be guessed from surface statistics?

Fits the shallow classifier of ``generators.cues`` on the train split of a SAT size and
scores it on the test split, for each sampling (or the one given with ``-p sampling=...``).
Held-out accuracy near 50% means a model cannot beat chance without solving the formula.
"""

from __future__ import annotations

import argparse
import time

from pencilbench.bench.commands.data import parse_params
from pencilbench.bench.tables import format_table
from pencilbench.generators.cues import labelled_problems, shallow_accuracy
from pencilbench.generators.sat import SAMPLINGS


def register(commands: argparse._SubParsersAction) -> None:
    cues = commands.add_parser(
        "cues", help="held-out accuracy of a logistic regression on SAT polarity statistics (50%%: no shallow cue)"
    )
    cues.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                      help="sat parameter, repeatable (default: variables=10)")
    cues.add_argument("-n", "--count", type=int, default=2000,
                      help="problems per split, train and test (default 2000)")
    cues.add_argument("--seed", type=int, default=0)
    cues.set_defaults(run=run_cues)


def run_cues(args: argparse.Namespace) -> int:
    if args.count < 1:
        raise ValueError(f"count must be >= 1, got {args.count}")
    params = {"variables": "10", **parse_params(args.param)}
    samplings = [params.pop("sampling")] if "sampling" in params else list(SAMPLINGS)
    rows = []
    for sampling in samplings:
        size = {**params, "sampling": sampling}
        started = time.perf_counter()
        train = labelled_problems(size, "train", args.seed, args.count)
        test = labelled_problems(size, "test", args.seed, args.count)
        report = shallow_accuracy(*train, *test)
        rows.append((sampling, report.train_size, report.test_size, f"{report.train_accuracy:.3f}",
                     f"{report.test_accuracy:.3f}", f"{report.test_majority:.3f}",
                     f"{time.perf_counter() - started:.1f}"))
    label = " ".join(f"{key}={value}" for key, value in params.items())
    print(f"sat {label}: logistic regression on polarity imbalance, duplicate clauses, pure literals")
    print(format_table(("sampling", "train", "test", "train acc", "held-out acc", "majority", "seconds"), rows))
    return 0
