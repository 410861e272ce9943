"""Addition and p-hop: gold traces, oracles, sizes, parsing."""

import numpy as np
import pytest
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.generators.registry import TASKS, get_task
from pencilbench.solvers.phop import hop_target
from pencilbench.solvers.registry import check_answer

SIZES = [
    ("addition", {"operands": 2, "digits": 1}),
    ("addition", {"operands": 2, "digits": 10}),
    ("addition", {"operands": 7, "digits": 4}),
    ("addition", {"operands": 64, "digits": 3}),
    ("phop", {"alphabet": 2, "length": 16, "hops": 4}),
    ("phop", {"alphabet": 4, "length": 256, "hops": 32}),
    ("phop", {"alphabet": 26, "length": 100, "hops": 60}),
    ("phop", {"alphabet": 3, "length": 64, "hops": 62}),
]


@pytest.mark.parametrize(("task", "params"), SIZES)
def test_gold_traces_hold_every_invariant_and_satisfy_the_oracle(task, params):
    count = 300 if params.get("operands", 0) > 10 else 1500
    vocabulary = set(get_task(task).vocabulary(get_task(task).params(params)))
    for record in generate(Spec(task, params, "train", 3), count):
        assert trace_problems(record) == []
        assert check_answer(task, record["problem"], record["answer"].split()).correct
        assert set(record["prompt"].split()) <= vocabulary
        assert set(record["pencil"].split()) <= vocabulary


def test_addition_answer_is_the_integer_sum():
    for record in generate(Spec("addition", {"operands": 5, "digits": 6}), 200):
        total = sum(int(x) for x in record["problem"]["operands"])
        assert record["answer"].replace(" ", "") == str(total)


def test_addition_pencil_context_beyond_the_prompt_does_not_grow_with_operands():
    extra = {}
    for k in (2, 16, 64):
        rows = list(generate(Spec("addition", {"operands": k, "digits": 8}), 50))
        extra[k] = max(r["stats"]["pencil_max_context"] - r["stats"]["prompt_tokens"] for r in rows)
        cot = min(r["stats"]["cot_tokens"] for r in rows)
        assert cot > 4 * k * 8  # the CoT visits every digit of every operand
    # Only the column total grows (it has more digits when more operands are added).
    assert extra[64] - extra[2] <= 4
    assert extra[2] <= 8 + 2 + 16


def test_phop_pencil_context_is_the_prompt_plus_a_constant():
    rows = list(generate(Spec("phop", {"length": 256, "hops": 32}), 200))
    assert max(r["stats"]["pencil_max_context"] for r in rows) <= 256 + 16
    assert all(r["stats"]["cot_tokens"] > 32 * 3 for r in rows)


def test_phop_instances_are_well_posed():
    for record in generate(Spec("phop", {"alphabet": 3, "length": 50, "hops": 20}), 500):
        x = record["problem"]["sequence"]
        assert x[-2] != x[-1]  # the first hop moves
        here = len(x)
        for _ in range(20):
            j = max(j for j in range(2, here + 1) if x[j - 2] == x[here - 1])
            assert j < here and x[j - 1] != x[here - 1]
            here = j
        assert x[here - 1] == record["answer"] == hop_target(x, 20)


def test_phop_oracle_rejects_ill_posed_sequences():
    assert hop_target(list("abb"), 1) is None  # the hop stays in place
    assert hop_target(list("abc"), 1) is None  # no match


def test_addition_partial_credit_aligns_from_the_least_significant_digit():
    problem = {"operands": ["999", "001"]}  # 1000
    assert check_answer("addition", problem, list("1000")).correct
    score = check_answer("addition", problem, list("2000"))
    assert not score.correct and score.partial == pytest.approx(0.75)
    # Leading zeros do not count as digits: "000" is the number 0, one digit.
    assert check_answer("addition", problem, list("000")).partial == pytest.approx(0.25)
    assert check_answer("addition", problem, ["x"]).partial == 0.0
    assert check_answer("addition", problem, []).partial == 0.0


@pytest.mark.parametrize(
    ("task", "values", "message"),
    [
        ("addition", {"operands": 1}, "operands must be in [2, 128]"),
        ("addition", {"digits": 0}, "digits must be in [1, 256]"),
        ("addition", {"digits": "ten"}, "digits must be a int"),
        ("addition", {"width": 3}, "unknown parameter 'width'"),
        ("phop", {"alphabet": 27}, "alphabet must be in [2, 26]"),
        ("phop", {"length": 10, "hops": 9}, "hops must be in [1, length - 2] = [1, 8]"),
    ],
)
def test_bad_parameters_name_the_allowed_range(task, values, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        get_task(task).params(values)


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="known tasks: addition"):
        get_task("chess")


MESSY = [
    ("The total is large.\nAnswer: 1,234", ("1", "2", "3", "4")),
    ("<think>Answer: 7</think>So the **Answer: 42**.", ("4", "2")),
    ("answer is: 0042", ("4", "2")),
    ("We get \\boxed{99}", ("9", "9")),
    ("I do not know", None),
    ("Answer:", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), MESSY)
def test_addition_parses_answers_out_of_prose(text, expected):
    task = get_task("addition")
    assert task.parse_answer(task.params(), {"operands": ["1", "2"]}, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Answer: c", ("c",)), ("so the answer is: `B`.", ("b",)), ("Answer: cat", None), ("nothing", None)],
)
def test_phop_parses_answers_out_of_prose(text, expected):
    task = get_task("phop")
    assert task.parse_answer(task.params(), {"sequence": [], "hops": 1}, text) == expected


def test_every_task_declares_its_sizes_and_questions_state_the_answer_format():
    for task in TASKS.values():
        for size in (*task.quickstart_sizes, *task.benchmark_sizes):
            task.params(size)
        params = task.params(task.quickstart_sizes[0])
        problem = task.sample(params, np.random.default_rng(0), 0.5)
        assert "Answer" in task.question(params, problem)
