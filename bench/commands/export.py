"""``pencilbench export``: datasets in the formats other tools load.

- ``export lm-eval --data FILE... | --suite NAME --out DIR``: one lm-evaluation-harness task per task and
  size (``generate_until`` on the instruct prompt, ``exact_match`` after a filter that scores
  each response with the pencilbench oracle), all tagged ``pencilbench``, for
  ``lm_eval --include_path DIR --tasks pencilbench``.
- ``export hf DIR --data FILE... | --suite NAME``: a Hugging Face dataset folder, one config per task and
  size with a Parquet file per split, and a dataset card (``README.md`` with YAML metadata).

Every record is re-verified (trace invariants and oracle) before anything is written, and the
folder is written under a temporary name and renamed when complete, so a failed export
leaves nothing behind.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pencilbench.bench.commands.data import summary_table
from pencilbench.bench.errors import UserError
from pencilbench.bench.harness import INSTRUCT_MAX_TOKENS
from pencilbench.bench.prompts import instruct_prompt
from pencilbench.bench.suites import load_suite
from pencilbench.bench.verify import SizeSummary, summarize
from pencilbench.generators import __version__
from pencilbench.generators.dataset import FIELDS, generate
from pencilbench.generators.export import RECORD_SCHEMA, read_records, record_row, write_records
from pencilbench.generators.registry import get_task
from pencilbench.generators.seeding import SPLITS, stable_id

LM_EVAL_MODES = ("direct", "cot")  # pencil needs the reduction loop, which lm-eval does not run
LM_EVAL_SCHEMA = RECORD_SCHEMA.append(pa.field("input", pa.string())).append(pa.field("mode", pa.string()))
HOOKS = "pencilbench_hooks"
LICENSE = "mit"


def register(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser("export", help="write datasets for lm-evaluation-harness or Hugging Face datasets")
    targets = export.add_subparsers(dest="target", metavar="TARGET", required=True)

    lm = targets.add_parser("lm-eval", help="lm-evaluation-harness tasks (generate_until, oracle-scored)")
    _add_source(lm)
    lm.add_argument("--out", required=True, metavar="DIR", help="a new folder for the task YAML and data")
    lm.add_argument("--mode", choices=LM_EVAL_MODES, default="cot",
                    help="prompt: the question alone (direct) or with a worked example (cot, default)")
    lm.set_defaults(run=run_lm_eval)

    hf = targets.add_parser("hf", help="a Hugging Face dataset folder: Parquet per config and split, and a card")
    hf.add_argument("out", metavar="DIR", help="a new folder")
    _add_source(hf)
    hf.set_defaults(run=run_hf)


def _add_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", nargs="+", metavar="FILE", help="datasets (.jsonl or .parquet)")
    source.add_argument("--suite", metavar="NAME",
                        help="a named suite (pencilbench suites), generated as pencilbench run would")


def source_records(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[SizeSummary]]:
    """The verified records ``--data`` or ``--suite`` names."""
    if args.suite is None:
        return load_checked(args.data)
    suite = load_suite(args.suite)
    return check_records([(suite.label, record) for spec in suite.specs() for record in generate(spec, suite.count)])


def load_checked(paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[SizeSummary]]:
    """Every record of ``paths``, verified; ``UserError`` on duplicates or a failed record."""
    return check_records([(str(path), record) for path in paths for record in read_records(path)])


def check_records(sourced: Sequence[tuple[str, dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[SizeSummary]]:
    """The records (each with where it came from), verified; ``UserError`` on duplicates or
    a failed record."""
    records: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for path, record in sourced:
        if record["id"] in seen:
            raise UserError(f"record {record['id']} is in {seen[record['id']]} and again in {path}")
        seen[record["id"]] = path
        records.append(record)
    if not records:
        raise UserError("no records to export")
    summaries, failures = summarize(records)
    if failures:
        record_id, problem = failures[0]
        raise UserError(f"{len(failures)} verification failure(s), nothing exported; first: {record_id}: {problem}")
    return records, summaries


def config_names(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
    """A readable, unique name per (task, size): the task and the knobs that differ from the
    defaults (``sat-variables5``, ``einstein-default``), with the size hash on a clash."""
    names: dict[tuple[str, str], str] = {}
    for record in records:
        task = get_task(record["task"])
        params = task.params(record["params"])
        key = (task.name, params.key())
        if key in names:
            continue
        default = task.Params()
        parts = [f"{f.name}{re.sub(r'[^A-Za-z0-9]+', '', str(getattr(params, f.name)))}"
                 for f in fields(params) if getattr(params, f.name) != getattr(default, f.name)]
        names[key] = "-".join([task.name, *parts]) if parts else f"{task.name}-default"
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {key: name if counts[name] == 1 else f"{name}-{stable_id(key[1]):08x}" for key, name in names.items()}


def grouped(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Records per config name, in name order; within a config in split, seed, index order."""
    names = config_names(records)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        key = (record["task"], get_task(record["task"]).params(record["params"]).key())
        groups.setdefault(names[key], []).append(record)
    order = {split: i for i, split in enumerate(SPLITS)}
    return {name: sorted(groups[name], key=lambda r: (order[r["split"]], r["seed"], r["index"]))
            for name in sorted(groups)}


def write_folder(out: str | Path, fill: Callable[[Path], None]) -> None:
    """Build a new folder ``out`` through ``fill(tmp)`` and rename it into place."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose a new one")
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _yaml(value: str) -> str:
    """A YAML scalar: JSON strings are valid double-quoted YAML."""
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------- lm-eval

def lm_eval_task_yaml(name: str, data_file: str, version: str) -> str:
    return f"""task: {name}
tag:
  - pencilbench
custom_dataset: !function {HOOKS}.load_split
dataset_kwargs:
  file: {_yaml(data_file)}
output_type: generate_until
test_split: test
doc_to_text: "{{{{input}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: {INSTRUCT_MAX_TOKENS}
  do_sample: false
filter_list:
  - name: pencilbench
    filter:
      - function: custom
        filter_fn: !function {HOOKS}.extract_answers
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
  generator_version: {_yaml(version)}
"""


LM_EVAL_HOOKS = '''"""lm-evaluation-harness hooks of the pencilbench tasks here (needs pencilbench installed)."""

from pathlib import Path

from pencilbench.bench.integrations.lm_eval_hooks import extract_answers, load_split as _load_split

__all__ = ["extract_answers", "load_split"]


def load_split(file, **_metadata):
    """The task's Parquet file, found next to this module wherever the folder is moved."""
    return _load_split(Path(__file__).resolve().parent / file)
'''


def export_lm_eval(records: Sequence[Mapping[str, Any]], out: str | Path, mode: str) -> list[str]:
    """Write the lm-eval task folder; return the task names."""
    if mode not in LM_EVAL_MODES:
        raise ValueError(f"mode must be one of {', '.join(LM_EVAL_MODES)}, got {mode!r}")
    groups = grouped(records)
    tasks = [f"pencilbench_{name.replace('-', '_')}" for name in groups]

    def fill(tmp: Path) -> None:
        (tmp / "data").mkdir()
        for task_name, (name, rows) in zip(tasks, groups.items()):
            table = pa.Table.from_pylist(
                [{**record_row(r), "input": instruct_prompt(r, mode), "mode": mode} for r in rows],
                schema=LM_EVAL_SCHEMA)
            pq.write_table(table, tmp / "data" / f"{name}.parquet")
            (tmp / f"{task_name}.yaml").write_text(
                lm_eval_task_yaml(task_name, f"data/{name}.parquet", rows[0]["generator_version"]), encoding="utf-8")
        (tmp / f"{HOOKS}.py").write_text(LM_EVAL_HOOKS, encoding="utf-8")
        listing = "\n".join(f"- `{t}`: {len(rows)} instances" for t, rows in zip(tasks, groups.values()))
        (tmp / "README.md").write_text(
            f"# pencilbench tasks for lm-evaluation-harness\n\n"
            f"Written by pencilbench {__version__} (`pencilbench export lm-eval`, mode `{mode}`). Run with "
            f"pencilbench installed:\n\n    lm_eval --model hf --model_args pretrained=MODEL "
            f"--include_path {Path(out).name} --tasks pencilbench\n\n"
            f"Each response is scored by the pencilbench oracle (`{HOOKS}.extract_answers`), so "
            f"`exact_match` is the oracle's verdict.\n\n{listing}\n", encoding="utf-8")

    write_folder(out, fill)
    return tasks


def run_lm_eval(args: argparse.Namespace) -> int:
    records, _ = source_records(args)
    tasks = export_lm_eval(records, args.out, args.mode)
    print(f"wrote {len(tasks)} lm-eval task(s) with {len(records)} instances to {args.out}: "
          f"lm_eval --include_path {args.out} --tasks pencilbench")
    return 0


# ---------------------------------------------------------------------------- Hugging Face

def _size_category(count: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if count < bound:
            return label
    return "10M<n<100M"


FIELD_MEANINGS = {
    "id": "`TASK-SPLIT-SEED-SIZEHASH-INDEX`",
    "task": "task name", "split": "train, validation or test", "seed": "generation seed",
    "index": "position in the seeded stream",
    "params": "the size knobs (JSON text)", "problem": "the problem as plain JSON (JSON text)",
    "prompt": "the problem as compact tokens, space-joined",
    "question": "the problem in natural language, with the answer format",
    "answer": "the gold answer as compact tokens",
    "cot": "the gold chain of thought (ends with [ANSWER] and the answer)",
    "pencil": "the gold PENCIL trace with [CALL], [SEP], [RETURN]; its root frame returns [ANSWER] and the answer",
    "stats": "token counts, PENCIL peak context, reductions and task statistics (JSON text)",
    "generator_version": "`TASK-vN`; a new version changes the bytes",
    "schema_version": "the record layout's version",
}


def dataset_card(groups: Mapping[str, Sequence[Mapping[str, Any]]], summaries: Sequence[SizeSummary]) -> str:
    """README.md with the YAML metadata the Hub and ``datasets`` read."""
    total = sum(len(rows) for rows in groups.values())
    tasks = sorted({rows[0]["task"] for rows in groups.values()})
    meta = ["---", f"license: {LICENSE}", "pretty_name: pencilbench", "language:", "- en",
            "task_categories:", "- text-generation", "- question-answering",
            "tags:", "- reasoning", "- synthetic", "- chain-of-thought", "- pencil",
            *(f"- {task}" for task in tasks),
            "size_categories:", f"- {_size_category(total)}", "configs:"]
    info = ["dataset_info:"]
    rows_md = []
    for name, rows in groups.items():
        splits = [split for split in SPLITS if any(r["split"] == split for r in rows)]
        meta += [f"- config_name: {name}", "  data_files:"]
        meta += [line for split in splits for line in (f"  - split: {split}", f"    path: data/{name}/{split}.parquet")]
        info += [f"- config_name: {name}", "  features:"]
        for column in RECORD_SCHEMA:
            info += [f"  - name: {column.name}", f"    dtype: {'int64' if column.type == pa.int64() else 'string'}"]
        info += ["  splits:"]
        for split in splits:
            part = [record_row(r) for r in rows if r["split"] == split]
            size = pa.Table.from_pylist(part, schema=RECORD_SCHEMA).nbytes
            info += [f"  - name: {split}", f"    num_bytes: {size}", f"    num_examples: {len(part)}"]
        task = get_task(rows[0]["task"])
        seeds = sorted({r["seed"] for r in rows})
        counts = ", ".join(f"{split} {sum(r['split'] == split for r in rows)}" for split in splits)
        rows_md.append(f"| `{name}` | {task.name} | {task.params(rows[0]['params']).label()} | {counts} | "
                       f"{', '.join(map(str, seeds))} | {rows[0]['generator_version']} |")
    fields_md = "\n".join(f"| `{name}` | {FIELD_MEANINGS[name]} |" for name in FIELDS)
    first = next(iter(groups))
    return "\n".join([*meta, *info, "---", ""]) + f"""
# pencilbench

Synthetic reasoning problems of controlled size ({", ".join(tasks)}), each with a gold
answer, a gold chain of thought and the same reasoning as a PENCIL trace
(`C [CALL] T [SEP] A [RETURN]` reduces to `C A`), written by pencilbench {__version__}.
Each config is one task at one size; each split is a Parquet file.

```python
import datasets
data = datasets.load_dataset("PATH_OR_REPO", "{first}")
```

## Configs

| config | task | size | instances | seeds | generator |
|---|---|---|---|---|---|
{chr(10).join(rows_md)}

## Fields

| field | meaning |
|---|---|
{fields_md}

`params`, `problem` and `stats` are JSON text because their shape differs between tasks;
`pencilbench.load` (or `json.loads`) turns them back into objects.

## How the data was made

Instance `i` of (task, size, split, seed) is drawn from its own seeded random stream, so
the same arguments give the same bytes. Every problem has a home split (a hash of its JSON),
and an instance is drawn again until its problem belongs to its own split, so the splits
share no problem. SAT and QBF labels are balanced; SAT formulas drawn with `sampling=paired`
(the default) come from SR(n)-style pairs that differ in one sign, so polarity statistics do
not reveal the label. The gold traces are written by solvers inside the generators.

## How it was checked

Every record was verified when generated and again when this folder was exported: reducing
the PENCIL trace leaves exactly the answer, the chain of thought is the trace without
markers and ends with the answer, the recorded statistics match a fresh replay, and an
independent oracle that shares no code with the trace (python-sat for SAT, an expansion into
SAT for QBF, a CNF encoding for Einstein, plain arithmetic for addition and p-hop)
accepts the gold answer.

```
{summary_table(list(summaries))}
```

## License

MIT, as pencilbench.
"""


def export_hf(records: Sequence[Mapping[str, Any]], summaries: Sequence[SizeSummary], out: str | Path) -> list[str]:
    """Write the Hugging Face dataset folder; return the config names."""
    groups = grouped(records)

    def fill(tmp: Path) -> None:
        for name, rows in groups.items():
            for split in SPLITS:
                part = [r for r in rows if r["split"] == split]
                if part:
                    write_records(tmp / "data" / name / f"{split}.parquet", part)
        (tmp / "README.md").write_text(dataset_card(groups, summaries), encoding="utf-8")

    write_folder(out, fill)
    return list(groups)


def run_hf(args: argparse.Namespace) -> int:
    records, summaries = source_records(args)
    configs = export_hf(records, summaries, args.out)
    print(f"wrote {len(configs)} config(s) with {len(records)} instances to {args.out}: {', '.join(configs)}")
    return 0
