"""SAT's chunk solver against the one-at-a-time path: the same problems, questions, ids and
statistics, the same table bytes, and ``sample`` leaving the generator where the compiled
draw left its stream."""

import numpy as np
import pyarrow as pa
import pytest
from chunk_checks import assert_same_solved, one_at_a_time
from pencilbench.generators import dataset, sat
from pencilbench.generators.seeding import SPLITS, SplitTest, Stream, next_double, rng_state

TASK = sat.TASK
CHUNKED_SIZES = [
    {"variables": 5},
    {"variables": 10},  # the goal size, paired
    {"variables": 10, "sampling": "independent"},
    {"variables": 8, "width": 4, "ratio": 9.0},
    {"variables": 12, "ratio": 3.5, "target": 0.3, "sampling": "independent"},
]
RANGES = [(0, 300), (987_654_321, 987_654_361)]


@pytest.mark.parametrize("values", CHUNKED_SIZES, ids=lambda values: "-".join(map(str, values.values())))
@pytest.mark.parametrize("seed", [0, 7])
def test_chunks_equal_items_solved_one_at_a_time(values, seed):
    params = TASK.params(values)
    for split in SPLITS:
        for lo, hi in RANGES:
            chunk = TASK.solve_chunk(params, Stream(TASK.name, params.key(), split, seed), lo, hi)
            assert chunk is not None and len(chunk) == hi - lo
            assert_same_solved(chunk, one_at_a_time(TASK, params, split, seed, lo, hi))


@pytest.mark.parametrize("values", [{"variables": 5}, {"variables": 10, "sampling": "independent"}])
def test_chunking_does_not_change_the_table(monkeypatch, values):
    params = TASK.params(values)
    whole = dataset.chunk_table(TASK, params, "validation", 3, 40, 90)
    items = pa.concat_tables([dataset.chunk_table(TASK, params, "validation", 3, i, i + 1) for i in range(40, 90)])
    assert whole.equals(items)
    monkeypatch.setattr(type(TASK), "solve_chunk", lambda self, params, stream, lo, hi: None)
    assert dataset.chunk_table(TASK, params, "validation", 3, 40, 90).equals(whole)


@pytest.mark.parametrize("values", [{"variables": 20}, {"variables": 40}, {"variables": 16, "sampling": "independent"}])
def test_sizes_that_need_python_sat_are_solved_one_at_a_time(values):
    params = TASK.params(values)
    assert TASK.solve_chunk(params, Stream(TASK.name, params.key(), "train", 0), 0, 4) is None
    assert dataset.chunk_table(TASK, params, "train", 0, 0, 4).num_rows == 4


def test_an_item_that_cannot_be_drawn_raises_as_it_does_one_at_a_time():
    # One clause over five variables: no formula has a last clause that decides it.
    params = TASK.params({"variables": 5, "ratio": 0.2})
    assert TASK.solve_chunk(params, Stream(TASK.name, params.key(), "train", 0), 0, 3) is None
    with pytest.raises(ValueError, match="no unsatisfiable formula whose last clause decides it"):
        dataset.chunk_table(TASK, params, "train", 0, 0, 3)


@pytest.mark.parametrize("values", [{"variables": 10}, {"variables": 7, "sampling": "independent"}])
@pytest.mark.parametrize("block_formulas", [0, sat.BLOCK_FORMULAS])
def test_sample_leaves_the_generator_where_the_draw_left_the_stream(monkeypatch, values, block_formulas):
    monkeypatch.setattr(sat, "BLOCK_FORMULAS", block_formulas)
    params = TASK.params(values)
    block = sat._block_size(params.width, params.clauses())
    for seed in range(6):
        for split in SPLITS:
            rng = np.random.default_rng(seed)
            start = rng_state(rng)
            satisfiable = seed % 2 == 0
            problem = TASK.sample(params, rng, 0.25 if satisfiable else 0.75, SplitTest(split))
            state = start.copy()
            formula = sat._enumerated_formula(state, params.variables, params.width, params.clauses(), satisfiable,
                                              params.sampling == "paired", SPLITS.index(split), block)
            assert problem["clauses"] == formula.tolist()
            assert np.array_equal(rng_state(rng), state)
            # The draw took whole blocks of words from the stream, and the generator goes on from there.
            replay = np.random.default_rng(seed)
            taken = 0
            while not np.array_equal(rng_state(replay), state):
                replay.bit_generator.random_raw(1)
                taken += 1
            assert taken >= block
            assert rng.random() == next_double(state)
