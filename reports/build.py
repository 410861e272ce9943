"""Assembling a report from run directories: ``leaderboard.md``, ``leaderboard.html``,
``leaderboard.csv``, ``sizes.csv`` and the figures under ``plots/``.

Nothing here reads a clock or the environment: the same runs (given in the same order) give
byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pencilbench.generators.pencil import replay, strip_markers
from pencilbench.reports.document import PLOTS_DIR, Block, Heading, Image, Paragraph, Table, to_html, to_markdown
from pencilbench.reports.load import RunData, load_runs
from pencilbench.reports.plots import (
    ContextTrail,
    LineStyle,
    accuracy_vs_budget,
    accuracy_vs_size,
    line_styles,
    live_context,
)
from pencilbench.reports.tables import (
    BOOTSTRAP_REPS,
    BOOTSTRAP_SEED,
    Comparison,
    Score,
    Standing,
    budget_grid,
    compare,
    leaderboard,
    size_rows,
    sizes,
    solved_within,
)

TITLE = "pencilbench leaderboard"
GOLD_COT = LineStyle("#7f7f7f", "-", "")
GOLD_PENCIL = LineStyle("#000000", "-", "")
MOST_MODEL_TRAILS = 6


@dataclass(frozen=True)
class ReportFiles:
    markdown: Path
    html: Path
    csv: Path
    sizes_csv: Path
    plots: tuple[Path, ...]
    warning: str | None = None  # runs of different versions of one suite


def build_report(
    run_dirs: Sequence[str | Path], out: str | Path, comparisons: Sequence[tuple[str, str]] = ()
) -> ReportFiles:
    """Read the runs, write every report file into ``out`` and return their paths."""
    data = load_runs(run_dirs)
    compared = [compare(data, a, b) for a, b in comparisons]  # bad labels fail before any writing
    standings = leaderboard(data)
    blocks = _blocks(data, standings, compared)
    out = Path(out)
    (out / PLOTS_DIR).mkdir(parents=True, exist_ok=True)
    current = {block.name for block in blocks if isinstance(block, Image)}
    for stale in (out / PLOTS_DIR).glob("*.png"):  # figures of an earlier report here
        if stale.name not in current:
            stale.unlink()
    plots = []
    for block in blocks:
        if isinstance(block, Image):
            path = out / PLOTS_DIR / block.name
            path.write_bytes(block.png)
            plots.append(path)
    files = ReportFiles(
        out / "leaderboard.md",
        out / "leaderboard.html",
        out / "leaderboard.csv",
        out / "sizes.csv",
        tuple(plots),
        mixed_suites(data),
    )
    files.markdown.write_text(to_markdown(blocks), encoding="utf-8")
    files.html.write_text(to_html(TITLE, blocks), encoding="utf-8")
    files.csv.write_text(_leaderboard_csv(data, standings), encoding="utf-8")
    files.sizes_csv.write_text(_sizes_csv(data), encoding="utf-8")
    return files


def _percent(value: float) -> str:
    return f"{100 * value:.1f}"


def _tokens(value: float) -> str:
    """A mean token count; ``-`` when the runs kept no instance records to take it from."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def _with_interval(score: Score | Standing) -> str:
    return f"{_percent(score.accuracy)} [{_percent(score.low)}, {_percent(score.high)}]"


def _blocks(data: RunData, standings: list[Standing], compared: list[Comparison]) -> list[Block]:
    tasks = data.tasks()
    entries = data.samples.drop_duplicates("entry")[["entry", "model", "mode", "style"]]
    styles = line_styles(entries)
    order = [standing.entry for standing in standings]
    blocks: list[Block] = [Heading(1, TITLE), Paragraph(_summary(data))]
    mixed = mixed_suites(data)
    if mixed:
        blocks.append(Paragraph(f"Warning: {mixed}"))
    blocks += _ranking(standings, tasks, suites_of(data))
    blocks += _budgets(data, order, styles)
    for task in tasks:
        blocks += _task_section(data, task, order, styles)
    blocks += _live_contexts(data, order, styles)
    if compared:
        blocks += _comparisons(compared)
    blocks += _outcomes(data, order)
    blocks += _evaluations(data)
    return blocks


def _summary(data: RunData) -> str:
    frame = data.samples
    text = (
        f"{len(frame)} finished samples of {frame['entry'].nunique()} entries (model:mode) on "
        f"{len(data.tasks())} tasks ({', '.join(data.tasks())}), from {', '.join(data.run_dirs)}."
    )
    if data.duplicates:
        text += f" {data.duplicates} samples repeated in a later run directory were ignored (the first run given wins)."
    return text


def suites_of(data: RunData) -> dict[tuple[str, str, str], str]:
    """The suite versions (``NAME vN`` from the datasets' manifests; ``-`` for a dataset
    without a suite) each (model, mode, style) was evaluated on."""
    found: dict[tuple[str, str, str], set[str]] = {}
    for row in data.evaluations.itertuples(index=False):
        label = json.loads(row.config).get("suite") or "-"
        found.setdefault((row.model, row.mode, row.style), set()).add(label)
    return {key: "; ".join(sorted(labels)) for key, labels in found.items()}


def mixed_suites(data: RunData) -> str | None:
    """A warning when the runs hold more than one version of a suite, else ``None``."""
    labels = {label for value in suites_of(data).values() for label in value.split("; ") if label != "-"}
    versions: dict[str, list[str]] = {}
    for label in sorted(labels):
        versions.setdefault(label.rsplit(" v", 1)[0], []).append(label)
    clashes = [", ".join(found) for found in versions.values() if len(found) > 1]
    if not clashes:
        return None
    return (f"these runs hold different versions of one suite ({'; '.join(clashes)}); "
            "their numbers are not comparable")


def _ranking(standings: list[Standing], tasks: list[str], suites: dict[tuple[str, str, str], str]) -> list[Block]:
    rows = []
    for s in standings:
        per_task = [_with_interval(s.tasks[t]) if t in s.tasks else "-" for t in tasks]
        rows.append(
            (
                str(s.rank),
                s.entry,
                suites.get((s.model, s.mode, s.style), "-"),
                _with_interval(s),
                ", ".join(map(str, s.inseparable)) or "-",
                *per_task,
                _percent(s.parse_failure),
                f"{s.mean_peak_context:.1f}",
                f"{s.mean_generated:.1f}",
                "-" if s.mean_model_tokens is None else f"{s.mean_model_tokens:.1f}",
                f"{s.mean_reductions:.1f}" if s.mode == "pencil" else "-",
                str(s.samples),
            )
        )
    header = (
        "rank",
        "entry",
        "suite",
        "accuracy % [95% CI]",
        "not separable from",
        *(f"{t} %" for t in tasks),
        "parse failures %",
        "mean peak context (tokens)",
        "mean tokens generated",
        "mean model tokens generated",
        "mean reductions",
        "samples",
    )
    right = (True, False, False, True, False, *(True for _ in tasks), True, True, True, True, True, True)
    note = (
        "Entries are ranked by accuracy averaged over tasks (each task weighs the same; within a "
        "task all sizes are pooled). Intervals are Wilson 95% intervals (for the average, at its "
        "effective sample size). Entries whose intervals overlap are not separable: the "
        "'not separable from' column lists their ranks, and their order says nothing. At equal "
        "accuracy the entry with the smaller mean peak context ranks first. Parse failures are "
        "samples with no parsable answer, budget stops and errors included. Tokens are "
        "pencilbench tokens: compact task tokens, or words and markers in the instruct style; "
        "model tokens are the model's own, as its server counted them (- where it did not). "
        "Mean reductions are the PENCIL reductions per sample: 0 means the model never "
        "wrote a [RETURN] that reduced its context."
    )
    return [Heading(2, "Leaderboard"), Paragraph(note), Table(header, tuple(rows), right)]


def _budgets(data: RunData, order: list[str], styles: dict[str, LineStyle]) -> list[Block]:
    frames = {entry: data.samples[data.samples["entry"] == entry] for entry in order}
    grid = budget_grid(data.samples)
    rows = tuple((entry, *(_percent(solved_within(frames[entry], b)) for b in grid)) for entry in order)
    table = Table(("entry", *(f"B = {b}" for b in grid)), rows, (False, *(True for _ in grid)))
    note = (
        "A sample is solved within a context budget of B tokens when it is correct and the largest "
        "live context it needed (prompt included) was at most B. Shares are averaged over tasks, so "
        "the right end of each curve is the entry's leaderboard accuracy."
    )
    image = Image(
        "accuracy_vs_budget.png",
        accuracy_vs_budget("Accuracy within a context budget", frames, styles),
        "Share of samples solved within a context budget of B tokens, averaged over tasks.",
    )
    return [
        Heading(2, "Accuracy within a context budget"),
        Paragraph(note),
        image,
        Paragraph("Solved within budget B (%):"),
        table,
    ]


def _task_section(data: RunData, task: str, order: list[str], styles: dict[str, LineStyle]) -> list[Block]:
    task_sizes = sizes(data, task)
    rows = size_rows(data, task)
    rank = {entry: i for i, entry in enumerate(order)}
    rows.sort(key=lambda row: (task_sizes.index(row.size), rank[row.entry]))
    cells = tuple(
        (
            row.size.label,
            _tokens(row.size.gold_cot_context),
            _tokens(row.size.gold_pencil_context),
            row.entry,
            str(row.score.samples),
            _with_interval(row.score),
            f"{row.partial:.3f}",
            f"{row.peak_mean:.1f}",
            str(row.peak_max),
        )
        for row in rows
    )
    header = (
        "size",
        "gold CoT context",
        "gold PENCIL context",
        "entry",
        "samples",
        "accuracy % [95% CI]",
        "partial credit",
        "peak context mean",
        "peak context max",
    )
    table = Table(header, cells, (False, True, True, False, True, True, True, True, True))
    note = (
        "Gold contexts are the largest live context of the instances' gold CoT and PENCIL traces "
        "(prompt included, mean over the instances), in tokens. Partial credit is the task's own "
        "score in [0, 1] averaged over samples."
    )
    frames = {entry: part for entry, part in data.samples[data.samples["task"] == task].groupby("entry")}
    frames = {entry: frames[entry] for entry in order if entry in frames}
    return [
        Heading(2, f"Task: {task}"),
        Paragraph(note),
        table,
        Image(
            f"{task}_accuracy_vs_size.png",
            accuracy_vs_size(task, task_sizes, rows, styles),
            f"{task}: accuracy by problem size, one line per entry with 95% interval bars.",
        ),
        Image(
            f"{task}_accuracy_vs_budget.png",
            accuracy_vs_budget(f"{task}: accuracy within a context budget", frames, styles),
            f"{task}: share of samples solved within a context budget of B tokens.",
        ),
    ]


def _chosen_instance(data: RunData, task: str) -> str | None:
    """The instance whose live context is drawn: one a model's run recorded context lengths
    for if any, and among those the one with the longest gold CoT."""
    frame = data.samples[(data.samples["task"] == task) & data.samples["instance_id"].isin(set(data.instances))]
    if frame.empty:
        return None
    recorded = set(frame.loc[frame["context_lengths"].notna(), "instance_id"])
    return min(
        set(frame["instance_id"]),
        key=lambda i: (i not in recorded, -data.instances[i]["stats"]["cot_tokens"], i),
    )


def _live_contexts(data: RunData, order: list[str], styles: dict[str, LineStyle]) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Live context over one generation"),
        Paragraph(
            "For one instance per task: the live context after every generated token. The gold CoT "
            "only grows; the gold PENCIL trace drops back each time a [RETURN] erases a finished "
            "sub-computation. Model runs are drawn where the run recorded context lengths."
        ),
    ]
    for task in data.tasks():
        instance_id = _chosen_instance(data, task)
        if instance_id is None:
            blocks.append(Paragraph(f"{task}: the runs kept no instance records, so there is no gold trace to draw."))
            continue
        record = data.instances[instance_id]
        prompt, pencil = record["prompt"].split(), record["pencil"].split()
        cot = strip_markers(pencil)
        gold = replay(prompt, pencil, lengths=True)
        trails = [
            ContextTrail(
                f"gold CoT (peak {len(prompt) + len(cot)})",
                tuple(range(len(prompt) + 1, len(prompt) + len(cot) + 1)),
                GOLD_COT,
                False,
            ),
            ContextTrail(f"gold PENCIL (peak {gold.peak_context})", gold.lengths, GOLD_PENCIL, True),
        ]
        runs = data.samples[(data.samples["instance_id"] == instance_id) & data.samples["context_lengths"].notna()]
        runs = runs.drop_duplicates("entry").set_index("entry")  # one sample per entry: its first repeat
        for entry in [e for e in order if e in runs.index][:MOST_MODEL_TRAILS]:
            run = runs.loc[entry]
            lengths = tuple(json.loads(run["context_lengths"]))
            if lengths:
                trails.append(
                    ContextTrail(
                        f"{entry} run (peak {run['peak_context']})",
                        lengths,
                        styles[entry],
                        run["mode"] == "pencil",
                    )
                )
        size = data.samples.loc[data.samples["instance_id"] == instance_id, "size"].iloc[0]
        title = f"{task}: live context over one generation\n{size}"
        blocks.append(
            Image(
                f"{task}_live_context.png",
                live_context(title, len(prompt), trails),
                f"{task}: live context over generation steps for instance {instance_id}.",
            )
        )
    return blocks


def _comparisons(compared: list[Comparison]) -> list[Block]:
    blocks: list[Block] = [
        Heading(2, "Paired comparisons"),
        Paragraph(
            f"Accuracy of A minus accuracy of B on the instances both were evaluated on, in points, "
            f"with a paired bootstrap 95% interval ({BOOTSTRAP_REPS} resamples within each task, "
            f"seed {BOOTSTRAP_SEED}). An interval that excludes 0 separates the two."
        ),
    ]
    header = ("scope", "shared instances", "A %", "B %", "A - B [95% CI]", "only A correct", "only B correct")
    for c in compared:
        rows = tuple(
            (
                d.scope,
                str(d.shared),
                _percent(d.accuracy_a),
                _percent(d.accuracy_b),
                f"{100 * d.difference:+.1f} [{100 * d.low:+.1f}, {100 * d.high:+.1f}]",
                str(d.a_only),
                str(d.b_only),
            )
            for d in (c.overall, *c.tasks)
        )
        verdict = "separable" if c.overall.low > 0 or c.overall.high < 0 else "not separable"
        blocks += [
            Heading(3, f"A = {c.a}, B = {c.b}"),
            Paragraph(f"Over the shared tasks the two are {verdict} at 95%."),
            Table(header, rows, (False, True, True, True, True, True, True)),
        ]
    return blocks


def _outcomes(data: RunData, order: list[str]) -> list[Block]:
    counts = pd.crosstab(data.samples["entry"], data.samples["status"])
    statuses = sorted(counts.columns)
    rows = tuple((entry, *(str(int(counts.loc[entry, s])) for s in statuses)) for entry in order)
    return [
        Heading(2, "Sample outcomes"),
        Paragraph(
            "How samples ended: context_overflow, token_limit and reply_cut are stops by a budget "
            "or the reply byte cap (scored on the answer the reply finished before it, if any), "
            "protocol_error a malformed [CALL]/[SEP]/[RETURN] sequence, model_error a failed call, "
            "empty_reply a model that wrote nothing."
        ),
        Table(("entry", *statuses), rows, (False, *(True for _ in statuses))),
    ]


def _settings(config: str) -> str:
    """The settings an evaluation recorded, less the unset ones and those with columns of their own
    (every data file, when it was run on several)."""
    values = json.loads(config)
    return ", ".join(
        f"{name}={' + '.join(map(str, value)) if isinstance(value, list) else value}"
        for name, value in sorted(values.items())
        if value is not None and name not in ("mode", "style")
    )


def _evaluations(data: RunData) -> list[Block]:
    rows = tuple(
        (row.run, row.model, row.mode, row.style, row.started, _settings(row.config))
        for row in data.evaluations.itertuples(index=False)
    )
    return [
        Heading(2, "Evaluations"),
        Paragraph("How each (model, mode, style) was evaluated, as its run directory recorded it."),
        Table(("run", "model", "mode", "style", "started", "settings"), rows, (False,) * 6),
    ]


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _number(value: float) -> str:
    return f"{value:.6f}"


def _leaderboard_csv(data: RunData, standings: list[Standing]) -> str:
    tasks = data.tasks()
    grid = budget_grid(data.samples)
    header = [
        "rank",
        "entry",
        "model",
        "mode",
        "style",
        "suite",
        "accuracy",
        "ci_low",
        "ci_high",
        "not_separable_from",
        "samples",
        "parse_failure_rate",
        "mean_peak_context",
        "mean_generated_tokens",
        "total_generated_tokens",
        "mean_model_tokens",
        "mean_reductions",
    ]
    for task in tasks:
        header += [f"{task}_accuracy", f"{task}_ci_low", f"{task}_ci_high", f"{task}_samples"]
    header += [f"solved_within_{b}" for b in grid]
    suites = suites_of(data)
    rows = []
    for s in standings:
        row = [
            s.rank,
            s.entry,
            s.model,
            s.mode,
            s.style,
            suites.get((s.model, s.mode, s.style), "-"),
            _number(s.accuracy),
            _number(s.low),
            _number(s.high),
            ";".join(map(str, s.inseparable)),
            s.samples,
            _number(s.parse_failure),
            _number(s.mean_peak_context),
            _number(s.mean_generated),
            s.total_generated,
            "" if s.mean_model_tokens is None else _number(s.mean_model_tokens),
            _number(s.mean_reductions),
        ]
        for task in tasks:
            score = s.tasks.get(task)
            row += (
                [_number(score.accuracy), _number(score.low), _number(score.high), score.samples]
                if score
                else ["", "", "", 0]
            )
        frame = data.samples[data.samples["entry"] == s.entry]
        row += [_number(solved_within(frame, b)) for b in grid]
        rows.append(row)
    return _csv_text(header, rows)


def _sizes_csv(data: RunData) -> str:
    header = [
        "task",
        "size",
        "params",
        "gold_cot_context",
        "gold_pencil_context",
        "entry",
        "samples",
        "correct",
        "accuracy",
        "ci_low",
        "ci_high",
        "partial",
        "peak_context_mean",
        "peak_context_max",
    ]
    rows = []
    for task in data.tasks():
        for row in size_rows(data, task):
            rows.append(
                [
                    task,
                    row.size.label,
                    row.size.params,
                    _number(row.size.gold_cot_context),
                    _number(row.size.gold_pencil_context),
                    row.entry,
                    row.score.samples,
                    row.score.correct,
                    _number(row.score.accuracy),
                    _number(row.score.low),
                    _number(row.score.high),
                    _number(row.partial),
                    _number(row.peak_mean),
                    row.peak_max,
                ]
            )
    return _csv_text(header, rows)
