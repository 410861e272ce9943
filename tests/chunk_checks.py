"""What the chunk tests share: a chunk solved one item at a time, and field-by-field equality."""

import numpy as np
from pencilbench.generators import dataset


def one_at_a_time(task, params, split, seed, lo, hi):
    """Items ``lo .. hi - 1`` drawn through ``sample`` and solved by the task's own methods."""
    problems = [dataset.draw_problem(task, params, split, seed, i) for i in range(lo, hi)]
    return dataset.solve_problems(task, params, problems, dataset.record_ids(task, params, split, seed, lo, hi))


def assert_same_solved(chunk, expected):
    assert chunk.problems == expected.problems
    assert chunk.questions == expected.questions
    for field in ("prompts", "pencils", "answers"):
        got, want = getattr(chunk, field), getattr(expected, field)
        assert got.values.dtype == want.values.dtype and np.array_equal(got.values, want.values), field
        assert got.offsets.dtype == want.offsets.dtype and np.array_equal(got.offsets, want.offsets), field
    assert list(chunk.stats) == list(expected.stats)
    for name, column in expected.stats.items():
        assert chunk.stats[name].dtype == column.dtype and np.array_equal(chunk.stats[name], column), name
