"""The OpenAI adapter against a real local HTTP server that injects faults: every failure
is retried or recorded against its sample, and no sample is lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pencilbench.bench.adapters.base import Request
from pencilbench.bench.adapters.openai import OpenAIAdapter, _retry_after
from pencilbench.bench.adapters.wrapper import CallPolicy, Client, ModelFailure
from pencilbench.bench.cli import main
from pencilbench.bench.commands.eval import EXIT_MODEL_ERRORS
from pencilbench.bench.harness import EvalConfig, default_max_tokens, evaluate
from pencilbench.bench.manifest import Piece, write_manifest
from pencilbench.bench.store import ResultStore
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records

SERVER = Path(__file__).with_name("openai_server.py")
ROOT = SERVER.parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    specs = [(Spec("addition", {"operands": 2, "digits": 3}, "test", 3), 8),
             (Spec("phop", {"length": 16, "hops": 3}, "test", 3), 4)]
    records = [record for spec, count in specs for record in generate(spec, count)]
    path = tmp_path_factory.mktemp("data") / "suite.jsonl"
    write_records(path, records)
    write_manifest(path, [Piece.of(spec, 0, count) for spec, count in specs], len(records))
    return path, records


def start_server(dataset_path, *flags):
    process = subprocess.Popen([sys.executable, str(SERVER), str(dataset_path), *flags],
                               stdout=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    return process, f"http://127.0.0.1:{port}/v1"


@pytest.fixture
def faulty(dataset):
    process, url = start_server(dataset[0], "--faults")
    yield url
    process.kill()
    process.wait()


def stats(url):
    with urllib.request.urlopen(url + "/stats") as response:
        return json.loads(response.read())


def run(records, url, mode, tmp_path, api="completions"):
    adapter = OpenAIAdapter(mode, url, api=api, timeout=0.5)
    adapter.check()
    client = Client(adapter, CallPolicy(retries=3, backoff=0.01, timeout=0.5, concurrency=4))
    config = EvalConfig(mode, "compact", default_max_tokens(records, mode, "compact"))
    with ResultStore(tmp_path, create=True) as store:
        summary = evaluate(records, client, config, store, f"openai:{mode}", progress=False)
        frame = store.samples()
    client.close()
    return summary, frame


def test_pencil_over_http_survives_every_fault(dataset, faulty, tmp_path):
    _, records = dataset
    summary, frame = run(records, faulty, "pencil", tmp_path)
    assert summary.written == len(records) == len(frame) == frame["instance_id"].nunique()
    assert set(frame["status"]) == {"ok"}
    assert frame["correct"].all()
    assert (frame["reductions"] == [r["stats"]["reductions"] for r in sorted(records, key=lambda r: r["id"])]).all()
    served = stats(faulty)
    assert all(served.get(fault, 0) >= 1 for fault in ("500", "429", "timeout", "drop", "badjson", "empty")), served
    assert summary.calls == sum(served.values())


@pytest.mark.parametrize("mode", ["cot", "pencil"])
def test_chat_endpoint_with_faults(dataset, faulty, tmp_path, mode):
    _, records = dataset
    summary, frame = run(records, faulty, mode, tmp_path, api="chat")
    assert summary.written == len(records)
    assert set(frame["status"]) == {"ok"} and frame["correct"].all()


def test_a_sample_that_keeps_failing_is_recorded_retried_and_reported(dataset, tmp_path, capsys):
    path, records = dataset
    poisoned = records[2]["id"]
    process, url = start_server(path, "--faults", "--poison", poisoned)
    try:
        argv = ["eval", "--data", str(path), "--model", "openai:direct", "--mode", "direct", "--base-url", url,
                "--run-dir", str(tmp_path), "--retries", "2", "--timeout", "0.5", "--concurrency", "3",
                "--no-cache", "--backoff", "0.01"]
        assert main(argv) == EXIT_MODEL_ERRORS
        err = capsys.readouterr().err.splitlines()
        assert err[-1] == (f"pencilbench: error: 1 of {len(records)} samples failed: HTTP 500 internal server error; "
                           "run the same command again to retry them")
        with ResultStore(tmp_path) as store:
            frame = store.samples()
        assert len(frame) == len(records) == frame["instance_id"].nunique()
        bad = frame[frame["instance_id"] == poisoned].iloc[0]
        assert bad.status == "model_error" and "HTTP 500" in bad.error and "3 attempts" in bad.error
        good = frame[frame["instance_id"] != poisoned]
        assert set(good["status"]) == {"ok"} and good["correct"].all()
        # Running the same command again asks again for the failed sample only (three
        # attempts), and keeps the earlier failure in the history.
        before = sum(stats(url).values())
        assert main(argv) == EXIT_MODEL_ERRORS
        assert "1 samples in" in capsys.readouterr().out
        assert sum(stats(url).values()) == before + 3
        with ResultStore(tmp_path) as store:
            frame, history = store.samples(), store.failed_attempts()
        assert len(frame) == len(records) and list(history["instance_id"]) == [poisoned]
        assert "HTTP 500" in history["error"][0]
        # --no-retry-errors leaves the failure as it is: nothing is asked.
        assert main([*argv, "--no-retry-errors"]) == EXIT_MODEL_ERRORS
        assert "0 samples in" in capsys.readouterr().out
        assert sum(stats(url).values()) == before + 3
    finally:
        process.kill()
        process.wait()


def test_unreachable_endpoint_is_one_line_and_exit_2(dataset, tmp_path, capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = main(["eval", "--data", str(dataset[0]), "--model", "openai:x", "--mode", "direct",
                 "--base-url", f"http://127.0.0.1:{port}/v1", "--run-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "cannot reach" in err


class Recorder(BaseHTTPRequestHandler):
    """A tiny server: ``/away/...`` redirects to the same path on ``other`` (another
    origin), ``/home/...`` to ``/final`` here; ``/deny/...`` answers 401, ``/huge/...`` a
    500 with a megabyte of body; anything else a completion. It logs the key it was sent."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[int, str, str | None]] = []
    other = ""

    def log_message(self, *args):
        pass

    def _answer(self):
        port = self.server.server_address[1]
        self.seen.append((port, self.path, self.headers.get("Authorization")))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        code, headers, body = 200, {}, json.dumps({"choices": [{"text": "4", "finish_reason": "stop"}]}).encode()
        if self.path.startswith("/away/"):
            code, headers, body = 302, {"Location": self.other + self.path.replace("/away/", "/final/", 1)}, b""
        elif self.path.startswith("/home/"):
            code, headers, body = 302, {"Location": self.path.replace("/home/", "/final/", 1)}, b""
        elif self.path.startswith("/deny/"):
            code, body = 401, b'{"error": "invalid api key"}'
        elif self.path.startswith("/huge/"):
            code, body = 500, b"<html>" + b"x" * 1_000_000
        self.send_response(code)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer


@pytest.fixture
def recorders():
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Recorder) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = [server.server_address[1] for server in servers]
    Recorder.seen, Recorder.other = [], f"http://127.0.0.1:{ports[1]}"
    yield ports
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_api_key_never_follows_a_redirect_to_another_host(recorders, monkeypatch):
    here, there = recorders
    monkeypatch.setenv("PB_TEST_KEY", "secret")
    away = OpenAIAdapter("m", f"http://127.0.0.1:{here}/away/v1", api_key_env="PB_TEST_KEY", timeout=5)
    away.check()
    assert away.complete(Request("2 + 2 =")).text == "4"
    home = OpenAIAdapter("m", f"http://127.0.0.1:{here}/home/v1", api_key_env="PB_TEST_KEY", timeout=5)
    home.check()
    keys = {(port == here, path): key for port, path, key in Recorder.seen}
    assert keys[(True, "/away/v1/models")] == keys[(True, "/away/v1/completions")] == "Bearer secret"
    assert keys[(False, "/final/v1/models")] is None and keys[(False, "/final/v1/completions")] is None
    assert keys[(True, "/final/v1/models")] == "Bearer secret"  # the same origin keeps it


def test_error_bodies_are_read_and_kept_short(recorders):
    adapter = OpenAIAdapter("m", f"http://127.0.0.1:{recorders[0]}/huge/v1", timeout=5)
    [result] = Client(adapter, CallPolicy(retries=0)).complete_many([Request("x")])
    assert isinstance(result, ModelFailure) and result.message.startswith("HTTP 500: <html>xxx")
    assert len(result.message) < 300


def test_retry_after_in_seconds_or_as_a_date():
    now = 1_445_412_470.0  # 07:27:50 GMT on 21 Oct 2015
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 10.0
    assert _retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now) == 0.0
    assert _retry_after("12", now) == 12.0 and _retry_after("-3", now) == 0.0
    assert _retry_after("inf", now) == float("inf")  # capped by the call policy
    assert _retry_after("nan", now) is None and _retry_after("soon", now) is None and _retry_after(None) is None


def test_a_refused_key_exits_3_with_a_hint(dataset, recorders, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code = main(["eval", "--data", str(dataset[0]), "--model", "openai:m", "--mode", "direct",
                 "--base-url", f"http://127.0.0.1:{recorders[0]}/deny/v1", "--run-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert code == EXIT_MODEL_ERRORS
    assert err == ["pencilbench: warning: OPENAI_API_KEY is not set; requests go without an API key",
                   f"pencilbench: error: {len(dataset[1])} of {len(dataset[1])} samples failed: HTTP 401 "
                   "unauthorized; is OPENAI_API_KEY set?; run the same command again to retry them"]
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    code = main(["eval", "--data", str(dataset[0]), "--model", "openai:m", "--mode", "direct",
                 "--base-url", f"http://127.0.0.1:{recorders[0]}/deny/v1", "--run-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err.splitlines()
    assert code == EXIT_MODEL_ERRORS and len(err) == 1 and "is the key in OPENAI_API_KEY valid?" in err[0]


def test_chaos_a_kill_and_a_rerun_score_every_sample_once_as_a_clean_run(tmp_path):
    """Random faults on any attempt (HTTP 500, 429 with absurd Retry-After values, timeouts,
    dropped connections, garbage bodies), the eval killed with SIGKILL part way, the same
    command run again: every sample ends with exactly one row, the same as a clean run's."""
    records = list(generate(Spec("addition", {"operands": 2, "digits": 3}, "test", 9), 16))
    path = tmp_path / "suite.jsonl"
    write_records(path, records)
    chaos, url = start_server(path, "--chaos", "0.3", "--seed", "7", "--delay", "0.02")
    clean, clean_url = start_server(path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run_dir, store_path = tmp_path / "run", tmp_path / "run" / "results.sqlite"

    def command(*extra):
        return [sys.executable, "-m", "pencilbench", "eval", "--data", str(path), "--model", "openai:pencil",
                "--mode", "pencil", "--base-url", url, "--run-dir", str(run_dir), "--timeout", "0.3",
                "--backoff", "0.001", "--max-backoff", "0.02", "--quiet", *extra]

    try:
        process = subprocess.Popen(command("--retries", "1"), cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows, errors, deadline = 0, 0, time.monotonic() + 60
        while (rows < 4 or errors < 1) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.02)
            try:
                with sqlite3.connect(store_path) as db:
                    rows, errors = db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(status = 'model_error'), 0) FROM samples").fetchone()
            except sqlite3.OperationalError:
                pass
        process.send_signal(signal.SIGKILL)
        process.wait()
        with ResultStore(run_dir) as store:
            before = store.samples().set_index("instance_id")
        assert 4 <= len(before) < len(records) and (before["status"] == "model_error").any(), before["status"]

        done = subprocess.run(command("--retries", "12", "--concurrency", "8"), cwd=ROOT, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        failed_before = set(before.index[before["status"] == "model_error"])
        assert f"{len(failed_before)} failed before and tried again" in done.stdout
        served = stats(url)
        assert all(served.get(fault, 0) >= 1 for fault in ("500", "429", "timeout", "drop", "badjson", "empty"))

        assert main(["eval", "--data", str(path), "--model", "openai:pencil", "--mode", "pencil", "--base-url",
                     clean_url, "--run-dir", str(tmp_path / "clean"), "--quiet"]) == 0
    finally:
        for server in (chaos, clean):
            server.kill()
            server.wait()
    with ResultStore(run_dir) as store:
        after, history = store.samples().set_index("instance_id"), store.failed_attempts()
    with ResultStore(tmp_path / "clean") as store:
        expected = store.samples().set_index("instance_id")
    assert len(after) == len(records) and after.index.is_unique and set(after["status"]) == {"ok"}
    finished = before.index[before["status"] != "model_error"]
    assert after.loc[finished, "wall_time"].equals(before.loc[finished, "wall_time"]), "a finished sample was redone"
    assert set(history["instance_id"]) == failed_before
    columns = ["status", "correct", "partial", "parsed_answer", "output", "peak_context", "generated_tokens",
               "reductions", "context_lengths"]
    assert after[columns].sort_index().equals(expected[columns].sort_index())
    assert after["correct"].all()
