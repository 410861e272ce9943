"""Leaderboard reports: the numbers, the files, determinism and the command line."""

from __future__ import annotations

import io
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pencilbench.bench.cli import main
from pencilbench.bench.metrics import wilson
from pencilbench.bench.store import ResultStore, Sample
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.pencil import replay, strip_markers
from pencilbench.reports.build import build_report
from pencilbench.reports.load import load_runs
from pencilbench.reports.tables import (
    budget_curve,
    compare,
    leaderboard,
    macro_interval,
    size_axis,
    sizes,
    solved_within,
)
from PIL import Image as PILImage

SIZES = {
    "addition": ({"operands": 2, "digits": 5}, {"operands": 8, "digits": 3}),
    "phop": ({"length": 32, "hops": 4}, {"length": 64, "hops": 8}),
}
PER_SIZE = 8


def suite() -> list[dict]:
    return [r for task, sizes_ in SIZES.items() for p in sizes_ for r in generate(Spec(task, p, "test", 0), PER_SIZE)]


def sample(
    model: str,
    mode: str,
    record: dict,
    correct: bool,
    *,
    style: str = "compact",
    status: str = "ok",
    lengths: bool = True,
) -> Sample:
    """A finished sample as the harness would store it, following the gold trace in ``mode``."""
    prompt, pencil = record["prompt"].split(), record["pencil"].split()
    if mode == "pencil":
        run = replay(prompt, pencil, lengths=True)
        peak, generated, reductions = run.peak_context, len(pencil), run.reductions
        trail = json.dumps(list(run.lengths)) if lengths else None
    else:
        cot = strip_markers(pencil)
        peak, generated, reductions = len(prompt) + len(cot), len(cot), 0
        trail = json.dumps(list(range(len(prompt) + 1, peak + 1))) if lengths else None
    answer = record["answer"] if correct else "0"
    return Sample(
        model=model,
        mode=mode,
        style=style,
        instance_id=record["id"],
        task=record["task"],
        params=json.dumps(record["params"], sort_keys=True, separators=(",", ":")),
        status=status,
        correct=correct,
        partial=1.0 if correct else 0.25,
        parse_ok=correct or record["index"] % 2 == 0,
        parsed_answer=answer,
        gold_answer=record["answer"],
        peak_context=peak,
        generated_tokens=generated,
        reductions=reductions,
        trace_rate=1.0 if correct else 0.5,
        wall_time=0.01,
        output=answer,
        context_lengths=trail,
    )


def make_run(
    run_dir: Path,
    records: list[dict],
    outcomes: dict[tuple[str, str], list[bool]],
    *,
    style: str = "compact",
    lengths: bool = True,
) -> Path:
    """A run directory holding ``outcomes[(model, mode)][i]`` as the verdict on ``records[i]``."""
    with ResultStore(run_dir, create=True) as store:
        store.add_instances(records)
        for (model, mode), verdicts in outcomes.items():
            store.start_evaluation(
                model, mode, style, {"max_context": 4096}, {"pencilbench": "test"}, "2026-01-01T00:00:00Z"
            )
            for record, correct in zip(records, verdicts, strict=True):
                store.write(sample(model, mode, record, correct, style=style, lengths=lengths))
    return run_dir


def standard_outcomes(records: list[dict]) -> dict[tuple[str, str], list[bool]]:
    """Oracle always right; a weaker model right on every other addition and most p-hop items; a floor."""
    return {
        ("oracle", "pencil"): [True] * len(records),
        ("oracle", "cot"): [True] * len(records),
        ("weak", "pencil"): [r["index"] % 2 == 0 if r["task"] == "addition" else r["index"] != 3 for r in records],
        ("floor", "cot"): [r["index"] == 0 and r["task"] == "phop" for r in records],
    }


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return suite()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> Path:
    return make_run(tmp_path_factory.mktemp("run"), records, standard_outcomes(records))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, run: Path) -> Path:
    out = tmp_path_factory.mktemp("report")
    build_report([run], out, [("weak:pencil", "oracle:pencil")])
    return out


def test_leaderboard_ranks_by_macro_accuracy_with_wilson_intervals(run: Path) -> None:
    standings = leaderboard(load_runs([run]))
    assert [s.entry for s in standings] == ["oracle:pencil", "oracle:cot", "weak:pencil", "floor:cot"]
    weak = standings[2]
    # weak: 8 of 16 addition samples, 14 of 16 p-hop samples (index 3 wrong at both sizes)
    assert (weak.tasks["addition"].correct, weak.tasks["phop"].correct) == (8, 14)
    assert (weak.tasks["addition"].low, weak.tasks["addition"].high) == pytest.approx(wilson(8, 16))
    assert weak.accuracy == pytest.approx((8 / 16 + 14 / 16) / 2)
    assert (weak.low, weak.high) == pytest.approx(wilson(22, 32))  # equal task sizes: plain Wilson
    floor = standings[3]
    assert floor.accuracy == pytest.approx((0 + 2 / 16) / 2)
    assert floor.parse_failure == pytest.approx(0.5)  # only even indices parse (its two hits are even)
    assert weak.mean_peak_context < standings[1].mean_peak_context  # PENCIL keeps the context short


def test_overlapping_intervals_are_marked_not_separable(run: Path) -> None:
    standings = leaderboard(load_runs([run]))
    by_rank = {s.rank: s for s in standings}
    for s in standings:
        for other in s.inseparable:
            assert s.rank in by_rank[other].inseparable
            assert by_rank[other].low <= s.high and s.low <= by_rank[other].high
    assert by_rank[1].inseparable == (2,)  # the two oracle entries are tied at 100% ...
    assert by_rank[1].mean_peak_context < by_rank[2].mean_peak_context  # ... PENCIL first: less context
    assert by_rank[3].inseparable == () and by_rank[4].inseparable == ()


def test_macro_interval_uses_effective_sample_size() -> None:
    from pencilbench.reports.tables import Score

    equal = [Score(20, 10, 0.5, 0, 1), Score(20, 15, 0.75, 0, 1)]
    assert macro_interval(equal) == pytest.approx((0.625, *wilson(25, 40)))
    # A small task weighs as much as a large one, so the average is less certain than pooling.
    unequal = [Score(200, 100, 0.5, 0, 1), Score(5, 4, 0.8, 0, 1)]
    mean, low, high = macro_interval(unequal)
    pooled_low, pooled_high = wilson(104, 205)
    assert mean == pytest.approx(0.65) and high - low > pooled_high - pooled_low


def test_budget_curve_counts_correct_samples_within_the_budget() -> None:
    frame = pd.DataFrame(
        {
            "task": ["a", "a", "a", "a", "b", "b"],
            "correct": [True, True, False, True, True, False],
            "peak_context": [10, 30, 5, 30, 20, 1],
        }
    )
    budgets, shares = budget_curve(frame)
    assert budgets.tolist() == [10, 20, 30]
    # task a: 1/4 within 10, 3/4 within 30; task b: 1/2 from 20 on; averaged over the two tasks
    assert shares.tolist() == pytest.approx([0.125, 0.375, 0.625])
    assert solved_within(frame, 9) == 0.0
    assert solved_within(frame, 25) == pytest.approx(0.375)
    assert solved_within(frame, 10**6) == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_paired_bootstrap_is_seeded_and_brackets_the_difference(run: Path) -> None:
    data = load_runs([run])
    first = compare(data, "weak:pencil", "oracle:pencil")
    assert first == compare(data, "weak:pencil", "oracle:pencil")
    overall = first.overall
    assert overall.shared == 32
    assert overall.difference == pytest.approx((8 / 16 + 14 / 16) / 2 - 1)
    assert overall.low <= overall.difference <= overall.high < 0  # the oracle is clearly better
    assert (overall.a_only, overall.b_only) == (0, 10)
    addition = next(d for d in first.tasks if d.scope == "addition")
    assert addition.difference == pytest.approx(-0.5)
    tied = compare(data, "oracle:pencil", "oracle:cot").overall
    assert (tied.difference, tied.low, tied.high) == (0.0, 0.0, 0.0)


def test_compare_rejects_unknown_or_identical_entries(run: Path) -> None:
    from pencilbench.bench.errors import UserError

    data = load_runs([run])
    with pytest.raises(UserError, match="no entry 'nobody:cot'.*oracle:pencil"):
        compare(data, "nobody:cot", "oracle:pencil")
    with pytest.raises(UserError, match="twice"):
        compare(data, "oracle:cot", "oracle:cot")


def test_sizes_follow_gold_context_and_one_varying_knob_gives_a_numeric_axis(run: Path) -> None:
    data = load_runs([run])
    addition = sizes(data, "addition")
    assert [s.label for s in addition] == ["operands=2 digits=5", "operands=8 digits=3"]
    assert addition[0].gold_cot_context < addition[1].gold_cot_context
    assert all(s.gold_pencil_context < s.gold_cot_context for s in addition)
    assert size_axis(addition) is None  # both knobs change between the two sizes
    phop = sizes(data, "phop")
    assert size_axis(phop) is None  # length and hops both change
    assert size_axis(phop[:1]) is None


def test_one_varying_knob(tmp_path: Path) -> None:
    records = [r for n in (2, 4, 16) for r in generate(Spec("addition", {"operands": n, "digits": 3}, "test", 0), 2)]
    data = load_runs([make_run(tmp_path, records, {("m", "cot"): [True] * len(records)})])
    assert size_axis(sizes(data, "addition")) == ("operands", [2.0, 4.0, 16.0])


def test_report_files_are_complete_and_consistent(report: Path) -> None:
    markdown = (report / "leaderboard.md").read_text()
    for heading in (
        "## Leaderboard",
        "## Accuracy within a context budget",
        "## Task: addition",
        "## Task: phop",
        "## Live context over one generation",
        "## Paired comparisons",
        "## Sample outcomes",
    ):
        assert heading in markdown
    linked = [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
    assert sorted(linked) == sorted(f"plots/{p.name}" for p in (report / "plots").iterdir())
    assert len(linked) == 1 + 2 * 2 + 2  # headline, per task size and budget plots, one sawtooth per task
    table = pd.read_csv(report / "leaderboard.csv")
    assert table["entry"].tolist() == ["oracle:pencil", "oracle:cot", "weak:pencil", "floor:cot"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    weak = table.set_index("entry").loc["weak:pencil"]
    assert weak["phop_accuracy"] == pytest.approx(14 / 16) and weak["addition_samples"] == 16
    budget_columns = [c for c in table.columns if c.startswith("solved_within_")]
    assert table.set_index("entry").loc["oracle:cot", budget_columns[-1]] == pytest.approx(1.0)
    sizes_table = pd.read_csv(report / "sizes.csv")
    assert len(sizes_table) == 4 * 4  # four sizes, four entries
    assert (sizes_table.groupby("entry")["samples"].sum() == 32).all()


def test_plots_are_valid_pngs_without_software_tags(report: Path) -> None:
    for path in sorted((report / "plots").iterdir()):
        data = path.read_bytes()
        with PILImage.open(io.BytesIO(data)) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 400
            assert "Software" not in image.info
        # a real picture, not a blank canvas
        pixels = np.asarray(PILImage.open(io.BytesIO(data)).convert("L"))
        assert pixels.std() > 10


def test_html_is_self_contained(report: Path) -> None:
    page = (report / "leaderboard.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<img src="data:image/png;base64,') == len(list((report / "plots").iterdir()))
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert "weak:pencil" in page and "not separable from" in page


def test_same_runs_give_identical_bytes(tmp_path: Path, run: Path, report: Path) -> None:
    build_report([run], tmp_path, [("weak:pencil", "oracle:pencil")])
    for name in ("leaderboard.md", "leaderboard.csv", "sizes.csv", "leaderboard.html"):
        assert (tmp_path / name).read_bytes() == (report / name).read_bytes(), name
    for path in (report / "plots").iterdir():
        assert (tmp_path / "plots" / path.name).read_bytes() == path.read_bytes(), path.name


def test_all_wrong_or_all_right_entries_plot(tmp_path: Path, records: list[dict]) -> None:
    """At 0% or 100% the Wilson bound can miss the point by a rounding error (n = 3 does)."""
    three = [r for r in records if r["task"] == "addition"][:3]
    run = make_run(tmp_path / "run", three, {("none", "cot"): [False] * 3, ("all", "cot"): [True] * 3})
    files = build_report([run], tmp_path / "out")
    assert [p.name for p in files.plots if "size" in p.name] == ["addition_accuracy_vs_size.png"]


def test_live_context_prefers_an_instance_with_a_recorded_run(tmp_path: Path, records: list[dict]) -> None:
    from pencilbench.reports.build import _chosen_instance

    phop = [r for r in records if r["task"] == "phop"]
    longest = min(phop, key=lambda r: (-r["stats"]["cot_tokens"], r["id"]))
    bare = make_run(tmp_path / "bare", phop, {("n", "pencil"): [True] * len(phop)}, lengths=False)
    assert _chosen_instance(load_runs([bare]), "phop") == longest["id"]
    short = [r for r in phop if r["stats"]["cot_tokens"] < longest["stats"]["cot_tokens"]][:3]
    make_run(bare, short, {("m", "pencil"): [True] * 3})  # a run that recorded its context lengths
    chosen = _chosen_instance(load_runs([bare]), "phop")
    assert chosen == min(short, key=lambda r: (-r["stats"]["cot_tokens"], r["id"]))["id"]


def test_runs_with_several_samples_per_instance_draw_their_live_context(tmp_path: Path, records: list[dict]) -> None:
    phop = [r for r in records if r["task"] == "phop"][:2]
    run = make_run(tmp_path / "run", phop, {("m", "cot"): [True, False]})
    with ResultStore(run) as store:  # a second sample of each instance, as `eval --samples 2` draws
        for record in phop:
            store.write(replace(sample("m", "cot", record, False), repeat=1, context_lengths="[1]"))
    files = build_report([run], tmp_path / "out")
    assert "phop_live_context.png" in [path.name for path in files.plots]


def test_repeated_runs_are_deduplicated_and_styles_named(tmp_path: Path, run: Path, records: list[dict]) -> None:
    data = load_runs([run, run])
    assert data.duplicates == len(data.samples) and len(data.samples) == 4 * len(records)
    other = make_run(tmp_path, records[:4], {("oracle", "pencil"): [False] * 4}, style="instruct")
    mixed = load_runs([run, other])
    assert "oracle:pencil:instruct" in mixed.entries() and "oracle:pencil:compact" in mixed.entries()
    assert mixed.duplicates == 0


def test_cli_writes_the_report(tmp_path: Path, run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["report", str(run), "--out", str(out), "--compare", "floor:cot", "weak:pencil"]) == 0
    assert str(out / "leaderboard.html") in capsys.readouterr().out
    assert "### A = floor:cot, B = weak:pencil" in (out / "leaderboard.md").read_text()


@pytest.mark.parametrize("case", ["missing", "plain_dir", "empty_run", "not_sqlite", "bad_compare"])
def test_cli_bad_input_gives_one_line_and_exit_2(
    case: str, tmp_path: Path, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target, extra = tmp_path / "target", []
    if case == "plain_dir":
        target.mkdir()
    elif case == "empty_run":
        ResultStore(target, create=True).close()
    elif case == "not_sqlite":
        target.mkdir()
        (target / "results.sqlite").write_text("not a database")
    elif case == "bad_compare":
        target, extra = run, ["--compare", "oracle:cot", "gpt:cot"]
    assert main(["report", str(target), "--out", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pencilbench: error:") and len(err.splitlines()) == 1
    assert not (tmp_path / "out" / "leaderboard.md").exists()


def test_wilson_interval_is_reported_for_every_task(run: Path) -> None:
    for s in leaderboard(load_runs([run])):
        for score in s.tasks.values():
            assert (score.low, score.high) == pytest.approx(wilson(score.correct, score.samples))
            assert score.low <= score.accuracy <= score.high and not math.isnan(score.accuracy)


def test_report_on_runs_of_the_oracle_and_random_adapters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """End to end through the command line: generate, evaluate two built-in adapters, report."""
    datasets = []
    for task, params in (("addition", ["operands=4", "digits=3"]), ("phop", ["length=32", "hops=4"])):
        path = tmp_path / f"{task}.jsonl"
        flags = [flag for value in params for flag in ("-p", value)]
        assert main(["generate", task, *flags, "-n", "6", "--split", "test", "--out", str(path)]) == 0
        datasets.append(path.read_text())
    suite_path = tmp_path / "suite.jsonl"
    suite_path.write_text("".join(datasets))
    run_dir = tmp_path / "run"
    for model in ("oracle", "random"):
        for mode in ("pencil", "cot"):
            command = ["eval", "--data", str(suite_path), "--model", model, "--mode", mode, "--run-dir", str(run_dir)]
            assert main([*command, "--quiet"]) == 0
    out = tmp_path / "report"
    assert main(["report", str(run_dir), "--out", str(out), "--compare", "oracle:pencil", "random:pencil"]) == 0
    capsys.readouterr()
    table = pd.read_csv(out / "leaderboard.csv").set_index("entry")
    assert set(table.index) == {"oracle:pencil", "oracle:cot", "random:pencil", "random:cot"}
    assert table.loc["oracle:pencil", "accuracy"] == 1.0 and table.loc["oracle:pencil", "rank"] <= 2
    assert table.loc["random:pencil", "accuracy"] < 1.0 and table.loc["random:pencil", "rank"] >= 3
    # the oracle replays gold traces: PENCIL needs a smaller context than CoT for the same answers
    assert table.loc["oracle:pencil", "mean_peak_context"] < table.loc["oracle:cot", "mean_peak_context"]
    markdown = (out / "leaderboard.md").read_text()
    assert "### A = oracle:pencil, B = random:pencil" in markdown
    for name in ("accuracy_vs_budget", "addition_live_context", "phop_accuracy_vs_size"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 10_000


def test_quickstart_ends_with_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quickstart", "--out", str(tmp_path), "-n", "2"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"report: {tmp_path / 'report' / 'leaderboard.html'}")
    table = pd.read_csv(tmp_path / "report" / "leaderboard.csv")
    assert {"oracle:pencil", "random:pencil"} <= set(table["entry"])
    assert table.iloc[0]["accuracy"] == 1.0  # an oracle entry leads


def test_a_new_report_removes_figures_an_earlier_one_left(tmp_path):
    from pencilbench.bench.cli import main
    from pencilbench.reports.build import build_report

    run = tmp_path / "run"
    data = tmp_path / "d.jsonl"
    assert main(["generate", "addition", "-n", "5", "--split", "test", "--out", str(data)]) == 0
    assert main(["eval", "--data", str(data), "--model", "oracle", "--mode", "pencil", "--run-dir", str(run),
                 "--quiet"]) == 0
    out = tmp_path / "report"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "phop_live_context.png").write_bytes(b"old")
    files = build_report([run], out)
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == sorted(p.name for p in files.plots)


def _run_with_config(run_dir: Path, records: list[dict], model: str, mode: str, config: dict,
                     verdicts: list[bool]) -> Path:
    with ResultStore(run_dir, create=True) as store:
        store.add_instances(records)
        store.start_evaluation(model, mode, "instruct", config, {"pencilbench": "test"}, "2026-01-01T00:00:00Z")
        for record, correct in zip(records, verdicts, strict=True):
            store.write(sample(model, mode, record, correct, style="instruct"))
    return run_dir


def test_chat_and_completions_runs_of_one_model_stay_apart(tmp_path: Path, records: list[dict]) -> None:
    part = records[:6]
    chat = _run_with_config(tmp_path / "chat", part, "openai:m", "pencil",
                            {"api": "chat", "temperature": 0.0, "data": "a.jsonl"}, [True] * 6)
    plain = _run_with_config(tmp_path / "plain", part, "openai:m", "pencil",
                             {"api": "completions", "temperature": 0.0, "data": "b.jsonl"}, [False] * 6)
    data = load_runs([chat, plain, chat])
    assert data.entries() == ["openai:m:pencil [api=chat]", "openai:m:pencil [api=completions]"]
    assert len(data.samples) == 12 and data.duplicates == 6
    standings = {s.entry: s.accuracy for s in leaderboard(data)}
    assert standings == {"openai:m:pencil [api=chat]": 1.0, "openai:m:pencil [api=completions]": 0.0}


def test_leaderboard_shows_reductions_and_model_tokens(tmp_path: Path, report: Path, records: list[dict]) -> None:
    table = pd.read_csv(report / "leaderboard.csv").set_index("entry")
    assert table.loc["oracle:pencil", "mean_reductions"] > 0 and table.loc["oracle:cot", "mean_reductions"] == 0
    assert table["mean_model_tokens"].isna().all()  # no server counted them
    never = _run_with_config(tmp_path / "never", records[:4], "m", "pencil", {}, [False] * 4)
    with ResultStore(never) as store:
        store.db.execute("UPDATE samples SET reductions = 0, model_tokens = 7")
        store.db.commit()
    out = tmp_path / "out"
    build_report([never], out)
    row = pd.read_csv(out / "leaderboard.csv").iloc[0]
    assert row["mean_reductions"] == 0 and row["mean_model_tokens"] == 7
    header = next(line for line in (out / "leaderboard.md").read_text().splitlines() if line.startswith("| rank"))
    assert "mean reductions" in header and "mean model tokens generated" in header


def test_evaluations_table_lists_every_data_file(tmp_path: Path, records: list[dict]) -> None:
    run_dir = _run_with_config(tmp_path / "run", records[:2], "m", "cot", {"data": "first.jsonl"}, [True, True])
    _run_with_config(run_dir, records[2:4], "m", "cot", {"data": "second.jsonl"}, [True, True])
    _run_with_config(run_dir, records[4:5], "m", "cot", {"data": "second.jsonl"}, [True])
    build_report([run_dir], tmp_path / "out")
    markdown = (tmp_path / "out" / "leaderboard.md").read_text()
    evaluations = markdown.split("## Evaluations")[1]
    assert "data=first.jsonl + second.jsonl" in evaluations


def test_every_entry_has_its_own_colour_and_legends_fit(records: list[dict]) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from pencilbench.reports.plots import _legend, line_styles

    entries = pd.DataFrame(
        [(f"openai:some-organisation/a-very-long-model-name-{i}-instruct-GGUF:{mode}", f"m{i}", mode, "instruct")
         for i in range(2) for mode in ("cot", "pencil")],
        columns=["entry", "model", "mode", "style"],
    )
    styles = line_styles(entries)
    assert len({style.colour for style in styles.values()}) == 4
    figure = Figure(figsize=(7.2, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for entry, style in styles.items():
        axes.plot([1, 2], [0, 1], color=style.colour, label=entry)
    _legend(figure, axes, len(styles))
    renderer = figure.canvas.get_renderer()
    figure.draw(renderer)
    box, page = figure.legends[0].get_window_extent(renderer), figure.bbox
    assert box.x0 >= page.x0 and box.x1 <= page.x1
