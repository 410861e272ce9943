"""The data commands end to end, and their answers to bad input."""

import json

import pytest
from pencilbench.bench.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_show_solve(tmp_path, capsys):
    data, segments = tmp_path / "a.parquet", tmp_path / "seg.jsonl"
    code, out, _ = run(capsys, "generate", "addition", "-p", "operands=3", "-p", "digits=4", "-n", "30",
                       "--split", "test", "--out", str(data), "--segments", str(segments))
    assert code == 0 and "wrote 30 records" in out
    assert segments.read_text().count("\n") > 30
    code, out, _ = run(capsys, "show", str(data), "--index", "2")
    assert code == 0
    assert "=> live context" in out and "peak context" in out
    code, out, _ = run(capsys, "solve", str(data))
    assert code == 0 and "30/30 records verified" in out
    assert "operands=3 digits=4" in out


def test_solve_catches_a_tampered_record(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    assert main(["generate", "phop", "-p", "length=20", "-p", "hops=3", "-n", "5", "--out", str(data)]) == 0
    lines = data.read_text().splitlines()
    record = json.loads(lines[1])
    record["answer"] = "z"
    lines[1] = json.dumps(record)
    data.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    code, out, _ = run(capsys, "solve", str(data))
    assert code == 1
    assert "FAIL" in out and "4/5 records verified" in out


def test_solve_catches_tampered_prompts_questions_and_repeated_ids(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    assert main(["generate", "addition", "-p", "operands=2", "-p", "digits=3", "-n", "5", "--out", str(data)]) == 0
    records = [json.loads(line) for line in data.read_text().splitlines()]
    records[1]["prompt"] = records[1]["prompt"].replace("+", "+ 1", 1)  # a different sum, same answer
    records[2]["question"] = records[2]["question"].replace("Add", "Subtract")
    records[4]["answer"] = None
    records.append(dict(records[0]))
    data.write_text("".join(json.dumps(record) + "\n" for record in records))
    capsys.readouterr()
    code, out, _ = run(capsys, "solve", str(data))
    assert code == 1 and "2/6 records verified" in out
    assert f"FAIL {records[1]['id']}: the prompt is not the one the problem renders to" in out
    assert f"FAIL {records[2]['id']}: the question is not the one the problem renders to" in out
    assert f"FAIL {records[4]['id']}: answer is null" in out
    assert f"FAIL {records[0]['id']}: duplicate id" in out


def test_tasks_lists_parameters_and_ranges(capsys):
    code, out, _ = run(capsys, "tasks")
    assert code == 0
    assert "addition" in out and "phop" in out and "[2, 128]" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["generate", "chess", "--out", "x.jsonl"], "unknown task 'chess'"),
        (["generate", "addition", "-p", "operands=999", "--out", "x.jsonl"], "operands must be in [2, 128]"),
        (["generate", "addition", "-p", "operands", "--out", "x.jsonl"], "is not KEY=VALUE"),
        (["generate", "addition", "--out", "x.csv"], "must end in .jsonl or .parquet"),
        (["solve", "missing.jsonl"], "no such file"),
        (["show", "missing.parquet"], "no such file"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_malformed_files_name_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\nnot json\n')
    code, _, err = run(capsys, "solve", str(bad))
    assert code == 2 and f"{bad}:1: not a pencilbench record" in err
    bad.write_text("not json\n")
    code, _, err = run(capsys, "solve", str(bad))
    assert code == 2 and f"{bad}:1: not a JSON object" in err
    broken = tmp_path / "bad.parquet"
    broken.write_bytes(b"PAR1 not really")
    code, _, err = run(capsys, "show", str(broken))
    assert code == 2 and "not a readable Parquet file" in err.splitlines()[0]


def test_show_index_out_of_range(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    main(["generate", "addition", "-n", "3", "--out", str(data)])
    capsys.readouterr()
    code, _, err = run(capsys, "show", str(data), "--index", "3")
    assert code == 2 and "--index must be in [0, 2]" in err


def test_python_dash_m_bench_works():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pencilbench", "tasks"], capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "phop" in done.stdout


def test_quickstart_builds_and_verifies_the_suite(tmp_path, capsys):
    code, out, err = run(capsys, "quickstart", "--out", str(tmp_path / "qs"), "-n", "3")
    assert code == 0
    assert "warning" not in err  # the random baseline's pencil runs make no reduction, as expected
    assert (tmp_path / "qs" / "suite.jsonl").is_file()
    for task in ("addition", "phop"):
        assert task in out
