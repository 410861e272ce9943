"""Einstein puzzles: uniqueness and answers checked by the CNF oracle, minimality, trace
invariants (including that every looked-up candidate set is the latest one in the live
context), the clue language, and robust answer parsing."""

from __future__ import annotations

import json
import math
import re
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generators.dataset import Spec, generate, trace_problems
from generators.einstein import KINDS, TASK, set_token
from generators.pencil import CALL, MARKERS, SEP, Reducer
from solvers.einstein import gold_answer, grade, solutions
from solvers.registry import check_answer

# (houses, attributes) -> instances checked against the oracle; fewer at 6x6 for time.
COUNTS = {(2, 2): 300, (3, 3): 300, (4, 4): 300, (5, 5): 200, (6, 6): 100, (2, 6): 100, (6, 3): 100,
          (8, 2): 50}


@cache
def records(houses: int, attributes: int, count: int, **extra: object) -> tuple[dict, ...]:
    spec = Spec("einstein", {"houses": houses, "attributes": attributes, **extra}, split="test", seed=3)
    return tuple(generate(spec, count))


@pytest.mark.parametrize("size", list(COUNTS))
def test_unique_solution_and_gold_answer_agree_with_the_oracle(size: tuple[int, int]) -> None:
    for record in records(*size, COUNTS[size]):
        problem = record["problem"]
        found = solutions(problem, limit=2)
        assert found == [problem["solution"]], record["id"]
        assert tuple(record["answer"].split()) == gold_answer(problem)
        assert check_answer("einstein", problem, record["answer"].split()).correct
        assert trace_problems(record) == []


def test_grid_question_answers_agree_with_the_oracle() -> None:
    for record in records(4, 5, 100, question="grid"):
        assert record["prompt"].endswith("? grid")
        assert tuple(record["answer"].split()) == gold_answer(record["problem"])


@pytest.mark.parametrize("size", [(3, 3), (4, 4), (5, 5), (4, 6)])
def test_minimised_puzzles_lose_uniqueness_without_any_clue(size: tuple[int, int]) -> None:
    for record in records(*size, 40):
        problem = record["problem"]
        for i in range(len(problem["clues"])):
            fewer = {**problem, "clues": problem["clues"][:i] + problem["clues"][i + 1 :]}
            assert len(solutions(fewer, limit=2)) == 2, (record["id"], i)


def test_unminimised_puzzles_are_unique_and_longer() -> None:
    plain = records(5, 5, 60, minimise=False)
    for record in plain:
        assert solutions(record["problem"], limit=2) == [record["problem"]["solution"]]
    mean = sum(len(r["problem"]["clues"]) for r in plain) / len(plain)
    assert mean > sum(len(r["problem"]["clues"]) for r in records(5, 5, 60)) / 60


def test_every_clue_kind_appears_at_default_settings() -> None:
    seen = {clue["kind"] for record in records(5, 5, 200) for clue in record["problem"]["clues"]}
    assert seen == set(KINDS)


def test_restricted_clue_kinds_are_respected() -> None:
    for record in records(4, 4, 30, kinds="left,same"):
        assert {clue["kind"] for clue in record["problem"]["clues"]} <= {"left", "same"}
        assert solutions(record["problem"], limit=2) == [record["problem"]["solution"]]


@pytest.mark.parametrize("values", [
    {"houses": 1}, {"houses": 9}, {"attributes": 1}, {"attributes": 9},
    {"kinds": "left,above"}, {"kinds": ""}, {"kinds": "same,not_same,next_to"}, {"question": "why"},
])
def test_bad_parameters_name_the_allowed_range(values: dict) -> None:
    with pytest.raises(ValueError, match="must"):
        TASK.params(values)


def test_problem_schema_and_stats() -> None:
    for record in records(5, 5, 200):
        problem, stats = record["problem"], record["stats"]
        assert set(problem) == {"houses", "attributes", "clues", "question", "solution"}
        assert len(problem["attributes"]) == 5 and all(len(v) == 5 for v in problem["attributes"].values())
        for clue in problem["clues"]:
            assert set(clue) == {"kind", "a", "b", "house"}
            assert (clue["b"] is None) == (clue["kind"] in ("at", "not_at")) == (clue["house"] is not None)
        assert stats["clues"] == len(problem["clues"])
        assert stats["search_space_log10"] == round(5 * math.log10(math.factorial(5)), 4)
        assert 0 <= stats["backtracks"] <= stats["branches"]
        assert stats["pencil_max_context"] <= 2048


def test_same_seed_same_bytes() -> None:
    spec = Spec("einstein", {"houses": 4, "attributes": 3}, seed=11)
    first = [json.dumps(record, sort_keys=True) for record in generate(spec, 20)]
    again = [json.dumps(record, sort_keys=True) for record in generate(spec, 20, start=0, chunk=7)]
    assert first == again


@pytest.mark.parametrize("size", [(2, 2), (3, 5), (5, 5), (6, 6), (8, 2)])
def test_tokens_stay_in_the_declared_vocabulary(size: tuple[int, int]) -> None:
    params = TASK.params({"houses": size[0], "attributes": size[1]})
    vocabulary = set(TASK.vocabulary(params))
    for record in records(*size, 50 if size != (6, 6) else 20):
        assert set(record["prompt"].split()) <= vocabulary
        assert set(record["pencil"].split()) <= vocabulary


def _latest_set(live: list[str], start: int, end: int, value: str, houses: int) -> str:
    """The candidate set of ``value`` as the live context shows it: its latest mention."""
    for j in range(end - 2, start - 1, -1):
        if live[j] == value and re.fullmatch(r"h\d+", live[j + 1]):
            return live[j + 1]
    return set_token((1 << houses) - 1)


@pytest.mark.parametrize("size", [(3, 3), (5, 5), (6, 4)])
def test_frames_read_candidate_sets_from_the_live_context(size: tuple[int, int]) -> None:
    houses = size[0]
    kinds = set(KINDS)
    for record in records(*size, 40):
        prompt = record["prompt"].split()
        attributes = set(record["problem"]["attributes"])
        reducer = Reducer(prompt)
        for token in record["pencil"].split():
            reducer.push(token)
            if token != SEP:
                continue
            live = reducer.context
            call = len(live) - 1 - live[::-1].index(CALL)
            frame = live[call + 1 : -1]
            if frame and frame[0] in attributes:  # the distinct-houses rule reads every value
                pairs = list(zip(frame[1::2], frame[2::2], strict=True))
            elif len(frame) > 1 and frame[1] in kinds:  # a clue reads its one or two values
                pairs = [(frame[2], frame[3])] + ([(frame[4], frame[5])] if len(frame) == 6 else [])
            else:
                continue
            for value, shown in pairs:
                assert shown == _latest_set(live, len(prompt), call, value, houses), (record["id"], frame)
        assert not any(token in MARKERS for token in reducer.context[len(prompt):])


def test_parse_answer_reads_the_requested_format() -> None:
    record = records(4, 4, 1)[0]
    problem, gold = record["problem"], record["answer"].split()
    params = TASK.params(record["params"])
    names = list(problem["attributes"])
    houses = "; ".join(
        f"house {h + 1}: " + " ".join(problem["solution"][name][h] for name in names) for h in range(4)
    )
    text = f"<think>Answer: nonsense</think>Working it out...\n**Answer:** {gold[0]}; {houses}"
    parsed = TASK.parse_answer(params, problem, text)
    assert parsed == tuple(gold)
    assert check_answer("einstein", problem, parsed).correct
    assert TASK.parse_answer(params, problem, "I do not know.") is None


def test_grading_gives_cell_credit_and_zero_for_an_unreadable_grid() -> None:
    record = records(4, 4, 1)[0]
    problem, gold = record["problem"], record["answer"].split()
    wrong_value = [v for v in problem["attributes"][problem["question"]["ask"]] if v != gold[0]][0]
    assert grade(problem, [wrong_value, *gold[1:]]).puzzle
    assert not check_answer("einstein", problem, [wrong_value, *gold[1:]]).correct
    # swap two houses' rows: the cells of those two houses are wrong
    second, third = gold.index("h2"), gold.index("h3")
    row2, row3 = gold[second + 1 : second + 5], gold[third + 1 : third + 5]
    swapped = gold[: second + 1] + row3 + ["h3"] + row2 + gold[third + 5 :]
    score = check_answer("einstein", problem, swapped)
    assert not score.correct and score.partial == pytest.approx(0.5)
    assert check_answer("einstein", problem, [gold[0], "no", "grid", "here"]).partial == 0.0
    assert check_answer("einstein", problem, []).partial == 0.0


def test_oracle_rejects_a_puzzle_that_is_not_unique() -> None:
    problem = dict(records(4, 4, 1)[0]["problem"])
    problem["clues"] = problem["clues"][1:]
    with pytest.raises(ValueError, match="more than one"):
        gold_answer(problem)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_parse_answer_never_raises(text: str) -> None:
    record = records(3, 3, 1)[0]
    params = TASK.params(record["params"])
    for candidate in (text, "Answer: " + text, "\\boxed{" + text + "}"):
        parsed = TASK.parse_answer(params, record["problem"], candidate)
        if parsed is not None:
            check_answer("einstein", record["problem"], parsed)


def test_question_words_every_clue() -> None:
    record = records(5, 5, 1)[0]
    text = record["question"]
    assert len(re.findall(r"^\d+\. ", text, re.MULTILINE)) == len(record["problem"]["clues"])
    assert text.rstrip().splitlines()[-1].startswith("giving the asked value first")
