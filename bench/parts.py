"""Datasets as folders of Parquet parts, written by independent jobs, with their manifest.

The work is cut into parts of at most ``PART_SIZE`` consecutive items of one stream; part
``k`` is ``part-0000k.parquet``. The cut depends only on what is generated, never on who
generates it, so the local executor and Ray (``bench.ray_executor``) write the same files.
Each part is one call of the ordinary generator (``generators.export.write_generated``, the
bytes of ``write_records`` of ``generators.dataset.generate``) and is written under a
temporary name and renamed, so a part that exists is complete and a
job that is retried after its worker died writes the same bytes again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from pencilbench.bench.manifest import Manifest, Piece, write_manifest
from pencilbench.generators.dataset import Spec
from pencilbench.generators.export import part_files, write_generated

PART_SIZE = 100
EXECUTORS = ("local", "ray")


def plan(pieces: Sequence[Piece], part_size: int = PART_SIZE) -> list[Piece]:
    """The parts, in order: each piece cut into runs of at most ``part_size`` items."""
    if part_size < 1:
        raise ValueError(f"part size must be >= 1, got {part_size}")
    parts = []
    for piece in pieces:
        for lo in range(piece.start, piece.start + piece.count, part_size):
            parts.append(replace(piece, start=lo, count=min(part_size, piece.start + piece.count - lo)))
    return parts


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def write_part(folder: str | Path, number: int, piece: Piece) -> int:
    """Generate one part into ``folder``; returns its record count."""
    spec = Spec(piece.task, piece.params, piece.split, piece.seed)
    return write_generated(Path(folder) / part_name(number), spec, piece.count, start=piece.start)[0]


def _write_part_job(job: tuple[Path, int, Piece]) -> int:
    return write_part(*job)


def write_dataset(folder: str | Path, pieces: Sequence[Piece], *, executor: str = "local",
                  address: str | None = None, workers: int = 1,
                  progress: Callable[[int], object] | None = None,
                  suite: str | None = None, suite_version: int | None = None) -> Manifest:
    """Write ``pieces`` as a folder of parts (any earlier parts are removed first) and its
    manifest. ``workers`` bounds the local process pool; Ray uses its whole cluster.
    ``progress`` is called with each finished part's record count."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    for piece in pieces:
        Spec(piece.task, piece.params, piece.split, piece.seed).resolve()  # bad input fails here
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in part_files(folder):
        stale.unlink()
    jobs = [(folder, number, part) for number, part in enumerate(plan(pieces))]
    report = progress or (lambda count: None)
    if executor == "ray":
        from pencilbench.bench.ray_executor import write_parts

        total = write_parts(jobs, address, report)
    elif workers == 1 or len(jobs) == 1:
        total = 0
        for job in jobs:
            count = _write_part_job(job)
            report(count)
            total += count
    else:
        total = 0
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for count in pool.map(_write_part_job, jobs):
                report(count)
                total += count
    return write_manifest(folder, pieces, total, suite=suite, suite_version=suite_version)
