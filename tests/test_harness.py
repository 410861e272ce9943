"""The inference loop: oracle upper bound in every mode and style, budgets, protocol errors,
malformed output as data, trace rate, resume, concurrency and batching."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pencilbench.bench.adapters import AdapterOptions, make_adapter
from pencilbench.bench.adapters.base import Completion, Request
from pencilbench.bench.adapters.local import PythonAdapter
from pencilbench.bench.adapters.wrapper import CallPolicy, Client
from pencilbench.bench.harness import MODES, STYLES, EvalConfig, default_max_tokens, evaluate, run_sample
from pencilbench.bench.prompts import instruct_prompt, pieces, worked_example
from pencilbench.bench.store import ResultStore
from pencilbench.generators.dataset import Spec, generate, make_record
from pencilbench.generators.pencil import MARKERS, RETURN, replay
from pencilbench.generators.registry import TASKS, get_task

PER_SIZE = 3


@pytest.fixture(scope="module")
def suite():
    """A few instances of every registered task at each quickstart size."""
    return [record for task in TASKS.values() for size in task.quickstart_sizes
            for record in generate(Spec(task.name, size, "test", 5), PER_SIZE)]


@pytest.fixture(scope="module")
def small():
    return list(generate(Spec("addition", {"operands": 3, "digits": 4}, "test", 1), 6))


def run(records, spec_or_adapter, mode, style="compact", *, tmp_path, max_tokens=None, max_context=None,
        concurrency=1, model=None):
    adapter = (make_adapter(spec_or_adapter, AdapterOptions(records, mode, style))
               if isinstance(spec_or_adapter, str) else spec_or_adapter)
    config = EvalConfig(mode, style, max_tokens or default_max_tokens(records, mode, style), max_context)
    with ResultStore(tmp_path, create=True) as store:
        client = Client(adapter, CallPolicy(retries=1, backoff=0, concurrency=concurrency))
        summary = evaluate(records, client, config, store, model or adapter.name, progress=False)
        return summary, store.samples()


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("mode", MODES)
def test_oracle_is_perfect_in_every_mode_and_style(suite, mode, style, tmp_path):
    summary, frame = run(suite, "oracle", mode, style, tmp_path=tmp_path)
    assert summary.written == len(suite) == len(frame)
    assert set(frame["status"]) == {"ok"}
    assert frame["correct"].all() and frame["parse_ok"].all()
    assert (frame["partial"] == 1.0).all()
    if mode == "direct":
        assert frame["trace_rate"].isna().all()
    else:
        assert (frame["trace_rate"] == 1.0).all()


@pytest.mark.parametrize("mode", MODES)
def test_compact_oracle_matches_the_gold_statistics(suite, mode, tmp_path):
    _, frame = run(suite, "oracle", mode, tmp_path=tmp_path)
    by_id = {record["id"]: record for record in suite}
    for row in frame.itertuples():
        stats = by_id[row.instance_id]["stats"]
        lengths = json.loads(row.context_lengths)
        assert len(lengths) == row.generated_tokens
        if mode == "pencil":
            assert row.peak_context == stats["pencil_max_context"]
            assert row.reductions == stats["reductions"]
            assert row.generated_tokens == stats["pencil_tokens"]
            assert row.output == f"[ANSWER] {by_id[row.instance_id]['answer']}"
            assert max(lengths) <= row.peak_context
        elif mode == "cot":
            assert row.peak_context == stats["prompt_tokens"] + stats["cot_tokens"] == lengths[-1]
            assert row.reductions == 0
        else:
            assert row.output == row.parsed_answer == row.gold_answer


def test_pencil_context_lengths_draw_the_sawtooth(small, tmp_path):
    _, frame = run(small, "oracle", "pencil", tmp_path=tmp_path)
    record = small[0]
    row = frame[frame["instance_id"] == record["id"]].iloc[0]
    lengths = json.loads(row.context_lengths)
    trail = replay(record["prompt"].split(), record["pencil"].split(), lengths=True).lengths
    assert lengths == list(trail)
    assert min(lengths) >= len(record["prompt"].split())
    assert any(b < a for a, b in zip(lengths, lengths[1:], strict=False))


@pytest.mark.parametrize("mode", MODES)
def test_random_is_a_floor_that_always_parses(suite, mode, tmp_path):
    _, frame = run(suite, "random", mode, tmp_path=tmp_path)
    assert set(frame["status"]) == {"ok"}
    assert frame["parse_ok"].all()
    assert frame["correct"].mean() < 1.0


def test_budgets_are_exact_and_never_truncate(small, tmp_path):
    record = small[0]
    stats = record["stats"]
    pencil_peak, pencil_len = stats["pencil_max_context"], stats["pencil_tokens"]
    cases = [
        ("pencil", {"max_context": pencil_peak}, "ok"),
        ("pencil", {"max_context": pencil_peak - 1}, "context_overflow"),
        ("pencil", {"max_tokens": pencil_len}, "ok"),
        ("pencil", {"max_tokens": pencil_len - 1}, "token_limit"),
        ("cot", {"max_context": stats["prompt_tokens"] + stats["cot_tokens"]}, "ok"),
        ("cot", {"max_context": stats["prompt_tokens"] + stats["cot_tokens"] - 1}, "context_overflow"),
        ("cot", {"max_tokens": stats["cot_tokens"] - 1}, "token_limit"),
        ("direct", {"max_tokens": len(record["answer"].split()) - 1}, "token_limit"),
    ]
    for i, (mode, budget, status) in enumerate(cases):
        _, frame = run([record], "oracle", mode, tmp_path=tmp_path / str(i), **budget)
        row = frame.iloc[0]
        assert row.status == status, (mode, budget)
        assert bool(row.correct) == (status == "ok")
        if status == "context_overflow":
            assert row.peak_context == budget["max_context"] + 1
        if status == "token_limit":
            assert row.generated_tokens == budget["max_tokens"]


def test_a_prompt_longer_than_the_context_budget_needs_no_call(small, tmp_path):
    prompt = len(small[0]["prompt"].split())
    summary, frame = run(small[:1], "oracle", "pencil", tmp_path=tmp_path, max_context=prompt - 1)
    assert summary.calls == 0 and frame.iloc[0].status == "context_overflow"
    assert frame.iloc[0].peak_context == prompt and frame.iloc[0].generated_tokens == 0


def test_a_model_ignoring_the_cap_hits_the_token_limit(small, tmp_path):
    _, frame = run(small[:2], PythonAdapter("eval_models:endless"), "cot", tmp_path=tmp_path, max_tokens=20)
    assert set(frame["status"]) == {"token_limit"}
    assert (frame["generated_tokens"] == 20).all()


def test_protocol_errors_and_babble_are_recorded(small, tmp_path):
    _, frame = run(small[:2], PythonAdapter("eval_models:bad_return"), "pencil", tmp_path=tmp_path / "a")
    assert set(frame["status"]) == {"protocol_error"}
    assert frame["error"].str.contains("return_without_sep").all()
    assert not frame["correct"].any()
    for mode in MODES:
        for style in STYLES:
            _, frame = run(small[:2], PythonAdapter("eval_models:babble"), mode, style,
                           tmp_path=tmp_path / f"{mode}{style}")
            assert not frame["correct"].any()
            assert not frame["parse_ok"].all() or set(frame["status"]) == {"protocol_error"}


def test_model_failures_are_recorded_per_sample(small, tmp_path):
    summary, frame = run(small, PythonAdapter("eval_models:broken"), "direct", tmp_path=tmp_path)
    assert summary.written == len(small)
    assert set(frame["status"]) == {"model_error"}
    assert frame["error"].str.contains("model exploded").all()
    assert frame["error"].str.contains("2 attempts").all()


def test_trace_rate_is_the_gold_prefix_share(small):
    record = small[0]
    gold = record["cot"].split()
    keep = len(gold) // 3
    text = " ".join(gold[:keep] + ["x"] + gold[keep + 1:])
    job = run_sample(record, EvalConfig("cot", max_tokens=10_000), "m")
    next(job)
    with pytest.raises(StopIteration) as end:
        job.send(Completion(text))
    assert end.value.value.trace_rate == keep / len(gold)


def test_resume_skips_finished_samples(small, tmp_path):
    first, _ = run(small[:2], "oracle", "pencil", tmp_path=tmp_path)
    again, frame = run(small, "oracle", "pencil", tmp_path=tmp_path)
    assert (first.written, again.written, again.skipped) == (2, len(small) - 2, 2)
    assert len(frame) == len(small) == frame["instance_id"].nunique()


def _stable(frame):
    return frame.drop(columns=["wall_time"]).reset_index(drop=True)


def test_concurrency_and_batching_give_the_same_rows(suite, tmp_path):
    _, one = run(suite, "oracle", "pencil", tmp_path=tmp_path / "one")
    _, many = run(suite, "oracle", "pencil", tmp_path=tmp_path / "many", concurrency=4)
    assert _stable(one).equals(_stable(many))

    class Batched:
        name = "oracle"

        def __init__(self):
            self.inner = make_adapter("oracle", AdapterOptions(suite, "pencil"))
            self.sizes = []

        def complete(self, request):
            raise AssertionError("the batch path should be used")

        def complete_batch(self, requests):
            self.sizes.append(len(requests))
            return [self.inner.complete(request) for request in requests]

    batched = Batched()
    _, frame = run(suite, batched, "pencil", tmp_path=tmp_path / "batch", concurrency=5)
    assert max(batched.sizes) == 5
    assert _stable(one).equals(_stable(frame))


def test_instruct_lengths_use_the_models_tokenizer(small, tmp_path):
    class Counting:
        name = "counting"

        def __init__(self):
            self.inner = make_adapter("oracle", AdapterOptions(small, "cot", "instruct"))

        def complete(self, request):
            return self.inner.complete(request)

        def count_tokens(self, text):
            return len(text)  # one token per character

    _, frame = run(small[:1], Counting(), "cot", "instruct", tmp_path=tmp_path)
    row = frame.iloc[0]
    prompt = instruct_prompt(small[0], "cot")
    assert row.correct
    assert row.peak_context == len(prompt) + sum(len(piece) for piece in pieces(row.output))


def test_instruct_budgets_in_model_tokens(small, tmp_path):
    class Counting:
        name = "counting"

        def __init__(self):
            self.inner = make_adapter("oracle", AdapterOptions(small, "pencil", "instruct"))

        def complete(self, request):
            return self.inner.complete(request)

        def count_tokens(self, text):
            return len(text)

    _, frame = run(small[:1], Counting(), "pencil", "instruct", tmp_path=tmp_path / "free")
    peak = int(frame.iloc[0].peak_context)
    assert frame.iloc[0].correct and frame.iloc[0].reductions == small[0]["stats"]["reductions"]
    _, frame = run(small[:1], Counting(), "pencil", "instruct", tmp_path=tmp_path / "exact", max_context=peak)
    assert frame.iloc[0].status == "ok"
    _, frame = run(small[:1], Counting(), "pencil", "instruct", tmp_path=tmp_path / "short",
                   max_context=peak - 1)
    assert frame.iloc[0].status == "context_overflow" and frame.iloc[0].peak_context > peak - 1


def test_instruct_prompts_carry_a_worked_example(small):
    for name in TASKS:
        example = worked_example(name)
        assert example == make_record(get_task(name), get_task(name).params(get_task(name).quickstart_sizes[0]),
                                      "train", 0, 0)
    direct, cot, pencil = (instruct_prompt(small[0], mode) for mode in MODES)
    assert small[0]["question"] in direct and "Example" not in direct
    assert worked_example("addition")["cot"] in cot and "[CALL]" not in cot
    assert worked_example("addition")["pencil"] in pencil and "[RETURN]" in pencil


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_pieces_keep_the_text_and_isolate_markers(text):
    out = pieces(text)
    assert all(piece.strip() for piece in out)
    assert all(piece in MARKERS or not any(marker in piece for marker in MARKERS) for piece in out)
    kept = "".join(out)
    assert "".join(kept.split()) == "".join(text.split())


NEAR_MISSES = st.sampled_from(["Answer:", "answer: ", "Answer is", "\\boxed{", "<think>", "</think>", "[RETURN]",
                               "Answer: -", "Answer: 1,2", "**Answer:** ", "\n", " ", "SAT", "UNSAT", "True",
                               "x1=", "House 1", "Answer: ?", "99999999999999999999", "a", "=", "#1", "@2"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=12), NEAR_MISSES), max_size=12))
def test_answer_parsing_never_raises(parts):
    text = "".join(parts)
    for name, task in TASKS.items():
        record = worked_example(name)
        params = task.params(record["params"])
        answer = task.parse_answer(params, record["problem"], text)
        assert answer is None or isinstance(answer, tuple)


def test_answer_lines_parse_back_for_every_task(suite):
    for record in suite:
        task = get_task(record["task"])
        parsed = task.parse_answer(task.params(record["params"]), record["problem"],
                                   f"<think>scratch</think>\nAnswer: {record['answer']}")
        assert parsed == tuple(record["answer"].split())


def test_a_stop_string_inside_the_text_is_honoured(small):
    record = small[0]
    job = run_sample(record, EvalConfig("pencil", max_tokens=10_000), "m")
    first = next(job)
    assert isinstance(first, Request) and first.stop == (RETURN,) and first.instance == record["id"]
    second = job.send(Completion("[CALL] 1 [SEP] 2 [RETURN] 3 4"))
    assert second.generated.split() == ["2"]


MODEL_TEXT = st.lists(st.one_of(st.text(max_size=8), st.sampled_from([*MARKERS, " ", "\n", "Answer: 1", "7"])),
                      max_size=10).map("".join)


@settings(max_examples=120, deadline=None)
@given(st.lists(st.tuples(MODEL_TEXT, st.sampled_from(["stop", "length"]), st.booleans()), min_size=1, max_size=6),
       st.sampled_from(MODES), st.sampled_from(STYLES))
def test_any_model_text_ends_in_a_recorded_sample(replies, mode, style):
    record = worked_example("addition")
    job = run_sample(record, EvalConfig(mode, style, max_tokens=40, max_context=300), "m")
    request = next(job)
    statuses = {"ok", "context_overflow", "token_limit", "protocol_error", "empty_reply"}
    for i in range(50):
        text, finish, at_return = replies[i % len(replies)]
        try:
            request = job.send(Completion(text, finish, RETURN if at_return else None))
        except StopIteration as end:
            sample = end.value
            break
        assert request.max_tokens >= 1
    else:
        raise AssertionError("the sample never finished")
    assert sample.status in statuses and sample.generated_tokens <= 40
    assert sample.correct is False or sample.parse_ok
    assert len(json.loads(sample.context_lengths)) == sample.generated_tokens
