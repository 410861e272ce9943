"""The task contract: what every task module provides, and how its size knobs are declared."""

from __future__ import annotations

import dataclasses
import functools
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from pencilbench.generators.seeding import SplitTest, Stream


def knob(default: Any, *, lo: float | None = None, hi: float | None = None,
         choices: Sequence[Any] | None = None, help: str = "") -> Any:
    """Declare one size knob of a task's ``Params`` with its allowed range or choices."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "choices": choices, "help": help})


@dataclass(frozen=True)
class TaskParams:
    """Base of every task's frozen ``Params``: validates each knob against its declaration.

    Subclasses add cross-field checks in ``check`` (called after the per-knob checks).
    """

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if meta.get("choices") is not None and value not in meta["choices"]:
                allowed = ", ".join(map(str, meta["choices"]))
                raise ValueError(f"{f.name} must be one of {allowed}, got {value!r}")
            lo, hi = meta.get("lo"), meta.get("hi")
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise ValueError(f"{f.name} must be in {_range_text(lo, hi)}, got {value!r}")
        self.check()

    def check(self) -> None:
        """Cross-knob constraints; raise ``ValueError`` naming the allowed range."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self._knobs)

    @functools.cached_property
    def _knobs(self) -> dict[str, Any]:
        # Every record carries its knobs: worked out once per (immutable) size, not per record.
        return dataclasses.asdict(self)

    @functools.cached_property
    def _key(self) -> str:
        return json.dumps(self._knobs, sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """Canonical text of the knobs: identifies a size in seeds, ids and tables."""
        return self._key

    def label(self) -> str:
        """Short human label of a size, e.g. ``k=4 d=10``."""
        return " ".join(f"{name}={value}" for name, value in self.to_dict().items())


def _range_text(lo: float | None, hi: float | None) -> str:
    if lo is None and hi is None:
        return "see meaning"
    if hi is None:
        return f"[{lo}, inf)"
    if lo is None:
        return f"(-inf, {hi}]"
    return f"[{lo}, {hi}]"


def describe_knobs(params_type: type[TaskParams]) -> list[dict[str, Any]]:
    """Name, type, default, range and help of every knob (for ``pencilbench tasks``)."""
    rows = []
    for f in dataclasses.fields(params_type):
        meta = f.metadata
        if meta.get("choices") is not None:
            allowed = "|".join(map(str, meta["choices"]))
        else:
            allowed = _range_text(meta.get("lo"), meta.get("hi"))
        type_name = f.type if isinstance(f.type, str) else f.type.__name__
        rows.append({"name": f.name, "type": type_name, "default": f.default,
                     "allowed": allowed, "help": meta.get("help", "")})
    return rows


def coerce_params(params_type: type[TaskParams], values: Mapping[str, Any]) -> TaskParams:
    """Build ``Params`` from loosely typed values (CLI strings, JSON); raise ``ValueError``."""
    fields = {f.name: f for f in dataclasses.fields(params_type)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; known: {', '.join(fields)}")
    typed = {}
    for name, raw in values.items():
        kind = type(fields[name].default)
        try:
            if kind is bool and isinstance(raw, str):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                typed[name] = raw.lower() in ("true", "1", "yes")
            else:
                typed[name] = kind(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
    return params_type(**typed)


@dataclass(frozen=True)
class Trace:
    """What a task's instrumented solver produced for one problem.

    ``pencil`` is the generated side only (the prompt is not repeated); ``reduce(pencil)``
    must leave ``[ANSWER]`` followed by ``answer``. ``stats`` holds task-specific search
    statistics. ``ids`` is ``pencil`` as vocabulary ids when the solver wrote ids (compiled
    solvers do), which spares the record builder looking every token up.
    """

    pencil: tuple[str, ...]
    answer: tuple[str, ...]
    stats: Mapping[str, Any] = field(default_factory=dict)
    ids: np.ndarray | None = field(default=None, compare=False)


@dataclass(frozen=True, eq=False)
class Ragged:
    """Rows of different lengths in one flat array: row ``i`` is
    ``values[offsets[i] : offsets[i + 1]]``."""

    values: np.ndarray
    offsets: np.ndarray  # int64, one more than there are rows

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def texts(self) -> list[str]:
        """Rows of ASCII bytes as strings, decoded in one go."""
        whole, bounds = self.values.tobytes().decode("ascii"), self.offsets.tolist()
        return [whole[start:end] for start, end in zip(bounds, bounds[1:])]

    @classmethod
    def of(cls, rows: Sequence[np.ndarray], dtype: type = np.int32) -> Ragged:
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(row) for row in rows], out=offsets[1:])
        values = np.concatenate(rows).astype(dtype, copy=False) if rows else np.zeros(0, dtype)
        return cls(values, offsets)


@dataclass(frozen=True, eq=False)
class Solved:
    """A run of problems with their gold traces, as vocabulary ids: what the dataset checks
    and turns into records, a chunk at a time.

    ``problems`` holds each problem as ``json.dumps`` writes it (key order kept);
    ``stats`` holds the trace statistics (``Trace.stats``), one array per name.
    """

    problems: list[str]
    questions: list[str]
    prompts: Ragged
    pencils: Ragged
    answers: Ragged
    stats: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.problems)


# A test on a problem's split part: whether the item may keep it.
Keep = SplitTest


class Task(ABC):
    """One reasoning task. Instances are pure functions of ``(params, rng)``.

    ``problem`` objects are plain JSON (the schemas are in the design notes), so other
    tools can read them without this package.
    """

    name: ClassVar[str]
    version: ClassVar[int]
    Params: ClassVar[type[TaskParams]]
    summary: ClassVar[str]
    # Small sizes for the quickstart suite, and the size table of ``pencilbench perf``.
    quickstart_sizes: ClassVar[tuple[Mapping[str, Any], ...]]
    benchmark_sizes: ClassVar[tuple[Mapping[str, Any], ...]]

    @abstractmethod
    def sample(self, params: TaskParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        """Draw one problem.

        ``stratum`` is this item's point in a low-discrepancy sequence over the indices of
        its stream, in [0, 1). A task with a label (satisfiable or not, true or false)
        takes it from ``stratum < target`` rather than from ``rng``, so the label shares of
        any run of consecutive items are within a couple of items of the target.

        ``keep`` is the test the dataset applies to the result's :meth:`split_part` (its
        home split is the item's split). A task that draws candidates in a loop, or whose
        split part is known before its costly work, applies it there, so that a candidate
        bound to be thrown away costs no more; the result must still pass it (it is
        checked again). A compiled sampler can run the test inside its kernel: see
        :class:`~pencilbench.generators.seeding.SplitTest`.
        """

    def split_part(self, problem: Mapping[str, Any]) -> Mapping[str, Any]:
        """The part of a problem that decides its home split (by default all of it). Equal
        problems have equal parts, so splits never share a problem."""
        return problem

    @abstractmethod
    def prompt(self, params: TaskParams, problem: Mapping[str, Any]) -> list[str]:
        """Compact prompt tokens."""

    @abstractmethod
    def question(self, params: TaskParams, problem: Mapping[str, Any]) -> str:
        """Natural-language question, with instructions on the answer's format."""

    @abstractmethod
    def trace(self, params: TaskParams, problem: Mapping[str, Any]) -> Trace:
        """Solve the problem, recording the gold PENCIL trace as the solver works."""

    def solve_chunk(self, params: TaskParams, stream: Stream, lo: int, hi: int) -> Solved | None:
        """Items ``lo .. hi - 1`` of ``stream``, drawn and solved in one go, or ``None``.

        ``None`` (the default) has the dataset draw and solve them one at a time with
        :meth:`sample`, :meth:`prompt`, :meth:`question` and :meth:`trace`. A task whose
        per-item work is a few microseconds of compiled code returns the same result from
        one kernel call, drawing from the same PCG64 streams (:meth:`Stream.states`).
        """
        return None

    @abstractmethod
    def parse_answer(self, params: TaskParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        """Answer tokens found in free model text, or ``None`` when there is none."""

    @abstractmethod
    def vocabulary(self, params: TaskParams) -> tuple[str, ...]:
        """Every token a prompt or trace of this size may use, markers included."""

    def params(self, values: Mapping[str, Any] | None = None) -> TaskParams:
        """``Params`` from loosely typed values; raises ``ValueError`` with the allowed range."""
        return coerce_params(self.Params, values or {})
