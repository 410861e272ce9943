"""Frozen reference samples: the generators still produce the same bytes."""

from pathlib import Path

import pytest
from pencilbench.generators.dataset import Spec, generate
from pencilbench.generators.export import read_records, write_records
from pencilbench.generators.registry import TASKS

REFERENCE = Path(__file__).resolve().parent.parent / "data" / "reference"


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generation_reproduces_the_frozen_samples(name, tmp_path):
    frozen = REFERENCE / f"{name}.jsonl"
    records = read_records(frozen)
    first = records[0]
    assert first["generator_version"] == f"{name}-v{TASKS[name].version}", (
        "the generator's version changed: regenerate data/reference"
    )
    spec = Spec(name, first["params"], first["split"], first["seed"])
    write_records(tmp_path / "again.jsonl", generate(spec, len(records)))
    assert (tmp_path / "again.jsonl").read_bytes() == frozen.read_bytes()
