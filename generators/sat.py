"""Random k-SAT: n variables, m = round(ratio * n) clauses of k distinct variables.

Sampling: each clause picks k distinct variables uniformly (Floyd's algorithm), sorts them,
and gives each a random sign. The randomness is the item's own stream: its 64-bit words,
drawn in blocks, each split into two 32-bit halves that become uniform integers by Lemire's
multiply-and-reject (exact, no modulo bias). The label comes first, from the item's stratum
(satisfiable when ``stratum < target``, so the shares of any run of items are within a
couple of items of ``target``). Two ways to reach it:

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

A candidate meets the split test (the dataset's ``keep``) once it has its label, so only
about three candidates per item are hashed; for independent formulas above n = 14 the split
is tested first, as a hash costs less than python-sat. A rejected candidate is passed over
for the next draw, so the first problem drawn is at home and the dataset never draws again.

Labels are decided by an exact enumeration over all assignments (bit sets of 64-bit words)
for n <= 14 and python-sat above; nothing changes a formula after its label is known. The
gold answer comes from the DPLL below and is confirmed on every trace without it: a SAT
answer's assignment must satisfy every clause, and an UNSAT answer must be confirmed by the
enumeration (n <= 14) or python-sat, so a wrong label cannot be written. python-sat runs as
one warm solver per process with an activation variable per formula. Sampling, enumeration,
the DPLL and the checks are compiled kernels (``generators.compiled``).

Where the work happens: up to n = 14 an item's whole draw (blocks of words, candidates,
labels, split tests) is one kernel, ``_enumerated_formula``, on the item's PCG64 state
(``seeding.next_word``); ``sample`` runs it on the generator's state and moves the generator
past the words it took, and ``solve_chunk`` runs it for every item of a chunk inside
``_solve_items``, which also runs the DPLL, confirms its answer and writes the problem's
JSON, the clause lines of the question and the prompt, trace and answer ids, so a chunk
costs one kernel call and a few string operations per item. Above n = 14 python-sat takes
part in drawing and confirming, and items are drawn and solved one at a time.

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

A clause that repeats a literal counts it once. The live context is the prompt, at most n
assigned literals with their reasons, and two tokens per open branch, so it grows linearly
with the formula, while the CoT keeps every failed branch.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import HedgedAnswer, one_answer
from pencilbench.generators.compiled import kernel, room_for
from pencilbench.generators.pencil import ANSWER_ID, CALL_ID, RETURN_ID, SEP_ID, SPECIAL_TOKENS, tokens_of
from pencilbench.generators.seeding import (
    SplitTest,
    Stream,
    json_bytes,
    json_int,
    json_int_rows,
    next_word,
    rng_state,
    set_rng_state,
    split_index,
)
from pencilbench.generators.task import Keep, Ragged, Solved, Task, TaskParams, Trace, knob
from pysat.solvers import Solver

SAT, UNSAT, CONFLICT, QUERY = "SAT", "UNSAT", "conflict", "?"
MAX_DRAWS = 5000  # formulas drawn for one label before the size is declared unworkable
BLOCK_FORMULAS = 12  # formulas' worth of random words drawn from the item's stream at a time
ENUMERATE_UP_TO = 14  # variables up to which labels are found by enumerating assignments
MAX_ENUMERATED = 30  # the most variables ``satisfying_words`` takes (2**30 assignments)
SAMPLINGS = ("paired", "independent")

# Token ids: the vocabulary is the special tokens, ``? SAT UNSAT conflict``, the literals
# ``1 -1 2 -2 ...`` and the clause names ``c1 c2 ...`` (see ``_vocabulary``).
QUERY_ID, SAT_ID, UNSAT_ID, CONFLICT_ID = range(len(SPECIAL_TOKENS), len(SPECIAL_TOKENS) + 4)
FIRST_LITERAL_ID = CONFLICT_ID + 1


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


@functools.lru_cache(maxsize=64)
def _vocabulary(variables: int, clauses: int) -> tuple[str, ...]:
    """Every token of formulas over ``variables`` with ``clauses`` clauses, in id order."""
    literals = tuple(str(lit) for v in range(1, variables + 1) for lit in (v, -v))
    names = tuple(f"c{j}" for j in range(1, clauses + 1))
    return (*SPECIAL_TOKENS, QUERY, SAT, UNSAT, CONFLICT, *literals, *names)


def clause_arrays(clauses: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Clauses in the form the kernels take: all literals in one int64 array, and the
    offsets where each clause starts (one more, where the last ends). The prompt, question
    and trace of a problem ask for the same clauses in turn, so the arrays of the last
    formula are kept, with a copy of its clauses to compare; callers only read them."""
    global _last_formula
    copy, flat, offsets = _last_formula
    if isinstance(clauses, list) and copy == clauses:
        return flat, offsets
    offsets = np.fromiter(itertools.accumulate(map(len, clauses), initial=0), np.int64, len(clauses) + 1)
    flat = np.fromiter(itertools.chain.from_iterable(clauses), np.int64, int(offsets[-1]))
    _last_formula = (list(map(list, clauses)), flat, offsets)
    return flat, offsets


_last_formula: tuple[list[list[int]], np.ndarray, np.ndarray] = ([], np.zeros(0, np.int64), np.zeros(1, np.int64))


@kernel
def _literal_id(literal):
    """A literal's id: ``v`` and ``-v`` follow each other, in the order of the variables."""
    return FIRST_LITERAL_ID + 2 * (abs(literal) - 1) + (literal < 0)


@kernel
def _put_clause_ids(ids, at, flat, offsets, first_name):
    """Writes the compact clauses ``c1 l l l c2 ...`` as ids at ``ids[at:]``, clause names
    counted from ``first_name``; returns the position after them."""
    count = offsets.size - 1
    for j in range(count):
        ids[at + offsets[j] + j] = first_name + j
        for p in range(offsets[j], offsets[j + 1]):
            ids[at + p + j + 1] = _literal_id(flat[p])
    return at + count + flat.size


@kernel
def _clause_ids(flat, offsets):
    """Ids of the compact clauses ``c1 l l l c2 ...`` in the vocabulary of the largest
    variable they name, and that variable."""
    variables = 0
    for literal in flat:
        if literal == 0:
            raise ValueError("a clause holds the literal 0")
        variables = max(variables, abs(literal))
    ids = np.empty(offsets.size - 1 + flat.size, np.int32)
    _put_clause_ids(ids, 0, flat, offsets, FIRST_LITERAL_ID + 2 * variables)
    return ids, variables


def clause_tokens(clauses: Sequence[Sequence[int]]) -> list[str]:
    """Compact clauses ``c1 l l l c2 ...``, numbered as the traces cite them."""
    ids, variables = _clause_ids(*clause_arrays(clauses))
    return tokens_of(ids, _vocabulary(variables, len(clauses)))


@kernel
def _text_room(clauses, literals):
    """Bytes enough for ``put_clause_text`` or ``_put_problem_json`` of a formula with
    that many clauses and literals (room for 19-digit numbers)."""
    return 48 + 24 * clauses + 23 * literals


@kernel
def _clause_text(flat, offsets):
    """``c1: l l l`` for each clause, one per line, as ASCII bytes."""
    out = np.empty(_text_room(offsets.size - 1, flat.size), np.uint8)
    return out[: put_clause_text(out, 0, flat, offsets)]


@kernel
def put_clause_text(out, at, flat, offsets):
    """Writes ``c1: l l l`` for each clause, one per line, at ``out[at:]``; returns the
    position after it."""
    count = offsets.size - 1
    for j in range(count):
        if j:
            out[at] = 10  # newline
            at += 1
        out[at] = 99  # "c"
        at = json_int(out, at + 1, j + 1)
        out[at] = 58  # ":"
        at += 1
        for p in range(offsets[j], offsets[j + 1]):
            out[at] = 32  # space
            at = json_int(out, at + 1, flat[p])
        if offsets[j] == offsets[j + 1]:
            out[at] = 32
            at += 1
    return at


_NUM_VARS_OPEN = np.frombuffer(b'{"num_vars": ', np.uint8)
_CLAUSES_OPEN = np.frombuffer(b', "clauses": ', np.uint8)


@kernel
def _put_problem_json(out, at, formula, num_vars):
    """Writes ``{"num_vars": n, "clauses": [[l, l, l], ...]}`` at ``out[at:]``, as
    ``json.dumps`` writes the problem dict; returns the position after it."""
    at = json_bytes(out, at, _NUM_VARS_OPEN)
    at = json_int(out, at, num_vars)
    at = json_bytes(out, at, _CLAUSES_OPEN)
    at = json_int_rows(out, at, formula, True)
    out[at] = 125  # }
    return at + 1


def clause_lines(clauses: Sequence[Sequence[int]]) -> str:
    """Clauses one per line for questions, numbered as in the compact prompt."""
    return _clause_text(*clause_arrays(clauses)).tobytes().decode("ascii")


# Random integers from the item's stream: kernels take a block of its 64-bit words and a
# cursor counting 32-bit halves, and return the cursor after what they used, or -1 when the
# block ran out (the caller then draws a fresh block and starts the formula again).

_LOW_HALF = np.uint64(0xFFFFFFFF)


@kernel
def _below(words, cursor, bound):
    """A uniform integer in ``[0, bound)`` from the halves at ``cursor`` on (Lemire: the
    high half of ``half * bound``, rejecting the ``2**32 % bound`` low values that would
    favour some results; the remainder is only worked out for the rare low half below
    ``bound``); ``(-1, cursor)`` when the words ran out."""
    span = np.uint64(bound)
    while cursor < 2 * words.size:
        half = (words[cursor >> 1] >> np.uint64(32 * (cursor & 1))) & _LOW_HALF
        cursor += 1
        product = half * span
        low = product & _LOW_HALF
        if low >= span or low >= (np.uint64(1 << 32) - span) % span:
            return np.int64(product >> np.uint64(32)), cursor
    return np.int64(-1), cursor


@kernel
def _draw_rows(words, cursor, variables, formula):
    """Fills each row of ``formula`` with a random clause: distinct variables chosen
    uniformly by Floyd's algorithm (one integer per literal), sorted, then each negated by
    one bit of a further integer. Returns the cursor, or -1."""
    width = formula.shape[1]
    for r in range(formula.shape[0]):
        row = formula[r]
        for i in range(width):
            top = variables - width + i  # Floyd: pick in [0, top]; a repeat takes top itself
            pick, cursor = _below(words, cursor, top + 1)
            if pick < 0:
                return -1
            repeat = False
            for p in range(i):  # no early exit: fewer mispredicted branches
                repeat |= row[p] == pick + 1
            row[i] = top + 1 if repeat else pick + 1
        for i in range(1, width):  # insertion sort
            var, p = row[i], i
            while p and row[p - 1] > var:
                row[p] = row[p - 1]
                p -= 1
            row[p] = var
        signs, cursor = _below(words, cursor, 1 << width)
        if signs < 0:
            return -1
        for i in range(width):
            row[i] *= 1 - 2 * ((signs >> i) & 1)
    return cursor


@kernel
def _draw_formula(words, cursor, variables, width, count):
    """``count`` random clauses (see ``_draw_rows``) and the cursor, or -1."""
    formula = np.empty((count, width), np.int64)
    return formula, _draw_rows(words, cursor, variables, formula)


# Enumeration: the assignments of n variables as bit sets, bit a of word w standing for
# assignment 64 w + a, in which variable v is true iff bit v - 1 of the assignment is set.

_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
# Inside one word, where each of variables 1..6 is true.
_TRUE_IN_WORD = np.array([0xAAAAAAAAAAAAAAAA, 0xCCCCCCCCCCCCCCCC, 0xF0F0F0F0F0F0F0F0,
                          0xFF00FF00FF00FF00, 0xFFFF0000FFFF0000, 0xFFFFFFFF00000000], np.uint64)


@kernel
def _true_in(var, word):
    """The assignments of word ``word`` in which variable ``var`` is true."""
    if var <= 6:
        return _TRUE_IN_WORD[var - 1]
    return _ALL if (word >> (var - 7)) & 1 else np.uint64(0)


@kernel
def _every_assignment(variables, models):
    """Sets ``models`` to all assignments of ``variables`` variables."""
    models[:] = _ALL
    if variables < 6:
        models[0] = (np.uint64(1) << np.uint64(1 << variables)) - np.uint64(1)


@kernel
def _strike(models, clause):
    """Removes the assignments that falsify ``clause`` from ``models``. Its literals over
    variables 1..6 pick bits inside each word, those over later variables pick the words
    (bits of the word index), so only the words it can falsify are visited."""
    inside = _ALL  # bits where the literals over variables 1..6 are all false
    fixed = chosen = 0  # word-index bits the later literals fix, and the values that falsify them
    for literal in clause:
        var = abs(literal)
        if var <= 6:
            true = _TRUE_IN_WORD[var - 1]
            inside &= ~true if literal > 0 else true
        else:
            bit = 1 << (var - 7)
            falsifying = bit if literal < 0 else 0
            if fixed & bit and (chosen & bit) != falsifying:
                return  # the clause holds v and -v: it is never false
            fixed |= bit
            chosen |= falsifying
    free = (models.size - 1) & ~fixed
    subset = 0
    while True:  # every word whose index has the chosen bits, whatever the free ones
        models[chosen | subset] &= ~inside
        subset = (subset - free) & free
        if subset == 0:
            return


@kernel
def _any(models):
    for word in models:
        if word:
            return True
    return False


@kernel
def _satisfied_rows(models, formula):
    """Strikes every row of ``formula`` from ``models``; returns whether a model is left."""
    for r in range(formula.shape[0]):
        _strike(models, formula[r])
    return _any(models)


@kernel
def _check_literals(flat, variables):
    """Raises ``ValueError`` for a literal that is 0 or names a variable above ``variables``."""
    for literal in flat:
        if literal == 0 or abs(literal) > variables:
            raise ValueError("a literal is 0 or names a variable above num_vars")


@kernel
def _satisfying_words(flat, offsets, variables):
    """The assignments that satisfy every clause, as words."""
    if variables > MAX_ENUMERATED:
        raise ValueError("assignments are enumerated for at most 30 variables")
    _check_literals(flat, variables)
    models = np.empty(max(1, (1 << variables) >> 6), np.uint64)
    _every_assignment(variables, models)
    for j in range(offsets.size - 1):
        _strike(models, flat[offsets[j] : offsets[j + 1]])
    return models


def satisfying_words(variables: int, clauses: Sequence[Sequence[int]]) -> np.ndarray:
    """The assignments that satisfy every clause as uint64 words: bit a of word w is
    assignment 64 w + a, in which variable v is true iff bit v - 1 is set."""
    return _satisfying_words(*clause_arrays(clauses), variables)


def enumerated_verdict(variables: int, clauses: Sequence[Sequence[int]]) -> bool:
    """Satisfiability by enumerating every assignment at once as a bit set."""
    return _any(satisfying_words(variables, clauses))


class _WarmSolver:
    """One python-sat solver per process, kept warm across formulas.

    Formula f is added with a fresh activation variable a_f in every clause, ``(c or -a_f)``,
    and decided under the assumption ``a_f``; the unit ``-a_f`` then switches it off for good.
    Clauses the solver learns from f all hold ``-a_f``, so no formula sees another's. The
    solver is rebuilt after ``RENEW`` formulas to keep its clause store small.
    """

    # Activation variables start here; formulas use variables below it (SAT sizes end at
    # 100; larger ones get a solver of their own). A solve call does work in proportion to
    # the solver's variable count, so they start just above the formulas' (from 2**20, an
    # UNSAT verdict at n = 20 took 7 ms instead of 0.1 ms).
    FIRST = 1 << 10
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


@kernel
def _satisfied_by(flat, offsets, variables, literals):
    """Whether every clause holds one of ``literals`` (those naming no variable of the
    formula hold in none)."""
    _check_literals(flat, variables)
    chosen = np.zeros(2 * variables, np.bool_)
    for literal in literals:
        if literal != 0 and abs(literal) <= variables:
            chosen[2 * (abs(literal) - 1) + (literal < 0)] = True
    for j in range(offsets.size - 1):
        held = False
        for p in range(offsets[j], offsets[j + 1]):
            literal = flat[p]
            if chosen[2 * (abs(literal) - 1) + (literal < 0)]:
                held = True
                break
        if not held:
            return False
    return True


def satisfies(variables: int, flat: np.ndarray, offsets: np.ndarray, literals: Sequence[str]) -> bool:
    """Whether the assignment ``literals`` (signed variable tokens) makes every clause of
    the formula (``clause_arrays``) true."""
    return _satisfied_by(flat, offsets, variables, _literal_values(literals))


def _literal_values(literals: Sequence[str]) -> np.ndarray:
    return np.fromiter(map(int, literals), np.int64, len(literals))


# How a DPLL answer stands when checked without the DPLL (``_answer_verdict``).
_CONFIRMED, _FALSE_MODEL, _SATISFIABLE, _UNCONFIRMED = range(4)
_WRONG_ANSWER = {_FALSE_MODEL: "DPLL answered SAT with an assignment that falsifies a clause",
                 _SATISFIABLE: "DPLL answered UNSAT and the formula is satisfiable"}
_NO_MODEL = np.zeros(0, np.int64)


@kernel
def _answer_verdict(flat, offsets, variables, claims_sat, model):
    """The DPLL's answer checked without the DPLL: a claimed model (literals) must satisfy
    every clause; UNSAT needs the enumeration of every assignment to find none, which is
    left to python-sat (``_UNCONFIRMED``) above ``ENUMERATE_UP_TO`` variables."""
    if claims_sat:
        return _CONFIRMED if _satisfied_by(flat, offsets, variables, model) else _FALSE_MODEL
    if variables > ENUMERATE_UP_TO:
        return _UNCONFIRMED
    return _SATISFIABLE if _any(_satisfying_words(flat, offsets, variables)) else _CONFIRMED


def forced_values(clauses: Sequence[Sequence[int]], wanted: Sequence[int]) -> dict[int, int] | None:
    """By python-sat: for each variable of ``wanted`` that every model of ``clauses`` gives
    the same value, that value as a literal; ``None`` when the clauses are unsatisfiable.
    Stops at the first wanted variable that is free."""
    forced: dict[int, int] = {}
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


@kernel
def _falsify_forced(models, clause):
    """When every model gives each variable of ``clause`` one value, sets the clause's
    signs to the opposite values (so it is false in every model) and returns True."""
    for i in range(clause.size):
        var = abs(clause[i])
        seen_true = seen_false = np.uint64(0)
        for w in range(models.size):
            true = _true_in(var, w)
            seen_true |= models[w] & true
            seen_false |= models[w] & ~true
        if seen_true and seen_false:
            return False
        clause[i] = -var if seen_true else var
    return True


@kernel
def _twin(words, cursor, formula, satisfiable):
    """Finishes an SR(n) pair whose last clause is false in every model of the others: the
    satisfiable twin negates one of its literals; then the clauses are shuffled (Fisher-
    Yates). Returns the cursor, or -1."""
    count, width = formula.shape
    if satisfiable:
        flip, cursor = _below(words, cursor, width)
        if flip < 0:
            return -1
        formula[count - 1, flip] = -formula[count - 1, flip]
    for i in range(count - 1, 0, -1):
        j, cursor = _below(words, cursor, i + 1)
        if j < 0:
            return -1
        for c in range(width):
            formula[i, c], formula[j, c] = formula[j, c], formula[i, c]
    return cursor


@kernel
def _small_candidate(words, cursor, variables, width, count, satisfiable, tries, paired):
    """Draws up to ``tries`` formulas (n <= 14) until one makes an SR(n) twin (module notes)
    when ``paired``, or else until one is satisfiable or not as asked. Returns the formula,
    the cursor and the formulas tried; the formula has no rows when none qualified or the
    words ran out (cursor -1)."""
    formula = np.empty((count, width), np.int64)
    models = np.empty(max(1, (1 << variables) >> 6), np.uint64)
    tried = 0
    while tried < tries:
        cursor = _draw_rows(words, cursor, variables, formula)
        if cursor < 0:
            break
        tried += 1
        _every_assignment(variables, models)
        if not paired:
            if _satisfied_rows(models, formula) == satisfiable:
                return formula, cursor, tried
        elif _satisfied_rows(models, formula[: count - 1]) and _falsify_forced(models, formula[count - 1]):
            cursor = _twin(words, cursor, formula, satisfiable)
            if cursor >= 0:
                return formula, cursor, tried
            break
    return np.empty((0, width), np.int64), cursor, tried


Candidate = tuple[np.ndarray, int, int]  # a formula (no rows: none), the cursor, formulas tried

_CLAUSES_KEY = np.frombuffer(b'{"clauses":', np.uint8)
_NUM_VARS_KEY = np.frombuffer(b',"num_vars":', np.uint8)


@kernel
def clauses_json(out: np.ndarray, clauses: np.ndarray, num_vars: int) -> int:
    """Write the start of a CNF problem's canonical JSON, ``{"clauses":[...],"num_vars":n``,
    to ``out`` (room for 48 + 24 bytes per literal); return the position after it."""
    at = json_bytes(out, 0, _CLAUSES_KEY)
    at = json_int_rows(out, at, clauses)
    at = json_bytes(out, at, _NUM_VARS_KEY)
    return json_int(out, at, num_vars)


@kernel
def home_index(clauses: np.ndarray, num_vars: int) -> int:
    """The home split (an index into ``SPLITS``) of ``{"num_vars": n, "clauses": clauses}``,
    hashed from its canonical JSON written here, as ``home_split`` would hash it."""
    out = np.empty(49 + 24 * clauses.size, np.uint8)
    at = clauses_json(out, clauses, num_vars)
    out[at] = 125  # }
    return split_index(out[: at + 1])


def _candidates(rng: np.random.Generator, width: int, count: int,
                draw: Callable[[np.ndarray, int, int], Candidate]) -> Iterator[np.ndarray]:
    """The formulas ``draw(words, cursor, tries left)`` offers until ``MAX_DRAWS`` were
    tried, for sizes above ``ENUMERATE_UP_TO`` (python-sat labels them). Words come from the
    item's stream in blocks as ``_enumerated_formula`` draws them."""
    words, cursor, left = rng.bit_generator.random_raw(_block_size(width, count)), 0, MAX_DRAWS
    while left > 0:
        start = cursor
        formula, cursor, tried = draw(words, cursor, left)
        left -= tried
        if cursor < 0:
            size = 2 * words.size if start == 0 else _block_size(width, count)
            words, cursor = rng.bit_generator.random_raw(size), 0
        elif len(formula):
            yield formula


def _block_size(width: int, count: int) -> int:
    """Words in a block: about ``BLOCK_FORMULAS`` formulas and their twins."""
    return BLOCK_FORMULAS * count * (width + 2) // 2 + 16


@kernel
def _stream_words(state, size):
    """The next ``size`` words of a PCG64 stream (``random_raw(size)``); advances ``state``."""
    words = np.empty(size, np.uint64)
    for i in range(size):
        words[i] = next_word(state)
    return words


@kernel
def _enumerated_formula(state, variables, width, count, satisfiable, paired, split, block):
    """One problem of n <= ``ENUMERATE_UP_TO`` variables drawn from the PCG64 stream at
    ``state`` (advanced past every word drawn): the first candidate of ``_small_candidate``
    whose home split is ``split`` (any when -1). Words come in blocks of ``block`` words
    (``_block_size``); a block that ran out before it gave one candidate is followed by one
    twice as large, else by a fresh block, and the formula it cut short starts again. No
    rows when ``MAX_DRAWS`` formulas gave none."""
    words, cursor, left = _stream_words(state, block), 0, MAX_DRAWS
    while left > 0:
        start = cursor
        formula, cursor, tried = _small_candidate(words, cursor, variables, width, count, satisfiable, left,
                                                  paired)
        left -= tried
        if cursor < 0:
            words, cursor = _stream_words(state, 2 * words.size if start == 0 else block), 0
        elif formula.shape[0] and (split < 0 or home_index(formula, variables) == split):
            return formula
    return np.empty((0, width), np.int64)


def _one_formula(words: np.ndarray, cursor: int, variables: int, width: int, count: int) -> Candidate:
    formula, cursor = _draw_formula(words, cursor, variables, width, count)
    return formula, cursor, int(cursor >= 0)


def _large_paired_candidate(words: np.ndarray, cursor: int, variables: int, width: int, count: int,
                            satisfiable: bool) -> Candidate:
    """One formula above n = 14, made into an SR(n) twin when python-sat finds its last
    clause's variables forced by the others (no rows when they are not)."""
    formula, cursor, tried = _one_formula(words, cursor, variables, width, count)
    if cursor < 0:
        return formula, cursor, tried
    clauses = formula.tolist()
    last = [abs(literal) for literal in clauses[-1]]
    forced = forced_values(clauses[:-1], last)
    if forced is None or len(forced) < width:
        return formula[:0], cursor, tried
    formula[-1] = [-forced[var] for var in last]  # false in every model of the head
    return formula, _twin(words, cursor, formula, satisfiable), tried


def _drawn_compiled(params: SatParams, rng: np.random.Generator, satisfiable: bool, paired: bool,
                    keep: Keep | None) -> np.ndarray:
    """``_enumerated_formula`` from the generator's stream, the generator moved past it."""
    state = rng_state(rng)
    width, count = params.width, params.clauses()
    formula = _enumerated_formula(state, params.variables, width, count, satisfiable, paired,
                                  -1 if keep is None else keep.index, _block_size(width, count))
    set_rng_state(rng, state)
    return formula


def paired_formula(params: SatParams, rng: np.random.Generator, satisfiable: bool,
                   keep: Keep | None = None) -> list[list[int]]:
    """One twin of an SR(n)-style pair (see the module notes): m random clauses whose last one
    is the first to make the formula unsatisfiable; negating one of its literals gives the
    satisfiable twin. Clause order is shuffled. A twin whose problem ``keep`` rejects is
    passed over for the next draw."""
    n, width, count = params.variables, params.width, params.clauses()
    if n <= ENUMERATE_UP_TO:
        formula = _drawn_compiled(params, rng, satisfiable, True, keep)
        if len(formula):
            return formula.tolist()
    else:
        def draw(words: np.ndarray, cursor: int, left: int) -> Candidate:
            return _large_paired_candidate(words, cursor, n, width, count, satisfiable)

        for formula in _candidates(rng, width, count, draw):
            if keep is None or home_index(formula, n) == keep.index:
                return formula.tolist()
    raise ValueError(f"sat at {params.label()}: no unsatisfiable formula whose last clause decides it in "
                     f"{MAX_DRAWS} draws; move ratio towards 4.3 or use sampling=independent")


def independent_formula(params: SatParams, rng: np.random.Generator, satisfiable: bool,
                        keep: Keep | None = None) -> list[list[int]]:
    """Random formulas until one is satisfiable or not as asked and ``keep`` takes it."""
    n, width, count = params.variables, params.width, params.clauses()
    if n <= ENUMERATE_UP_TO:  # labelled by enumeration in the kernel
        formula = _drawn_compiled(params, rng, satisfiable, False, keep)
        if len(formula):
            return formula.tolist()
    else:
        def draw(words: np.ndarray, cursor: int, left: int) -> Candidate:
            return _one_formula(words, cursor, n, width, count)

        for formula in _candidates(rng, width, count, draw):
            # The split test (one hash) costs less than python-sat: it goes first.
            if keep is not None and home_index(formula, n) != keep.index:
                continue
            clauses = formula.tolist()
            if python_sat_verdict(clauses) == satisfiable:
                return clauses
    kind = "satisfiable" if satisfiable else "unsatisfiable"
    raise ValueError(f"sat at {params.label()}: no {kind} formula in {MAX_DRAWS} draws; "
                     "move ratio towards 4.3 or target away from 0 and 1")


@kernel
def _dpll(flat, offsets, variables):
    """The DPLL of the module notes, run on the clauses ``flat[offsets[j]:offsets[j + 1]]``
    with counters per clause, written as token ids. Returns the ids, where the answer starts
    (after ``[ANSWER]``), and the decisions, conflicts and propagations."""
    _check_literals(flat, variables)
    count = offsets.size - 1
    # Each clause with its literals once, in order of first appearance.
    literals = np.empty(flat.size, np.int64)
    start = np.empty(count + 1, np.int64)
    size = np.empty(count, np.int64)
    used = 0
    for j in range(count):
        start[j] = used
        for p in range(offsets[j], offsets[j + 1]):
            repeated = False
            for q in range(start[j], used):
                repeated |= literals[q] == flat[p]
            if not repeated:
                literals[used] = flat[p]
                used += 1
        size[j] = used - start[j]
    start[count] = used
    # The clauses each literal occurs in, in increasing order, by literal slot (= id - FIRST_LITERAL_ID).
    slots = 2 * variables
    occurs_at = np.zeros(slots + 1, np.int64)
    for p in range(used):
        occurs_at[_literal_id(literals[p]) - FIRST_LITERAL_ID + 1] += 1
    for s in range(slots):
        occurs_at[s + 1] += occurs_at[s]
    occurs, fill = np.empty(used, np.int64), occurs_at[:-1].copy()
    for j in range(count):
        for p in range(start[j], start[j + 1]):
            s = _literal_id(literals[p]) - FIRST_LITERAL_ID
            occurs[fill[s]] = j
            fill[s] += 1
    first_name = FIRST_LITERAL_ID + slots

    value = np.zeros(variables + 1, np.int8)  # +1 true, -1 false, 0 open
    true, false = np.zeros(count, np.int64), np.zeros(count, np.int64)
    satisfied = 0
    trail, trail_len = np.empty(variables, np.int64), 0
    # Min-heap of clauses that may be unit or false. Between two backtracks a clause enters
    # at most twice (its false count reaching size - 1, then size) besides the first fill.
    heap, heap_len = np.empty(3 * count + 1, np.int64), 0
    for j in range(count):
        if size[j] <= 1:  # in increasing order: already a heap
            heap[heap_len] = j
            heap_len += 1
    branch_literal, branch_mark, depth = np.empty(variables, np.int64), np.empty(variables, np.int64), 0
    out = np.empty(8 * (count + variables) + 64, np.int32)
    out[0], emitted = CALL_ID, 1
    decisions = conflicts = propagations = 0
    answer_start = 0
    assign = 0  # the literal to set next, if any

    while True:
        if assign:
            value[abs(assign)] = 1 if assign > 0 else -1
            trail[trail_len] = assign
            trail_len += 1
            s = _literal_id(assign) - FIRST_LITERAL_ID
            for p in range(occurs_at[s], occurs_at[s + 1]):
                j = occurs[p]
                if not true[j]:
                    satisfied += 1
                true[j] += 1
            s ^= 1  # the opposite literal
            for p in range(occurs_at[s], occurs_at[s + 1]):
                j = occurs[p]
                false[j] += 1
                if not true[j] and false[j] >= size[j] - 1:
                    at = heap_len
                    heap_len += 1
                    while at and heap[(at - 1) >> 1] > j:  # sift up
                        heap[at] = heap[(at - 1) >> 1]
                        at = (at - 1) >> 1
                    heap[at] = j
            assign = 0

        # The lowest-numbered clause that is unit or false (stale entries dropped).
        while heap_len and (true[heap[0]] or false[heap[0]] < size[heap[0]] - 1):
            heap_len -= 1
            last, at = heap[heap_len], 0
            while 2 * at + 1 < heap_len:  # sift down
                child = 2 * at + 1
                if child + 1 < heap_len and heap[child + 1] < heap[child]:
                    child += 1
                if heap[child] >= last:
                    break
                heap[at] = heap[child]
                at = child
            heap[at] = last

        if heap_len:
            j = heap[0]
            out = room_for(out, emitted, 6)
            if false[j] == size[j]:
                conflicts += 1
                out[emitted], out[emitted + 1] = first_name + j, CONFLICT_ID
                emitted += 2
                if depth == 0:
                    out[emitted], out[emitted + 1] = SEP_ID, ANSWER_ID
                    out[emitted + 2], out[emitted + 3] = UNSAT_ID, RETURN_ID
                    answer_start, emitted = emitted + 2, emitted + 4
                    break
                depth -= 1  # the branch fails: the frame keeps its negation
                failed = branch_literal[depth]
                out[emitted], out[emitted + 1], out[emitted + 2] = SEP_ID, _literal_id(-failed), RETURN_ID
                emitted += 3
                while trail_len > branch_mark[depth]:  # undo the branch
                    trail_len -= 1
                    undone = trail[trail_len]
                    value[abs(undone)] = 0
                    s = _literal_id(undone) - FIRST_LITERAL_ID
                    for p in range(occurs_at[s], occurs_at[s + 1]):
                        true[occurs[p]] -= 1
                        if not true[occurs[p]]:
                            satisfied -= 1
                    s ^= 1
                    for p in range(occurs_at[s], occurs_at[s + 1]):
                        false[occurs[p]] -= 1
                heap_len = 0  # a branch starts with no unit or false clause
                assign = -failed
                continue
            assign = _open_literal(literals, start, value, j)
            propagations += 1
            out[emitted], out[emitted + 1] = first_name + j, _literal_id(assign)
            emitted += 2
            continue

        if satisfied == count:
            # SAT, then a value for each variable that occurs (unassigned ones true); every
            # open frame answers the same, and the root states it after [ANSWER].
            answer = np.empty(variables + 1, np.int32)
            answer[0], length = SAT_ID, 1
            for v in range(1, variables + 1):
                s = 2 * (v - 1)
                if occurs_at[s + 2] > occurs_at[s]:
                    answer[length] = _literal_id(v if value[v] >= 0 else -v)
                    length += 1
            out = room_for(out, emitted, (depth + 1) * (length + 3))
            for frame in range(depth + 1):
                out[emitted] = SEP_ID
                emitted += 1
                if frame == depth:
                    out[emitted] = ANSWER_ID
                    emitted += 1
                    answer_start = emitted
                out[emitted : emitted + length] = answer[:length]
                out[emitted + length] = RETURN_ID
                emitted += length + 1
            break

        # Branch: the open clause with the fewest open literals (lowest number first).
        j, fewest = -1, slots + 1
        for c in range(count):
            if not true[c] and size[c] - false[c] < fewest:
                j, fewest = c, size[c] - false[c]
        assign = _open_literal(literals, start, value, j)
        decisions += 1
        branch_literal[depth], branch_mark[depth] = assign, trail_len
        depth += 1
        out = room_for(out, emitted, 3)
        out[emitted], out[emitted + 1], out[emitted + 2] = CALL_ID, first_name + j, _literal_id(assign)
        emitted += 3
    return out[:emitted], answer_start, decisions, conflicts, propagations


@kernel
def _open_literal(literals, start, value, j):
    """The first literal of clause j whose variable is open."""
    for p in range(start[j], start[j + 1]):
        if not value[abs(literals[p])]:
            return literals[p]
    raise AssertionError("a unit or branching clause has no open literal")


@kernel
def _solve_items(states, satisfiable, variables, width, count, paired, split, block):
    """Items drawn (``_enumerated_formula``, n <= ``ENUMERATE_UP_TO``, blocks of ``block``
    words) from their PCG64 states (one row each) with their labels, in ``split``, and
    solved by the DPLL, its answer confirmed (``_answer_verdict``). Returns, each as one
    flat array with the offsets where item i's part starts (one more, where the last ends):
    the problems' JSON text, their clause lines, prompt, trace and answer ids; then the
    decisions, conflicts and propagations per item, and the first item that could not be
    drawn or whose answer failed its check (-1 when none; the items from it on are left
    out)."""
    items, literals = states.shape[0], count * width
    offsets = np.arange(count + 1) * width
    first_name = FIRST_LITERAL_ID + 2 * variables
    text_room = _text_room(count, literals)
    problems, problem_at = np.empty(items * text_room, np.uint8), np.zeros(items + 1, np.int64)
    lines, line_at = np.empty(items * text_room, np.uint8), np.zeros(items + 1, np.int64)
    prompts, prompt_at = np.empty(items * (count + literals + 1), np.int32), np.zeros(items + 1, np.int64)
    pencils, pencil_at = np.empty(items * 4 * (count + variables) + 64, np.int32), np.zeros(items + 1, np.int64)
    answers, answer_at = np.empty(items * (variables + 1), np.int32), np.zeros(items + 1, np.int64)
    decisions, conflicts = np.zeros(items, np.int64), np.zeros(items, np.int64)
    propagations = np.zeros(items, np.int64)
    failed = -1
    for i in range(items):
        formula = _enumerated_formula(states[i].copy(), variables, width, count, satisfiable[i], paired, split,
                                      block)
        if formula.shape[0] == 0:
            failed = i
            break
        flat = formula.reshape(literals)
        ids, answer_start, decisions[i], conflicts[i], propagations[i] = _dpll(flat, offsets, variables)
        answer = ids[answer_start : ids.size - 1]
        model = np.empty(answer.size - 1, np.int64)
        for k in range(model.size):
            slot = answer[k + 1] - FIRST_LITERAL_ID
            model[k] = -(slot // 2 + 1) if slot & 1 else slot // 2 + 1
        if _answer_verdict(flat, offsets, variables, answer[0] == SAT_ID, model) != _CONFIRMED:
            failed = i
            break
        problem_at[i + 1] = _put_problem_json(problems, problem_at[i], formula, variables)
        line_at[i + 1] = put_clause_text(lines, line_at[i], flat, offsets)
        end = _put_clause_ids(prompts, prompt_at[i], flat, offsets, first_name)
        prompts[end] = QUERY_ID
        prompt_at[i + 1] = end + 1
        pencils = room_for(pencils, pencil_at[i], ids.size)
        pencils[pencil_at[i] : pencil_at[i] + ids.size] = ids
        pencil_at[i + 1] = pencil_at[i] + ids.size
        answers[answer_at[i] : answer_at[i] + answer.size] = answer
        answer_at[i + 1] = answer_at[i] + answer.size
    done = items if failed < 0 else failed
    return (problems[: problem_at[done]], problem_at[: done + 1], lines[: line_at[done]], line_at[: done + 1],
            prompts[: prompt_at[done]], prompt_at[: done + 1], pencils[: pencil_at[done]], pencil_at[: done + 1],
            answers[: answer_at[done]], answer_at[: done + 1], decisions[:done], conflicts[:done],
            propagations[:done], failed)


def dpll_trace(num_vars: int, flat: np.ndarray, offsets: np.ndarray) -> Trace:
    """Run the instrumented DPLL on a formula (``clause_arrays``) and return its trace."""
    ids, answer_start, decisions, conflicts, propagations = _dpll(flat, offsets, num_vars)
    tokens = tokens_of(ids, _vocabulary(num_vars, len(offsets) - 1))
    stats = {"decisions": decisions, "conflicts": conflicts, "propagations": propagations}
    return Trace(tuple(tokens), tuple(tokens[answer_start:-1]), stats, ids=ids)


_QUESTION = (
    "Here is a formula in conjunctive normal form over variables 1..{n}. Each line is a "
    "clause, satisfied when at least one of its literals is true; a literal k means "
    "variable k is true and -k means variable k is false.\n"
    "{clauses}\n"
    "Is there an assignment that satisfies every clause? Finish with a line "
    "'Answer: UNSAT' if there is none, or 'Answer: SAT' followed by a value for every "
    "variable as signed numbers (k for true, -k for false), e.g. 'Answer: SAT 1 -2 3'."
)


class Sat(Task):
    name = "sat"
    version = 4
    Params = SatParams
    summary = "random k-SAT: UNSAT, or SAT with a satisfying assignment, by DPLL"
    # One size: literal tokens depend on n, and random answers draw from a task-wide alphabet.
    quickstart_sizes = ({"variables": 5}, {"variables": 8})
    benchmark_sizes = ({"variables": 5}, {"variables": 10}, {"variables": 20}, {"variables": 40})

    def sample(self, params: SatParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        want = stratum < params.target
        draw = paired_formula if params.sampling == "paired" else independent_formula
        return {"num_vars": params.variables, "clauses": draw(params, rng, want, keep)}

    def prompt(self, params: SatParams, problem: Mapping[str, Any]) -> list[str]:
        return [*clause_tokens(problem["clauses"]), QUERY]

    def question(self, params: SatParams, problem: Mapping[str, Any]) -> str:
        return _QUESTION.format(n=problem["num_vars"], clauses=clause_lines(problem["clauses"]))

    def trace(self, params: SatParams, problem: Mapping[str, Any]) -> Trace:
        n, clauses = problem["num_vars"], problem["clauses"]
        flat, offsets = clause_arrays(clauses)
        trace = dpll_trace(n, flat, offsets)
        claims_sat = trace.answer[0] == SAT
        model = _literal_values(trace.answer[1:]) if claims_sat else _NO_MODEL
        verdict = _answer_verdict(flat, offsets, n, claims_sat, model)
        if verdict == _UNCONFIRMED:
            verdict = _SATISFIABLE if python_sat_verdict(clauses) else _CONFIRMED
        if verdict != _CONFIRMED:
            raise RuntimeError(_WRONG_ANSWER[verdict])
        return trace

    def solve_chunk(self, params: SatParams, stream: Stream, lo: int, hi: int) -> Solved | None:
        """Items ``lo .. hi - 1`` drawn, solved and checked in one ``_solve_items`` call.

        ``None`` above ``ENUMERATE_UP_TO`` variables, where python-sat labels, pairs and
        confirms the formulas, and for a chunk with an item that cannot be drawn or whose
        answer fails its check: the one-at-a-time path then raises the error naming it.
        """
        n, width, count = params.variables, params.width, params.clauses()
        if n > ENUMERATE_UP_TO:
            return None
        (problems, problem_at, lines, line_at, prompts, prompt_at, pencils, pencil_at, answers, answer_at,
         decisions, conflicts, propagations, failed) = _solve_items(
            stream.states(lo, hi), stream.strata(lo, hi) < params.target, n, width, count, params.sampling == "paired",
            SplitTest(stream.split).index, _block_size(width, count))
        if failed >= 0:
            return None
        questions = [_QUESTION.format(n=n, clauses=text) for text in Ragged(lines, line_at).texts()]
        stats = {"decisions": decisions, "conflicts": conflicts, "propagations": propagations}
        return Solved(Ragged(problems, problem_at).texts(), questions, Ragged(prompts, prompt_at),
                      Ragged(pencils, pencil_at), Ragged(answers, answer_at), stats)

    def parse_answer(self, params: SatParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_verdict)

    def vocabulary(self, params: SatParams) -> tuple[str, ...]:
        return _vocabulary(params.variables, params.clauses())


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
