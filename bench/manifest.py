"""Dataset manifests: what a dataset is, so that two results are compared only when they should be.

Every dataset that ``generate`` or ``run`` writes gets ``NAME.manifest.json`` next to it
(``data.jsonl`` -> ``data.jsonl.manifest.json``, a folder of parts ``data`` ->
``data.manifest.json``). It records the suite and its version (``null`` for a dataset made
by hand), the package and record schema versions, what was generated (task, params, split,
seed, first index and count of each piece), the record count and the sha256 of each file.

``eval`` refuses a dataset whose files no longer match their manifest, and stores the
suite and version with its results; ``report`` shows them and warns when runs of different
versions of one suite are put side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pencilbench.bench.errors import UserError
from pencilbench.generators import __version__
from pencilbench.generators.dataset import SCHEMA_VERSION, Spec
from pencilbench.generators.export import part_files

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Piece:
    """One generated stretch of a dataset: items ``start .. start + count - 1`` of a stream."""

    task: str
    params: Mapping[str, Any]
    split: str
    seed: int
    start: int
    count: int

    @classmethod
    def of(cls, spec: Spec, start: int, count: int) -> Piece:
        """The piece of ``spec``'s stream, with its parameters validated and typed."""
        task, params = spec.resolve()
        return cls(task.name, params.to_dict(), spec.split, spec.seed, start, count)


@dataclass(frozen=True)
class Manifest:
    """The contents of a manifest file (see the module docstring)."""

    suite: str | None
    suite_version: int | None
    package_version: str
    schema_version: int
    pieces: tuple[Piece, ...]
    records: int
    files: Mapping[str, str]
    manifest_version: int = MANIFEST_VERSION

    @property
    def label(self) -> str | None:
        """``suite vN``, the name leaderboards show; ``None`` for a dataset without a suite."""
        return None if self.suite is None else f"{self.suite} v{self.suite_version}"

    def to_json(self) -> str:
        body = asdict(self)
        body["pieces"] = [asdict(piece) for piece in self.pieces]
        return json.dumps(body, indent=2, sort_keys=True) + "\n"


def manifest_path(data: str | Path) -> Path:
    data = Path(data)
    return data.with_name(data.name + ".manifest.json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_files(data: str | Path) -> dict[str, str]:
    """sha256 of each file of a dataset, by name (the parts of a folder, or the file itself)."""
    data = Path(data)
    files = part_files(data) if data.is_dir() else [data]
    return {path.name: sha256(path) for path in files}


def write_manifest(data: str | Path, pieces: Sequence[Piece], records: int, *,
                   suite: str | None = None, suite_version: int | None = None) -> Manifest:
    """Write the manifest of a dataset that was just written; returns it."""
    manifest = Manifest(suite, suite_version, __version__, SCHEMA_VERSION, tuple(pieces), records,
                        dataset_files(data))
    path = manifest_path(data)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(partial, path)
    return manifest


def read_manifest(data: str | Path) -> Manifest | None:
    """The manifest of a dataset, ``None`` when it has none; ``UserError`` when unreadable."""
    path = manifest_path(data)
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        version = body.pop("manifest_version")
        if version != MANIFEST_VERSION:
            raise ValueError(f"manifest version {version!r}, this pencilbench reads {MANIFEST_VERSION}")
        pieces = tuple(Piece(**piece) for piece in body.pop("pieces"))
        return Manifest(pieces=pieces, **body)
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise UserError(f"{path} is not a readable manifest ({error})") from None


def mismatch(data: str | Path, manifest: Manifest, records: int) -> str | None:
    """Why a dataset does not match its manifest, or ``None`` when it does."""
    files = dataset_files(data)
    for name in sorted(set(files) | set(manifest.files)):
        if name not in files:
            return f"{name} is listed in the manifest but missing"
        if name not in manifest.files:
            return f"{name} is not listed in the manifest"
        if files[name] != manifest.files[name]:
            return f"the sha256 of {name} differs from the manifest's"
    if records != manifest.records:
        return f"it holds {records} records, the manifest says {manifest.records}"
    return None


def check_manifest(data: str | Path, records: int) -> Manifest | None:
    """The manifest of a dataset about to be evaluated. ``UserError`` when the files no
    longer match it; a warning on stderr when there is none (the results cannot be tied to
    a suite version)."""
    manifest = read_manifest(data)
    if manifest is None:
        warn(f"{data} has no manifest ({manifest_path(data).name}); its results name no suite version")
        return None
    problem = mismatch(data, manifest, records)
    if problem is not None:
        raise UserError(f"{data} does not match its manifest: {problem}; regenerate it")
    return manifest


def warn(message: str) -> None:
    print(f"pencilbench: warning: {message}", file=sys.stderr)
