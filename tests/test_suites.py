"""Named suites, ``pencilbench run``, dataset manifests and the record schema version."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pencilbench.bench.cli import build_parser, main
from pencilbench.bench.commands.eval import model_argv
from pencilbench.bench.manifest import Piece, manifest_path, read_manifest
from pencilbench.bench.parts import plan, write_dataset
from pencilbench.bench.store import ResultStore
from pencilbench.bench.suites import load_suite, parse_suite, suite_names
from pencilbench.generators.dataset import FIELDS, SCHEMA_VERSION, Spec, generate
from pencilbench.generators.export import read_records, write_records

ROOT = Path(__file__).resolve().parent.parent


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_shipped_suite_loads_and_is_listed(capsys):
    assert {"smoke", "pencil-paper", "looped-paper", "zebra-grid"} <= set(suite_names())
    for name in suite_names():
        suite = load_suite(name)
        assert suite.name == name and suite.version >= 1 and suite.records == suite.count * len(suite.sizes)
    paper = load_suite("pencil-paper")
    assert sorted(params["variables"] for task, params in paper.sizes if task == "sat") == list(range(3, 11))
    assert sorted(params["variables"] for task, params in paper.sizes if task == "qbf") == list(range(3, 11))
    code, out, _ = run(capsys, "suites")
    assert code == 0
    assert all(name in out for name in suite_names()) and "version" in out


def test_suite_files_are_package_data(tmp_path):
    """A non-editable build of the package carries the suite files."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((ROOT / name).read_bytes())
    for folder in ("pencilbench", "generators", "solvers", "bench", "reports"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    lib = tmp_path / "lib"
    subprocess.run([sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py",
                    "--build-lib", str(lib)], cwd=source, check=True, capture_output=True)
    probe = ("import pencilbench, sys; from pencilbench.bench.suites import load_suite, suite_names; "
             "assert pencilbench.__file__.startswith(sys.argv[1]), pencilbench.__file__; "
             "print(' '.join(suite_names()), load_suite('smoke').label)")
    shown = subprocess.run([sys.executable, "-c", probe, str(lib)], cwd=tmp_path, check=True, capture_output=True,
                           text=True, env={"PYTHONPATH": str(lib), "PATH": "/usr/bin:/bin"})
    assert shown.stdout.split() == ["looped-paper", "pencil-paper", "smoke", "zebra-grid", "smoke", "v2"]


@pytest.mark.parametrize("change, message", [
    ({"version": 0}, "version must be an integer >= 1"),
    ({"count": 0}, "count must be an integer >= 1"),
    ({"sizes": []}, "at least one size"),
    ({"sizes": [{"task": "sat", "params": {"variables": 1000}}]}, "variables must be in"),
    ({"sizes": [{"task": "nope", "params": {}}]}, "unknown task"),
])
def test_bad_suite_files_are_refused(change, message):
    body = json.loads((ROOT / "bench" / "suites" / "smoke.json").read_text()) | change
    with pytest.raises(ValueError, match=message):
        parse_suite(json.dumps(body), "test")
    with pytest.raises(ValueError, match="not a suite file"):
        parse_suite('{"name": "x"}', "test")


def test_run_smoke_scores_everything_and_resumes(tmp_path, capsys, monkeypatch):
    out = tmp_path / "job"
    code, printed, err = run(capsys, "run", "smoke", "--model", "oracle", "--out", out)
    assert code == 0, err
    assert "warning" not in err
    board = pd.read_csv(out / "report" / "leaderboard.csv")
    assert sorted(board["mode"]) == ["cot", "direct", "pencil"]
    assert (board["accuracy"] == 1.0).all() and (board["samples"] == 25).all()
    assert (board["suite"] == "smoke v2").all()
    assert "smoke v2" in (out / "report" / "leaderboard.md").read_text()
    data = out / "data" / "smoke-v2"
    manifest = read_manifest(data)
    assert (manifest.suite, manifest.suite_version, manifest.records) == ("smoke", 2, 25)
    assert manifest.pieces == tuple(load_suite("smoke").pieces())
    stamps = {path.name: path.stat().st_mtime_ns for path in data.iterdir()}
    reported = []  # the report was checked above; the reruns only record that they write one
    monkeypatch.setattr("pencilbench.bench.commands.run.write_report", lambda runs, out: reported.append(out))
    # Again: the dataset is kept and no sample is evaluated twice.
    code, printed, _ = run(capsys, "run", "smoke", "--model", "oracle", "--out", out, "--modes", "pencil,cot")
    assert code == 0
    assert {path.name: path.stat().st_mtime_ns for path in data.iterdir()} == stamps
    assert printed.count("(25 already done)") == 2
    # A damaged dataset is regenerated, not evaluated.
    part = data / "part-00000.parquet"
    part.write_bytes(b"broken")
    code, _, _ = run(capsys, "run", "smoke", "--model", "oracle", "--out", out, "--modes", "direct")
    assert code == 0 and part.read_bytes() != b"broken"
    # So is one whose manifest cannot be read.
    manifest_path(data).write_text("{")
    code, _, _ = run(capsys, "run", "smoke", "--model", "oracle", "--out", out, "--modes", "direct")
    assert code == 0 and read_manifest(data).records == 25
    assert reported == [out / "report"] * 3


@pytest.mark.parametrize("argv, message", [
    (["run", "nope", "--model", "oracle"], "unknown suite 'nope'"),
    (["run", "smoke", "--model", "oracle", "--modes", "direct,fast"], "--modes must be"),
    (["run", "smoke", "--model", "nonsense"], "unknown model spec"),
    (["run", "smoke", "--model", "oracle", "--workers", "0"], "--workers must be >= 1"),
    (["run", "smoke", "--model", "oracle", "--ray-address", "auto"], "--ray-address needs --executor ray"),
])
def test_run_refuses_bad_input_with_one_line(tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *argv, "--out", tmp_path / "job")
    assert code == 2
    assert err.startswith("pencilbench: error: ") and message in err and err.count("\n") == 1


def test_generate_writes_a_manifest_that_eval_checks(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    assert main(["generate", "sat", "-p", "variables=5", "-n", "6", "--out", str(data)]) == 0
    manifest = read_manifest(data)
    assert manifest_path(data) == tmp_path / "a.jsonl.manifest.json"
    assert manifest.records == 6 and manifest.suite is None and manifest.schema_version == SCHEMA_VERSION
    assert manifest.pieces == (Piece("sat", {"variables": 5, "width": 3, "ratio": 4.3, "target": 0.5,
                                         "sampling": "paired"},
                                     "train", 0, 0, 6),)
    capsys.readouterr()
    code, _, err = run(capsys, "eval", "--data", data, "--model", "oracle", "--mode", "direct",
                       "--run-dir", tmp_path / "run")
    assert code == 0 and "warning" not in err
    # One changed record: refused before anything is evaluated.
    lines = data.read_text().splitlines()
    record = json.loads(lines[2])
    record["question"] += " "
    lines[2] = json.dumps(record)
    data.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "eval", "--data", data, "--model", "oracle", "--mode", "cot",
                       "--run-dir", tmp_path / "run")
    assert code == 2 and "does not match its manifest: the sha256 of a.jsonl differs" in err
    # Without a manifest it runs, with a warning.
    manifest_path(data).unlink()
    code, _, err = run(capsys, "eval", "--data", data, "--model", "oracle", "--mode", "cot",
                       "--run-dir", tmp_path / "run2")
    assert code == 0 and "pencilbench: warning:" in err and "has no manifest" in err


def test_parts_are_the_records_of_one_stream_for_any_worker_count(tmp_path):
    piece = Piece.of(Spec("addition", {"operands": 3, "digits": 2}, "test", 4), 7, 230)
    assert [(part.start, part.count) for part in plan([piece])] == [(7, 100), (107, 100), (207, 30)]
    one = write_dataset(tmp_path / "one", [piece])
    two = write_dataset(tmp_path / "two", [piece], workers=2)
    assert one.files == two.files and len(one.files) == 3
    expected = list(generate(Spec("addition", {"operands": 3, "digits": 2}, "test", 4), 230, start=7))
    assert read_records(tmp_path / "one") == expected
    # Rewriting a folder with fewer parts leaves no stale part behind.
    smaller = write_dataset(tmp_path / "one", [Piece.of(Spec("sat", {"variables": 4}), 0, 3)])
    assert sorted(path.name for path in (tmp_path / "one").glob("part-*")) == ["part-00000.parquet"]
    assert smaller.records == 3 and len(read_records(tmp_path / "one")) == 3


def test_generate_into_a_folder_of_parts(tmp_path, capsys):
    folder = tmp_path / "parts"
    code, out, _ = run(capsys, "generate", "phop", "-p", "length=16", "-p", "hops=2", "-n", "150", "--out", folder)
    assert code == 0 and "wrote 150 records in 2 parts" in out
    assert read_manifest(folder).files.keys() == {"part-00000.parquet", "part-00001.parquet"}
    code, out, _ = run(capsys, "solve", folder)
    assert code == 0 and "150/150 records verified" in out
    code, _, err = run(capsys, "generate", "sat", "-n", "3", "--out", tmp_path / "x.jsonl", "--executor", "ray")
    assert code == 2 and "a folder of Parquet parts" in err
    code, _, err = run(capsys, "generate", "sat", "-n", "0", "--out", tmp_path / "empty")
    assert code == 2 and "needs --count >= 1" in err


def test_run_takes_every_model_option_of_eval(tmp_path, capsys):
    out = tmp_path / "job"
    code, printed, err = run(capsys, "run", "smoke", "--model", "random", "--modes", "direct", "--out", out,
                             "--samples", "2", "--seed", "7", "--max-reply-bytes", "4096", "--no-retry-errors")
    assert code == 0, err
    assert "pass@2" in printed
    with ResultStore(out / "run") as store:
        frame = store.samples()
        config = json.loads(store.db.execute("SELECT config FROM evaluations").fetchone()[0])
    assert len(frame) == 50 and set(frame["repeat"]) == {0, 1}
    assert (config["seed"], config["max_reply_bytes"]) == (7, 4096)
    args = build_parser().parse_args(["run", "smoke", "--model", "m", "--out", "o", "--temperature", "0.5",
                                      "--no-cache", "--no-retry-errors", "--system-prompt", "Be brief."])
    assert model_argv(args) == ["--temperature", "0.5", "--system-prompt", "Be brief.", "--no-retry-errors",
                                "--no-cache"]


def test_executor_ray_without_ray_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra looks like
    code, _, err = run(capsys, "generate", "sat", "-n", "3", "--out", tmp_path / "parts", "--executor", "ray")
    assert code == 2 and "pip install 'pencilbench[ray]'" in err


def _old_record(record):
    return {name: value for name, value in record.items() if name != "schema_version"}


def test_records_carry_a_schema_version_and_older_records_still_read(tmp_path):
    records = list(generate(Spec("sat", {"variables": 4}), 3))
    assert FIELDS[-1] == "schema_version" and all(r["schema_version"] == SCHEMA_VERSION == 2 for r in records)
    older = tmp_path / "old.jsonl"
    older.write_text("".join(json.dumps(_old_record(r)) + "\n" for r in records))
    assert read_records(older) == [r | {"schema_version": 1} for r in records]
    old_parquet = tmp_path / "old.parquet"
    rows = [{**_old_record(r), **{name: json.dumps(r[name], sort_keys=True) for name in ("params", "problem", "stats")}}
            for r in records]
    schema = pa.schema([(n, pa.int64() if n in ("seed", "index") else pa.string()) for n in FIELDS[:-1]])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), old_parquet)
    assert read_records(old_parquet) == [r | {"schema_version": 1} for r in records]
    newer = tmp_path / "new.jsonl"
    write_records(newer, [records[0] | {"schema_version": SCHEMA_VERSION + 1}])
    with pytest.raises(ValueError, match=r"schema_version 3 is not one this pencilbench reads \(1..2\)"):
        read_records(newer)


def _suite_run(tmp_path, name, version, capsys):
    folder = tmp_path / f"data-v{version}"
    write_dataset(folder, load_suite("smoke").pieces()[:1], suite="smoke", suite_version=version)
    code, _, err = run(capsys, "eval", "--data", folder, "--model", "oracle", "--mode", "direct",
                       "--run-dir", tmp_path / name)
    assert code == 0, err
    return folder


def test_suite_versions_are_kept_apart(tmp_path, capsys):
    _suite_run(tmp_path, "run1", 1, capsys)
    second = _suite_run(tmp_path, "run2", 2, capsys)
    # One run directory does not take a second version of the suite for the same evaluation.
    code, _, err = run(capsys, "eval", "--data", second, "--model", "oracle", "--mode", "direct",
                       "--run-dir", tmp_path / "run1")
    assert code == 2 and "suite='smoke v1', not 'smoke v2'" in err
    code, _, err = run(capsys, "report", tmp_path / "run1", tmp_path / "run2", "--out", tmp_path / "report")
    assert code == 0
    assert "pencilbench: warning:" in err and "smoke v1, smoke v2" in err
    assert "not comparable" in (tmp_path / "report" / "leaderboard.md").read_text()
    code, _, err = run(capsys, "report", tmp_path / "run2", "--out", tmp_path / "report2")
    assert code == 0 and "warning" not in err
    assert pd.read_csv(tmp_path / "report2" / "leaderboard.csv")["suite"].tolist() == ["smoke v2"]
