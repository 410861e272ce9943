"""Dataset commands: ``tasks``, ``generate``, ``show`` and ``solve``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pencilbench.bench.commands.eval import add_executor_arguments, check_executor
from pencilbench.bench.errors import UserError
from pencilbench.bench.manifest import Piece, write_manifest
from pencilbench.bench.parts import write_dataset
from pencilbench.bench.tables import format_table
from pencilbench.bench.verify import size_label, summarize
from pencilbench.generators.dataset import Spec, record_from_problem
from pencilbench.generators.export import (
    check_format,
    read_records,
    write_generated,
    write_records,
    write_segments,
)
from pencilbench.generators.pencil import RETURN, Reducer
from pencilbench.generators.registry import TASKS, get_task
from pencilbench.generators.seeding import SPLITS, check_seed, check_split
from pencilbench.generators.task import describe_knobs
from pencilbench.solvers import sat as sat_oracle
from pencilbench.solvers.dimacs import read_cnf, read_folder
from tqdm import tqdm


def register(commands: argparse._SubParsersAction) -> None:
    tasks = commands.add_parser("tasks", help="list tasks with their parameters, defaults and ranges")
    tasks.set_defaults(run=run_tasks)

    gen = commands.add_parser("generate", help="generate a dataset with gold CoT and PENCIL traces")
    gen.add_argument("task", help="task name (see `pencilbench tasks`)")
    gen.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                     help="task parameter, repeatable")
    gen.add_argument("-n", "--count", type=int, default=100, help="number of instances (default 100)")
    gen.add_argument("--start", type=int, default=0, help="index of the first instance (default 0)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--split", default="train", choices=SPLITS)
    gen.add_argument("--out", required=True,
                     help="output file, .jsonl or .parquet, or a folder (no suffix) of Parquet parts")
    gen.add_argument("--segments", help="also write PENCIL training segments here (.jsonl or .parquet)")
    gen.add_argument("--workers", type=int, default=1, help="processes (same bytes for any count)")
    gen.add_argument("--from-dimacs", metavar="DIR", help="sat: one record per DIMACS CNF file of DIR (name order; "
                     "index = position, split and seed as given); -p, -n and --start are not used")
    gen.add_argument("--from-qdimacs", metavar="DIR", help="qbf: the same for QDIMACS files")
    add_executor_arguments(gen, "parts are generated as Ray tasks (needs --out FOLDER)")
    gen.set_defaults(run=run_generate)

    show = commands.add_parser("show", help="print one instance: prompt, CoT and the PENCIL trace step by step")
    show.add_argument("path")
    show.add_argument("--index", type=int, default=0, help="position of the record in the file")
    show.set_defaults(run=run_show)

    solve = commands.add_parser("solve", help="re-check every record with its oracle and the trace invariants")
    solve.add_argument("path", nargs="?")
    solve.add_argument("--dimacs", metavar="FILE",
                       help="decide a DIMACS CNF file with python-sat; prints 's SATISFIABLE' and "
                       "'v ... 0', or 's UNSATISFIABLE'")
    solve.set_defaults(run=run_solve)


def parse_params(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"parameter {pair!r} is not KEY=VALUE")
        values[key.strip()] = value.strip()
    return values


def run_tasks(args: argparse.Namespace) -> int:
    for task in TASKS.values():
        print(f"{task.name}: {task.summary}")
        rows = [(k["name"], k["type"], k["default"], k["allowed"], k["help"]) for k in describe_knobs(task.Params)]
        print(_indent(format_table(("parameter", "type", "default", "allowed", "meaning"), rows)))
        print()
    return 0


def run_generate(args: argparse.Namespace) -> int:
    """Write the dataset and its manifest (``NAME.manifest.json`` next to it)."""
    check_executor(args)
    if not Path(args.out).suffix:
        return _generate_parts(args)
    if args.executor == "ray":
        raise UserError("--executor ray writes a folder of Parquet parts: give --out a folder name without a suffix")
    check_format(args.out)
    if args.segments:
        check_format(args.segments)
    if not (args.from_dimacs or args.from_qdimacs):
        spec = Spec(args.task, parse_params(args.param), args.split, args.seed)
        spec.resolve()
        with tqdm(total=args.count, desc=f"generate {args.task}", unit="inst") as bar:
            written, cut = write_generated(args.out, spec, args.count, start=args.start, workers=args.workers,
                                           segments_path=args.segments, progress=bar.update)
        write_manifest(args.out, [Piece.of(spec, args.start, args.count)], written)
        print(f"wrote {written} records to {args.out}")
        if args.segments:
            print(f"wrote {cut} segments to {args.segments}")
        return 0
    records, total = _records_from_files(args)
    bar = tqdm(records, total=total, desc=f"generate {args.task}", unit="inst")
    kept: list[dict[str, Any]] = []
    written = write_records(args.out, _keep(bar, kept) if args.segments else bar)
    write_manifest(args.out, [], written)
    print(f"wrote {written} records to {args.out}")
    if args.segments:
        print(f"wrote {write_segments(args.segments, kept)} segments to {args.segments}")
    return 0


def _generate_parts(args: argparse.Namespace) -> int:
    if args.segments or args.from_dimacs or args.from_qdimacs:
        raise UserError("--segments, --from-dimacs and --from-qdimacs need --out FILE.jsonl|FILE.parquet, not a folder")
    if args.count < 1 or args.start < 0:
        raise UserError(f"a folder of parts needs --count >= 1 and --start >= 0, got {args.count} and {args.start}")
    spec = Spec(args.task, parse_params(args.param), args.split, args.seed)
    piece = Piece.of(spec, args.start, args.count)
    with tqdm(total=args.count, desc=f"generate {args.task}", unit="inst") as bar:
        manifest = write_dataset(args.out, [piece], executor=args.executor, address=args.ray_address,
                                 workers=args.workers, progress=bar.update)
    print(f"wrote {manifest.records} records in {len(manifest.files)} parts to {args.out}")
    return 0


def _records_from_files(args: argparse.Namespace) -> tuple[Iterator[dict[str, Any]], int]:
    """Records with gold traces for users' own formulas, one per file."""
    quantified = bool(args.from_qdimacs)
    wanted = "qbf" if quantified else "sat"
    if args.task != wanted or (args.from_dimacs and args.from_qdimacs):
        flag = "--from-qdimacs" if quantified else "--from-dimacs"
        raise UserError(f"{flag} makes {wanted} records (and excludes the other flag); got task {args.task!r}")
    check_split(args.split)
    check_seed(args.seed)
    task = get_task(wanted)
    files = read_folder(args.from_qdimacs or args.from_dimacs, quantified=quantified)
    sized = []
    for path, problem in files:
        try:
            sized.append((task.Params.of(problem), problem))
        except ValueError as error:
            raise UserError(f"{path}: {error}") from None
    records = (record_from_problem(task, params, problem, split=args.split, seed=args.seed, index=index)
               for index, (params, problem) in enumerate(sized))
    return records, len(sized)


def _keep(records: Any, kept: list[dict[str, Any]]) -> Any:
    for record in records:
        kept.append(record)
        yield record


def run_show(args: argparse.Namespace) -> int:
    records = read_records(args.path)
    if not 0 <= args.index < len(records):
        raise UserError(f"--index must be in [0, {len(records) - 1}], got {args.index}")
    record = records[args.index]
    prompt = record["prompt"].split()
    print(f"id        {record['id']}")
    print(f"size      {size_label(record)}")
    print(f"question  {record['question']}")
    print(f"\nprompt ({len(prompt)} tokens)\n  {record['prompt']}")
    print(f"\nanswer\n  {record['answer']}")
    print(f"\nchain of thought ({len(record['cot'].split())} tokens)\n  {record['cot']}")
    print("\nPENCIL trace, one line per step; each [RETURN] reduces the live context")
    reducer = Reducer(prompt)
    step: list[str] = []
    for token in record["pencil"].split():
        before = len(reducer.context) + 1  # the token itself, [RETURN] included, before reducing
        reducer.push(token)
        step.append(token)
        if token == RETURN:
            print(f"  {' '.join(step)}\n      => live context {before} -> {len(reducer.context)} tokens")
            step = []
    if step:
        print(f"  {' '.join(step)}")
    print(f"\npeak context {reducer.peak} (CoT: {len(prompt) + len(record['cot'].split())}), "
          f"{reducer.reductions} reductions, final: {' '.join(reducer.generated_live)}")
    return 0


def run_solve(args: argparse.Namespace) -> int:
    if args.dimacs:
        model = sat_oracle.solve(read_cnf(args.dimacs))
        print("s UNSATISFIABLE" if model is None else f"s SATISFIABLE\nv {' '.join(map(str, model))} 0")
        return 0
    if args.path is None:
        raise UserError("solve needs a dataset PATH or --dimacs FILE")
    records = read_records(args.path)
    summaries, failures = summarize(tqdm(records, desc="verify", unit="rec", leave=False))
    print(summary_table(summaries))
    for record_id, problem in failures[:20]:
        print(f"FAIL {record_id}: {problem}")
    bad = len({record_id for record_id, _ in failures})
    print(f"{len(records) - bad}/{len(records)} records verified")
    return 1 if failures else 0


def summary_table(summaries: list[Any]) -> str:
    headers = ("task", "size", "n", "verified", "CoT peak mean", "CoT peak max",
               "PENCIL peak mean", "PENCIL peak max")
    return format_table(headers, [tuple(asdict(s).values()) for s in summaries])


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
