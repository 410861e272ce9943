"""SAT's compiled kernels against independent references: the DPLL against python-sat (the
oracle), the enumeration against numpy brute force and a bit-set reference, the samplers'
twins and label checks against the oracle, and the random draws for uniformity."""

from collections import Counter

import numpy as np
import pytest
from pencilbench.generators import sat
from pencilbench.generators.pencil import ANSWER, replay
from pencilbench.generators.seeding import SPLITS, SplitTest, home_split
from pencilbench.solvers import sat as oracle


def random_clauses(rng, num_vars, count, widths=(1, 5)):
    """Clauses of random widths over 1..num_vars, literals drawn independently: repeats,
    tautologies (v and -v) and empty clauses all occur."""
    return [[int(rng.integers(1, num_vars + 1)) * int(rng.choice((-1, 1)))
             for _ in range(int(rng.integers(*widths)))] for _ in range(count)]


def brute_force_models(num_vars, clauses):
    """Bit a of the result is set when assignment a satisfies every clause (numpy)."""
    assignments = (np.arange(1 << num_vars)[:, None] >> np.arange(num_vars)) & 1 == 1
    satisfied = np.ones(len(assignments), dtype=bool)
    for clause in clauses:
        held = np.zeros(len(assignments), dtype=bool)
        for literal in clause:
            held |= assignments[:, abs(literal) - 1] == (literal > 0)
        satisfied &= held
    return sum(1 << int(a) for a in np.flatnonzero(satisfied))


def formulas(seed, count):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.integers(1, 21))
        widths = (0, 5) if rng.random() < 0.2 else (1, 4)
        yield n, random_clauses(rng, n, int(rng.integers(0, 5 * n + 2)), widths)


def test_dpll_agrees_with_python_sat_and_its_trace_reduces_to_the_answer():
    verdicts = []
    for n, clauses in formulas(1, 1500):
        problem = {"num_vars": n, "clauses": clauses}
        trace = sat.dpll_trace(n, *sat.clause_arrays(clauses))
        satisfiable = trace.answer[0] == sat.SAT
        verdicts.append(satisfiable)
        assert satisfiable == (oracle.solve(problem) is not None), problem
        if satisfiable:
            chosen = set(map(int, trace.answer[1:]))
            assert all(chosen & set(clause) for clause in clauses), problem
            assert sorted(map(abs, chosen)) == sorted({abs(lit) for clause in clauses for lit in clause})
        else:
            assert trace.answer == (sat.UNSAT,)
        run = replay(sat.clause_tokens(clauses), trace.pencil)
        assert run.fault is None and run.final == (ANSWER, *trace.answer)
        assert trace.stats["conflicts"] == trace.pencil.count(sat.CONFLICT)
    assert 0.2 < sum(verdicts) / len(verdicts) < 0.8


def test_dpll_is_deterministic_and_its_tokens_are_in_the_vocabulary():
    for n, clauses in formulas(2, 200):
        arrays = sat.clause_arrays(clauses)
        first = sat.dpll_trace(n, *arrays)
        assert first == sat.dpll_trace(n, *arrays)
        assert set(first.pencil) <= set(sat._vocabulary(n, len(clauses)))


@pytest.mark.parametrize("clauses", [[[1, 0]], [[1, 4]], [[-4, 2]]])
def test_kernels_refuse_literals_outside_the_variables(clauses):
    with pytest.raises(ValueError, match="0 or names a variable above"):
        sat.dpll_trace(3, *sat.clause_arrays(clauses))
    with pytest.raises(ValueError, match="0 or names a variable above"):
        sat.satisfying_words(3, clauses)


def false_masks(variables: int) -> tuple[int, dict[int, int]]:
    """All assignments as one Python-int bit set (bit a = assignment a, variable v true iff
    bit v-1 of a), and for each literal the set of assignments where it is false."""
    size = 1 << variables
    full = (1 << size) - 1
    masks: dict[int, int] = {}
    for var in range(1, variables + 1):
        half = 1 << (var - 1)
        true = ((1 << half) - 1) << half  # one period: half zeros, then half ones
        span = 2 * half
        while span < size:
            true |= true << span
            span *= 2
        masks[var], masks[-var] = full ^ true, true
    return full, masks


def test_enumeration_agrees_with_brute_force_and_the_bit_set_layout():
    rng = np.random.default_rng(3)
    for _ in range(400):
        n = int(rng.integers(1, 12))
        clauses = random_clauses(rng, n, int(rng.integers(0, 4 * n + 2)), widths=(0, 5))
        expected = brute_force_models(n, clauses)
        words = sat.satisfying_words(n, clauses)
        assert int.from_bytes(words.astype("<u8").tobytes(), "little") == expected, (n, clauses)
        assert sat.enumerated_verdict(n, clauses) == (expected != 0)
        full, masks = false_masks(n)
        falsified = 0
        for clause in clauses:
            cube = full
            for literal in clause:
                cube &= masks[literal]
            falsified |= cube
        assert full ^ falsified == expected


def test_satisfies_reads_the_claimed_literals():
    flat, offsets = sat.clause_arrays([[1, -2], [2, 3]])
    assert sat.satisfies(3, flat, offsets, ["1", "2"])
    assert not sat.satisfies(3, flat, offsets, ["1", "-2", "-3"])
    assert sat.satisfies(3, flat, offsets, ["-2", "2"])  # a contradiction satisfies both
    assert not sat.satisfies(3, flat, offsets, ["7", "-9"])  # no such variables


def test_clause_text_and_tokens():
    clauses = [[1, -2, 13], [], [-100]]
    assert sat.clause_lines(clauses) == "c1: 1 -2 13\nc2: \nc3: -100"
    assert sat.clause_lines([[-(2**63), 2**63 - 1, 10**18]]) == f"c1: {-(2**63)} {2**63 - 1} {10**18}"
    assert sat.clause_tokens(clauses) == ["c1", "1", "-2", "13", "c2", "c3", "-100"]
    with pytest.raises(ValueError, match="literal 0"):
        sat.clause_tokens([[1, 0]])


def test_clause_arrays_follow_changes_to_the_clauses():
    clauses = [[1, 2], [-3]]
    flat, offsets = sat.clause_arrays(clauses)
    assert flat.tolist() == [1, 2, -3] and offsets.tolist() == [0, 2, 3]
    clauses[1].append(4)
    flat, offsets = sat.clause_arrays(clauses)
    assert flat.tolist() == [1, 2, -3, 4] and offsets.tolist() == [0, 2, 4]


def test_below_is_uniform_and_says_when_the_words_run_out():
    words = np.random.default_rng(4).bit_generator.random_raw(30000)
    cursor, seen = 0, []
    while True:
        value, cursor = sat._below(words, cursor, 7)
        if value < 0:
            break
        seen.append(value)
    assert cursor == 2 * len(words) and len(seen) >= 59000
    counts = np.bincount(seen, minlength=7)
    assert len(counts) == 7 and chi_square(counts) < 30  # 6 degrees of freedom


def chi_square(counts):
    expected = counts.sum() / len(counts)
    return float(((counts - expected) ** 2 / expected).sum())


def test_clauses_are_uniform_over_variable_sets_and_signs():
    words = np.random.default_rng(5).bit_generator.random_raw(200000)
    formula, cursor = sat._draw_formula(words, 0, 6, 3, 20000)
    assert cursor > 0
    assert (np.diff(np.abs(formula), axis=1) > 0).all()  # distinct, sorted variables
    variables = np.abs(formula) - 1
    subsets = np.bincount((1 << variables).sum(axis=1), minlength=64)[[s for s in range(64) if bin(s).count("1") == 3]]
    assert chi_square(subsets) < 60  # 19 degrees of freedom
    signs = np.bincount(((formula < 0) * [1, 2, 4]).sum(axis=1), minlength=8)
    assert chi_square(signs) < 30  # 7 degrees of freedom
    _, short = sat._draw_formula(words[:10], 0, 6, 3, 20)
    assert short == -1


@pytest.mark.parametrize("n", [3, 5, 8, 12])
def test_paired_candidates_are_twins_that_differ_in_one_sign(n):
    count = round(4.3 * n)
    words = np.random.default_rng(n).bit_generator.random_raw(400000)
    cursor, pairs = 0, 0
    while pairs < 40:
        unsat, after, tried = sat._small_candidate(words, cursor, n, 3, count, False, 5000, True)
        twin, _, tried_twin = sat._small_candidate(words, cursor, n, 3, count, True, 5000, True)
        assert after > 0 and tried == tried_twin and unsat.shape == twin.shape == (count, 3)
        assert oracle.solve({"num_vars": n, "clauses": unsat.tolist()}) is None
        assert oracle.solve({"num_vars": n, "clauses": twin.tolist()}) is not None
        # The same clauses up to one sign (the twins are shuffled apart).
        one, other = Counter(map(tuple, unsat.tolist())), Counter(map(tuple, twin.tolist()))
        (deciding, times), = (one - other).items()
        (flipped, _), = (other - one).items()
        assert times == 1 and sum(x != y for x, y in zip(deciding, flipped, strict=True)) == 1
        assert [abs(x) for x in deciding] == [abs(x) for x in flipped]
        # Without the deciding clause the UNSAT twin is satisfiable.
        rest = list((one - Counter([deciding])).elements())
        assert oracle.solve({"num_vars": n, "clauses": [list(c) for c in rest]}) is not None
        cursor, pairs = after, pairs + 1


def test_labelled_candidates_have_the_label():
    words = np.random.default_rng(6).bit_generator.random_raw(100000)
    cursor = 0
    for want in [True, False] * 30:
        formula, cursor, _ = sat._small_candidate(words, cursor, 9, 3, 39, want, 5000, False)
        assert cursor > 0 and (oracle.solve({"num_vars": 9, "clauses": formula.tolist()}) is not None) == want


@pytest.mark.parametrize("sampling", ["paired", "independent"])
@pytest.mark.parametrize("n", [7, 16])
def test_samplers_survive_small_blocks_of_random_words(monkeypatch, sampling, n):
    """Blocks too small for one formula are followed by larger ones; the formulas keep their
    label, candidates the split test rejects are passed over, and the stream decides all."""
    monkeypatch.setattr(sat, "BLOCK_FORMULAS", 0)
    params = sat.TASK.params({"variables": n, "sampling": sampling})

    for seed in range(4):
        want = seed % 2 == 0
        stratum = 0.25 if want else 0.75
        problems = {split: sat.TASK.sample(params, np.random.default_rng(seed), stratum, SplitTest(split))
                    for split in SPLITS}
        # Each split takes the first candidate at home in it: the others are passed over.
        assert len({repr(problem) for problem in problems.values()}) == len(SPLITS)
        for split, problem in problems.items():
            assert home_split(problem) == split
            assert sat.TASK.sample(params, np.random.default_rng(seed), stratum, SplitTest(split)) == problem
            assert (oracle.solve(problem) is not None) == want
            assert len(problem["clauses"]) == params.clauses() and problem["num_vars"] == n


@pytest.mark.parametrize("n", [3, 10, 20])
def test_the_compiled_split_test_hashes_what_home_split_hashes(n):
    rng = np.random.default_rng(n)
    seen = set()
    for _ in range(200):
        formula = rng.integers(1, n + 1, size=(int(rng.integers(1, 50)), 3)) * rng.choice([-1, 1], size=(1, 3))
        problem = {"num_vars": n, "clauses": formula.tolist()}
        seen.add(home_split(problem))
        assert SPLITS[sat.home_index(formula, n)] == home_split(problem)
    assert seen == set(SPLITS)
