"""Named, versioned benchmark suites, shipped as JSON files in this package.

A suite file says what to generate: ``name``, ``version``, ``description``, ``split``,
``seed``, ``count`` (instances per size) and ``sizes`` (a list of ``{"task", "params"}``).
Its dataset is a pure function of the file, so one suite version gives the same records
everywhere. Any change to what a suite generates must come with a new ``version``, so that
results of different versions are never ranked as if they were comparable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from pencilbench.bench.errors import UserError
from pencilbench.bench.manifest import Piece
from pencilbench.generators.dataset import Spec


@dataclass(frozen=True)
class Suite:
    """One suite file, validated."""

    name: str
    version: int
    description: str
    split: str
    seed: int
    count: int
    sizes: tuple[tuple[str, Mapping[str, Any]], ...]

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"suite {self.name}: version must be an integer >= 1, got {self.version!r}")
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"suite {self.name}: count must be an integer >= 1, got {self.count!r}")
        if not self.sizes:
            raise ValueError(f"suite {self.name}: sizes must list at least one size")
        for spec in self.specs():
            spec.resolve()

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def records(self) -> int:
        return self.count * len(self.sizes)

    def specs(self) -> list[Spec]:
        return [Spec(task, params, self.split, self.seed) for task, params in self.sizes]

    def pieces(self) -> list[Piece]:
        """What the suite generates, as manifest pieces (each size's first ``count`` items)."""
        return [Piece.of(spec, 0, self.count) for spec in self.specs()]


def _files() -> dict[str, Any]:
    folder = resources.files(__name__)
    return {entry.name.removesuffix(".json"): entry for entry in folder.iterdir() if entry.name.endswith(".json")}


def suite_names() -> list[str]:
    return sorted(_files())


def parse_suite(text: str, origin: str) -> Suite:
    """A suite from the text of its file; ``ValueError`` names what is wrong."""
    try:
        body = json.loads(text)
        sizes = tuple((size["task"], dict(size["params"])) for size in body["sizes"])
        return Suite(body["name"], body["version"], body["description"], body["split"], body["seed"],
                     body["count"], sizes)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"{origin}: not a suite file ({type(error).__name__}: {error})") from None


def load_suite(name: str) -> Suite:
    """The shipped suite called ``name``; ``UserError`` lists the known ones."""
    files = _files()
    if name not in files:
        raise UserError(f"unknown suite {name!r}; known suites: {', '.join(sorted(files))}")
    suite = parse_suite(files[name].read_text(encoding="utf-8"), f"suite file {name}.json")
    if suite.name != name:
        raise ValueError(f"suite file {name}.json names itself {suite.name!r}")
    return suite
