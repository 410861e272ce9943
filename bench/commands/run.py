"""``pencilbench suites`` and ``pencilbench run SUITE --model SPEC``: a named suite in one job.

``run`` generates the suite's dataset (a folder of Parquet parts with its manifest, a pure
function of the suite version) under ``OUT/data``, checks it as ``pencilbench solve`` does,
evaluates the model in each mode as ``pencilbench eval`` does into ``OUT/run`` and writes the
report of that run to ``OUT/report``. Running it again resumes: a dataset that still matches
its manifest is kept, and finished samples are skipped. One progress bar covers the job.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pencilbench.bench.adapters import spec_kind
from pencilbench.bench.commands.data import summary_table
from pencilbench.bench.commands.eval import (
    add_executor_arguments,
    add_model_arguments,
    check_executor,
    evaluate_modes,
    model_argv,
)
from pencilbench.bench.commands.report import write_report
from pencilbench.bench.errors import UserError
from pencilbench.bench.harness import MODES
from pencilbench.bench.manifest import mismatch, read_manifest
from pencilbench.bench.parts import write_dataset
from pencilbench.bench.suites import Suite, load_suite, suite_names
from pencilbench.bench.tables import format_table
from pencilbench.bench.verify import summarize
from pencilbench.generators.export import read_records
from tqdm import tqdm


def register(commands: argparse._SubParsersAction) -> None:
    suites = commands.add_parser("suites", help="list the named benchmark suites and their versions")
    suites.set_defaults(run=run_suites)

    run = commands.add_parser(
        "run", help="generate, verify, evaluate and report a named suite in one resumable job",
        description="Generate a named suite (deterministic from its version), verify it, evaluate a model "
                    "in each mode and write the report. Re-running the same command resumes.",
    )
    run.add_argument("suite", help="suite name (see `pencilbench suites`)")
    run.add_argument("--model", required=True,
                     help="oracle | random | python:MODULE:FUNCTION | cmd:COMMAND | openai:MODEL | hf:PATH")
    run.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes (default {','.join(MODES)})")
    run.add_argument("--out", type=Path, required=True, help="job folder: data/, run/ and report/ go here")
    run.add_argument("--workers", type=int, default=1, help="local generation processes (default 1)")
    add_model_arguments(run)
    add_executor_arguments(run, "generation and model calls run on Ray; this process alone writes the results")
    run.set_defaults(run=run_suite)


def run_suites(args: argparse.Namespace) -> int:
    rows = []
    for name in suite_names():
        suite = load_suite(name)
        rows.append((suite.name, suite.version, len(suite.sizes), suite.records, suite.description))
    print(format_table(("suite", "version", "sizes", "instances", "what"), rows))
    return 0


def parse_modes(text: str) -> list[str]:
    modes = [mode.strip() for mode in text.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in MODES]
    if not modes or unknown:
        raise UserError(f"--modes must be a comma-separated list of {', '.join(MODES)}, got {text!r}")
    return list(dict.fromkeys(modes))


def dataset_folder(out: Path, suite: Suite) -> Path:
    return out / "data" / f"{suite.name}-v{suite.version}"


def reusable(folder: Path, suite: Suite) -> bool:
    """Whether an earlier run's dataset of this suite version is complete and unchanged."""
    try:
        manifest = read_manifest(folder)
    except UserError:  # an unreadable manifest: the dataset is written again
        return False
    if manifest is None or (manifest.suite, manifest.suite_version) != (suite.name, suite.version):
        return False
    if list(manifest.pieces) != suite.pieces() or not folder.is_dir():
        return False
    return mismatch(folder, manifest, manifest.records) is None and manifest.records == suite.records


def run_suite(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    modes = parse_modes(args.modes)
    spec_kind(args.model)
    check_executor(args)
    if args.workers < 1:
        raise UserError(f"--workers must be >= 1, got {args.workers}")
    folder = dataset_folder(args.out, suite)
    extra = ["--executor", args.executor, *model_argv(args)]
    if args.ray_address:
        extra += ["--ray-address", args.ray_address]
    with tqdm(total=suite.records * (2 + len(modes)), desc=f"{suite.label} {args.model}", unit="step") as bar:
        if reusable(folder, suite):
            bar.update(suite.records)
        else:
            write_dataset(folder, suite.pieces(), executor=args.executor, address=args.ray_address,
                          workers=args.workers, progress=bar.update, suite=suite.name, suite_version=suite.version)
        records = read_records(folder)
        summaries, failures = summarize(_advancing(records, bar))
        if failures:
            print(f"\n{suite.label}: {folder}\n{summary_table(summaries)}")
            for record_id, problem in failures[:20]:
                print(f"FAIL {record_id}: {problem}")
            return 1
        status = evaluate_modes(folder, args.out / "run", [args.model], modes, extra, bar)
    print(f"\n{suite.label}: {folder}\n{summary_table(summaries)}")
    write_report([args.out / "run"], args.out / "report")
    return status


def _advancing(records: list[dict], bar: tqdm) -> object:
    for record in records:
        yield record
        bar.update()
