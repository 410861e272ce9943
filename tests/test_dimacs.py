"""DIMACS CNF and QDIMACS: round trips, malformed files, and the command-line paths."""

import json

import pytest
from pencilbench.bench.cli import main
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.solvers import qbf as qbf_oracle
from pencilbench.solvers import sat as sat_oracle
from pencilbench.solvers.dimacs import (
    DimacsError,
    parse_cnf,
    parse_qdimacs,
    read_cnf,
    read_folder,
    write_cnf,
    write_qdimacs,
)


def test_cnf_round_trip():
    for record in generate(Spec("sat", {"variables": 12}, "train", 1), 50):
        problem = record["problem"]
        assert parse_cnf(write_cnf(problem, ["made by a test"])) == problem


def test_qdimacs_round_trip():
    for params in ({"variables": 8}, {"variables": 9, "prefix": "blocks", "blocks": 3}):
        for record in generate(Spec("qbf", params, "train", 1), 50):
            problem = record["problem"]
            text = write_qdimacs(problem)
            assert parse_qdimacs(text) == problem
            blocks = sum(1 for i, (kind, _) in enumerate(problem["prefix"])
                         if i == 0 or problem["prefix"][i - 1][0] != kind)
            assert sum(line[0] in "ea" for line in text.splitlines()) == blocks


def test_reader_accepts_the_usual_liberties():
    text = "c a comment\n\np cnf 4 3\n1 -2\n 3 0 -4\nc inside\n0 2 4 0\n%\n0\n"
    assert parse_cnf(text) == {"num_vars": 4, "clauses": [[1, -2, 3], [-4], [2, 4]]}
    quantified = "p cnf 4 2\na 2 0\ne 3 4 0\n1 2 3 0\n-2 -3 4 0\n"
    assert parse_qdimacs(quantified) == {
        "num_vars": 4, "prefix": [["e", 1], ["a", 2], ["e", 3], ["e", 4]], "clauses": [[1, 2, 3], [-2, -3, 4]]}


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("p cnf 3\n1 2 0\n", 1, "bad header"),
    ("p dnf 3 1\n1 2 0\n", 1, "bad header"),
    ("p cnf x 1\n1 2 0\n", 1, "must be integers"),
    ("1 2 0\n", 1, "expected the header"),
    ("c only comments\n", 1, "no 'p cnf"),
    ("p cnf 3 2\n1 -2 0\n2 4 0\n", 3, "literal 4 out of range 1..3"),
    ("p cnf 3 2\n1 -2 0\n2 3\n", 3, "clause not terminated by 0"),
    ("p cnf 3 1\n1 two 0\n", 2, "'two' is not an integer"),
    ("p cnf 3 2\n1 2 0\n", 2, "declares 2 clauses, the file has 1"),
    ("p cnf 3 1\np cnf 3 1\n1 0\n", 2, "a second 'p' header"),
    ("p cnf 3 1\ne 1 0\n1 0\n", 2, "quantifier line 'e' in a plain CNF file"),
])
def test_malformed_cnf_names_file_and_line(text, line, fragment):
    with pytest.raises(DimacsError) as caught:
        parse_cnf(text, "f.cnf")
    assert str(caught.value).startswith(f"f.cnf:{line}: ")
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("text", "line", "fragment"), [
    ("p cnf 3 1\ne 1 2\n1 0\n", 2, "quantifier line not terminated by 0"),
    ("p cnf 3 1\ne 1 0\na 1 0\n1 0\n", 3, "variable 1 is quantified twice"),
    ("p cnf 3 1\n1 0\ne 2 0\n", 3, "quantifier line after the first clause"),
    ("p cnf 3 1\na -2 0\n1 0\n", 2, "variable -2 out of range"),
    ("p cnf 3 1\ne 1 0 2 0\n1 0\n", 2, "0 inside a quantifier line"),
])
def test_malformed_qdimacs_names_file_and_line(text, line, fragment):
    with pytest.raises(DimacsError, match=f"^q.qdimacs:{line}: .*{fragment}"):
        parse_qdimacs(text, "q.qdimacs")


def test_folders(tmp_path):
    (tmp_path / "b.cnf").write_text("p cnf 3 1\n1 2 3 0\n")
    (tmp_path / "a.dimacs").write_text("p cnf 3 1\n-1 0\n")
    (tmp_path / "notes.txt").write_text("not a formula")
    assert [path.name for path, _ in read_folder(tmp_path, quantified=False)] == ["a.dimacs", "b.cnf"]
    assert read_cnf(tmp_path / "b.cnf") == {"num_vars": 3, "clauses": [[1, 2, 3]]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no formula files"):
        read_folder(tmp_path / "empty", quantified=True)
    (tmp_path / "bin.cnf").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(DimacsError, match="bin.cnf:1: not a text file"):
        read_cnf(tmp_path / "bin.cnf")


def test_cli_solve_dimacs(tmp_path, capsys):
    satisfiable = tmp_path / "s.cnf"
    satisfiable.write_text("c x\np cnf 3 3\n1 -2 0\n2 3 0\n-1 -3 0\n")
    assert main(["solve", "--dimacs", str(satisfiable)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "s SATISFIABLE"
    values = lines[1].split()
    assert values[0] == "v" and values[-1] == "0"
    model = set(map(int, values[1:-1]))
    assert sorted(map(abs, model)) == [1, 2, 3]
    assert sat_oracle.check(read_cnf(satisfiable), ["SAT", *values[1:-1]]).correct
    unsatisfiable = tmp_path / "u.cnf"
    unsatisfiable.write_text("p cnf 2 4\n1 2 0\n-1 2 0\n1 -2 0\n-1 -2 0\n")
    assert main(["solve", "--dimacs", str(unsatisfiable)]) == 0
    assert capsys.readouterr().out == "s UNSATISFIABLE\n"


def test_cli_malformed_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.cnf"
    bad.write_text("p cnf 3 2\n1 -2 0\n2 7 0\n")
    assert main(["solve", "--dimacs", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err == f"pencilbench: error: {bad}:3: literal 7 out of range 1..3\n"
    assert main(["solve", "--dimacs", str(tmp_path / "missing.cnf")]) == 2
    assert main(["solve"]) == 2
    assert "PATH or --dimacs" in capsys.readouterr().err


def _write(folder, problems, writer):
    folder.mkdir()
    for i, problem in enumerate(problems):
        (folder / f"f{i:02d}.{'qdimacs' if writer is write_qdimacs else 'cnf'}").write_text(writer(problem))


def test_cli_generate_from_dimacs(tmp_path, capsys):
    problems = [record["problem"] for record in generate(Spec("sat", {"variables": 7}, "train", 3), 12)]
    _write(tmp_path / "in", problems, write_cnf)
    out = tmp_path / "user.jsonl"
    assert main(["generate", "sat", "--from-dimacs", str(tmp_path / "in"), "--out", str(out),
                 "--split", "test", "--seed", "9"]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["problem"] for record in records] == problems
    assert [record["index"] for record in records] == list(range(12))
    assert {(record["split"], record["seed"]) for record in records} == {("test", 9)}
    for record in records:
        assert trace_problems(record) == []
        assert sat_oracle.check(record["problem"], record["answer"].split()).correct
    assert main(["solve", str(out)]) == 0
    capsys.readouterr()


def test_cli_generate_from_qdimacs(tmp_path, capsys):
    problems = [record["problem"] for record in generate(Spec("qbf", {"variables": 6}, "train", 3), 10)]
    _write(tmp_path / "in", problems, write_qdimacs)
    out = tmp_path / "user.jsonl"
    assert main(["generate", "qbf", "--from-qdimacs", str(tmp_path / "in"), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [record["problem"] for record in records] == problems
    for record in records:
        assert trace_problems(record) == []
        assert (record["answer"] == "True") == qbf_oracle.evaluate(record["problem"])
    capsys.readouterr()


def test_cli_generate_from_files_errors(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "tiny.cnf").write_text("p cnf 2 1\n1 2 0\n")
    out = str(tmp_path / "o.jsonl")
    assert main(["generate", "qbf", "--from-dimacs", str(folder), "--out", out]) == 2
    assert "--from-dimacs makes sat records" in capsys.readouterr().err
    assert main(["generate", "sat", "--from-dimacs", str(folder), "--out", out]) == 2
    expected = f"pencilbench: error: {folder / 'tiny.cnf'}: variables must be in [3, 100], got 2\n"
    assert capsys.readouterr().err == expected
    (folder / "tiny.cnf").write_text("p cnf 3 1\n1 2 0 4\n")
    assert main(["generate", "sat", "--from-dimacs", str(folder), "--out", out]) == 2
    assert f"{folder / 'tiny.cnf'}:2: literal 4 out of range" in capsys.readouterr().err
