"""Scoring: the compact answer boundary, strict instruct answers (one final answer, no
hedging), answers in replies stopped by a budget, the reply byte cap, linear parsers and
integers of any length."""

from __future__ import annotations

import pytest
from pencilbench.bench.adapters.base import Completion
from pencilbench.bench.harness import EvalConfig, run_sample
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.generators.pencil import ANSWER, TraceWriter, final_answer, replay, strip_markers
from pencilbench.generators.registry import TASKS, get_task


@pytest.fixture(scope="module")
def suite():
    """Two instances of every task at each quickstart size."""
    return [record for task in TASKS.values() for size in task.quickstart_sizes
            for record in generate(Spec(task.name, size, "test", 11), 2)]


def finish(record, mode, replies, style="compact", **budget):
    """Run one sample on canned replies (the last one repeats) and return the sample."""
    job = run_sample(record, EvalConfig(mode, style, **{"max_tokens": 100_000, **budget}), "m")
    next(job)
    for i in range(1000):
        reply = replies[min(i, len(replies) - 1)]
        try:
            job.send(reply if isinstance(reply, Completion) else Completion(reply))
        except StopIteration as end:
            return end.value
    raise AssertionError("the sample never finished")


# The compact answer boundary ---------------------------------------------------------------

def test_final_answer_is_everything_after_the_one_boundary():
    assert final_answer(["x", ANSWER, "1", "2"]) == ("1", "2")
    assert final_answer([ANSWER, "SAT", "1", "-2"]) == ("SAT", "1", "-2")
    assert final_answer(["1", "2"]) is None
    assert final_answer(["x", ANSWER]) is None
    assert final_answer([ANSWER, "1", ANSWER, "2"]) is None  # restated or retracted


def test_the_root_frame_states_the_answer_after_the_boundary():
    out = TraceWriter()
    out.call("a")
    out.call("b")
    out.ret("2")
    out.answer("1", "2")
    run = replay([], out.tokens)
    assert run.final == (ANSWER, "1", "2") and run.fault is None
    assert final_answer(strip_markers(out.tokens)) == ("1", "2")


def test_every_gold_trace_has_one_boundary_and_the_whole_answer_after_it(suite):
    for record in suite:
        answer = tuple(record["answer"].split())
        cot, pencil = record["cot"].split(), record["pencil"].split()
        assert cot.count(ANSWER) == pencil.count(ANSWER) == 1
        assert final_answer(cot) == answer
        assert replay(record["prompt"].split(), pencil).final == (ANSWER, *answer)
        task = get_task(record["task"])
        assert ANSWER in task.vocabulary(task.params(record["params"]))


def test_a_trace_without_the_boundary_is_reported(suite):
    record = dict(suite[0])
    answer = record["answer"].split()
    record["cot"] = " ".join(token for token in record["cot"].split() if token != ANSWER)
    record["pencil"] = " ".join(token for token in record["pencil"].split() if token != ANSWER)
    found = trace_problems(record)
    assert any("[ANSWER]" in problem for problem in found)
    assert answer  # the answer itself is untouched


def test_compact_cot_scores_the_whole_answer_after_the_boundary(suite):
    """Extra leading tokens before the gold answer are wrong, whatever the gold length."""
    for record in suite:
        cot = record["cot"].split()
        answer = record["answer"].split()
        head = cot[: cot.index(ANSWER)]
        exact = finish(record, "cot", [" ".join(cot)])
        assert exact.correct and exact.parsed_answer == record["answer"]
        extra = finish(record, "cot", [" ".join([*head, ANSWER, answer[-1], *answer])])
        assert extra.parse_ok and not extra.correct, record["id"]
        bare = finish(record, "cot", [" ".join([*head, *answer])])  # no boundary: no answer
        assert not bare.parse_ok and not bare.correct
        twice = finish(record, "cot", [" ".join([*head, ANSWER, *answer, ANSWER, *answer])])
        assert not twice.parse_ok and not twice.correct


def test_compact_pencil_reads_the_answer_after_the_boundary(suite):
    record = next(r for r in suite if r["task"] == "addition")
    answer = record["answer"]

    def reduced(final):
        return [Completion(f"[CALL] 9 [SEP] {final}", "stop", "[RETURN]"), ""]

    right = finish(record, "pencil", reduced(f"{ANSWER} {answer}"))
    assert right.correct and right.output == f"{ANSWER} {answer}" and right.reductions == 1
    assert not finish(record, "pencil", reduced(answer)).parse_ok
    wrong = finish(record, "pencil", reduced(f"{ANSWER} 1 {answer}"))
    assert wrong.parse_ok and not wrong.correct
