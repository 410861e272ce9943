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
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.generators.einstein import KINDS, TASK, set_token
from pencilbench.generators.pencil import ANSWER, CALL, MARKERS, RETURN, SEP, Reducer
from pencilbench.solvers.einstein import gold_answer, grade, solutions
from pencilbench.solvers.registry import check_answer

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


# A next-token policy written from the token formats alone (it shares no code with the
# generator): it sees the prompt and the live, reduced context, and must predict every gold
# token. It catches any token that depends on erased work.

SET = re.compile(r"h\d+")
NEIGHBOURS = {
    "left": lambda h, k: k == h + 1, "right": lambda h, k: k == h - 1,
    "next_to": lambda h, k: abs(h - k) == 1,
}


class Policy:
    def __init__(self, prompt: list[str]) -> None:
        self.prompt = prompt
        q = prompt.index("?")
        self.question = prompt[q + 1 :]
        body = prompt[:q]
        first_clue = next((i for i, t in enumerate(body) if re.fullmatch(r"c\d+", t)), len(body))
        self.attributes: list[tuple[str, list[str]]] = []
        for token in body[:first_clue]:
            if token[0].isupper():
                self.attributes.append((token, []))
            else:
                self.attributes[-1][1].append(token)
        self.clues = [body[i : i + 4] for i in range(first_clue, len(body), 4)]
        self.n = len(self.attributes[0][1])
        self.values = [v for _, group in self.attributes for v in group]
        self.names = {name for name, _ in self.attributes}
        self.stops = self.names | {clue[0] for clue in self.clues}

    @staticmethod
    def token(houses: set[int]) -> str:
        return "h" + "".join(str(h) for h in sorted(houses))

    def sets(self, live: list[str], end: int) -> dict[str, set[int]]:
        """Latest mention of every value before ``end`` (a verdict ``v h x`` is no mention)."""
        known = {v: set(range(1, self.n + 1)) for v in self.values}
        for j in range(len(self.prompt), end - 1):
            if live[j] in known and SET.fullmatch(live[j + 1]) and (j + 2 >= end or live[j + 2] != "x"):
                known[live[j]] = {int(c) for c in live[j + 1][1:]}
        return known

    def summary(self, sets: dict[str, set[int]]) -> list[str]:
        out = ["state"]
        for name, group in self.attributes:
            out.append(name)
            for v in group:
                out += [v, self.token(sets[v])]
        return out

    def grid_answer(self, sets: dict[str, set[int]]) -> list[str]:
        house = {v: min(s) for v, s in sets.items()}
        out = []
        if self.question != ["grid"]:
            ask, given = self.question
            group = dict(self.attributes)[ask]
            out.append(next(v for v in group if house[v] == house[given]))
        for h in range(1, self.n + 1):
            out.append(f"h{h}")
            out += [v for _, group in self.attributes for v in group if house[v] == h]
        return out

    def parse_state(self, frame: list[str]) -> dict:
        """Header, finished items and child result of a state frame."""
        size = 1 + len(self.attributes) + 2 * len(self.values)  # "state" and the summary
        if frame[0] == "state":
            label, body = [], frame[size:]
        elif len(frame) > 2 and frame[2] == "state":
            label, body = frame[:2], frame[2 + size :]
        else:
            label, body = frame[:2], frame[2:]
        info = {"label": label, "clues": 0, "attrs": 0, "changed": False, "failed": False, "child": None}
        j = 0
        while j < len(body) and info["clues"] < len(self.clues):
            j += 1
            while j < len(body) and body[j] not in self.stops:
                info["failed"] |= body[j] == "x"
                info["changed"] |= body[j] != "x"
                j += 1
            info["clues"] += 1
        while j < len(body) and info["attrs"] < len(self.attributes):
            name, group = self.attributes[info["attrs"]]
            assert body[j] == name
            info["attrs"] += 1
            j += 1
            end = j
            while end < len(body) and body[end] not in self.stops:
                end += 1
            rest = body[j:end]
            if rest == ["x"]:
                info["failed"] = True
            elif len(rest) % 2 == 0 and all(v in group for v in rest[::2]) and all(map(SET.fullmatch, rest[1::2])):
                info["changed"] |= bool(rest)
            else:
                info["child"] = rest
            j = end
        return info

    def branch(self, sets: dict[str, set[int]]) -> list[str] | None:
        open_values = [v for v in self.values if len(sets[v]) > 1]
        if not open_values:
            return None
        best = min(open_values, key=lambda v: len(sets[v]))  # first of the fewest
        return [best, f"h{min(sets[best])}"]

    def entailed(self, clue: list[str], sets: dict[str, set[int]]) -> bool:
        """Every choice of houses satisfies the clue."""
        kind, a, b = clue[1:]
        if kind in ("at", "not_at"):
            return (sets[a] == {int(b[1:])}) if kind == "at" else int(b[1:]) not in sets[a]
        holds = {**NEIGHBOURS, "same": lambda h, k: h == k, "not_same": lambda h, k: h != k,
                 "left_of": lambda h, k: h < k, "right_of": lambda h, k: h > k}[kind]
        return all(holds(h, k) for h in sets[a] for k in sets[b])

    def next_in_state(self, live: list[str], start: int, frame: list[str]) -> list[str]:
        """What a state frame writes next: ``[CALL, header...]``, a bare item, or ``[SEP]``."""
        info = self.parse_state(frame)
        if info["failed"] or info["child"] is not None:
            return [SEP]
        sets = self.sets(live, len(live))
        if info["clues"] < len(self.clues):
            clue = self.clues[info["clues"]]
            return [clue[0]] if self.entailed(clue, sets) else [CALL, clue[0]]
        if info["attrs"] < len(self.attributes):
            name, group = self.attributes[info["attrs"]]
            placed = [sets[v] for v in group if len(sets[v]) == 1]
            return [name] if len(placed) == len(group) and len(set().union(*placed)) == len(group) else [CALL, name]
        if info["changed"]:
            return [SEP]
        guess = self.branch(sets)
        return [SEP] if guess is None else [CALL, *guess]

    def state_answer(self, live: list[str], sep: int, frame: list[str]) -> list[str]:
        info = self.parse_state(frame)
        label, sets = info["label"], self.sets(live, sep)
        if info["failed"]:
            return [*label, "x"]
        child = info["child"]
        if child is not None and child[-1] == "x":
            sets[child[0]] -= {int(child[1][1:])}
            return [CALL, *label, *self.summary(sets)]
        if child is not None:
            return child
        if info["changed"]:
            return [CALL, *label, *self.summary(sets)]
        return self.grid_answer(sets)

    def clue_answer(self, frame: list[str]) -> list[str]:
        cid, kind, a, shown = frame[:4]
        xs = {int(c) for c in shown[1:]}
        if kind in ("at", "not_at"):
            k = int(frame[4][1:])
            new = xs & {k} if kind == "at" else xs - {k}
            return [cid, "x"] if not new else [cid] + ([a, self.token(new)] if new != xs else [])
        b, ys = frame[4], {int(c) for c in frame[5][1:]}
        nx, ny = set(xs), set(ys)
        if kind == "same":
            nx = ny = xs & ys
        elif kind == "not_same":
            nx = xs - ys if len(ys) == 1 else xs
            ny = ys - nx if len(nx) == 1 else ys
        elif kind in NEIGHBOURS:
            near = NEIGHBOURS[kind]
            nx = {h for h in xs if any(near(h, k) for k in ys)}
            ny = {k for k in ys if any(near(h, k) for h in nx)}
        elif kind == "left_of":
            nx = {h for h in xs if h < max(ys)}
            ny = {k for k in ys if nx and k > min(nx)}
        elif kind == "right_of":
            nx = {h for h in xs if h > min(ys)}
            ny = {k for k in ys if nx and k < max(nx)}
        if not nx or not ny:
            return [cid, "x"]
        return ([cid] + ([a, self.token(nx)] if nx != xs else [])
                + ([b, self.token(ny)] if ny != ys else []))

    def attribute_answer(self, frame: list[str]) -> list[str]:
        name, values = frame[0], frame[1::2]
        sets = [{int(c) for c in t[1:]} for t in frame[2::2]]
        start = [set(s) for s in sets]
        everything = set(range(1, self.n + 1))
        while True:
            if any(not s for s in sets) or set().union(*sets) != everything:
                return [name, "x"]
            before = [set(s) for s in sets]
            sole: dict[int, set[int]] = {}  # value -> houses no other value can take
            for h in everything:
                holders = [i for i, s in enumerate(sets) if h in s]
                if len(holders) == 1:
                    sole.setdefault(holders[0], set()).add(h)
            if any(len(houses) > 1 for houses in sole.values()):
                return [name, "x"]
            for i, houses in sole.items():
                sets[i] = houses
            placed = [min(s) for s in sets if len(s) == 1]
            if len(placed) != len(set(placed)):
                return [name, "x"]
            sets = [s if len(s) == 1 else s - set(placed) for s in sets]
            if sets == before:
                break
        return [name] + [t for v, s, s0 in zip(values, sets, start, strict=True) if s != s0
                         for t in (v, self.token(s))]

    def next(self, live: list[str]) -> str:
        if len(live) == len(self.prompt):
            return CALL
        generated = live[len(self.prompt) :]
        calls = [len(self.prompt) + i for i, t in enumerate(generated) if t == CALL]
        if SEP in generated:
            sep = len(live) - 1 - live[::-1].index(SEP)
            call = max(c for c in calls if c < sep)
            frame, written = live[call + 1 : sep], live[sep + 1 :]
            if frame[0] in self.stops and frame[0] not in self.names:
                answer = self.clue_answer(frame)
            elif frame[0] in self.names:
                answer = self.attribute_answer(frame)
            else:
                answer = self.state_answer(live, sep, frame)
                if call == len(self.prompt) and answer[0] != CALL:  # the root frame's final answer
                    answer = [ANSWER, *answer]
            return answer[len(written)] if len(written) < len(answer) else RETURN
        call = calls[-1]
        frame = live[call + 1 :]
        sets = self.sets(live, call)
        if not frame or (frame[0] in self.values and len(frame) == 1):
            if len(calls) == 1:
                return "state"
            parent = live[calls[-2] + 1 : call]
            return self.next_in_state(live[:call], calls[-2], parent)[1 + len(frame)]
        if frame[0] == "state" and len(calls) == 1:
            header = self.summary(sets)
            if len(frame) < len(header):
                return header[len(frame)]
        if frame[0] in self.names:
            work = [frame[0]] + [t for v in dict(self.attributes)[frame[0]] for t in (v, self.token(sets[v]))]
        elif frame[0] in self.stops:
            clue = self.clues[int(frame[0][1:]) - 1]
            work = clue[:3] + [self.token(sets[clue[2]])]
            work += [clue[3]] if clue[1] in ("at", "not_at") else [clue[3], self.token(sets[clue[3]])]
        else:
            return self.next_in_state(live, call, frame)[0]
        return work[len(frame)] if len(frame) < len(work) else SEP


def test_every_trace_token_follows_from_the_live_context() -> None:
    chosen = [*records(3, 3, 300)[:40], *records(4, 5, 40)[:10], *records(4, 5, 100, question="grid")[:5]]
    chosen += [r for r in records(4, 4, 300) if r["stats"]["backtracks"] >= 2][:5]
    chosen += [r for r in records(5, 5, 200) if r["stats"]["backtracks"] >= 1][:3]
    assert sum(r["stats"]["backtracks"] for r in chosen) >= 10
    for record in chosen:
        prompt = record["prompt"].split()
        policy, reducer = Policy(prompt), Reducer(prompt)
        for step, token in enumerate(record["pencil"].split()):
            assert policy.next(reducer.context) == token, (record["id"], step)
            reducer.push(token)


@pytest.mark.parametrize("damage", [
    lambda p: p.pop("houses"),
    lambda p: p.update(clues=[{"kind": "above", "a": ["Pet", "dog"], "b": None, "house": None}]),
    lambda p: p.update(question={"ask": "Planet", "given": ["Pet", "yak"]}),
    lambda p: p.update(attributes=[]),
])
def test_oracle_reports_a_malformed_problem_as_value_error(damage) -> None:
    problem = json.loads(json.dumps(records(3, 3, 1)[0]["problem"]))
    damage(problem)
    with pytest.raises(ValueError):
        check_answer("einstein", problem, ["h1"])
