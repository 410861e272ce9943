"""``datasets.load_dataset`` reads every config of a ``pencilbench export hf`` folder (tox env
``hf``; skipped without the ``datasets`` package)."""

from __future__ import annotations

import pytest
from pencilbench.bench.commands.export import export_hf, load_checked
from pencilbench.generators.export import record_row, write_records

import pencilbench

datasets = pytest.importorskip("datasets")


def test_load_dataset_reads_every_config(tmp_path):
    records = (pencilbench.generate("sat", 3, seed=4, split="test", variables=5)
               + pencilbench.generate("sat", 2, seed=4, split="validation", variables=5)
               + pencilbench.generate("addition", 3, seed=4, split="train", digits=2)
               + pencilbench.generate("phop", 2, seed=4, split="test", length=16, hops=2))
    write_records(tmp_path / "all.jsonl", records)
    checked, summaries = load_checked([str(tmp_path / "all.jsonl")])
    configs = export_hf(checked, summaries, tmp_path / "hf")
    assert datasets.get_dataset_config_names(str(tmp_path / "hf")) == configs
    loaded = 0
    for name in configs:
        data = datasets.load_dataset(str(tmp_path / "hf"), name, cache_dir=str(tmp_path / "cache"))
        for split, rows in data.items():
            expected = [record_row(r) for r in records if r["split"] == split
                        and name.startswith(r["task"] + "-")]
            assert rows.to_list() == expected, (name, split)
            assert rows.info.splits[split].num_examples == len(expected)
            loaded += len(rows)
    assert loaded == len(records)
