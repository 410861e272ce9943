"""Evaluation against servers that behave like llama.cpp and vLLM (``tests/fake_servers.py``),
with a scripted model following the gold traces: the same assertions hold on both, and the
``integration`` tox environment makes them against a real llama.cpp server.

PENCIL runs reduce, no sample is silently empty, answers written before a token limit are
parsed, and a run killed with its server mid-way completes every sample when rerun."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fake_servers import FLAVOURS, make_server
from pencilbench.bench.adapters.base import Request
from pencilbench.bench.adapters.openai import OpenAIAdapter
from pencilbench.bench.adapters.wrapper import CallPolicy, Client, ResponseCache, call_load
from pencilbench.bench.cli import main
from pencilbench.bench.errors import UserError
from pencilbench.bench.harness import END_STOPS, MODES, STYLES, EvalConfig, default_max_tokens, evaluate
from pencilbench.bench.store import ResultStore

FAKE = Path(__file__).with_name("fake_servers.py")


@pytest.fixture(scope="module")
def suite(every_task_dataset):
    """Two instances of every task at its smallest quickstart size, as a dataset file."""
    return every_task_dataset(11, 2)


def serve(records, flavour, **options):
    server, state = make_server(records, flavour, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, state, f"http://127.0.0.1:{server.server_address[1]}/v1"


@pytest.fixture(params=FLAVOURS)
def server(request, suite):
    server, state, url = serve(suite[1], request.param)
    yield request.param, state, url
    server.shutdown()
    server.server_close()


def run(records, url, mode, style, api, tmp_path, *, max_tokens=None, **options):
    adapter = OpenAIAdapter(mode, url, api=api, timeout=10, **options)
    client = Client(adapter, CallPolicy(retries=1, backoff=0))
    config = EvalConfig(mode, style, max_tokens or default_max_tokens(records, mode, style))
    with ResultStore(tmp_path, create=True) as store:
        summary = evaluate(records, client, config, store, f"openai:{mode}", progress=False)
        frame = store.samples()
    client.close()
    return summary, frame.set_index("instance_id")


def no_silent_empties(frame) -> bool:
    """Every sample wrote something, or says why not."""
    return bool(((frame["output"].str.strip() != "") | frame["error"].notna()).all())


@pytest.mark.parametrize("api", ["completions", "chat"])
@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_and_style_is_solved(server, suite, mode, style, api, tmp_path):
    flavour, state, url = server
    records = suite[1]
    summary, frame = run(records, url, mode, style, api, tmp_path)
    assert summary.written == len(records) == len(frame)
    assert set(frame["status"]) == {"ok"}, frame[["status", "error"]]
    assert frame["correct"].all() and frame["parse_ok"].all()
    assert no_silent_empties(frame)
    gold = {record["id"]: record["stats"]["reductions"] for record in records}
    if mode == "pencil":
        assert (frame["reductions"] == frame.index.map(gold)).all()
        assert summary.reductions == sum(gold.values()) > 0
    else:
        assert (frame["reductions"] == 0).all()
    # The server's token counts are summed per sample.
    assert frame["model_tokens"].notna().all() and (frame["model_tokens"] > 0).all()
    stops = {tuple(body.get("stop") or ()) for body in state.requests}
    if style == "instruct":
        assert all(stop[-len(END_STOPS):] == END_STOPS for stop in stops)
    if api == "chat" and mode == "pencil":
        continued = [body for body in state.requests if len(body["messages"]) > 1]
        # vLLM continues the assistant message; llama.cpp gets a fresh user turn.
        assert all(body.get("continue_final_message") is (flavour == "vllm") or
                   (flavour == "llamacpp" and "continue_final_message" not in body) for body in continued)


@pytest.mark.parametrize("mode", MODES)
def test_answers_before_the_token_limit_are_parsed(server, suite, mode, tmp_path):
    """The scripted base model rambles on after its answer, far past the token budget."""
    _, _, url = server
    records = suite[1]
    longest = max(len((record["cot"] if mode != "pencil" else record["pencil"]).split()) for record in records)
    summary, frame = run(records, url, mode, "instruct", "completions", tmp_path, max_tokens=longest + 60)
    assert set(frame["status"]) <= {"ok", "token_limit"}
    assert frame["parse_ok"].all() and frame["correct"].all()
    assert no_silent_empties(frame)


def test_chat_continuation_that_the_server_ignores_is_flagged(suite, tmp_path):
    """Forcing continue_final_message on llama.cpp: every continuation comes back empty."""
    server, _, url = serve(suite[1], "llamacpp")
    try:
        _, frame = run(suite[1], url, "pencil", "compact", "chat", tmp_path, continuation="assistant")
    finally:
        server.shutdown()
        server.server_close()
    assert not frame["correct"].any()
    assert frame["error"].str.contains("empty").all()


def eval_argv(data, url, run_dir, mode="pencil", *extra):
    return ["eval", "--data", str(data), "--model", f"openai:{mode}", "--mode", mode, "--base-url", url,
            "--run-dir", str(run_dir), "--style", "instruct", "--quiet", "--timeout", "5", *extra]


def start_fake(data, flavour, *flags):
    process = subprocess.Popen([sys.executable, str(FAKE), str(data), "--flavour", flavour, *flags],
                               stdout=subprocess.PIPE, text=True)
    return process, int(process.stdout.readline())


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_run_killed_with_its_server_completes_on_rerun(suite, flavour, tmp_path):
    data, records = suite
    server, port = start_fake(data, flavour, "--delay", "0.02")
    url = f"http://127.0.0.1:{port}/v1"
    command = [sys.executable, "-m", "pencilbench", *eval_argv(data, url, tmp_path, "pencil", "--concurrency", "2")]
    client = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # kill both once a few samples are in
            time.sleep(0.05)
            if (tmp_path / "results.sqlite").exists():
                try:
                    with ResultStore(tmp_path) as store:
                        if len(store.samples()) >= 2:
                            break
                except UserError:  # the eval has created the file but not yet written its schema
                    continue
        server.send_signal(signal.SIGKILL)
        client.send_signal(signal.SIGKILL)
        assert client.wait() != 0
    finally:
        server.kill()
        server.wait()
        client.kill()
    with ResultStore(tmp_path) as store:
        before = len(store.samples())
    assert 2 <= before < len(records)
    server, _ = start_fake(data, flavour, "--port", str(port))
    try:
        assert main(eval_argv(data, url, tmp_path)) == 0
    finally:
        server.kill()
        server.wait()
    with ResultStore(tmp_path) as store:
        frame = store.samples()
    assert len(frame) == len(records) == frame["instance_id"].nunique()
    assert set(frame["status"]) == {"ok"} and frame["correct"].all() and (frame["reductions"] > 0).all()


@pytest.mark.parametrize("serial", [True, False])
def test_the_summary_says_when_concurrency_cannot_help(suite, serial, tmp_path, capsys):
    data, records = suite
    server, _, url = serve(records, "llamacpp", delay=0.1, serial=serial)
    try:
        assert main(eval_argv(data, url, tmp_path, "direct", "--concurrency", "4", "--no-cache")) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert "requests in flight:" in out
    assert ("--concurrency gave little speed-up" in out) is serial


def test_call_load_tells_a_queue_from_a_crowd():
    # four calls queued one behind another: each waits for those before it
    queued = call_load([(0.0, 1.0, 1), (1.0, 5.0, 4), (1.0, 6.0, 4), (1.0, 7.0, 4)], 4)
    parallel = call_load([(0.0, 1.0, 1), (1.0, 2.1, 4), (1.0, 2.0, 4), (1.0, 2.0, 4)], 4)
    assert queued.served_at_once == 1.0 and parallel.served_at_once == pytest.approx(4.0)
    assert queued.in_flight == pytest.approx((1 + 4 + 5 + 6) / 7)


def test_a_pencil_run_that_never_reduces_warns(suite, tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    data, records = suite
    assert main(["eval", "--data", str(data), "--model", "python:eval_models:last_token", "--mode", "pencil",
                 "--run-dir", str(tmp_path), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("no sample of this pencil run performed a reduction") == 1


def response(choice, usage=None):
    return {"choices": [choice], **({"usage": usage} if usage else {})}


def test_an_unreported_stop_is_marked_unknown_and_inferred_from_the_trace():
    adapter = OpenAIAdapter("m", "http://127.0.0.1:1/v1")
    request = Request("1 2", ("[RETURN]",), 10, 3)
    unknown = adapter._parse(response({"text": "[CALL] 3 [SEP] 4", "finish_reason": "stop"}), request)
    assert unknown.stop is None and unknown.stop_unknown
    known = adapter._parse(response({"text": "4", "finish_reason": "stop", "stop_reason": None}), request)
    assert known.stop is None and not known.stop_unknown
    named = adapter._parse(response({"text": "4", "finish_reason": "stop", "stop_reason": "[RETURN]"}), request)
    assert named.stop == "[RETURN]" and not named.stop_unknown


def test_finish_reasons_are_checked_against_the_token_count():
    adapter = OpenAIAdapter("m", "http://127.0.0.1:1/v1")
    request = Request("1 2", (), 50)
    short = adapter._parse(response({"text": "4", "finish_reason": "length"}, {"completion_tokens": 7}), request)
    assert short.finish_reason == "server_limit"
    full = adapter._parse(response({"text": "4", "finish_reason": "length"}, {"completion_tokens": 50}), request)
    assert full.finish_reason == "length"
    silent = adapter._parse(response({"text": "4", "finish_reason": "stop"}, {"completion_tokens": 50}), request)
    assert silent.finish_reason == "length"
    unknown = adapter._parse(response({"text": "4", "finish_reason": "length"}), request)
    assert unknown.finish_reason == "length"


def test_a_server_window_that_runs_out_is_a_context_overflow(suite, tmp_path):
    record = suite[1][0]

    class Window:
        name = "window"

        def complete(self, request):
            return OpenAIAdapter("m", "http://127.0.0.1:1/v1")._parse(
                response({"text": "1 2", "finish_reason": "length"}, {"completion_tokens": 2}), request)

    client = Client(Window(), CallPolicy(retries=0))
    with ResultStore(tmp_path, create=True) as store:
        evaluate([record], client, EvalConfig("cot", max_tokens=100), store, "window", progress=False)
        sample = store.samples().iloc[0]
    assert sample.status == "context_overflow" and "context window" in sample.error


def test_the_cache_key_holds_every_generation_setting(tmp_path):
    request = Request("1 2", ("[RETURN]",), 10, 3)
    base = {"base_url": "http://a/v1", "api": "completions", "temperature": 0.0, "seed": 0, "system_prompt": None}
    keys = {ResponseCache("openai:m", settings=base).key(request)}
    for name, value in [("base_url", "http://b/v1"), ("api", "chat"), ("temperature", 0.7), ("seed", 1),
                        ("system_prompt", "Be brief.")]:
        keys.add(ResponseCache("openai:m", settings={**base, name: value}).key(request))
    keys.add(ResponseCache("openai:other", settings=base).key(request))
    cache = ResponseCache("openai:m", settings=base)
    keys |= {cache.key(Request("1 2", ("[RETURN]",), 11, 3)), cache.key(Request("1 2", (), 10, 3)),
             cache.key(Request("1 2", ("[RETURN]",), 10, 3, repeat=1))}
    assert len(keys) == 10


def test_sampling_settings_reach_the_server(suite, tmp_path, capsys):
    data, records = suite
    server, state, url = serve(records, "vllm")
    try:
        argv = ["eval", "--data", str(data), "--model", "openai:direct", "--mode", "direct", "--base-url", url,
                "--run-dir", str(tmp_path), "--api", "chat", "--temperature", "0.8", "--seed", "5",
                "--samples", "3", "--system-prompt", "Answer tersely.", "--limit", "2", "--quiet"]
        assert main(argv) == 0
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert "pass@3" in out and "maj@3" in out
    assert len(state.requests) == 6  # three samples of two instances, none from the cache
    assert sorted(body["seed"] for body in state.requests) == [5, 5, 6, 6, 7, 7]
    assert all(body["temperature"] == 0.8 and body["messages"][0] == {"role": "system", "content": "Answer tersely."}
               for body in state.requests)
    with ResultStore(tmp_path) as store:
        frame = store.samples()
    assert sorted(frame["repeat"]) == [0, 0, 1, 1, 2, 2]
    assert json.loads(store_config(tmp_path))["system_prompt"] == "Answer tersely."


def store_config(run_dir):
    with ResultStore(run_dir) as store:
        return store.evaluations()["config"].iloc[0]


def test_a_system_prompt_needs_chat(suite, tmp_path, capsys):
    data, _ = suite
    code = main(["eval", "--data", str(data), "--model", "openai:x", "--mode", "direct", "--base-url",
                 "http://127.0.0.1:1/v1", "--run-dir", str(tmp_path), "--system-prompt", "hi"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("pencilbench: error:") and err.count("\n") == 1
