"""Random quantified Boolean formulas in prenex CNF: n variables, m = round(ratio * n)
clauses of three distinct variables, and a quantifier prefix.

Prefix styles: ``random`` gives each variable 1..n (in that order) an independent fair
quantifier, as PENCIL does; ``blocks`` splits 1..n into ``blocks`` contiguous blocks of
near-equal size with alternating quantifiers, the first one chosen by a coin.

Sampling avoids instances that need no search. A clause with no existential variable is
false under any universal choice, so such clauses are drawn again; a formula that unit
propagation with universal reduction decides on its own (before any variable is chosen) is
drawn again; clauses have distinct variables, so none is a tautology. The label comes
first, from the item's stratum (true when ``stratum < target``, so the shares of any run of
items are within a couple of items of ``target``), and whole formulas are drawn until one
has it; the
label is computed on the final formula by an exact quantifier elimination over bit sets of
all assignments, which shares nothing with the traced search, and every trace is checked
against it.

Prompt: ``E 1 A 2 ... c1 l l l c2 l l l ... ?`` (``E`` exists, ``A`` for all).

Gold trace: evaluation along the prefix with early exit. For the next variable x of the
prefix, the solver writes ``-x [CALL] ... [SEP] r [RETURN]`` (x false), then, unless r
already decides (``True`` under an exists, ``False`` under a for all), ``x [CALL] ...
[SEP] r [RETURN]``; the frame's answer is the last r. The last variable of the prefix
needs no frame: once it is set, the leaf check follows it directly, ``x cJ False`` naming
the first clause the full assignment falsifies, or ``x True``. The live context holds the
prompt and at most four tokens per prefix level, so it grows linearly while the CoT grows
with the search tree.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.pencil import SPECIAL_TOKENS, TraceWriter
from pencilbench.generators.sat import clause_lines, clause_tokens, false_masks, satisfying_set
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob

TRUE, FALSE, QUERY = "True", "False", "?"
QUANTIFIER_TOKENS = {"e": "E", "a": "A"}
WIDTH = 3
MAX_DRAWS = 5000  # formulas drawn for one label before the size is declared unworkable
BATCH = 16  # formulas drawn per round of numpy calls


@dataclass(frozen=True)
class QbfParams(TaskParams):
    variables: int = knob(10, lo=3, hi=20, help="variables n")
    ratio: float = knob(1.0, lo=0.2, hi=20.0, help="clauses per variable; m = round(ratio * n)")
    prefix: str = knob("random", choices=("random", "blocks"),
                       help="quantifier per variable at random, or alternating blocks")
    blocks: int = knob(2, lo=1, hi=20, help="quantifier blocks when prefix=blocks")
    target: float = knob(0.5, lo=0.0, hi=1.0, help="share of true instances")

    def check(self) -> None:
        if self.blocks > self.variables:
            raise ValueError(f"blocks must be in [1, variables] = [1, {self.variables}], got {self.blocks}")

    def clauses(self) -> int:
        return max(1, round(self.ratio * self.variables))

    @classmethod
    def of(cls, problem: Mapping[str, Any]) -> QbfParams:
        """The size of a given formula (one a user brought): its quantifier blocks count as
        ``blocks``; ``ValueError`` when out of range."""
        n, prefix = problem["num_vars"], problem["prefix"]
        blocks = sum(1 for i, (kind, _) in enumerate(prefix) if i == 0 or prefix[i - 1][0] != kind)
        return cls(variables=n, ratio=len(problem["clauses"]) / max(n, 1), prefix="blocks", blocks=max(blocks, 1))


def draw_universal(params: QbfParams, rng: np.random.Generator, formulas: int) -> np.ndarray:
    """Which variables 1..n are universal, one row per formula (prefix order is 1..n); every
    row keeps at least one existential variable."""
    n = params.variables
    if params.prefix == "blocks":
        sizes = [n // params.blocks + (b < n % params.blocks) for b in range(params.blocks)]
        block = np.repeat(np.arange(params.blocks), sizes)
        first = rng.integers(0, 2, size=(formulas, 1))
        universal = (block[None, :] + first) % 2 == 1
        if params.blocks == 1:  # a single universal block
            universal[:] = False
        return universal
    universal = rng.integers(0, 2, size=(formulas, n)) == 0
    rescue = rng.integers(0, n, size=formulas)
    for f in np.flatnonzero(universal.all(axis=1)).tolist():
        universal[f, rescue[f]] = False
    return universal


def draw_formulas(params: QbfParams, rng: np.random.Generator,
                  formulas: int) -> list[tuple[list[list[Any]], list[list[int]]]]:
    """``formulas`` (prefix, clauses) pairs, drawn with a few numpy calls for all of them.

    Each clause has three distinct variables with random signs; a clause whose variables are
    all universal is drawn again: rows are drawn in rounds, each formula taking its usable
    rows in order, until every formula has its clauses.
    """
    n, count = params.variables, params.clauses()
    universal = draw_universal(params, rng, formulas)
    matrices: list[list[list[int]]] = [[] for _ in range(formulas)]
    short = list(range(formulas))
    while short:
        rows = np.argsort(rng.random((len(short), count + 2, n)), axis=2)[:, :, :WIDTH]
        signs = rng.integers(0, 2, size=rows.shape) * 2 - 1
        usable = ~np.take_along_axis(universal[short][:, None, :], rows, axis=2).all(axis=2)
        literals = (np.sort(rows, axis=2) + 1) * signs
        for row, f in enumerate(short):
            clauses = matrices[f]
            clauses += literals[row][usable[row]][: count - len(clauses)].tolist()
        short = [f for f in short if len(matrices[f]) < count]
    prefixes = [[["a" if flag else "e", var] for var, flag in enumerate(flags, start=1)]
                for flags in universal.tolist()]
    return list(zip(prefixes, matrices, strict=True))


def decided_by_propagation(prefix: Sequence[Sequence[Any]], clauses: Sequence[Sequence[int]]) -> bool:
    """Whether unit propagation with universal reduction decides the formula by itself."""
    level = {var: i for i, (_, var) in enumerate(prefix)}
    universal = {var for kind, var in prefix if kind == "a"}
    # Only existential variables are ever set, so a clause's universal literals stay free:
    # all that matters of them is the outermost one's level (an existential literal is unit
    # when it is the clause's only free existential one and quantified before every universal).
    parts = []
    for clause in clauses:
        existential = [lit for lit in clause if abs(lit) not in universal]
        if not existential:
            return True  # false whatever the existential player does
        parts.append((existential, min((level[abs(lit)] for lit in clause if abs(lit) in universal),
                                       default=len(level))))
    value: dict[int, bool] = {}
    while True:
        units: list[int] = []
        open_clause = False
        for existential, outermost in parts:
            free = []
            for lit in existential:
                known = value.get(abs(lit))
                if known is None:
                    free.append(lit)
                elif known == (lit > 0):
                    break
            else:
                open_clause = True
                if not free:
                    return True  # false whatever the existential player does
                if len(free) == 1 and outermost > level[abs(free[0])]:
                    units.append(free[0])
        if not open_clause:
            return True
        if not units:
            return False
        for lit in units:
            if abs(lit) in value and value[abs(lit)] != (lit > 0):
                return True  # two units ask for opposite values: a conflict
            value[abs(lit)] = lit > 0


def truth_by_elimination(num_vars: int, prefix: Sequence[Sequence[Any]], clauses: Sequence[Sequence[int]]) -> bool:
    """Truth of the formula by eliminating quantifiers innermost first over the bit set of
    satisfying assignments: exists is an OR, for all an AND, of the two halves."""
    _, masks = false_masks(num_vars)
    table = satisfying_set(num_vars, clauses)
    for kind, var in reversed(prefix):
        shift, low = 1 << (var - 1), masks[var]  # low: the assignments with var false
        if kind == "e":
            table = (table | (table >> shift)) & low
        else:
            table = table & (table >> shift) & low
    return bool(table & 1)


class _Evaluator:
    """Recursive evaluation along the prefix; writes the trace in the module notes."""

    def __init__(self, problem: Mapping[str, Any], out: TraceWriter) -> None:
        self.prefix = [(kind, var) for kind, var in problem["prefix"]]
        self.out = out
        # Clause j is false exactly when (bits & care[j]) == falsify[j] (bit v-1 = variable v).
        self.care = [sum(1 << (abs(lit) - 1) for lit in set(clause)) for clause in problem["clauses"]]
        self.falsify = [sum(1 << (-lit - 1) for lit in set(clause) if lit < 0)
                        for clause in problem["clauses"]]
        self.tautology = [any(-lit in clause for lit in clause) for clause in problem["clauses"]]
        self.names = [f"c{j}" for j in range(1, len(self.care) + 1)]
        self.leaves = 0

    def _leaf(self, bits: int) -> bool:
        """Check the clauses under a full assignment, naming the first false one."""
        self.leaves += 1
        for j, care in enumerate(self.care):
            if bits & care == self.falsify[j] and not self.tautology[j]:
                self.out.emit(self.names[j], FALSE)
                return False
        self.out.emit(TRUE)
        return True

    def run(self, depth: int, bits: int) -> bool:
        """Value of the formula from prefix position ``depth`` on, under ``bits``."""
        out = self.out
        kind, var = self.prefix[depth]
        last = depth == len(self.prefix) - 1
        result = False
        for literal, value in ((-var, 0), (var, 1 << (var - 1))):
            out.emit(str(literal))
            if last:
                result = self._leaf(bits | value)
            else:
                out.call()
                result = self.run(depth + 1, bits | value)
                out.ret(TRUE if result else FALSE)
            if result == (kind == "e"):
                break
        return result


def search_trace(problem: Mapping[str, Any]) -> Trace:
    """Run the instrumented evaluation on a formula and return its trace."""
    out = TraceWriter()
    evaluator = _Evaluator(problem, out)
    out.call()
    answer = (TRUE if evaluator.run(0, 0) else FALSE,)
    out.answer(*answer)
    return Trace(tuple(out.tokens), answer, {"leaves": evaluator.leaves})


class Qbf(Task):
    name = "qbf"
    version = 2
    Params = QbfParams
    summary = "quantified Boolean formulas: True or False by search along the prefix"
    quickstart_sizes = ({"variables": 4}, {"variables": 6})
    benchmark_sizes = tuple({"variables": n} for n in range(3, 15))

    def sample(self, params: QbfParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        n = params.variables
        want = stratum < params.target
        for _ in range(MAX_DRAWS // BATCH):
            for prefix, clauses in draw_formulas(params, rng, BATCH):
                # Cheapest first: the split (one hash), the exact label, the search-free check.
                problem = {"num_vars": n, "prefix": prefix, "clauses": clauses}
                if (keep is None or keep(problem)) and truth_by_elimination(n, prefix, clauses) == want \
                        and not decided_by_propagation(prefix, clauses):
                    return problem
        kind = "true" if want else "false"
        raise ValueError(f"qbf at {params.label()}: no {kind} formula that needs search in {MAX_DRAWS} "
                         "draws; change ratio, or move target away from 0 and 1")

    def prompt(self, params: QbfParams, problem: Mapping[str, Any]) -> list[str]:
        tokens: list[str] = []
        for kind, var in problem["prefix"]:
            tokens += (QUANTIFIER_TOKENS[kind], str(var))
        return [*tokens, *clause_tokens(problem["clauses"]), QUERY]

    def question(self, params: QbfParams, problem: Mapping[str, Any]) -> str:
        words = {"e": "exists", "a": "for all"}
        prefix = ", ".join(f"{words[kind]} {var}" for kind, var in problem["prefix"])
        clauses = clause_lines(problem["clauses"])
        return (
            f"Decide whether this quantified Boolean formula is true. Quantifiers, outermost "
            f"first: {prefix}. The quantified part is the conjunction of these clauses; each "
            "clause holds when at least one of its literals is true, where k means variable k "
            f"is true and -k means variable k is false:\n{clauses}\n"
            "Finish with a line 'Answer: True' or 'Answer: False'."
        )

    def trace(self, params: QbfParams, problem: Mapping[str, Any]) -> Trace:
        trace = search_trace(problem)
        truth = truth_by_elimination(problem["num_vars"], problem["prefix"], problem["clauses"])
        if (trace.answer[0] == TRUE) != truth:
            raise RuntimeError(f"the traced search answered {trace.answer[0]}, elimination gives {truth}")
        return trace

    def parse_answer(self, params: QbfParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_verdict)

    def vocabulary(self, params: QbfParams) -> tuple[str, ...]:
        n = params.variables
        literals = tuple(str(lit) for v in range(1, n + 1) for lit in (v, -v))
        names = tuple(f"c{j}" for j in range(1, params.clauses() + 1))
        return (*SPECIAL_TOKENS, QUERY, TRUE, FALSE, *QUANTIFIER_TOKENS.values(), *literals, *names)


_VERDICT = re.compile(r"\b(?:true|false)\b")


def _read_verdict(statement: str) -> tuple[str, ...] | None:
    verdict = single(_VERDICT.findall(statement.lower()))
    return None if verdict is None else (TRUE if verdict == "true" else FALSE,)

TASK = Qbf()
