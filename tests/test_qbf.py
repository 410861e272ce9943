"""QBF task: gold answers against the expansion oracle and brute force, balance, no trivial
instances, compact traces, and a policy that rebuilds every trace token from the live
context alone."""

import itertools
import json

import numpy as np
import pytest
from live_policy import assert_policy_reproduces
from pencilbench.generators.dataset import Spec, generate, record_from_problem, trace_problems
from pencilbench.generators.pencil import ANSWER, CALL, RETURN, SEP
from pencilbench.generators.qbf import (
    decided_by_propagation,
    draw_formulas,
    formula_arrays,
    traced_evaluation,
    truth_by_elimination,
)
from pencilbench.generators.registry import get_task
from pencilbench.solvers import qbf as oracle
from pencilbench.solvers.registry import check_answer

COUNT = 2000
TASK = get_task("qbf")
SIZES = {
    "random n=4": {"variables": 4},
    "random n=6": {"variables": 6},
    "random n=8": {"variables": 8},
    "blocks n=8": {"variables": 8, "prefix": "blocks", "blocks": 3},
    "random n=10": {"variables": 10},
}


@pytest.fixture(scope="module")
def records():
    return {name: list(generate(Spec("qbf", params, "test", 11), COUNT)) for name, params in SIZES.items()}


def brute_force(problem):
    """Truth by the full game tree over a numpy truth table of the matrix."""
    n = problem["num_vars"]
    assignments = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1 == 1
    table = np.ones(1 << n, dtype=bool)
    for clause in problem["clauses"]:
        literals = np.array(clause)
        table &= (assignments[:, np.abs(literals) - 1] == (literals > 0)).any(axis=1)
    # Axis v-1 of the reshaped table (C order, reversed) is variable v.
    cube = table.reshape((2,) * n).transpose(tuple(range(n - 1, -1, -1))) if n > 1 else table
    position = {var: var - 1 for _, var in problem["prefix"]}
    for kind, var in reversed(problem["prefix"]):
        axis = position.pop(var)
        cube = cube.any(axis=axis) if kind == "e" else cube.all(axis=axis)
        position = {v: p - (p > axis) for v, p in position.items()}
    return bool(cube)


def test_gold_answers_agree_with_the_oracle_and_brute_force(records):
    for batch in records.values():
        for record in batch:
            answer = record["answer"].split()
            assert check_answer("qbf", record["problem"], answer).correct, record["id"]
            if record["problem"]["num_vars"] <= 8:
                assert (answer == ["True"]) == brute_force(record["problem"]), record["id"]


def test_labels_are_balanced(records):
    """Labels follow each item's stratum, so every size is balanced to within a few items."""
    shares = {name: sum(record["answer"] == "True" for record in batch) / len(batch)
              for name, batch in records.items()}
    assert all(abs(share - 0.5) <= 0.02 for share in shares.values()), shares


def propagation_decides(problem):
    """Unit propagation with universal reduction, written independently of the generator:
    True when it alone settles the formula."""
    level = {var: i for i, (_, var) in enumerate(problem["prefix"])}
    universal = {var for kind, var in problem["prefix"] if kind == "a"}
    values = {}
    changed = True
    while changed:
        changed = False
        remaining = [c for c in problem["clauses"] if not any(values.get(abs(lit)) == (lit > 0) for lit in c)]
        if not remaining:
            return True
        for clause in remaining:
            free = [lit for lit in clause if abs(lit) not in values]
            inner = max((level[abs(lit)] for lit in free if abs(lit) not in universal), default=-1)
            reduced = [lit for lit in free if abs(lit) not in universal or level[abs(lit)] < inner]
            if not reduced:
                return True
            if len(reduced) == 1:
                values[abs(reduced[0])] = reduced[0] > 0
                changed = True
                break
    return False


def test_no_trivial_instances(records):
    for batch in records.values():
        for record in batch[:500]:
            problem = record["problem"]
            existential = {var for kind, var in problem["prefix"] if kind == "e"}
            assert all(existential & {abs(lit) for lit in clause} for clause in problem["clauses"])
            assert all(len({abs(lit) for lit in clause}) == 3 for clause in problem["clauses"])
            assert not propagation_decides(problem), record["id"]


def test_prefix_styles(records):
    for record in records["blocks n=8"][:200]:
        kinds = [kind for kind, _ in record["problem"]["prefix"]]
        assert kinds[:3] == [kinds[0]] * 3 and kinds[3:6] == [kinds[3]] * 3 and kinds[6:] == [kinds[6]] * 2
        assert kinds[0] != kinds[3] != kinds[6]
        assert [var for _, var in record["problem"]["prefix"]] == list(range(1, 9))
    kinds = [kind for record in records["random n=8"] for kind, _ in record["problem"]["prefix"]]
    assert 0.4 < kinds.count("a") / len(kinds) < 0.6


def test_traces_are_sound_and_compact(records):
    for batch in records.values():
        n = batch[0]["problem"]["num_vars"]
        for record in batch:
            assert trace_problems(record) == []
            # Live: the root [CALL], at most "-x r x [CALL]" per level, the leaf's "x cJ False".
            assert record["stats"]["pencil_max_context"] <= record["stats"]["prompt_tokens"] + 4 * n + 6
    assert max(record["stats"]["pencil_max_context"] for record in records["random n=10"]) <= 649


def test_vocabulary_covers_prompt_and_trace(records):
    vocabulary = set(TASK.vocabulary(TASK.params(SIZES["random n=8"])))
    for record in records["random n=8"][:300]:
        assert set(record["prompt"].split()) | set(record["pencil"].split()) <= vocabulary


def test_same_seed_same_bytes():
    spec = Spec("qbf", {"variables": 9, "prefix": "blocks", "blocks": 4}, "validation", 5)
    first = [json.dumps(record, sort_keys=True) for record in generate(spec, 30)]
    assert first == [json.dumps(record, sort_keys=True) for record in generate(spec, 30, workers=2, chunk=7)]


def test_larger_sizes():
    for params in ({"variables": 16}, {"variables": 14, "ratio": 1.5}, {"variables": 12, "prefix": "blocks"}):
        for record in generate(Spec("qbf", params, "train", 2), 5):
            assert check_answer("qbf", record["problem"], record["answer"].split()).correct


@pytest.mark.parametrize(("values", "fragment"), [
    ({"variables": 2}, r"variables must be in \[3, 20\]"),
    ({"variables": 21}, r"variables must be in \[3, 20\]"),
    ({"variables": 5, "blocks": 6}, r"blocks must be in \[1, variables\] = \[1, 5\]"),
    ({"prefix": "mixed"}, "prefix must be one of random, blocks"),
])
def test_bad_parameters_name_the_range(values, fragment):
    with pytest.raises(ValueError, match=fragment):
        TASK.params(values)


def test_oracle_on_known_formulas():
    # forall x exists y: (x or y) and (-x or -y) is true (y = not x); exists y forall x is false.
    clauses = [[1, 2], [-1, -2]]
    assert oracle.evaluate({"num_vars": 2, "prefix": [["a", 1], ["e", 2]], "clauses": clauses})
    assert not oracle.evaluate({"num_vars": 2, "prefix": [["e", 2], ["a", 1]], "clauses": clauses})
    assert not oracle.evaluate({"num_vars": 1, "prefix": [["a", 1]], "clauses": [[1]]})
    assert oracle.evaluate({"num_vars": 2, "prefix": [["a", 1]], "clauses": [[1, 2], [-1, 2]]})  # 2 is free
    problem = {"num_vars": 2, "prefix": [["a", 1], ["e", 2]], "clauses": clauses}
    assert oracle.check(problem, ["True"]).correct and not oracle.check(problem, ["False"]).correct
    assert oracle.check(problem, ["yes"]).partial == 0.0


@pytest.mark.parametrize(("text", "tokens"), [
    ("Answer: True", ("True",)),
    ("Answer: **false**", ("False",)),
    ("<think>True</think>\nAnswer: False", ("False",)),
    ("it is true", None),
    ("Answer: maybe", None),
])
def test_parse_answer(text, tokens):
    assert TASK.parse_answer(TASK.params(), {}, text) == tokens


def qbf_next(prompt, live):
    """The next trace token from the prompt and the live context only."""
    body = prompt[:-1]
    first = next(i for i, token in enumerate(body) if token.startswith("c"))
    prefix = [(body[i], int(body[i + 1])) for i in range(0, first, 2)]
    clauses = []
    for token in body[first:]:
        if token.startswith("c"):
            clauses.append([])
        else:
            clauses[-1].append(int(token))
    if not live:
        return CALL
    if SEP in live:
        sep = len(live) - 1 - live[::-1].index(SEP)
        result = [live[sep - 1]]  # the frame's last result, after [ANSWER] in the root frame
        if max(i for i, token in enumerate(live[:sep]) if token == CALL) == 0:
            result = [ANSWER, *result]
        written = live[sep + 1 :]
        return result[len(written)] if len(written) < len(result) else RETURN
    calls = [i for i, token in enumerate(live) if token == CALL]
    depth = len(calls) - 1
    values = {abs(int(live[i - 1])): live[i - 1][0] != "-" for i in calls[1:]}
    kind, var = prefix[depth]
    frame = live[calls[-1] + 1 :]
    if not frame:
        return str(-var)
    last = frame[-1]
    if last in ("True", "False"):
        decided = (last == "True") == (kind == "E")
        return SEP if decided or str(var) in frame else str(var)
    if last.startswith("c"):
        return "False"
    if depth < len(prefix) - 1:  # a literal was just written
        return CALL
    values[var] = last[0] != "-"
    for j, clause in enumerate(clauses, start=1):
        if all(values[abs(lit)] != (lit > 0) for lit in clause):
            return f"c{j}"
    return "True"


@pytest.mark.parametrize("params", [{"variables": 5}, {"variables": 9, "prefix": "blocks", "blocks": 3},
                                    {"variables": 10, "ratio": 1.5}])
def test_every_token_follows_from_the_live_context(params):
    assert_policy_reproduces(qbf_next, generate(Spec("qbf", params, "test", 4), 40))


def test_gold_answers_agree_with_pyqbf_when_installed():
    """A second, external QBF solver (an optional extra: its wheel is built from source)."""
    pytest.importorskip("pyqbf")
    from pyqbf.formula import PCNF
    from pyqbf.solvers import solve

    for params in ({"variables": 7}, {"variables": 12, "prefix": "blocks", "blocks": 4}):
        for record in generate(Spec("qbf", params, "train", 8), 200):
            formula = PCNF(from_clauses=record["problem"]["clauses"])
            for kind, var in record["problem"]["prefix"]:
                (formula.exists if kind == "e" else formula.forall)(var)
            assert solve(formula) == (record["answer"] == "True"), record["id"]


@pytest.mark.parametrize("params", [{"variables": 5}, {"variables": 10, "ratio": 2.0},
                                    {"variables": 6, "prefix": "blocks", "blocks": 1},
                                    {"variables": 7, "prefix": "blocks", "blocks": 3}])
def test_drawn_formulas_keep_the_clause_rules_before_any_filter(params):
    size = TASK.params(params)
    drawn = draw_formulas(size, np.random.default_rng(5), 400)
    assert drawn == draw_formulas(size, np.random.default_rng(5), 400)
    literals = []
    for prefix, clauses in drawn:
        assert [var for _, var in prefix] == list(range(1, size.variables + 1))
        existential = {var for kind, var in prefix if kind == "e"}
        assert existential, prefix
        assert len(clauses) == size.clauses()
        for clause in clauses:
            variables = [abs(lit) for lit in clause]
            assert variables == sorted(set(variables)) and len(variables) == 3
            assert existential & set(variables), (prefix, clause)
            assert all(1 <= var <= size.variables for var in variables)
        literals += [lit for clause in clauses for lit in clause]
    assert 0.45 < sum(lit > 0 for lit in literals) / len(literals) < 0.55


def test_an_item_takes_the_first_checked_formula_at_home_in_its_split():
    # The compiled loop tests the label and propagation first and the split (a hash of the
    # whole problem) last, on the same stream of formulas.
    from pencilbench.generators.qbf import _candidates, _prefix_of
    from pencilbench.generators.seeding import SPLITS, SplitTest

    params = TASK.params({"variables": 7})
    passed_over = 0
    for seed, stratum in ((1, 0.2), (2, 0.7), (3, 0.4)):
        want = stratum < params.target
        checked = [{"num_vars": 7, "prefix": _prefix_of(universal.tolist()), "clauses": clauses.tolist()}
                   for universal, clauses in itertools.islice(
                       _candidates(params, np.random.default_rng(seed), want), 40)]
        for candidate in checked:
            assert brute_force(candidate) == want, candidate
            assert not propagation_decides(candidate), candidate
        for split in SPLITS:
            problem = TASK.sample(params, np.random.default_rng(seed), stratum, SplitTest(split))
            first = next(i for i, candidate in enumerate(checked) if SplitTest(split)(candidate))
            assert problem == checked[first]
            passed_over += first
    assert passed_over > 3  # the split turned some checked formulas down


def random_formula(rng, n, widths=(1, 2, 3, 4), ratio=4.0):
    """A formula with clauses of mixed widths, repeated literals and tautologies, up to
    ``ratio * n`` clauses, and every variable quantified in a shuffled order."""
    clauses = []
    for _ in range(int(rng.integers(n // 5 + 1, ratio * n + 1))):
        width = int(rng.choice(widths))
        clauses.append([int(v) * int(rng.choice((-1, 1))) for v in rng.integers(1, n + 1, size=width)])
    prefix = [["a" if rng.random() < 0.5 else "e", int(v)] for v in rng.permutation(np.arange(1, n + 1))]
    return {"num_vars": n, "prefix": prefix, "clauses": clauses}


def test_compiled_evaluation_and_elimination_agree_with_the_oracle_on_random_formulas():
    rng = np.random.default_rng(17)
    truths = 0
    for _ in range(600):
        problem = random_formula(rng, int(rng.integers(3, 13)), ratio=1.5)
        n, arrays = problem["num_vars"], formula_arrays(problem)
        truth = oracle.evaluate(problem)
        assert truth_by_elimination(n, *arrays) == truth, problem
        _, traced, _ = traced_evaluation(n, *arrays)
        assert traced == truth, problem
        if n <= 8:
            assert brute_force(problem) == truth, problem
        truths += truth
    assert 100 < truths < 500  # both verdicts are exercised


def test_elimination_agrees_with_the_oracle_up_to_twenty_variables():
    # Truth tables of up to 2^20 assignments: most variables vary from word to word.
    rng = np.random.default_rng(19)
    truths = []
    for _ in range(24):
        problem = random_formula(rng, int(rng.integers(14, 21)), widths=(3,), ratio=0.6)
        truths.append(oracle.evaluate(problem))
        assert truth_by_elimination(problem["num_vars"], *formula_arrays(problem)) == truths[-1], problem
    assert 4 <= sum(truths) <= 20


def test_traces_of_random_formulas_follow_from_the_live_context():
    rng = np.random.default_rng(23)
    records = []
    for index in range(80):
        problem = random_formula(rng, int(rng.integers(3, 9)), widths=(2, 3, 4))
        params = TASK.Params.of(problem)
        records.append(record_from_problem(TASK, params, problem, split="test", seed=0, index=index))
        assert records[-1]["answer"] == ("True" if oracle.evaluate(problem) else "False")
    assert_policy_reproduces(qbf_next, records)


def test_a_full_search_tree_outgrows_the_first_trace_buffer():
    # Every variable universal and clauses that never fail: all 2^12 leaves are checked,
    # each answering True (the trace is far longer than the kernel's first buffer).
    n = 12
    problem = {"num_vars": n, "prefix": [["a", v] for v in range(1, n + 1)],
               "clauses": [[1, -1, 2], [2, -2, 3], [3, 4, -3]]}
    record = record_from_problem(TASK, TASK.Params.of(problem), problem, split="test", seed=0, index=0)
    assert record["answer"] == "True" and record["stats"]["leaves"] == 2**n
    assert record["stats"]["pencil_tokens"] > 4 * 4096 and trace_problems(record) == []


def test_propagation_kernel_agrees_with_an_independent_propagation():
    rng = np.random.default_rng(29)
    decided = 0
    for _ in range(1500):
        problem = random_formula(rng, int(rng.integers(3, 11)), widths=(2, 3))
        verdict = decided_by_propagation(problem["num_vars"], *formula_arrays(problem))
        assert verdict == propagation_decides(problem), problem
        decided += verdict
    assert 100 < decided < 1400  # both outcomes are exercised


def test_candidates_are_one_stream_whatever_the_block_of_numbers(monkeypatch):
    # A formula the block of uniform numbers cannot finish is drawn again from its first
    # number once the block is extended: tiny blocks give the same formulas as one block.
    import pencilbench.generators.qbf as qbf_module

    for values in ({"variables": 8}, {"variables": 9, "prefix": "blocks", "blocks": 3}):
        params = TASK.params(values)
        whole = draw_formulas(params, np.random.default_rng(3), 60)
        monkeypatch.setattr(qbf_module, "NUMBERS_PER_BLOCK", 7)
        assert draw_formulas(params, np.random.default_rng(3), 60) == whole
        monkeypatch.undo()


@pytest.mark.parametrize(("problem", "fragment"), [
    ({"num_vars": 3, "prefix": [["e", 1], ["a", 2], ["e", 3]], "clauses": [[1, -4, 2]]}, r"\[1, num_vars\] = \[1, 3\]"),
    ({"num_vars": 3, "prefix": [["e", 1], ["a", 5]], "clauses": [[1, 2]]}, r"\[1, num_vars\] = \[1, 3\]"),
    ({"num_vars": 3, "prefix": [["e", 1], ["a", 2], ["a", 1]], "clauses": [[1, 2]]}, "distinct variables"),
    ({"num_vars": 3, "prefix": [], "clauses": [[1, 2]]}, "at least one quantified variable"),
    ({"num_vars": 21, "prefix": [["e", 1]], "clauses": [[1]]}, r"num_vars must be in \[1, 20\]"),
])
def test_formulas_naming_variables_out_of_range_or_twice_are_refused(problem, fragment):
    with pytest.raises(ValueError, match=fragment):
        formula_arrays(problem)


def test_a_size_without_formulas_of_the_label_is_refused():
    # One clause with an existential variable is always true: the draws run out and say so.
    params = TASK.params({"variables": 3, "ratio": 0.2, "target": 0.0})
    with pytest.raises(ValueError, match="no false formula that needs search in 5000 draws"):
        TASK.sample(params, np.random.default_rng(0), 0.5)


@pytest.mark.parametrize("size", [{"variables": 10, "ratio": 2.0}, {"variables": 3},
                                  {"variables": 20, "ratio": 0.5},
                                  {"variables": 12, "prefix": "blocks", "blocks": 3}])
def test_the_compiled_split_test_hashes_what_home_split_hashes(size):
    from pencilbench.generators.qbf import _candidates, _prefix_of, home_index
    from pencilbench.generators.seeding import SPLITS, home_split

    params = TASK.params(size)
    drawn = itertools.islice(_candidates(params, np.random.default_rng(1), True, checked=False), 300)
    seen = set()
    for universal, clauses in drawn:
        problem = {"num_vars": params.variables, "prefix": _prefix_of(universal.tolist()),
                   "clauses": clauses.tolist()}
        seen.add(home_split(problem))
        assert SPLITS[home_index(universal, clauses)] == home_split(problem)
    assert seen == set(SPLITS)
