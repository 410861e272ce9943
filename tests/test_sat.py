"""SAT task: gold answers against python-sat and brute force, balance, compact traces, and a
policy that rebuilds every trace token from the live context alone."""

import json

import numpy as np
import pytest
from live_policy import assert_policy_reproduces
from pencilbench.generators.dataset import Spec, generate, trace_problems
from pencilbench.generators.pencil import ANSWER, CALL, RETURN, SEP
from pencilbench.generators.registry import get_task
from pencilbench.solvers import sat as oracle
from pencilbench.solvers.registry import check_answer

COUNT = 2000
TASK = get_task("sat")


@pytest.fixture(scope="module")
def records():
    """2,000 instances at each of n = 3, 5, 8 and 10 (ratio 4.3, k = 3)."""
    return {n: list(generate(Spec("sat", {"variables": n}, "test", 11), COUNT)) for n in (3, 5, 8, 10)}


def random_formula(rng, num_vars, width, count):
    """``count`` clauses of ``width`` distinct variables with random signs (numpy only)."""
    return [[int(var) * int(rng.choice((-1, 1))) for var in sorted(rng.choice(num_vars, width, replace=False) + 1)]
            for _ in range(count)]


def brute_force(num_vars, clauses):
    """Satisfiability by evaluating every assignment at once (numpy)."""
    assignments = (np.arange(1 << num_vars)[:, None] >> np.arange(num_vars)) & 1 == 1
    satisfied = np.ones(len(assignments), dtype=bool)
    for clause in clauses:
        literals = np.array(clause)
        values = assignments[:, np.abs(literals) - 1] == (literals > 0)
        satisfied &= values.any(axis=1)
    return bool(satisfied.any())


def test_gold_answers_agree_with_python_sat_and_brute_force(records):
    for n, batch in records.items():
        for record in batch:
            answer = record["answer"].split()
            score = check_answer("sat", record["problem"], answer)
            assert score.correct and score.partial == 1.0, record["id"]
            satisfiable = answer[0] == "SAT"
            assert satisfiable == (oracle.solve(record["problem"]) is not None)
            if n <= 8:
                assert satisfiable == brute_force(n, record["problem"]["clauses"]), record["id"]
            if satisfiable:  # every variable that occurs gets a value, and every clause holds
                chosen = set(map(int, answer[1:]))
                occurring = {abs(lit) for clause in record["problem"]["clauses"] for lit in clause}
                assert sorted(map(abs, chosen)) == sorted(occurring)
                assert all(chosen & set(clause) for clause in record["problem"]["clauses"])


def test_labels_are_balanced_per_size(records):
    """Labels follow each item's stratum, so every size is balanced to within a few items."""
    shares = {n: sum(record["answer"] != "UNSAT" for record in batch) / len(batch) for n, batch in records.items()}
    assert all(abs(share - 0.5) <= 0.02 for share in shares.values()), shares


def test_target_knob_moves_the_share():
    batch = list(generate(Spec("sat", {"variables": 6, "target": 0.8}, "train", 3), 1000))
    share = sum(record["answer"] != "UNSAT" for record in batch) / len(batch)
    assert abs(share - 0.8) <= 0.02


def test_traces_are_sound_and_compact(records):
    for n, batch in records.items():
        for record in batch:
            assert trace_problems(record) == []
            # Live: the root [CALL], per variable at most "[CALL] cJ l" or "cJ l", and two
            # copies of "SAT" and n values with their [SEP] and [RETURN].
            stats = record["stats"]
            assert stats["pencil_max_context"] <= stats["prompt_tokens"] + 5 * n + 5, record["id"]
    peaks = [record["stats"]["pencil_max_context"] for record in records[10]]
    assert max(peaks) <= 1000


def test_problems_follow_the_schema(records):
    for record in records[5][:200]:
        problem = record["problem"]
        assert set(problem) == {"num_vars", "clauses"} and problem["num_vars"] == 5
        assert len(problem["clauses"]) == round(4.3 * 5)
        for clause in problem["clauses"]:
            assert len({abs(lit) for lit in clause}) == 3 and all(1 <= abs(lit) <= 5 for lit in clause)


def test_vocabulary_covers_prompt_and_trace(records):
    params = TASK.params({"variables": 8})
    vocabulary = set(TASK.vocabulary(params))
    for record in records[8][:300]:
        assert set(record["prompt"].split()) <= vocabulary
        assert set(record["pencil"].split()) <= vocabulary


def test_same_seed_same_bytes():
    spec = Spec("sat", {"variables": 12, "ratio": 4.0}, "validation", 5)
    first = [json.dumps(record, sort_keys=True) for record in generate(spec, 30)]
    assert first == [json.dumps(record, sort_keys=True) for record in generate(spec, 30, workers=2, chunk=7)]


def test_larger_sizes_and_other_widths():
    for params in ({"variables": 40}, {"variables": 60}, {"variables": 9, "width": 4, "ratio": 9.0},
                   {"variables": 7, "width": 2, "ratio": 1.0}):
        for record in generate(Spec("sat", params, "train", 2), 6):
            assert check_answer("sat", record["problem"], record["answer"].split()).correct
            assert trace_problems(record) == []


@pytest.mark.parametrize(("values", "fragment"), [
    ({"variables": 2}, "variables must be in [3, 100]"),
    ({"variables": 5, "width": 6}, "width must be in [2, variables] = [2, 5]"),
    ({"ratio": 0.0}, "ratio must be in [0.2, 20.0]"),
    ({"target": 1.5}, "target must be in [0.0, 1.0]"),
])
def test_bad_parameters_name_the_range(values, fragment):
    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        TASK.params(values)


def test_impossible_label_is_a_clear_error():
    params = TASK.params({"variables": 3, "ratio": 0.2, "target": 0.0})  # one clause: never UNSAT
    with pytest.raises(ValueError, match="no unsatisfiable formula"):
        TASK.sample(params, np.random.default_rng(0), 0.5)


PROBLEM = {"num_vars": 3, "clauses": [[1, 2, -3], [-1, 2, 3], [-2, -3, 1], [1, 3, 2]]}


@pytest.mark.parametrize(("answer", "correct", "partial"), [
    ("SAT 1 2 -3", True, 1.0),
    ("SAT 1 2", True, 1.0),  # variables left out satisfy nothing, but none is needed here
    ("SAT -1 -2 -3", False, 0.75),
    ("SAT -1 -2", False, 0.5),
    ("SAT 1 -1 2", False, 0.0),
    ("SAT 1 4", False, 0.0),
    ("SAT x", False, 0.0),
    ("UNSAT", False, 0.0),
    ("maybe", False, 0.0),
])
def test_oracle_scores_claims(answer, correct, partial):
    score = oracle.check(PROBLEM, answer.split())
    assert (score.correct, score.partial) == (correct, partial)


def test_oracle_confirms_unsat_claims():
    unsat = {"num_vars": 3, "clauses": [[a * 1, b * 2, c * 3] for a in (1, -1) for b in (1, -1) for c in (1, -1)]}
    assert oracle.check(unsat, ["UNSAT"]).correct
    assert oracle.check({"num_vars": 3, "clauses": [[1], []]}, ["UNSAT"]).correct
    assert oracle.check(unsat, ["SAT", "1", "2", "3"]).partial == 7 / 8


@pytest.mark.parametrize(("text", "tokens"), [
    ("so the formula is unsatisfiable.\nAnswer: UNSAT", ("UNSAT",)),
    ("Answer: SAT 1 -2 3", ("SAT", "1", "-2", "3")),
    ("Answer: **SAT** 1, -2, 3 0", ("SAT", "1", "-2", "3")),
    ("Answer: satisfiable with x1 = true", ("SAT",)),
    ("Answer: not satisfiable", ("UNSAT",)),
    ("I think it is SAT", None),
    ("Answer: 1 2 3", None),
])
def test_parse_answer(text, tokens):
    assert TASK.parse_answer(TASK.params(), PROBLEM, text) == tokens


def sat_next(prompt, live):
    """The next trace token, from the prompt and the live context only (see the module
    notes of ``generators.sat`` for the format; this reads tokens, not solver state)."""
    clauses = []
    for token in prompt[:-1]:
        if token.startswith("c"):
            clauses.append([])
        else:
            clauses[-1].append(int(token))
    occurring = sorted({abs(lit) for clause in clauses for lit in clause})
    if not live:
        return CALL

    def model(values):
        return [str(v) if values.get(v, True) else str(-v) for v in occurring]

    if SEP in live:
        sep = len(live) - 1 - live[::-1].index(SEP)
        call = max(i for i, token in enumerate(live[:sep]) if token == CALL)
        frame, written = live[call:sep], live[sep + 1 :]
        if frame[-1] == "conflict":
            answer = ["UNSAT"] if call == 0 else [str(-int(frame[2]))]
        elif "SAT" in frame:
            answer = frame[frame.index("SAT") :]
        else:
            answer = ["SAT", *model(_values(live[:sep]))]
        if call == 0:  # the root frame states the final answer
            answer = [ANSWER, *answer]
        return answer[len(written)] if len(written) < len(answer) else RETURN
    if live[-1] == "conflict" or "SAT" in live:
        return SEP
    values = _values(live)

    def state(clause):
        if any(values.get(abs(lit)) == (lit > 0) for lit in clause):
            return "satisfied", []
        return "open", [lit for lit in clause if abs(lit) not in values]

    if live[-1].startswith("c"):
        kind, free = state(clauses[int(live[-1][1:]) - 1])
        if live[-2] == CALL:  # a branch: the first open literal
            return str(free[0])
        return "conflict" if not free else str(free[0])
    if live[-1] == CALL and len(live) > 1:  # a branch opens: the open clause with the fewest open literals
        best = min((len(state(clause)[1]), j) for j, clause in enumerate(clauses) if state(clause)[0] == "open")
        return f"c{best[1] + 1}"
    for j, clause in enumerate(clauses):
        kind, free = state(clause)
        if kind == "open" and len(free) <= 1:
            return f"c{j + 1}"
    if all(state(clause)[0] == "satisfied" for clause in clauses):
        return SEP
    return CALL


def _values(tokens):
    return {abs(int(token)): token[0] != "-" for token in tokens if token.lstrip("-").isdigit()}


@pytest.mark.parametrize("params", [{"variables": 5}, {"variables": 10}, {"variables": 20, "ratio": 4.0},
                                    {"variables": 8, "width": 4, "ratio": 9.0}])
def test_every_token_follows_from_the_live_context(params):
    assert_policy_reproduces(sat_next, generate(Spec("sat", params, "test", 4), 60))


def test_the_warm_solver_and_the_enumeration_agree_with_a_fresh_solver():
    from pencilbench.generators import sat as generator

    rng = np.random.default_rng(5)
    warm = generator._WarmSolver()
    warm.RENEW, warm.FIRST = 7, 100  # cross several rebuilds; a formula above FIRST gets its own solver
    formulas = [random_formula(rng, 6, 3, int(rng.integers(10, 40))) for _ in range(40)]
    formulas += [[[1], [-1]], [[1, 2], []], [[103, 1], [-1]]]
    verdicts = [warm.satisfiable(clauses) for clauses in formulas]
    assert verdicts == [oracle.solve({"num_vars": 6, "clauses": clauses}) is not None
                        for clauses in formulas]
    assert True in verdicts and False in verdicts
    assert [generator.enumerated_verdict(6, clauses) for clauses in formulas[:-1]] == verdicts[:-1]


@pytest.mark.parametrize(("answer", "why"), [(("SAT", "1", "-2", "3"), "falsifies a clause"),
                                             (("UNSAT",), "the formula is satisfiable")])
def test_a_wrong_dpll_answer_is_never_written(monkeypatch, answer, why):
    from pencilbench.generators import sat as generator
    from pencilbench.generators.task import Trace

    wrong = Trace(("[CALL]", "[SEP]", *answer, "[RETURN]"), answer)
    monkeypatch.setattr(generator, "dpll_trace", lambda n, flat, offsets: wrong)
    problem = {"num_vars": 3, "clauses": [[-1, 2], [1, 2], [-3, 2]]}
    with pytest.raises(RuntimeError, match=why):
        TASK.trace(TASK.params({"variables": 3}), problem)
