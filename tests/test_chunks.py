"""Chunk solvers: the compiled PCG64 streams, and items solved a chunk at a time equal to
the same items drawn and solved one at a time."""

import numpy as np
import pyarrow as pa
import pytest
from chunk_checks import assert_same_solved, one_at_a_time
from pencilbench.generators import addition, dataset, phop
from pencilbench.generators.registry import TASKS, get_task
from pencilbench.generators.seeding import (
    SPLITS,
    Stream,
    Template,
    item_rng,
    next_double,
    next_word,
    rng_state,
    set_rng_state,
    stratum,
)


@pytest.mark.parametrize("index", [0, 1, 17, 2**40])
def test_compiled_streams_draw_what_numpy_draws(index):
    stream = Stream("sat", '{"variables":10}', "validation", 5)
    state = stream.states(index, index + 1)[0]
    rng = item_rng("sat", '{"variables":10}', "validation", 5, index)
    assert np.array_equal(rng_state(rng), state)
    assert [next_word(state) for _ in range(40)] == rng.bit_generator.random_raw(40).tolist()
    assert [next_double(state) for _ in range(40)] == rng.random(40).tolist()
    assert np.array_equal(rng_state(rng), state)
    assert stream.strata(index, index + 2).tolist() == [
        stratum("sat", '{"variables":10}', "validation", 5, i) for i in (index, index + 1)]


def test_a_generator_moves_to_a_compiled_state_and_back():
    rng = np.random.default_rng(3)
    state = rng_state(rng)
    for _ in range(7):
        next_word(state)
    set_rng_state(rng, state)
    again = np.random.default_rng(3)
    again.bit_generator.random_raw(7)
    assert rng.random(5).tolist() == again.random(5).tolist()


def test_compiled_draws_refuse_a_generator_with_a_buffered_half():
    rng = np.random.default_rng(3)
    rng.integers(0, 2**32, dtype=np.uint32)  # leaves half a word buffered
    with pytest.raises(ValueError, match="no buffered 32-bit half"):
        rng_state(rng)


def test_templates_fill_their_slots_in_order():
    template = Template.of('{"digits": "??"} and ?', "?")
    fills = np.frombuffer(b"123456", np.uint8).reshape(2, 3)
    assert template.texts(fills) == ['{"digits": "12"} and 3', '{"digits": "45"} and 6']


SIZES = [
    ("addition", {"operands": 2, "digits": 4}),
    ("addition", {"operands": 12, "digits": 1}),
    ("addition", {"operands": 32, "digits": 3}),
    ("addition", {"operands": 2, "digits": 200}),
    ("phop", {"length": 32, "hops": 4}),
    ("phop", {"alphabet": 3, "length": 6, "hops": 2}),
    ("phop", {"alphabet": 26, "length": 64, "hops": 8}),
    ("phop", {"length": 1024, "hops": 64}),
]


@pytest.mark.parametrize(("name", "values"), SIZES)
@pytest.mark.parametrize("split", SPLITS)
def test_a_chunk_solves_the_items_one_at_a_time_would(name, values, split):
    task = get_task(name)
    params = task.params(values)
    for seed, lo, hi in ((3, 0, 120), (7, 10**12, 10**12 + 30)):
        assert_same_solved(task.solve_chunk(params, Stream(name, params.key(), split, seed), lo, hi),
                           one_at_a_time(task, params, split, seed, lo, hi))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_chunking_does_not_change_the_records(name):
    task = get_task(name)
    params = task.params(task.quickstart_sizes[0])
    whole = dataset.chunk_table(task, params, "test", 4, 5, 17)
    pieces = pa.concat_tables([dataset.chunk_table(task, params, "test", 4, i, i + 1) for i in range(5, 17)])
    assert whole.equals(pieces)


@pytest.mark.parametrize("name", ["addition", "phop"])
def test_sample_leaves_the_generator_where_its_draw_ended(name):
    task = get_task(name)
    params = task.params(task.quickstart_sizes[0])
    rng, fresh = np.random.default_rng(8), np.random.default_rng(8)
    task.sample(params, rng, 0.0)
    if name == "addition":  # one draw: every candidate's numbers
        fresh.random(addition.CANDIDATES * params.operands * params.digits)
    else:
        fresh.random(phop.CANDIDATES * params.uniforms())
    assert rng.random(3).tolist() == fresh.random(3).tolist()
