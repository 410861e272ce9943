"""``pencilbench export``: folder layout, names, verification before writing, and the
lm-eval filter (the tools themselves are exercised in their own tox environments)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pencilbench.bench.commands.export import config_names, export_hf, export_lm_eval, load_checked
from pencilbench.bench.errors import UserError
from pencilbench.bench.integrations.lm_eval_hooks import extract_answers
from pencilbench.generators.export import read_records, record_row, write_records
from pencilbench.generators.registry import get_task

import pencilbench


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    sets = {
        "sat.jsonl": pencilbench.generate("sat", 4, seed=1, split="test", variables=5),
        "add.parquet": pencilbench.generate("addition", 3, seed=1, split="test", digits=3)
        + pencilbench.generate("addition", 2, seed=1, split="train", digits=3),
        "ein.jsonl": pencilbench.generate("einstein", 2, seed=1, split="test", houses=3, attributes=3),
    }
    for name, records in sets.items():
        write_records(folder / name, records)
    return [str(folder / name) for name in sets]


def cli(*argv):
    return subprocess.run([sys.executable, "-m", "pencilbench", *argv], capture_output=True, text=True)


def test_config_names_are_readable_and_unique():
    sizes = [{"variables": 5}, {}, {"ratio": 1.25}, {"ratio": 12.5}]  # the last two read alike
    names = config_names([{"task": "sat", "params": size} for size in sizes])
    assert names[("sat", size_key({"variables": 5}))] == "sat-variables5"
    assert names[("sat", size_key({}))] == "sat-default"
    clashing = [names[("sat", size_key(size))] for size in sizes[2:]]
    assert all(name.startswith("sat-ratio125-") for name in clashing) and len(set(clashing)) == 2


def size_key(size):
    return get_task("sat").params(size).key()


def test_hf_folder_has_a_parquet_per_config_and_split_and_a_card(files, tmp_path):
    records, summaries = load_checked(files)
    configs = export_hf(records, summaries, tmp_path / "hf")
    assert configs == ["addition-digits3", "einstein-houses3-attributes3", "sat-variables5"]
    written = sorted(p.relative_to(tmp_path / "hf").as_posix() for p in (tmp_path / "hf").rglob("*") if p.is_file())
    assert written == ["README.md", "data/addition-digits3/test.parquet", "data/addition-digits3/train.parquet",
                       "data/einstein-houses3-attributes3/test.parquet", "data/sat-variables5/test.parquet"]
    again = read_records(tmp_path / "hf" / "data" / "addition-digits3" / "train.parquet")
    assert again == [r for r in records if r["task"] == "addition" and r["split"] == "train"]
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\nlicense: mit\n")
    assert ("- config_name: sat-variables5\n  data_files:\n  - split: test\n"
            "    path: data/sat-variables5/test.parquet") in card
    assert "    num_examples: 2\n" in card and "## How it was checked" in card


def test_lm_eval_folder_has_a_task_per_size(files, tmp_path):
    records, _ = load_checked(files)
    tasks = export_lm_eval(records, tmp_path / "lm", "direct")
    assert tasks == ["pencilbench_addition_digits3", "pencilbench_einstein_houses3_attributes3",
                     "pencilbench_sat_variables5"]
    for task in tasks:
        text = (tmp_path / "lm" / f"{task}.yaml").read_text()
        assert f"task: {task}\n" in text and "output_type: generate_until" in text
        assert "filter_fn: !function pencilbench_hooks.extract_answers" in text
    assert (tmp_path / "lm" / "pencilbench_hooks.py").is_file()
    with pytest.raises(ValueError, match="mode must be one of direct, cot"):
        export_lm_eval(records, tmp_path / "lm2", "pencil")


def test_lm_eval_filter_scores_with_the_oracle():
    records = pencilbench.generate("sat", 6, seed=2, split="test", variables=5)
    satisfiable = next(r for r in records if r["answer"] != "UNSAT")
    docs = [{**record_row(r), "mode": "cot"} for r in records]
    sat_doc = docs[records.index(satisfiable)]
    # The same assignment in another order is not the gold string, but the oracle accepts it.
    literals = satisfiable["answer"].split()[1:]
    reordered = "Answer: SAT " + " ".join(reversed(literals))
    out = extract_answers([[reordered, "no idea", "Answer: UNSAT"]], [sat_doc])
    assert out == [[satisfiable["answer"], "", "UNSAT"]]
    assert extract_answers([[None]], [sat_doc]) == [[""]]


def test_export_refuses_duplicates_failures_and_used_folders(files, tmp_path):
    with pytest.raises(UserError, match="is in .* and again in"):
        load_checked([files[0], files[0]])
    broken = read_records(files[0])
    broken[1] = {**broken[1], "answer": "UNSAT" if broken[1]["answer"] != "UNSAT" else "SAT 1 2 3 4 5"}
    write_records(tmp_path / "broken.jsonl", broken)
    run = cli("export", "hf", str(tmp_path / "out"), "--data", str(tmp_path / "broken.jsonl"))
    assert run.returncode == 2 and run.stderr.startswith("pencilbench: error: ") and run.stderr.count("\n") == 1
    assert "nothing exported" in run.stderr and not (tmp_path / "out").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "keep.txt").write_text("mine")
    run = cli("export", "lm-eval", "--data", files[0], "--out", str(tmp_path / "used"))
    assert run.returncode == 2 and "already exists" in run.stderr
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["keep.txt"]
    run = cli("export", "hf", str(tmp_path / "x"), "--data", str(tmp_path / "missing.jsonl"))
    assert run.returncode == 2 and "no such file" in run.stderr and "Traceback" not in run.stderr


def test_export_commands_write_and_report(files, tmp_path):
    run = cli("export", "hf", str(tmp_path / "hf"), "--data", *files)
    assert run.returncode == 0, run.stderr
    assert "wrote 3 config(s) with 11 instances" in run.stdout
    run = cli("export", "lm-eval", "--data", *files, "--out", str(tmp_path / "lm"))
    assert run.returncode == 0, run.stderr
    assert json.dumps("{{input}}") in (tmp_path / "lm" / "pencilbench_sat_variables5.yaml").read_text()
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_export_takes_a_named_suite(tmp_path):
    run = cli("export", "hf", str(tmp_path / "hf"), "--suite", "smoke")
    assert run.returncode == 0, run.stderr
    assert "wrote 5 config(s) with 25 instances" in run.stdout
    run = cli("export", "lm-eval", "--suite", "smoke", "--out", str(tmp_path / "lm"))
    assert run.returncode == 0, run.stderr
    assert len(list((tmp_path / "lm").glob("pencilbench_*.yaml"))) == 5
    run = cli("export", "hf", str(tmp_path / "x"), "--suite", "no-such-suite")
    assert run.returncode == 2 and "unknown suite" in run.stderr and run.stderr.count("\n") == 1
    run = cli("export", "hf", str(tmp_path / "y"), "--suite", "smoke", "--data", "a.jsonl")
    assert run.returncode == 2 and "not allowed with" in run.stderr
