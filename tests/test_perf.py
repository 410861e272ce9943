"""``pencilbench perf``: end-to-end figures, saved baselines and their comparison."""

import json

from pencilbench.bench.cli import main
from pencilbench.bench.commands.perf import SPEED_UP_PAIRS, _against_goal, compare_table


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_goals_save_and_compare(tmp_path, capsys):
    saved = tmp_path / "base.json"
    code, out, _ = run(capsys, "perf", "--goals", "--task", "addition", "--seconds", "0.05", "--save", str(saved))
    assert code == 0
    row = json.loads(saved.read_text())["rows"][0]
    assert row["task"] == "addition" and row["size"] == "operands=2 digits=4" and row["n"] >= 4
    assert row["inst/s"] > 0 and row["inst/cpu-s"] > 0 and row["peak MB"] > 0 and row["floor"] == "30,000 inst/s"
    assert "x PENCIL" in out and "30,000 inst/s" in out
    code, out, _ = run(capsys, "perf", "--goals", "--task", "addition", "--seconds", "0.05", "--compare", str(saved))
    assert code == 0 and f"against {saved}" in out and "now/baseline" in out


def test_workers_show_speed_up_and_identical_bytes(capsys):
    code, out, _ = run(capsys, "perf", "--task", "phop", "--goals", "--workers", "2", "--seconds", "0.05")
    assert code == 0 and "speed-up" in out
    assert "same bytes" in out and " yes " in out
    header, rule, row = (line for line in out.splitlines() if line.startswith(("task ", "----", "phop")))
    cells = dict(zip(_cells(header, rule), _cells(row, rule), strict=True))
    pairs = cells["speed-ups"].split("-")
    assert len(pairs) == SPEED_UP_PAIRS and [float(x) for x in pairs] == sorted(float(x) for x in pairs)
    # Two processes apart, each writing half the records to its own file: a speed-up (in runs
    # this short, not always above 1), and the pool's share of it a percentage.
    assert float(cells["apart"]) > 0 and cells["of apart"].endswith("%")
    assert cells["speed-up floor"] == "1.8x" and cells["speed-up met"] in ("yes", "no")


def _cells(line, rule):
    """The cells of a table line, cut where the rule under the header has its dashes."""
    spans, at = [], 0
    for dashes in rule.split("  "):
        spans.append(line[at : at + len(dashes)].strip())
        at += len(dashes) + 2
    return spans


def test_the_speed_up_floor_is_nine_tenths_of_the_workers():
    row = {"inst/cpu-s": 40_000.0, "workers": 2, "speed-up": 1.79}
    assert _against_goal(row, None, "30000")["speed-up met"] == "no"
    assert _against_goal({**row, "speed-up": 1.8}, None, "30000")["speed-up met"] == "yes"
    assert _against_goal({**row, "workers": 4, "speed-up": 3.5}, 799.0, "10x")["speed-up floor"] == "3.6x"
    assert "speed-up met" not in _against_goal({"inst/cpu-s": 1.0, "workers": 1}, None, "30000")


def test_compare_table_pairs_rows_by_task_size_and_workers():
    base = [{"task": "sat", "size": "n=10", "workers": 1, "inst/s": 100.0, "inst/cpu-s": 200.0, "peak MB": 50.0}]
    now = [{"task": "sat", "size": "n=10", "workers": 1, "inst/s": 150.0, "inst/cpu-s": 100.0, "peak MB": 50.0},
           {"task": "qbf", "size": "n=4", "workers": 1, "inst/s": 1.0, "inst/cpu-s": 1.0, "peak MB": 1.0}]
    lines = compare_table(base, now).splitlines()
    assert any("inst/s" in line and "1.50x" in line for line in lines)
    assert any("inst/cpu-s" in line and "0.50x" in line for line in lines)
    assert any(line.startswith("qbf") and line.rstrip().endswith("-") for line in lines)


def test_bad_baselines_and_options_are_one_line_errors(tmp_path, capsys):
    (tmp_path / "not.json").write_text("{")
    (tmp_path / "other.json").write_text('{"rows": [{"task": "sat"}]}')
    for argv, message in (
        (["--compare", str(tmp_path / "missing.json")], "cannot read"),
        (["--compare", str(tmp_path / "not.json")], "not a JSON file"),
        (["--compare", str(tmp_path / "other.json")], "not a baseline written by"),
        (["--seconds", "0"], "--seconds must be > 0"),
        (["--workers", "0"], "--workers must be >= 1"),
        (["--task", "chess"], "unknown task"),
        (["--executor", "ray", "--goals", "--save", "x.json"], "--goals, --save measure local generation"),
        (["--executor", "ray", "--task", "sat", "--workers", "2"], "--task, --workers measure local generation"),
    ):
        code, _, err = run(capsys, "perf", *argv)
        assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err
