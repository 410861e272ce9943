"""QBF chunks: one compiled call per chunk gives what drawing and solving the items one at a
time gives, field for field, and ``sample`` leaves its generator where the draw left it."""

import json
import math

import numpy as np
import pyarrow as pa
import pytest
from chunk_checks import assert_same_solved, one_at_a_time
from pencilbench.generators import dataset
from pencilbench.generators.qbf import NUMBERS_PER_BLOCK, _draw_checked, _work_arrays
from pencilbench.generators.registry import get_task
from pencilbench.generators.seeding import SPLITS, SplitTest, Stream, rng_state

TASK = get_task("qbf")
PERF_GOAL = {"variables": 10, "ratio": 2.0}
SIZES = [*TASK.benchmark_sizes, PERF_GOAL, {"variables": 9, "prefix": "blocks", "blocks": 3},
         {"variables": 7, "prefix": "blocks", "blocks": 2, "target": 0.8}, {"variables": 12, "ratio": 1.5}]
FAR = 10**12  # a chunk far along the stream


@pytest.mark.parametrize("values", SIZES, ids=lambda values: " ".join(f"{k}={v}" for k, v in values.items()))
def test_a_chunk_is_the_items_drawn_and_solved_one_at_a_time(values):
    params = TASK.params(values)
    # The size the goals measure is checked on a few hundred items per stream, the others
    # on fewer; every one also far along its stream.
    count = 300 if values == PERF_GOAL else 100
    for split in SPLITS:
        for seed in (0, 7):
            for lo in (0, FAR):
                chunk = TASK.solve_chunk(params, Stream("qbf", params.key(), split, seed), lo, lo + count)
                assert_same_solved(chunk, one_at_a_time(TASK, params, split, seed, lo, lo + count))


def test_chunking_does_not_change_the_records():
    params = TASK.params({"variables": 8})
    for split, lo in (("train", 0), ("test", FAR)):
        whole = dataset.chunk_table(TASK, params, split, 3, lo, lo + 25)
        pieces = [dataset.chunk_table(TASK, params, split, 3, i, i + 1) for i in range(lo, lo + 25)]
        assert whole.equals(pa.concat_tables(pieces))
        assert whole.column("problem").to_pylist() == [
            json.dumps(dataset.draw_problem(TASK, params, split, 3, i)) for i in range(lo, lo + 25)]


@pytest.mark.parametrize("values", [PERF_GOAL, {"variables": 5}, {"variables": 9, "prefix": "blocks", "blocks": 3}])
def test_sample_leaves_the_generator_past_the_last_block_of_numbers_it_drew_from(values):
    params = TASK.params(values)
    for seed, stratum, keep in ((1, 0.2, None), (2, 0.7, SplitTest("test")), (3, 0.4, SplitTest("train"))):
        rng = np.random.default_rng(seed)
        # The numbers the draw reads, counted on a copy of the generator's state.
        universal, clauses, table = _work_arrays(params)
        want, split = stratum < params.target, -1 if keep is None else keep.index
        _, read, found = _draw_checked(rng_state(rng), params.prefix_blocks(), want, True, split, 5000,
                                       universal, clauses, table)
        assert found
        problem = TASK.sample(params, rng, stratum, keep)
        assert problem["clauses"] == clauses.tolist()
        # numpy's generator, asked for the same whole blocks of numbers, ends where sample left it.
        expected = np.random.default_rng(seed)
        expected.random(NUMBERS_PER_BLOCK * math.ceil(read / NUMBERS_PER_BLOCK))
        assert rng.bit_generator.state == expected.bit_generator.state
        # The next sample goes on from there.
        assert TASK.sample(params, rng, stratum, keep) == TASK.sample(params, expected, stratum, keep)


def test_a_chunk_refuses_a_size_without_formulas_of_the_label_as_sample_does():
    params = TASK.params({"variables": 3, "ratio": 0.2, "target": 0.0})
    with pytest.raises(ValueError, match="no false formula that needs search in 5000 draws"):
        TASK.solve_chunk(params, Stream("qbf", params.key(), "train", 0), 0, 4)
    with pytest.raises(ValueError, match="no false formula that needs search in 5000 draws"):
        dataset.draw_problem(TASK, params, "train", 0, 0)
