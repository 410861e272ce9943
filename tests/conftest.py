"""Fixtures shared by the test folders."""

from collections.abc import Callable
from pathlib import Path

import pytest
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import write_records
from pencilbench.generators.registry import TASKS


@pytest.fixture(scope="session")
def every_task_dataset(tmp_path_factory) -> Callable[[int, int], tuple[Path, list[dict]]]:
    """Writes ``count`` test-split instances (``seed``) of every task at its smallest
    quickstart size as a dataset file; returns its path and records."""

    def write(seed: int, count: int) -> tuple[Path, list[dict]]:
        records = [record for task in TASKS.values()
                   for record in generate(Spec(task.name, task.quickstart_sizes[0], "test", seed), count)]
        path = tmp_path_factory.mktemp("data") / "suite.jsonl"
        write_records(path, records)
        return path, records

    return write
