"""Addition and p-hop's compiled sampling and solving: checked against the independent
oracles on many random problems, against the distributions the module notes describe, and
for determinism."""

from collections import Counter

import numpy as np
import pytest
from pencilbench.generators import addition, phop
from pencilbench.generators.addition import TASK as ADDITION
from pencilbench.generators.dataset import record_from_problem
from pencilbench.generators.phop import SYMBOLS, build_sequences
from pencilbench.generators.phop import TASK as PHOP
from pencilbench.generators.seeding import SPLITS, SplitTest, home_split
from pencilbench.solvers.phop import hop_target
from pencilbench.solvers.registry import check_answer


def hop_positions(sequence: list[str], hops: int) -> list[int]:
    """Positions visited from the last one, by the definition (largest j <= i whose
    predecessor holds the symbol at i), asserting that every hop is well posed."""
    here, visited = len(sequence), [len(sequence)]
    for _ in range(hops):
        matches = [j for j in range(2, here + 1) if sequence[j - 2] == sequence[here - 1]]
        assert matches, "a hop finds no match"
        j = max(matches)
        assert j < here, "a hop stays in place"
        assert sequence[j - 1] != sequence[here - 1], "a hop lands on the symbol it started from"
        here = j
        visited.append(here)
    return visited


def phop_sizes(count: int) -> list[dict[str, int]]:
    """The corner sizes and random ones: two symbols, all 26, hops = length - 2, length 3."""
    sizes = [
        {"alphabet": 2, "length": 3, "hops": 1},
        {"alphabet": 26, "length": 3, "hops": 1},
        {"alphabet": 2, "length": 12, "hops": 10},
        {"alphabet": 3, "length": 40, "hops": 38},
        {"alphabet": 26, "length": 100, "hops": 60},
        {"alphabet": 4, "length": 32, "hops": 4},
        {"alphabet": 2, "length": 300, "hops": 1},
    ]
    rng = np.random.default_rng(2024)
    while len(sizes) < count:
        length = int(rng.integers(3, 400))
        sizes.append({"alphabet": int(rng.integers(2, 27)), "length": length,
                      "hops": int(rng.integers(1, min(256, length - 2) + 1))})
    return sizes


@pytest.mark.parametrize("size", phop_sizes(40), ids=lambda size: "-".join(map(str, size.values())))
def test_phop_sequences_are_well_posed_and_the_trace_agrees_with_the_oracle(size):
    params = PHOP.params(size)
    rng = np.random.default_rng(size["length"])
    for _ in range(60):
        problem = PHOP.sample(params, rng, 0.0)
        sequence = problem["sequence"]
        assert len(sequence) == params.length and set(sequence) <= set(SYMBOLS[: params.alphabet])
        target = hop_positions(sequence, params.hops)[-1]
        trace = PHOP.trace(params, problem)
        assert trace.answer == (sequence[target - 1],) == (hop_target(sequence, params.hops),)


def test_phop_hop_lengths_are_geometric_with_mean_the_alphabet_size():
    params = PHOP.params({"alphabet": 4, "length": 400, "hops": 1})  # the gap always fits
    rng = np.random.default_rng(5)
    gaps = [params.length - hop_positions(PHOP.sample(params, rng, 0.0)["sequence"], 1)[1] for _ in range(4000)]
    assert np.mean(gaps) == pytest.approx(4.0, abs=0.25)  # standard error about 0.055
    shares = np.bincount(gaps, minlength=5)[1:5] / len(gaps)
    assert shares == pytest.approx([1 / 4, 3 / 16, 9 / 64, 27 / 256], abs=0.03)


def test_phop_gaps_that_do_not_fit_are_a_uniform_composition_of_a_uniform_total():
    # Geometric gaps of mean 26 almost never fit in 8 positions: the total of the three
    # gaps is uniform in [3, 8], so the last landing is uniform in [2, 7].
    params = PHOP.params({"alphabet": 26, "length": 10, "hops": 3})
    rng = np.random.default_rng(6)
    landings, first_gaps = Counter(), Counter()
    for _ in range(6000):
        visited = hop_positions(PHOP.sample(params, rng, 0.0)["sequence"], 3)
        landings[visited[-1]] += 1
        if visited[-1] == 2:  # total 8: (g1, g2, g3) uniform over the 21 compositions
            first_gaps[visited[0] - visited[1]] += 1
    assert sorted(landings) == [2, 3, 4, 5, 6, 7]
    assert all(count == pytest.approx(1000, rel=0.15) for count in landings.values())
    # Compositions of 8 into 3 parts with first part g: 7 - g of the 21.
    total = sum(first_gaps.values())
    assert {g: first_gaps[g] / total for g in range(1, 7)} == pytest.approx(
        {g: (7 - g) / 21 for g in range(1, 7)}, abs=0.06)


def test_phop_symbols_are_uniform_at_every_kind_of_position():
    params = PHOP.params({"alphabet": 5, "length": 40, "hops": 8})
    rng = np.random.default_rng(8)
    problems = [PHOP.sample(params, rng, 0.0) for _ in range(5000)]
    for position in (0, 20, 38, 39):  # before the chain, inside it, the last two
        counts = Counter(problem["sequence"][position] for problem in problems)
        assert all(counts[symbol] / 5000 == pytest.approx(0.2, abs=0.025) for symbol in "abcde")
    answers = Counter(PHOP.trace(params, problem).answer[0] for problem in problems)
    assert all(answers[symbol] / 5000 == pytest.approx(0.2, abs=0.025) for symbol in "abcde")


def test_phop_construction_is_a_pure_function_of_its_numbers():
    params = PHOP.params({"alphabet": 7, "length": 90, "hops": 20})
    numbers = np.random.default_rng(9).random((5, params.uniforms()))
    first = build_sequences(numbers, params.length, params.hops, params.alphabet)
    assert first.shape == (5, 90) and np.array_equal(first, build_sequences(numbers.copy(), 90, 20, 7))
    assert PHOP.sample(params, np.random.default_rng(10), 0.0) == PHOP.sample(params, np.random.default_rng(10), 0.0)


def candidates(task, params, seed: int) -> list[dict]:
    """Every candidate one call of ``sample`` draws from ``default_rng(seed)``, in order."""
    rng = np.random.default_rng(seed)
    if task is PHOP:
        rows = build_sequences(rng.random((phop.CANDIDATES, params.uniforms())), params.length, params.hops,
                               params.alphabet)
        return [{"sequence": list(row.tobytes().decode()), "hops": params.hops} for row in rows]
    d = params.digits
    rows = (ord("0") + rng.random(addition.CANDIDATES * params.operands * d) * 10).astype(np.uint8)
    text = rows.tobytes().decode()
    size = params.operands * d
    return [{"operands": [text[i : i + d] for i in range(start, start + size, d)]}
            for start in range(0, len(text), size)]


@pytest.mark.parametrize("task", [PHOP, ADDITION])
@pytest.mark.parametrize("split", SPLITS)
def test_sample_keeps_the_first_candidate_at_home_in_the_split_else_its_last(task, split):
    params = task.params(task.quickstart_sizes[0])
    fallbacks = 0
    for seed in range(60):
        drawn = candidates(task, params, seed)
        at_home = [c for c in drawn if home_split(task.split_part(c)) == split]
        fallbacks += not at_home
        expected = at_home[0] if at_home else drawn[-1]
        assert task.sample(params, np.random.default_rng(seed), 0.0, SplitTest(split)) == expected
    assert 0 < fallbacks < 30  # both ways out are taken (for p-hop's 3 candidates, 30% of draws)
    assert task.sample(params, np.random.default_rng(5), 0.0) == candidates(task, params, 5)[0]


def test_phop_split_part_names_the_whole_problem():
    params = PHOP.params({"length": 32, "hops": 4})
    problem = PHOP.sample(params, np.random.default_rng(12), 0.0)
    assert PHOP.split_part(problem) == {"sequence": "".join(problem["sequence"]), "hops": 4}


def test_phop_trace_refuses_a_hop_without_a_match():
    params = PHOP.params({"alphabet": 3, "length": 3, "hops": 1})
    with pytest.raises(ValueError, match="hop 1 from position 3 finds no match"):
        PHOP.trace(params, {"sequence": list("abc"), "hops": 1})


def addition_problems(operands: int, digits: int, rng: np.random.Generator, count: int) -> list[dict]:
    """Random problems and the ones with the longest carries (all nines) and none (zeros)."""
    params = ADDITION.params({"operands": operands, "digits": digits})
    problems = [ADDITION.sample(params, rng, 0.0) for _ in range(count)]
    return [*problems, {"operands": ["9" * digits] * operands}, {"operands": ["0" * digits] * operands}]


@pytest.mark.parametrize(("operands", "digits"), [(2, 1), (2, 4), (3, 17), (10, 2), (99, 3), (128, 6), (2, 256)])
def test_addition_compiled_solver_agrees_with_the_oracle(operands, digits):
    params = ADDITION.params({"operands": operands, "digits": digits})
    for index, problem in enumerate(addition_problems(operands, digits, np.random.default_rng(digits), 150)):
        record = record_from_problem(ADDITION, params, problem, split="train", seed=0, index=index)
        assert check_answer("addition", problem, record["answer"].split()).correct
        assert record["answer"].replace(" ", "") == str(sum(int(operand) for operand in problem["operands"]))
        assert set(record["pencil"].split()) <= set(ADDITION.vocabulary(params))


def test_addition_digits_are_uniform_at_every_place():
    params = ADDITION.params({"operands": 3, "digits": 4})
    rng = np.random.default_rng(13)
    rows = np.array([[int(c) for c in "".join(ADDITION.sample(params, rng, 0.0)["operands"])] for _ in range(4000)])
    for place in range(rows.shape[1]):
        assert np.bincount(rows[:, place], minlength=10) / len(rows) == pytest.approx([0.1] * 10, abs=0.02)


@pytest.mark.parametrize(
    ("operands", "message"),
    [
        (["12", "34"], "2 operands of 3 digits"),
        (["123", "45", "678"], "2 operands of 3 digits"),
        (["1234", "56"], "2 operands of 3 digits"),
        (["12a", "456"], "decimal digits"),
        (["12\u0663", "456"], "decimal digits"),  # ARABIC-INDIC DIGIT THREE
    ],
)
def test_addition_trace_refuses_operands_that_do_not_fit_the_size(operands, message):
    with pytest.raises(ValueError, match=message):
        ADDITION.trace(ADDITION.params({"operands": 2, "digits": 3}), {"operands": operands})
