"""Model specs, the call wrapper (retries, back-off, timeouts, concurrency, cache) and the
built-in adapters."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from pencilbench.bench.adapters import SPECS, AdapterOptions, make_adapter, spec_kind
from pencilbench.bench.adapters.base import Adapter, AdapterError, Completion, Request
from pencilbench.bench.adapters.local import CommandAdapter, PythonAdapter
from pencilbench.bench.adapters.wrapper import MAX_ERROR_CHARS, CallPolicy, Client, ModelFailure, ResponseCache
from pencilbench.bench.cli import main
from pencilbench.bench.errors import UserError
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records

MODELS = Path(__file__).with_name("eval_models.py")


@pytest.fixture(scope="module")
def records():
    return list(generate(Spec("phop", {"length": 16, "hops": 3}, "test", 2), 4))


class Flaky:
    """Fails ``failures`` times with the given error, then answers."""

    name = "flaky"

    def __init__(self, failures, error=None):
        self.failures, self.error, self.calls = failures, error, 0

    def complete(self, request):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error or AdapterError("try again")
        return Completion("ok")


def test_spec_table_resolves_every_kind(records):
    assert set(SPECS) == {"oracle", "random", "python", "cmd", "openai", "hf"}
    options = AdapterOptions(records, "pencil", "compact", base_url="http://127.0.0.1:9/v1")
    for spec in ("oracle", "random", "python:eval_models:last_token", f"cmd:{sys.executable} {MODELS}",
                 "openai:some-model"):
        adapter = make_adapter(spec, options)
        assert isinstance(adapter, Adapter)
    for bad in ("gpt4", "oracle:x", "python:", "openai:", "python:no_such_module_xyz:f",
                "python:eval_models:missing", "python:eval_models"):
        with pytest.raises(UserError):
            make_adapter(bad, options)
    with pytest.raises(UserError, match="--base-url"):
        make_adapter("openai:m", AdapterOptions(records))
    assert spec_kind("hf:some/path") == "hf"


def test_retries_back_off_exponentially_and_honour_retry_after():
    waits = []
    adapter = Flaky(3)
    client = Client(adapter, CallPolicy(retries=4, backoff=0.5, max_backoff=1.5, jitter=0), sleep=waits.append)
    assert client.complete_many([Request("x")]) == [Completion("ok")]
    assert waits == [0.5, 1.0, 1.5] and adapter.calls == client.calls == 4
    waits.clear()
    client = Client(Flaky(1, AdapterError("429", retry_after=7)), CallPolicy(backoff=0.5), sleep=waits.append)
    client.complete_many([Request("x")])
    assert waits == [7]


def test_back_off_is_jittered_within_its_bounds():
    policy = CallPolicy(backoff=1.0, max_backoff=100, jitter=0.5)
    assert policy.delay(3, None, 0.0) == 8.0 and policy.delay(3, None, 0.999) == pytest.approx(4.004)
    waits = []
    client = Client(Flaky(6), CallPolicy(retries=6, backoff=1.0, max_backoff=1000), sleep=waits.append)
    client.complete_many([Request("x")])
    assert all(2**k / 2 <= wait <= 2**k for k, wait in enumerate(waits)) and len(waits) == 6
    assert len({wait / 2**k for k, wait in enumerate(waits)}) > 1, "every retry waited the same share"
    with pytest.raises(ValueError, match=r"jitter must be in \[0, 1\]"):
        CallPolicy(jitter=2)


@pytest.mark.parametrize("retry_after, expected", [
    (3600.0, 30.0), (float("inf"), 30.0), (float("nan"), 0.5), (-5.0, 0.5), (None, 0.5), (2.0, 2.0)])
def test_retry_after_is_capped_and_nonsense_ignored(retry_after, expected):
    waits = []
    client = Client(Flaky(1, AdapterError("429", retry_after=retry_after)),
                    CallPolicy(backoff=0.5, max_backoff=30, jitter=0), sleep=waits.append)
    assert client.complete_many([Request("x")]) == [Completion("ok")]
    assert waits == [expected]


def test_stored_failure_messages_are_one_short_line():
    adapter = Flaky(5, AdapterError("HTTP 500: <html>\n" + "x" * 1_000_000, retryable=False))
    [result] = Client(adapter, CallPolicy(retries=0)).complete_many([Request("x")])
    assert isinstance(result, ModelFailure)
    assert len(result.message) <= MAX_ERROR_CHARS + len(" (after 1 attempt)") and "\n" not in result.message
    assert result.message.startswith("HTTP 500: <html> xxx") and result.message.endswith("… (after 1 attempt)")


def test_giving_up_and_not_retrying_what_cannot_succeed():
    client = Client(Flaky(10), CallPolicy(retries=2, backoff=0), sleep=lambda s: None)
    [result] = client.complete_many([Request("x")])
    assert isinstance(result, ModelFailure) and "after 3 attempts" in result.message
    adapter = Flaky(10, AdapterError("HTTP 400: bad request", retryable=False))
    [result] = Client(adapter, CallPolicy(retries=5)).complete_many([Request("x")])
    assert isinstance(result, ModelFailure) and adapter.calls == 1
    adapter = Flaky(1, KeyError("any exception is a failed call"))
    assert Client(adapter, CallPolicy(backoff=0)).complete_many([Request("x")]) == [Completion("ok")]


def test_a_hanging_call_times_out_and_the_adapter_is_reset():
    class Hanging:
        name = "hanging"

        def __init__(self):
            self.resets = 0

        def complete(self, request):
            if self.resets == 0:
                time.sleep(5)
            return Completion("late" if self.resets == 0 else "fresh")

        def reset(self):
            self.resets += 1

    adapter = Hanging()
    started = time.perf_counter()
    [result] = Client(adapter, CallPolicy(retries=1, backoff=0, timeout=0.2)).complete_many([Request("x")])
    assert result == Completion("fresh") and adapter.resets == 1
    assert time.perf_counter() - started < 2


def test_concurrency_is_bounded():
    class Counting:
        name = "counting"

        def __init__(self):
            self.now = self.most = 0
            self.lock = threading.Lock()

        def complete(self, request):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(0.02)
            with self.lock:
                self.now -= 1
            return Completion(request.context)

    adapter = Counting()
    client = Client(adapter, CallPolicy(concurrency=3))
    results = client.complete_many([Request(str(i)) for i in range(12)])
    assert [r.text for r in results] == [str(i) for i in range(12)]
    assert adapter.most == 3
    client.close()


def test_the_cache_answers_repeats_and_persists(tmp_path):
    adapter = Flaky(0)
    cache = ResponseCache("m", tmp_path / "cache.sqlite")
    client = Client(adapter, cache=cache)
    assert client.complete_many([Request("a"), Request("a"), Request("b")]) == [Completion("ok")] * 3
    assert adapter.calls == 3  # within one batch the duplicate is fetched too
    client.complete_many([Request("a")])
    assert adapter.calls == 3
    client.close()
    again = Client(Flaky(5), cache=ResponseCache("m", tmp_path / "cache.sqlite"))
    assert again.complete_many([Request("b")]) == [Completion("ok")]
    other_model = ResponseCache("n", tmp_path / "cache.sqlite")
    assert other_model.get(Request("b")) is None


def test_python_adapter_accepts_strings_objects_and_completions():
    adapter = PythonAdapter("eval_models:last_token")
    assert adapter.complete(Request("a b c", prompt_chars=5)).text == "c"
    completion = PythonAdapter("eval_models:bad_return").complete(Request("x", ("[RETURN]",)))
    assert completion == Completion("7 8", "stop", "[RETURN]")
    assert PythonAdapter("eval_models:bad_return").complete(Request("x")).stop is None


def test_command_adapter_speaks_json_lines_and_restarts(tmp_path):
    adapter = CommandAdapter(f"{sys.executable} {MODELS}")
    adapter.check()
    assert adapter.complete(Request("one two")).text == "two"
    with pytest.raises(AdapterError, match="malformed"):
        adapter.complete(Request("garbage"))
    assert adapter.complete(Request("still in step")).text == "step"
    with pytest.raises(AdapterError, match="exited"):
        adapter.complete(Request("crash"))
    assert adapter.complete(Request("restarted fine")).text == "fine"
    adapter.close()
    with pytest.raises(UserError):
        CommandAdapter("/no/such/program").check()


def test_replay_adapters_are_deterministic(records):
    request = Request(records[0]["prompt"], (), 50, len(records[0]["prompt"]), records[0]["id"])
    for style in ("compact", "instruct"):
        one, two = (make_adapter("random", AdapterOptions(records, "direct", style)) for _ in range(2))
        assert one.complete(request) == two.complete(request)
    oracle = make_adapter("oracle", AdapterOptions(records, "direct"))
    assert oracle.complete(request).text == records[0]["answer"]
    with pytest.raises(AdapterError):
        oracle.complete(Request("x", instance="no-such-id"))
    capped = make_adapter("oracle", AdapterOptions(records, "cot")).complete(
        Request(records[0]["prompt"], (), 2, None, records[0]["id"]))
    assert capped.finish_reason == "length" and len(capped.text.split()) == 2


def test_a_command_model_runs_through_the_cli(records, tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    write_records(data, records)
    code = main(["eval", "--data", str(data), "--model", f"cmd:{sys.executable} {MODELS}", "--mode", "direct",
                 "--run-dir", str(tmp_path / "run")])
    assert code == 0
    assert f"statuses: ok {len(records)}" in capsys.readouterr().out
    assert (tmp_path / "run" / "cache.sqlite").is_file()
