"""DIMACS CNF and QDIMACS: reading users' formulas and writing ours.

Readers return problems in the task schemas (``sat``: ``num_vars``, ``clauses``; ``qbf``
adds ``prefix``). A malformed file raises :class:`DimacsError`, a ``ValueError`` whose
message is one line ``path:LINE: problem``, so the command line can print it as it is.

Accepted input: ``c`` comment lines anywhere (and ``%`` as the end of the formula, as some
benchmark archives have); one ``p cnf VARS CLAUSES`` header before any clause; clauses as
signed integers ending in ``0``, possibly spread over several lines; for QDIMACS, ``e`` and
``a`` lines between the header and the first clause, each ending in ``0``. QDIMACS free
variables (in no quantifier line) are existential and outermost, as the format says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

CNF_SUFFIXES = (".cnf", ".dimacs")
QDIMACS_SUFFIXES = (".qdimacs", ".qcnf", ".cnf")


class DimacsError(ValueError):
    """A malformed DIMACS or QDIMACS file; the message names the file and the line."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source, self.line, self.problem = source, line, problem


def read_cnf(path: str | Path) -> dict[str, Any]:
    """A DIMACS CNF file as a ``sat`` problem."""
    return parse_cnf(_read_text(path), str(path))


def read_qdimacs(path: str | Path) -> dict[str, Any]:
    """A QDIMACS file as a ``qbf`` problem."""
    return parse_qdimacs(_read_text(path), str(path))


def read_folder(path: str | Path, *, quantified: bool) -> list[tuple[Path, dict[str, Any]]]:
    """Every formula file of a folder in name order (``*.cnf``, ``*.dimacs``; for QDIMACS
    also ``*.qdimacs``, ``*.qcnf``), or the one file ``path`` names."""
    root = Path(path)
    reader = read_qdimacs if quantified else read_cnf
    if not root.is_dir():
        return [(root, reader(root))]
    suffixes = QDIMACS_SUFFIXES if quantified else CNF_SUFFIXES
    files = sorted(file for file in root.iterdir() if file.is_file() and file.suffix.lower() in suffixes)
    if not files:
        raise ValueError(f"{root}: no formula files (names ending in {', '.join(suffixes)})")
    return [(file, reader(file)) for file in files]


def parse_cnf(text: str, source: str = "<text>") -> dict[str, Any]:
    num_vars, _, clauses = _parse(text, source, quantified=False)
    return {"num_vars": num_vars, "clauses": clauses}


def parse_qdimacs(text: str, source: str = "<text>") -> dict[str, Any]:
    num_vars, prefix, clauses = _parse(text, source, quantified=True)
    bound = {var for _, var in prefix}
    free = [["e", var] for var in range(1, num_vars + 1) if var not in bound]
    return {"num_vars": num_vars, "prefix": free + prefix, "clauses": clauses}


def write_cnf(problem: Mapping[str, Any], comments: Iterable[str] = ()) -> str:
    """DIMACS CNF text of a ``sat`` (or ``qbf``, prefix dropped) problem."""
    lines = [f"c {comment}" for comment in comments]
    lines.append(f"p cnf {problem['num_vars']} {len(problem['clauses'])}")
    lines.extend(_clause_lines(problem["clauses"]))
    return "\n".join(lines) + "\n"


def write_qdimacs(problem: Mapping[str, Any], comments: Iterable[str] = ()) -> str:
    """QDIMACS text of a ``qbf`` problem: one quantifier line per block of the prefix."""
    lines = [f"c {comment}" for comment in comments]
    lines.append(f"p cnf {problem['num_vars']} {len(problem['clauses'])}")
    blocks: list[tuple[str, list[int]]] = []
    for quantifier, var in problem["prefix"]:
        if blocks and blocks[-1][0] == quantifier:
            blocks[-1][1].append(var)
        else:
            blocks.append((quantifier, [var]))
    lines.extend(f"{quantifier} {' '.join(map(str, variables))} 0" for quantifier, variables in blocks)
    lines.extend(_clause_lines(problem["clauses"]))
    return "\n".join(lines) + "\n"


def _clause_lines(clauses: Sequence[Sequence[int]]) -> list[str]:
    return [" ".join(map(str, (*clause, 0))) for clause in clauses]


def _read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DimacsError(str(path), 1, f"not a text file ({error.reason})") from None


def _parse(text: str, source: str, *, quantified: bool) -> tuple[int, list[list[Any]], list[list[int]]]:
    """Header, prefix and clauses of a (Q)DIMACS text; every fault names its line."""
    num_vars = declared = -1
    prefix: list[list[Any]] = []
    bound: set[int] = set()
    clauses: list[list[int]] = []
    current: list[int] = []
    current_line = 0
    number = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("c"):
            continue
        if line.startswith("%"):
            break
        fields = line.split()
        if fields[0] == "p":
            if num_vars >= 0:
                raise DimacsError(source, number, "a second 'p' header")
            num_vars, declared = _header(fields, source, number)
            continue
        if num_vars < 0:
            raise DimacsError(source, number, "expected the header 'p cnf VARS CLAUSES' before anything else")
        if fields[0] in ("e", "a"):
            if not quantified:
                raise DimacsError(source, number, f"quantifier line {fields[0]!r} in a plain CNF file")
            if clauses or current:
                raise DimacsError(source, number, "quantifier line after the first clause")
            for var in _numbers(fields[1:], source, number, num_vars, literals=False):
                if var in bound:
                    raise DimacsError(source, number, f"variable {var} is quantified twice")
                bound.add(var)
                prefix.append([fields[0], var])
            continue
        for value in _numbers(fields, source, number, num_vars, literals=True, terminated=False):
            if not current:
                current_line = number
            if value == 0:
                clauses.append(current)
                current = []
            else:
                current.append(value)
    if num_vars < 0:
        raise DimacsError(source, max(number, 1), "no 'p cnf VARS CLAUSES' header")
    if current:
        raise DimacsError(source, current_line, "clause not terminated by 0")
    if len(clauses) != declared:
        raise DimacsError(source, number, f"the header declares {declared} clauses, the file has {len(clauses)}")
    return num_vars, prefix, clauses


def _header(fields: list[str], source: str, number: int) -> tuple[int, int]:
    if len(fields) != 4 or fields[1] != "cnf":
        raise DimacsError(source, number, "bad header; expected 'p cnf VARS CLAUSES'")
    try:
        num_vars, declared = int(fields[2]), int(fields[3])
    except ValueError:
        raise DimacsError(source, number, "bad header; VARS and CLAUSES must be integers") from None
    if num_vars < 0 or declared < 0:
        raise DimacsError(source, number, "bad header; VARS and CLAUSES must be >= 0")
    return num_vars, declared


def _numbers(fields: Sequence[str], source: str, number: int, num_vars: int, *,
             literals: bool, terminated: bool = True) -> list[int]:
    """Integers of one line, range-checked; quantifier lines must end in their 0."""
    values = []
    for field in fields:
        try:
            value = int(field)
        except ValueError:
            raise DimacsError(source, number, f"{field!r} is not an integer") from None
        if abs(value) > num_vars or (not literals and value < 0):
            kind = "literal" if literals else "variable"
            raise DimacsError(source, number, f"{kind} {value} out of range 1..{num_vars}")
        values.append(value)
    if terminated:
        if not values or values[-1] != 0:
            raise DimacsError(source, number, "quantifier line not terminated by 0")
        if 0 in values[:-1]:
            raise DimacsError(source, number, "0 inside a quantifier line")
        return values[:-1]
    return values
