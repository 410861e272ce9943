"""Scoring: the compact answer boundary, strict instruct answers (one final answer, no
hedging), answers in replies stopped by a budget, the reply byte cap, linear parsers and
integers of any length."""

from __future__ import annotations

import dataclasses
import functools
import time

import numpy as np
import pandas as pd
import pytest
from pencilbench.bench.adapters.base import Completion
from pencilbench.bench.cli import main
from pencilbench.bench.harness import EvalConfig, run_sample
from pencilbench.bench.metrics import summarize
from pencilbench.bench.prompts import answer_line, instruct_prompt, pieces, worked_example
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.generators.pencil import ANSWER, TraceWriter, final_answer, replay, strip_markers
from pencilbench.generators.registry import TASKS, get_task
from pencilbench.solvers.registry import check_answer


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
    record["cot"] = " ".join(token for token in record["cot"].split() if token != ANSWER)
    record["pencil"] = " ".join(token for token in record["pencil"].split() if token != ANSWER)
    found = trace_problems(record)
    assert "reducing the PENCIL trace does not leave exactly [ANSWER] and the answer" in found
    assert "the CoT does not end with its one [ANSWER] and the answer" in found


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


# Instruct answers: one final answer ---------------------------------------------------------

def _answer_text(record, tokens):
    """How the instruct style writes ``tokens`` for ``record`` (without ``Answer:``)."""
    return answer_line(record, tokens).removeprefix("Answer: ")


def _wrong_answers(record, rng):
    """Answers near the gold one that the oracle rejects."""
    task, gold = record["task"], record["answer"].split()
    problem = record["problem"]
    if task == "addition":
        number = "".join(gold)
        options = [str(int(number) + delta) for delta in (1, -1, 10, 9) if int(number) + delta >= 0]
        options.append(number + "0")
        out = [list(option) for option in options]
    elif task == "qbf":
        out = [["False" if gold[0] == "True" else "True"]]
    elif task == "phop":
        out = [[symbol] for symbol in "abcdefgh"[: record["params"]["alphabet"]] if symbol != gold[0]]
    elif task == "sat":
        if gold[0] == "UNSAT":
            out = [["SAT", *(str(v) for v in range(1, problem["num_vars"] + 1))]]
        else:
            flips = [gold[:i] + [str(-int(gold[i]))] + gold[i + 1:] for i in range(1, len(gold))]
            out = [["UNSAT"], *flips]
    else:  # einstein: swap two values of one attribute between houses
        out = []
        for values_of in problem["attributes"].values():
            a, b = values_of[0], values_of[1]
            out.append([b if t == a else a if t == b else t for t in gold])
    wrong = [option for option in out
             if not check_answer(task, problem, option).correct and option != gold]
    assert wrong, record["id"]
    rng.shuffle(wrong)
    return wrong[:3]


HEDGES = (
    "Answer: {a} or {b}",
    "Answer: {a}. Actually, {b}",
    "Answer: {a}, no wait, {b}",
    "Answer: {a} (or maybe {b})",
    "Answer: either {a} or {b}",
    "Answer: {a}\nAnswer: {b}",
    "**Answer:** {a}\n\nOn reflection:\nAnswer: {b}",
    "The answer is: {a}\nFinal answer: {b}",
    "\\boxed{{{a}}}\nAnswer: {b}",
    "Answer: \\boxed{{{a}}} \\boxed{{{b}}}",
    "Answer: {a} / {b}",
    "Answer: {a}; {b}",
    "Answer: {a}. Final answer: {b}",
    "answer = {a}\n answer = {b}",
)
PROSE = ("", "Let me work through this carefully.\n", "<think>Answer: {b}</think>\n",
         "We add column by column and check each step.\n\n")


def test_hedged_answers_around_the_gold_answer_are_never_correct(suite):
    """Every task, every hedge template, the gold answer first and last: no answer."""
    rng = np.random.default_rng(20260401)
    tried = 0
    for record in suite:
        task = get_task(record["task"])
        params = task.params(record["params"])
        gold = _answer_text(record, record["answer"].split())
        for wrong_tokens in _wrong_answers(record, rng):
            wrong = _answer_text(record, wrong_tokens)
            for template in HEDGES:
                for a, b in ((gold, wrong), (wrong, gold)):
                    prose = PROSE[int(rng.integers(len(PROSE)))].format(b=b)
                    text = prose + template.format(a=a, b=b)
                    parsed = task.parse_answer(params, record["problem"], text)
                    assert parsed is None, (record["id"], text, parsed)
                    tried += 1
    assert tried > 1000


def test_clean_answers_in_the_documented_formats_parse(suite):
    for record in suite:
        task = get_task(record["task"])
        params = task.params(record["params"])
        gold = tuple(record["answer"].split())
        text = _answer_text(record, list(gold))
        spaced = " ".join(gold)
        for reply in (f"Answer: {text}", f"Answer: {spaced}", f"**Answer:** {text}",
                      f"Some reasoning first.\nThe answer is: {text}\nHope this helps.",
                      f"<think>Answer: wrong guess 0 x</think>\nAnswer: {text}",
                      f"\\boxed{{{text}}}", f"Answer: \\boxed{{{text}}}",
                      f"Answer: {text}\nSo, restating it:\nAnswer: {text}"):
            assert task.parse_answer(params, record["problem"], reply) == gold, (record["id"], reply)


@pytest.mark.parametrize(("task_name", "reply", "expected"), [
    ("addition", "Answer: 1,234,567", ("1", "2", "3", "4", "5", "6", "7")),
    ("addition", "Answer: 007", ("7",)),
    ("addition", "Answer: 1 2 3", ("1", "2", "3")),
    ("addition", "Answer: the sum is 42.", ("4", "2")),
    ("addition", "Answer: 12 13", None),
    ("addition", "Answer: 12,13", None),
    ("addition", "Answer: 1234 (from 5 columns)", None),
    ("qbf", "Answer: **True**", ("True",)),
    ("qbf", "Answer: \\boxed{\\text{False}}", ("False",)),
    ("qbf", "Answer: True or False", None),
    ("qbf", "Answer: True, no wait, False", None),
    ("phop", "Answer: I think c", None),
    ("phop", "Answer: 'c'", ("c",)),
    ("phop", "Answer: C.", ("c",)),
    ("phop", "Answer: it's c", ("c",)),
    ("phop", "Answer: c or d", None),
    ("phop", "Answer: x", ("x",)),
    ("sat", "Answer: UNSAT", ("UNSAT",)),
    ("sat", "Answer: not satisfiable", ("UNSAT",)),
    ("sat", "Answer: SATISFIABLE 1 -2 3 0", ("SAT", "1", "-2", "3")),
    ("sat", "Answer: SAT 1 -2 3 1", ("SAT", "1", "-2", "3")),
    ("sat", "Answer: SAT 1 -2 3 -1", None),
    ("sat", "Answer: SAT or UNSAT", None),
    ("sat", "Answer: UNSAT 1 2", None),
    ("qbf", "Answer:", None),
    ("qbf", "The formula is true.", None),
])
def test_documented_examples(task_name, reply, expected):
    record = worked_example(task_name)
    task = get_task(task_name)
    assert task.parse_answer(task.params(record["params"]), record["problem"], reply) == expected


def test_einstein_answers_name_one_grid(suite):
    record = next(r for r in suite if r["task"] == "einstein" and r["problem"]["question"]["ask"] != "grid")
    task = get_task("einstein")
    params = task.params(record["params"])
    gold = record["answer"].split()
    asked, grid = gold[0], gold[1:]
    other = next(v for values in record["problem"]["attributes"].values() if asked in values
                 for v in values if v != asked)
    houses = "; ".join(" ".join(grid[i : i + 1 + len(record["problem"]["attributes"])]).replace("h", "house ", 1)
                       for i in range(0, len(grid), 1 + len(record["problem"]["attributes"])))
    parse = functools.partial(task.parse_answer, params, record["problem"])
    assert parse(f"Answer: {asked}; {houses}") == tuple(gold)
    assert parse(f"Answer: {asked} or {other}; {houses}") is None
    assert parse(f"Answer: {asked}; {houses}; {houses}") is None


# Replies stopped by a budget or the byte cap -------------------------------------------------

def test_an_answer_written_before_the_token_limit_is_scored(suite):
    record = next(r for r in suite if r["task"] == "addition")
    answer = "".join(record["answer"].split())
    ramble = " and then some more words" * 40
    for mode in ("direct", "cot", "pencil"):
        sample = finish(record, mode, [Completion(f"Answer: {answer}\n{ramble}", "length")], "instruct",
                        max_tokens=30)
        assert sample.status == "token_limit" and sample.parse_ok and sample.correct, mode
        assert sample.parsed_answer == record["answer"]
    over = finish(record, "cot", [f"Answer: {answer}\n{ramble}"], "instruct",
                  max_context=len(pieces(instruct_prompt(record, "cot"))) + 30)
    assert over.status == "context_overflow" and over.correct
    # A wrong answer stays wrong, and an answer line the limit cut through is no answer.
    wrong = finish(record, "cot", [f"Answer: 1{answer}\n{ramble}"], "instruct", max_tokens=30)
    assert wrong.status == "token_limit" and wrong.parse_ok and not wrong.correct
    unfinished = finish(record, "cot", [f"Working it out first {ramble}\nAnswer: {answer}"], "instruct",
                        max_tokens=30)
    assert unfinished.status == "token_limit" and not unfinished.parse_ok
    cut_mid_line = finish(record, "cot", [f"Answer: {answer} {ramble}"], "instruct", max_tokens=30)
    assert not cut_mid_line.parse_ok


def test_a_compact_generation_stopped_by_the_limit_has_no_answer(suite):
    record = next(r for r in suite if r["task"] == "addition")
    cot = record["cot"].split()
    sample = finish(record, "cot", [" ".join(cot + ["1"] * 50)], max_tokens=len(cot) + 5)
    assert sample.status == "token_limit" and not sample.parse_ok and not sample.correct


def test_the_reply_byte_cap_cuts_and_says_so(suite):
    record = next(r for r in suite if r["task"] == "addition")
    answer = "".join(record["answer"].split())
    sample = finish(record, "cot", [f"Answer: {answer}\n" + "é ü " * 20_000], "instruct",
                    max_reply_bytes=1000)
    assert sample.status == "reply_cut" and sample.correct
    assert 900 < len(sample.output.encode()) <= 1000
    compact = finish(record, "pencil", ["7 " * 50_000], max_reply_bytes=999)
    assert compact.status == "reply_cut" and not compact.parse_ok
    assert len(compact.output.encode()) <= 999 and compact.generated_tokens == 499
    # Several calls share one cap.
    calls = finish(record, "pencil", [Completion("[CALL] 1 2 [SEP] 3", "stop", "[RETURN]")], max_reply_bytes=60)
    assert calls.status == "reply_cut" and len(calls.output.encode()) <= 60
    with pytest.raises(ValueError, match="max reply bytes"):
        EvalConfig("cot", max_reply_bytes=0)


def test_a_huge_reply_is_cut_quickly(suite):
    record = next(r for r in suite if r["task"] == "addition")
    started = time.perf_counter()
    sample = finish(record, "cot", ["1 2 3 4 " * 1_300_000], "instruct", max_tokens=10**8)  # 10 MB
    assert time.perf_counter() - started < 10
    assert sample.status == "reply_cut" and len(sample.output.encode()) <= 1_000_000


def test_the_cli_caps_replies(tmp_path, capsys):
    data = tmp_path / "a.jsonl"
    assert main(["generate", "addition", "-p", "operands=2", "-p", "digits=3", "-n", "2", "--out", str(data)]) == 0
    code = main(["eval", "--data", str(data), "--model", "python:eval_models:endless", "--mode", "cot",
                 "--run-dir", str(tmp_path / "run"), "--max-tokens", "500", "--max-reply-bytes", "40"])
    out = capsys.readouterr().out
    assert code == 0 and "reply_cut 2" in out
    code = main(["eval", "--data", str(data), "--model", "oracle", "--mode", "cot",
                 "--run-dir", str(tmp_path / "run2"), "--max-reply-bytes", "0"])
    assert code == 2 and "--max-reply-bytes must be >= 1" in capsys.readouterr().err


def test_metrics_report_stopped_samples_with_their_answers(suite):
    record = next(r for r in suite if r["task"] == "addition")
    answer = "".join(record["answer"].split())
    samples = [finish(record, "cot", [Completion(f"Answer: {answer}\n" + "x " * 100, "length")], "instruct",
                      max_tokens=20),
               finish(record, "cot", [f"Answer: {answer}"], "instruct")]
    frame = pd.DataFrame([dataclasses.asdict(sample) for sample in samples])
    row, = summarize(frame)
    assert row["accuracy"] == 1.0 and row["stopped"] == 0.5 and row["parse_failures"] == 0.0


# Linear parsers and integers of any length ---------------------------------------------------

HOSTILE = {
    "spaces after answer": "answer" + " " * 80_000 + "x",
    "answer is spaces": ("answer is" + " " * 400) * 200,
    "digit run": "Answer: " + "1" * 80_000 + "x",
    "spaced digits": "Answer: " + "1 " * 40_000 + "22",
    "comma groups": "Answer: 1" + ",234" * 20_000 + "5",
    "open think": "<think>" * 20_000,
    "open boxed": "\\boxed{" * 20_000,
    "braces": "\\boxed{" + "{" * 80_000,
    "not": "Answer: " + "not " * 20_000,
    "markers": "Answer: 1 " * 20_000,
    "words": "Answer: " + "a b " * 20_000,
}


def _parse_seconds(text):
    started = time.perf_counter()
    for name, task in TASKS.items():
        record = worked_example(name)
        task.parse_answer(task.params(record["params"]), record["problem"], text)
    return time.perf_counter() - started


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_parsers_are_linear(name):
    """Eight times the text takes well under 64 times (quadratic) as long; the old marker
    pattern took about 47 s on 80,000 spaces alone."""
    text = HOSTILE[name]
    small = min(_parse_seconds(text[: len(text) // 8]) for _ in range(3))
    large = min(_parse_seconds(text) for _ in range(2))
    assert large < 2.0, (name, large)
    assert large < 20 * small + 0.05, (name, small, large)


def test_a_ten_megabyte_reply_parses_in_about_a_second():
    rng = np.random.default_rng(3)
    words = np.array(["the", "sum", "is", " ", "\n", "answer", "1", "12", "**", "True", "c", "SAT", "{", "}"])
    text = " ".join(words[rng.integers(len(words), size=3_200_000)].tolist())[:10_000_000]
    assert len(text) >= 9_000_000
    assert _parse_seconds(text) < 15  # five parsers over 10 MB each


def test_integers_beyond_the_conversion_limit_never_raise():
    digits = "7" + "0" * 5000 + "1"
    add = worked_example("addition")
    addition = get_task("addition")
    assert addition.parse_answer(addition.params(add["params"]), add["problem"],
                                 f"Answer: 000{digits}") == tuple(digits)
    record = worked_example("sat")
    sat = get_task("sat")
    assert sat.parse_answer(sat.params(record["params"]), record["problem"],
                            f"Answer: SAT -{digits} 1") == ("SAT", f"-{digits}", "1")
    record = worked_example("einstein")
    einstein = get_task("einstein")
    assert einstein.parse_answer(einstein.params(record["params"]), record["problem"],
                                 f"Answer: {'0' * 5000}1") == ("h1",)
    assert einstein.parse_answer(einstein.params(record["params"]), record["problem"],
                                 f"Answer: {digits}") is None
    sample = finish(add, "direct", [f"Answer: {digits}"], "instruct")
    assert sample.status == "ok" and sample.parse_ok and not sample.correct and sample.error is None
    sat_record = worked_example("sat")
    sample = finish(sat_record, "direct", [f"Answer: SAT {digits}"], "instruct")
    assert sample.parse_ok and not sample.correct
