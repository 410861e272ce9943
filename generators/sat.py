"""Random k-SAT: n variables, m = round(ratio * n) clauses of k distinct variables.

Sampling: each clause picks k distinct variables uniformly and a random sign for each. The
label comes first, from the item's stratum (satisfiable when ``stratum < target``, so the
shares of any run of items are within a couple of items of ``target``). Two ways to reach it:

- ``sampling=paired`` (the default), after NeuroSAT's SR(n): a random formula that is
  satisfiable with m - 1 clauses and becomes unsatisfiable with its m-th random clause. The
  unsatisfiable instance is that formula; the satisfiable one is the same formula with one
  literal of the m-th clause negated (every model of the first m - 1 clauses falsifies the
  m-th, so any one negation lets them all through). Both labels come from the same
  distribution up to one sign, so surface statistics hardly tell them apart (a logistic
  regression on polarity statistics: about 51-53% held out at n = 10); the clauses are
  shuffled so the deciding clause has no fixed place. Drawn exactly: m clauses at random,
  kept when the first m - 1 are satisfiable and every one of their models gives the m-th
  clause's variables the same values; the m-th clause then takes the signs that falsify them.
- ``sampling=independent``: formulas are drawn until one has the label (rejection per
  label: satisfiable instances are uniform among satisfiable formulas). Its labels carry
  shallow cues: the same regression scores about 63% (``pencilbench cues``).

Labels are decided by an exact enumeration over all assignments (bit sets) for n <= 14 and
python-sat above; nothing changes a formula after its label is known. The gold answer comes
from the DPLL below and is confirmed on every trace without it: a SAT answer's assignment
must satisfy every clause, and an UNSAT answer must be confirmed by the enumeration
(n <= 14) or python-sat, so a wrong label cannot be written. python-sat runs as one warm
solver per process with an activation variable per formula.

Prompt: ``c1 l l l c2 l l l ... ?``; a literal is ``k`` (variable k true) or ``-k``.

Gold trace: DPLL with unit propagation. Every literal token in the live generated context is
an assigned literal, so the frames never restate the formula; the prompt holds the clauses.

- ``[CALL]`` opens the root frame.
- ``cJ l``: clause J is unit (every other literal false), so l is set. The clause chosen is
  the lowest-numbered clause that is unit or false.
- ``cJ conflict``: clause J is false; the frame fails.
- ``[CALL] cJ l ... [SEP] -l [RETURN]``: branch on l, the first open literal of the lowest
  numbered open clause with the fewest open literals; when the branch fails it leaves ``-l``,
  which the frame keeps as an assigned literal and carries on with.
- When every clause is satisfied the frame answers ``SAT`` and a value for every variable
  that occurs in the formula, in increasing order (unassigned ones true); a frame whose
  branch answered ``SAT ...`` answers the same.
- The root frame answers ``UNSAT`` on a conflict.

The live context is the prompt, at most n assigned literals with their reasons, and two
tokens per open branch, so it grows linearly with the formula, while the CoT keeps every
failed branch.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pencilbench.generators.answers import HedgedAnswer, one_answer
from pencilbench.generators.pencil import SPECIAL_TOKENS, TraceWriter
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob
from pysat.solvers import Solver

SAT, UNSAT, CONFLICT, QUERY = "SAT", "UNSAT", "conflict", "?"
MAX_DRAWS = 5000  # formulas drawn for one label before the size is declared unworkable
BATCH = 4  # formulas drawn per numpy call
ENUMERATE_UP_TO = 14  # variables up to which labels are found by enumerating assignments
SAMPLINGS = ("paired", "independent")


@dataclass(frozen=True)
class SatParams(TaskParams):
    variables: int = knob(10, lo=3, hi=100, help="variables n")
    width: int = knob(3, lo=2, hi=8, help="literals per clause k (distinct variables)")
    ratio: float = knob(4.3, lo=0.2, hi=20.0, help="clauses per variable; m = round(ratio * n)")
    target: float = knob(0.5, lo=0.0, hi=1.0, help="share of satisfiable instances")
    sampling: str = knob("paired", choices=SAMPLINGS,
                         help="paired: SR(n)-style twins that differ in one sign; independent: rejection per label")

    def check(self) -> None:
        if self.width > self.variables:
            raise ValueError(f"width must be in [2, variables] = [2, {self.variables}], got {self.width}")

    def clauses(self) -> int:
        return max(1, round(self.ratio * self.variables))

    @classmethod
    def of(cls, problem: Mapping[str, Any]) -> SatParams:
        """The size of a given formula (one a user brought); ``ValueError`` when out of range."""
        n, clauses = problem["num_vars"], problem["clauses"]
        width = max((len(clause) for clause in clauses), default=2)
        return cls(variables=n, width=max(2, min(width, n)), ratio=len(clauses) / max(n, 1))


def clause_tokens(clauses: Sequence[Sequence[int]]) -> list[str]:
    """Compact clauses ``c1 l l l c2 ...``, numbered as the traces cite them."""
    tokens: list[str] = []
    for j, clause in enumerate(clauses, start=1):
        tokens.append(f"c{j}")
        tokens.extend(map(str, clause))
    return tokens


def clause_lines(clauses: Sequence[Sequence[int]]) -> str:
    """Clauses one per line for questions, numbered as in the compact prompt."""
    return "\n".join(f"c{j}: {' '.join(map(str, clause))}" for j, clause in enumerate(clauses, start=1))


def draw_formulas(rng: np.random.Generator, variables: int, width: int, clauses: int,
                  formulas: int) -> list[list[list[int]]]:
    """``formulas`` formulas of ``clauses`` clauses, each clause ``width`` distinct variables
    (sorted) with random signs. Drawing several at once saves numpy's per-call cost."""
    rows = formulas * clauses
    chosen = np.argsort(rng.random((rows, variables)), axis=1)[:, :width] + 1
    chosen.sort(axis=1)
    signs = rng.integers(0, 2, size=(rows, width)) * 2 - 1
    flat = (chosen * signs).tolist()
    return [flat[i : i + clauses] for i in range(0, rows, clauses)]


@lru_cache(maxsize=32)
def false_masks(variables: int) -> tuple[int, dict[int, int]]:
    """All assignments as one bit set (bit a = assignment a, variable v true iff bit v-1 of
    a), and for each literal the set of assignments where it is false."""
    size = 1 << variables
    full = (1 << size) - 1
    masks: dict[int, int] = {}
    for var in range(1, variables + 1):
        half = 1 << (var - 1)
        true = ((1 << half) - 1) << half  # one period: half zeros, then half ones
        span = 2 * half
        while span < size:
            true |= true << span
            span *= 2
        masks[var], masks[-var] = full ^ true, true
    return full, masks


def satisfying_set(variables: int, clauses: Sequence[Sequence[int]]) -> int:
    """The assignments that satisfy every clause, as a bit set (see ``false_masks``); stops
    as soon as the clauses falsify them all."""
    full, masks = false_masks(variables)
    falsified = 0
    for clause in clauses:
        cube = full
        for literal in clause:
            cube &= masks[literal]
        falsified |= cube
        if falsified == full:
            return 0
    return full ^ falsified


def enumerated_verdict(variables: int, clauses: Sequence[Sequence[int]]) -> bool:
    """Satisfiability by enumerating every assignment at once as a bit set."""
    return satisfying_set(variables, clauses) != 0


class _WarmSolver:
    """One python-sat solver per process, kept warm across formulas.

    Formula f is added with a fresh activation variable a_f in every clause, ``(c or -a_f)``,
    and decided under the assumption ``a_f``; the unit ``-a_f`` then switches it off for good.
    Clauses the solver learns from f all hold ``-a_f``, so no formula sees another's. The
    solver is rebuilt after ``RENEW`` formulas to keep its clause store small.
    """

    FIRST = 1 << 20  # activation variables start here; formulas use variables below it
    RENEW = 2000

    def __init__(self) -> None:
        self.solver: Solver | None = None
        self.used = 0

    def satisfiable(self, clauses: Sequence[Sequence[int]]) -> bool:
        if any(not clause for clause in clauses):
            return False
        if any(abs(literal) >= self.FIRST for clause in clauses for literal in clause):
            with Solver(name="minisat22", bootstrap_with=clauses) as solver:
                return bool(solver.solve())
        if self.solver is None or self.used == self.RENEW:
            if self.solver is not None:
                self.solver.delete()
            self.solver, self.used = Solver(name="minisat22"), 0
        switch = self.FIRST + self.used
        self.used += 1
        solver = self.solver
        solver.append_formula([[*clause, -switch] for clause in clauses])
        verdict = bool(solver.solve(assumptions=[switch]))
        solver.add_clause([-switch])
        return verdict


_WARM = _WarmSolver()


def python_sat_verdict(clauses: Sequence[Sequence[int]]) -> bool:
    """Satisfiability by python-sat (an external solver, sharing nothing with the DPLL)."""
    return _WARM.satisfiable(clauses)


def satisfies(clauses: Sequence[Sequence[int]], literals: Sequence[str]) -> bool:
    """Whether the assignment ``literals`` (signed variable tokens) makes every clause true."""
    chosen = set(map(int, literals))
    return all(not chosen.isdisjoint(clause) for clause in clauses)


def forced_values(variables: int, clauses: Sequence[Sequence[int]],
                  wanted: Sequence[int]) -> dict[int, int] | None:
    """For each variable of ``wanted`` that every model of ``clauses`` gives the same value,
    that value as a literal; ``None`` when the clauses are unsatisfiable. Stops at the first
    wanted variable that is free."""
    forced: dict[int, int] = {}
    if variables <= ENUMERATE_UP_TO:
        models = satisfying_set(variables, clauses)
        if not models:
            return None
        _, masks = false_masks(variables)
        for var in wanted:
            if not models & masks[var]:
                forced[var] = var
            elif not models & masks[-var]:
                forced[var] = -var
            else:
                break
        return forced
    with Solver(name="minisat22", bootstrap_with=clauses) as solver:
        if not solver.solve():
            return None
        model = set(solver.get_model())
        for var in wanted:
            literal = var if var in model else -var
            if solver.solve(assumptions=[-literal]):
                break
            forced[var] = literal
    return forced


def paired_formula(params: SatParams, rng: np.random.Generator, satisfiable: bool,
                   keep: Keep | None = None) -> list[list[int]]:
    """One twin of an SR(n)-style pair (see the module notes): m random clauses whose last one
    is the first to make the formula unsatisfiable; negating one of its literals gives the
    satisfiable twin. Clause order is shuffled. A twin whose problem ``keep`` rejects is
    passed over for the next draw."""
    n, width, count = params.variables, params.width, params.clauses()
    for _ in range(MAX_DRAWS // BATCH):
        for clauses in draw_formulas(rng, n, width, count, BATCH):
            head, last = clauses[:-1], clauses[-1]
            variables = [abs(literal) for literal in last]
            forced = forced_values(n, head, variables)
            if forced is None or len(forced) < width:
                continue
            last = [-forced[var] for var in variables]  # false in every model of the head
            if satisfiable:
                flip = int(rng.integers(width))
                last[flip] = -last[flip]
            formula = [*head, last]
            shuffled = [formula[i] for i in rng.permutation(count).tolist()]
            if keep is None or keep({"num_vars": n, "clauses": shuffled}):
                return shuffled
    raise ValueError(f"sat at {params.label()}: no unsatisfiable formula whose last clause decides it in "
                     f"{MAX_DRAWS} draws; move ratio towards 4.3 or use sampling=independent")


class _Dpll:
    """DPLL with counters per clause; writes the trace described in the module notes."""

    def __init__(self, num_vars: int, clauses: Sequence[Sequence[int]], out: TraceWriter) -> None:
        self.num_vars, self.out = num_vars, out
        self.clauses = [tuple(dict.fromkeys(clause)) for clause in clauses]
        self.names = [f"c{j}" for j in range(1, len(clauses) + 1)]
        self.size = [len(clause) for clause in self.clauses]
        self.occurs: dict[int, list[int]] = {lit: [] for v in range(1, num_vars + 1) for lit in (v, -v)}
        for j, clause in enumerate(self.clauses):
            for literal in clause:
                self.occurs[literal].append(j)
        self.value = [0] * (num_vars + 1)  # +1 true, -1 false, 0 open
        self.true = [0] * len(self.clauses)
        self.false = [0] * len(self.clauses)
        self.satisfied = 0
        self.trail: list[int] = []
        self.pending = [j for j, size in enumerate(self.size) if size <= 1]  # maybe unit or false
        self.decisions = self.conflicts = self.propagations = 0

    def assign(self, literal: int) -> None:
        self.value[abs(literal)] = 1 if literal > 0 else -1
        self.trail.append(literal)
        true, false, size = self.true, self.false, self.size
        for j in self.occurs[literal]:
            if not true[j]:
                self.satisfied += 1
            true[j] += 1
        for j in self.occurs[-literal]:
            false[j] += 1
            if not true[j] and false[j] >= size[j] - 1:
                heapq.heappush(self.pending, j)

    def undo(self, mark: int) -> None:
        true, false = self.true, self.false
        while len(self.trail) > mark:
            literal = self.trail.pop()
            self.value[abs(literal)] = 0
            for j in self.occurs[literal]:
                true[j] -= 1
                if not true[j]:
                    self.satisfied -= 1
            for j in self.occurs[-literal]:
                false[j] -= 1
        # Branches start with no unit or false clause, so none is pending after a backtrack.
        self.pending.clear()

    def _branch(self) -> int:
        """The open clause with the fewest open literals, lowest number first."""
        best, best_open = -1, len(self.occurs) + 1
        for j, size in enumerate(self.size):
            if not self.true[j] and size - self.false[j] < best_open:
                best, best_open = j, size - self.false[j]
        return best

    def _open_literal(self, j: int) -> int:
        """The first literal of clause j whose variable is open."""
        value = self.value
        for literal in self.clauses[j]:
            if not value[abs(literal)]:
                return literal
        raise AssertionError(f"clause {j + 1} has no open literal")

    def model(self) -> tuple[str, ...]:
        """Values of the variables that occur (the prompt shows no others), unassigned true."""
        value, occurs = self.value, self.occurs
        return tuple(str(v) if value[v] >= 0 else str(-v) for v in range(1, self.num_vars + 1)
                     if occurs[v] or occurs[-v])

    def run(self) -> tuple[str, ...] | None:
        """Solve the current frame: the ``SAT ...`` answer, or ``None`` on a conflict."""
        out, true, false, size, pending = self.out, self.true, self.false, self.size, self.pending
        while True:
            # The lowest-numbered clause that is unit or false (stale heap entries dropped).
            while pending and (true[pending[0]] or false[pending[0]] < size[pending[0]] - 1):
                heapq.heappop(pending)
            if pending:
                j = pending[0]
                if false[j] == size[j]:
                    self.conflicts += 1
                    out.emit(self.names[j], CONFLICT)
                    return None
                literal = self._open_literal(j)
                self.propagations += 1
                out.emit(self.names[j], str(literal))
                self.assign(literal)
                continue
            if self.satisfied == len(self.clauses):
                return (SAT, *self.model())
            j = self._branch()
            literal = self._open_literal(j)
            self.decisions += 1
            mark = len(self.trail)
            out.call(self.names[j], str(literal))
            self.assign(literal)
            answer = self.run()
            if answer is not None:
                out.ret(*answer)
                return answer
            out.ret(str(-literal))
            self.undo(mark)
            self.assign(-literal)


def dpll_trace(num_vars: int, clauses: Sequence[Sequence[int]]) -> Trace:
    """Run the instrumented DPLL on a formula and return its trace."""
    out = TraceWriter()
    solver = _Dpll(num_vars, clauses, out)
    out.call()
    found = solver.run()
    answer = found if found is not None else (UNSAT,)
    out.answer(*answer)
    stats = {"decisions": solver.decisions, "conflicts": solver.conflicts,
             "propagations": solver.propagations}
    return Trace(tuple(out.tokens), answer, stats)


class Sat(Task):
    name = "sat"
    version = 3
    Params = SatParams
    summary = "random k-SAT: UNSAT, or SAT with a satisfying assignment, by DPLL"
    # One size: literal tokens depend on n, and random answers draw from a task-wide alphabet.
    quickstart_sizes = ({"variables": 5}, {"variables": 8})
    benchmark_sizes = ({"variables": 5}, {"variables": 10}, {"variables": 20}, {"variables": 40})

    def sample(self, params: SatParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        want = stratum < params.target
        if params.sampling == "paired":
            return {"num_vars": params.variables, "clauses": paired_formula(params, rng, want, keep)}
        n, count = params.variables, params.clauses()
        for _ in range(MAX_DRAWS // BATCH):
            for clauses in draw_formulas(rng, n, params.width, count, BATCH):
                problem = {"num_vars": n, "clauses": clauses}
                if keep is not None and not keep(problem):  # one hash, before the label
                    continue
                if n <= ENUMERATE_UP_TO:
                    satisfiable = enumerated_verdict(n, clauses)
                else:
                    satisfiable = python_sat_verdict(clauses)
                if satisfiable == want:
                    return problem
        kind = "satisfiable" if want else "unsatisfiable"
        raise ValueError(f"sat at {params.label()}: no {kind} formula in {MAX_DRAWS} draws; "
                         "move ratio towards 4.3 or target away from 0 and 1")

    def prompt(self, params: SatParams, problem: Mapping[str, Any]) -> list[str]:
        return [*clause_tokens(problem["clauses"]), QUERY]

    def question(self, params: SatParams, problem: Mapping[str, Any]) -> str:
        clauses = clause_lines(problem["clauses"])
        n = problem["num_vars"]
        return (
            f"Here is a formula in conjunctive normal form over variables 1..{n}. Each line is a "
            "clause, satisfied when at least one of its literals is true; a literal k means "
            "variable k is true and -k means variable k is false.\n"
            f"{clauses}\n"
            "Is there an assignment that satisfies every clause? Finish with a line "
            "'Answer: UNSAT' if there is none, or 'Answer: SAT' followed by a value for every "
            "variable as signed numbers (k for true, -k for false), e.g. 'Answer: SAT 1 -2 3'."
        )

    def trace(self, params: SatParams, problem: Mapping[str, Any]) -> Trace:
        n, clauses = problem["num_vars"], problem["clauses"]
        trace = dpll_trace(n, clauses)
        # The answer is confirmed without the DPLL: a claimed model must satisfy every
        # clause, and UNSAT needs every assignment (enumerated up to ENUMERATE_UP_TO
        # variables) or python-sat to find none.
        if trace.answer[0] == SAT:
            if not satisfies(clauses, trace.answer[1:]):
                raise RuntimeError("DPLL answered SAT with an assignment that falsifies a clause")
        elif enumerated_verdict(n, clauses) if n <= ENUMERATE_UP_TO else python_sat_verdict(clauses):
            raise RuntimeError("DPLL answered UNSAT and the formula is satisfiable")
        return trace

    def parse_answer(self, params: SatParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_verdict)

    def vocabulary(self, params: SatParams) -> tuple[str, ...]:
        n = params.variables
        literals = tuple(str(lit) for v in range(1, n + 1) for lit in (v, -v))
        names = tuple(f"c{j}" for j in range(1, params.clauses() + 1))
        return (*SPECIAL_TOKENS, QUERY, SAT, UNSAT, CONFLICT, *literals, *names)


_WORD = re.compile(r"[a-z]+")
# Not part of a word or a decimal; a sentence may end right after it. Possessive: a long
# digit run is scanned once, not once per digit.
_INTEGER = re.compile(r"(?<![\w.])-?\d++(?!\w|\.\d)")


def _literals(statement: str) -> list[str]:
    """Nonzero signed literals as canonical text (no ``int()``: any length is fine); a
    ``0`` (the DIMACS terminator) is skipped."""
    found = []
    for value in _INTEGER.findall(statement):
        sign, digits = ("-", value[1:]) if value[0] == "-" else ("", value)
        digits = digits.lstrip("0")
        if digits:
            found.append(sign + digits)
    return found


def _read_verdict(statement: str) -> tuple[str, ...] | None:
    """``UNSAT`` (``unsat``, ``unsatisfiable``, ``not satisfiable``) or ``SAT`` (``sat``,
    ``satisfiable``) with its literals. Two verdicts (even the same one twice: two
    assignments), literals next to ``UNSAT``, or a variable given both values state more
    than one answer."""
    lowered = statement.lower()
    verdicts, previous = [], ""
    for word in _WORD.findall(lowered):
        if word in ("sat", "satisfiable"):
            verdicts.append(UNSAT if previous == "not" else SAT)
        elif word in ("unsat", "unsatisfiable"):
            verdicts.append(UNSAT)
        previous = word
    if len(verdicts) > 1:
        raise HedgedAnswer(f"{len(verdicts)} verdicts")
    if not verdicts:
        return None
    verdict = verdicts[0]
    literals = list(dict.fromkeys(_literals(lowered)))  # a restated literal counts once
    if verdict == UNSAT:
        if literals:
            raise HedgedAnswer("UNSAT with an assignment")
        return (UNSAT,)
    named = {literal.lstrip("-") for literal in literals}
    if len(named) < len(literals):
        raise HedgedAnswer("a variable given both values")
    return (SAT, *literals)

TASK = Sat()
