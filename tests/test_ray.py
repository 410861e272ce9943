"""The Ray executors on a local Ray (``tox -e ray``; skipped without the ``ray`` extra):
the same output as the local executor, a worker killed mid-run, a driver killed mid-run."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from pencilbench.bench.cli import main
from pencilbench.bench.commands.eval import EXIT_MODEL_ERRORS
from pencilbench.bench.manifest import Piece
from pencilbench.bench.parts import write_dataset
from pencilbench.bench.store import ResultStore
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import read_records, write_records

ray = pytest.importorskip("ray")

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray with 2 CPUs for the module; its workers find the test models."""
    from pencilbench.bench.ray_executor import connect

    markers = tmp_path_factory.mktemp("markers")
    saved = {name: os.environ.get(name) for name in ("PYTHONPATH", "PENCILBENCH_TEST_MARKERS")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), *filter(None, [saved["PYTHONPATH"]])])
    os.environ["PENCILBENCH_TEST_MARKERS"] = str(markers)
    sys.path.insert(0, str(TESTS))
    connect(num_cpus=2)
    yield markers
    ray.shutdown()
    sys.path.remove(str(TESTS))
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def samples(run_dir):
    with ResultStore(run_dir) as store:
        return store.samples().drop(columns=["wall_time"])


def test_generation_on_ray_equals_the_local_run(local_ray, tmp_path, capsys):
    spec = Spec("sat", {"variables": 6}, "test", 3)
    pieces = [Piece.of(spec, 0, 250), Piece.of(Spec("einstein", {"houses": 3, "attributes": 3}), 5, 40)]
    local = write_dataset(tmp_path / "local", pieces)
    on_ray = write_dataset(tmp_path / "ray", pieces, executor="ray")
    assert on_ray.files == local.files and len(on_ray.files) == 4  # byte-identical parts
    single = tmp_path / "single.jsonl"
    write_records(single, generate(spec, 250))
    by_id = sorted(read_records(tmp_path / "ray"), key=lambda record: record["id"])
    assert [r for r in by_id if r["task"] == "sat"] == sorted(read_records(single), key=lambda r: r["id"])
    code = main(["generate", "qbf", "-p", "variables=4", "-n", "120", "--out", str(tmp_path / "cli"),
                 "--executor", "ray"])
    assert code == 0 and "wrote 120 records in 2 parts" in capsys.readouterr().out


def test_run_smoke_on_ray_gives_the_local_leaderboard(local_ray, tmp_path, capsys):
    assert main(["run", "smoke", "--model", "oracle", "--out", str(tmp_path / "local")]) == 0
    assert main(["run", "smoke", "--model", "oracle", "--out", str(tmp_path / "ray"), "--executor", "ray",
                 "--concurrency", "4"]) == 0
    capsys.readouterr()
    local, on_ray = (pd.read_csv(tmp_path / name / "report" / "leaderboard.csv") for name in ("local", "ray"))
    pd.testing.assert_frame_equal(local, on_ray)
    assert (on_ray["accuracy"] == 1.0).all()
    pd.testing.assert_frame_equal(samples(tmp_path / "local" / "run"), samples(tmp_path / "ray" / "run"))


def test_a_killed_worker_is_retried(local_ray, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    assert main(["generate", "addition", "-p", "operands=2", "-p", "digits=2", "-n", "12", "--out", str(data)]) == 0
    argv = ["eval", "--data", str(data), "--model", "python:ray_models:dies_once", "--mode", "direct",
            "--concurrency", "2"]
    assert main([*argv, "--run-dir", str(tmp_path / "ray"), "--executor", "ray"]) == 0
    assert (local_ray / "died").exists(), "a worker should have died"
    assert main([*argv, "--run-dir", str(tmp_path / "local")]) == 0
    capsys.readouterr()
    on_ray = samples(tmp_path / "ray")
    assert len(on_ray) == 12 and (on_ray["status"] == "ok").all()
    pd.testing.assert_frame_equal(on_ray, samples(tmp_path / "local"))


def test_a_killed_driver_resumes_without_losing_or_repeating_samples(local_ray, tmp_path):
    data = tmp_path / "data.jsonl"
    assert main(["generate", "addition", "-p", "operands=2", "-p", "digits=2", "-n", "40", "--out", str(data)]) == 0
    run_dir = tmp_path / "run"
    argv = ["eval", "--data", str(data), "--model", "python:ray_models:sleepy", "--mode", "direct",
            "--run-dir", str(run_dir), "--executor", "ray", "--quiet"]
    # The driver and the local Ray it started share a process group: kill them all at once.
    driver = subprocess.Popen([sys.executable, "-m", "pencilbench", *argv], cwd=ROOT, env=os.environ.copy(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    store_path, rows, deadline = run_dir / "results.sqlite", 0, time.monotonic() + 120
    try:
        while rows < 4 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.1)
            try:
                with sqlite3.connect(store_path) as db:
                    rows = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            except sqlite3.Error:
                rows = 0
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    assert 4 <= rows < 40, "the driver should be killed part way"
    before = samples(run_dir).set_index("instance_id")
    assert main(argv) == 0  # resumed on this process's Ray
    after = samples(run_dir).set_index("instance_id")
    assert len(after) == 40 and after.index.is_unique and (after["status"] == "ok").all()
    pd.testing.assert_frame_equal(after.loc[before.index], before)


def test_a_worker_that_keeps_dying_is_recorded_not_a_crash(local_ray, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    assert main(["generate", "addition", "-p", "operands=2", "-p", "digits=2", "-n", "3", "--out", str(data)]) == 0
    assert main(["eval", "--data", str(data), "--model", "python:ray_models:always_dies", "--mode", "direct",
                 "--run-dir", str(tmp_path / "run"), "--executor", "ray"]) == EXIT_MODEL_ERRORS
    assert "pencilbench: error: 3 of 3 samples failed: ray: " in capsys.readouterr().err
    rows = samples(tmp_path / "run")
    assert len(rows) == 3 and (rows["status"] == "model_error").all()
    assert rows["error"].str.startswith("ray: ").all()
