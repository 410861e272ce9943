"""Einstein (zebra) puzzles: N houses in a row, M attributes, one value of each per house.

**Candidates.** Every value keeps the set of houses it may still be in, a bitmask (bit
h-1 is house h). A clue narrows the sets of its one or two values; within an attribute the
values occupy distinct houses, which removes a placed value's house from the others and
places a value that is the only one left for some house.

**Sampling.** A random solution first; then random clues that are true of it, each kept
only when it narrows the candidate sets that propagating the earlier clues left, until
every set is a single house, so the solution is unique. Minimisation then drops every
clue whose absence keeps the solution unique: clue i is needed exactly when the other
clues admit a solution that violates it, which a search for a solution of the other clues
plus the negated clue decides. Clues are visited last to first so that the propagated
state of the clues before i, saved while adding them, is the search's starting point.

**Gold trace.** Rounds of propagation inside a state frame ``[CALL] <label> state <sets>``.
Each clue is a frame ``[CALL] ci kind a A b B [SEP] ci <changed sets> [RETURN]`` (A, B the
current sets, read from the latest mention), then each attribute is a frame that applies
the distinct-houses rule. A clue that every choice from the current sets satisfies, and an
attribute whose values are all placed, can change nothing: they are written as the bare
``ci`` or attribute name, which is what their frame would have left. A round that changed
something ends in a tail call to a fresh summary ``[CALL] <label> state <sets>``. A round
that changed nothing either finds every set a single house and returns the answer, or
branches: the value with fewest candidates (first in prompt order) tries its lowest house
in a child frame ``[CALL] value house``.
A child that meets an empty set returns the verdict ``value house x``; the parent then
removes that house from the value's set (a tail call to the new summary) and carries on.
A child that solves the puzzle returns the answer, which every open frame passes up; the
root frame returns it after ``[ANSWER]``.

**Answer.** For ``who owns X`` the asked value, then the grid house by house:
``h1 <values in attribute order> h2 ...``; for the grid question the grid alone.

**Statistics** (for difficulty buckets): ``search_space_log10`` is log10 of (N!)^M, the
number of grids before any clue; ``clues``; ``branches`` (child frames opened) and
``backtracks`` (children that failed) of the gold trace.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import HedgedAnswer, one_answer
from pencilbench.generators.einstein_catalogue import CATEGORIES, CATEGORY_OF, clue_sentence, display_aliases, person
from pencilbench.generators.pencil import SPECIAL_TOKENS, TraceWriter
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob

KINDS = ("same", "not_same", "left", "right", "next_to", "left_of", "right_of", "at", "not_at")
# Kinds that fix positions up to mirroring; without one of them no puzzle is ever unique.
POSITIONAL = frozenset({"left", "right", "left_of", "right_of", "at", "not_at"})
UNARY = frozenset({"at", "not_at"})
QUESTIONS = ("owner", "grid")
STATE, FAIL, QUERY, GRID = "state", "x", "?", "grid"
MAX_HOUSES = 8

# Internal clue codes: the nine kinds, then the negations minimisation searches with.
(SAME, NOT_SAME, LEFT, RIGHT, NEXT_TO, LEFT_OF, RIGHT_OF, AT, NOT_AT,
 NOT_LEFT, NOT_RIGHT, NOT_NEXT_TO, NOT_LEFT_OF, NOT_RIGHT_OF) = range(14)
CODE = {kind: code for code, kind in enumerate(KINDS)}
NEGATION = {SAME: NOT_SAME, NOT_SAME: SAME, AT: NOT_AT, NOT_AT: AT, LEFT: NOT_LEFT,
            RIGHT: NOT_RIGHT, NEXT_TO: NOT_NEXT_TO, LEFT_OF: NOT_LEFT_OF, RIGHT_OF: NOT_RIGHT_OF}

# Clue = (code, x, y, bit): x, y index values as attribute * N + position in the attribute
# (y == x for unary clues), bit is the house of an ``at``/``not_at`` clue.
Clue = tuple[int, int, int, int]


def set_token(mask: int) -> str:
    """``h135`` for houses 1, 3 and 5."""
    return "h" + "".join(str(h + 1) for h in range(MAX_HOUSES) if mask >> h & 1)


_SET_TOKENS = tuple(FAIL if mask == 0 else set_token(mask) for mask in range(1 << MAX_HOUSES))


def _single(d: int) -> bool:
    return not d & (d - 1)


def narrow(code: int, dx: int, dy: int, bit: int) -> tuple[int, int]:
    """The candidate sets of x and y after one application of a clue (arc consistent)."""
    if code == AT:
        return dx & bit, dx & bit
    if code == NOT_AT:
        return dx & ~bit, dx & ~bit
    if code == SAME:
        d = dx & dy
        return d, d
    if code == NOT_SAME:
        if _single(dy):
            dx &= ~dy
        if _single(dx):
            dy &= ~dx
        return dx, dy
    if code == LEFT:
        dx &= dy >> 1
        return dx, dy & (dx << 1)
    if code == RIGHT:
        dx &= dy << 1
        return dx, dy & (dx >> 1)
    if code == NEXT_TO:
        dx &= (dy << 1) | (dy >> 1)
        return dx, dy & ((dx << 1) | (dx >> 1))
    if code == LEFT_OF:  # x strictly left of y
        dx &= (1 << (dy.bit_length() - 1)) - 1 if dy else 0
        return dx, dy & ~(((dx & -dx) << 1) - 1)
    if code == RIGHT_OF:  # x strictly right of y
        dx &= ~(((dy & -dy) << 1) - 1)
        return dx, dy & ((1 << (dx.bit_length() - 1)) - 1 if dx else 0)
    if code == NOT_LEFT:
        if _single(dy):
            dx &= ~(dy >> 1)
        if _single(dx):
            dy &= ~(dx << 1)
        return dx, dy
    if code == NOT_RIGHT:
        if _single(dy):
            dx &= ~(dy << 1)
        if _single(dx):
            dy &= ~(dx >> 1)
        return dx, dy
    if code == NOT_NEXT_TO:
        if _single(dy):
            dx &= ~((dy << 1) | (dy >> 1))
        if _single(dx):
            dy &= ~((dx << 1) | (dx >> 1))
        return dx, dy
    if code == NOT_LEFT_OF:  # x not left of y: house(x) >= house(y)
        dx &= ~((dy & -dy) - 1)
        return dx, dy & ((1 << dx.bit_length()) - 1)
    # NOT_RIGHT_OF: house(x) <= house(y)
    dx &= (1 << dy.bit_length()) - 1
    return dx, dy & ~((dx & -dx) - 1)


def entailed(code: int, dx: int, dy: int, bit: int) -> bool:
    """Whether every choice of houses from the sets satisfies the clue: it can then never
    narrow a set or fail, since sets only shrink."""
    if code == AT:
        return dx == bit
    if code == NOT_AT:
        return not dx & bit
    if code == NOT_SAME:
        return not dx & dy
    if code == LEFT_OF:
        return dx.bit_length() < (dy & -dy).bit_length()
    if code == RIGHT_OF:
        return (dx & -dx).bit_length() > dy.bit_length()
    if code == NEXT_TO:  # y within the neighbours common to every house of x
        common = -1
        while dx:
            low = dx & -dx
            common &= (low << 1) | (low >> 1)
            dx ^= low
        return not dy & ~common
    if not (_single(dx) and _single(dy)):
        return False
    if code == SAME:
        return dx == dy
    if code == LEFT:
        return dy == dx << 1
    return dx == dy << 1  # RIGHT


def exclusive(sets: Sequence[int], full: int) -> list[int] | None:
    """One attribute's sets after the distinct-houses rule reaches its fixpoint.

    ``None`` when the attribute cannot be completed: an empty set, a house no value can
    take, two values fixed to one house, or one value that alone can take two houses.
    """
    sets = list(sets)
    while True:
        once = twice = 0
        for d in sets:
            if not d:
                return None
            twice |= once & d
            once |= d
        if once != full:
            return None
        hidden = once & ~twice  # houses that exactly one value can take
        placed = 0
        changed = False
        for i, d in enumerate(sets):
            only = d & hidden
            if only:
                if only & (only - 1):
                    return None
                if d != only:
                    sets[i] = d = only
                    changed = True
            if _single(d):
                if placed & d:
                    return None
                placed |= d
        for i, d in enumerate(sets):
            if d & (d - 1) and d & placed:
                d &= ~placed
                if not d:
                    return None
                sets[i] = d
                changed = True
        if not changed:
            return sets


class Propagator:
    """Narrows candidate sets to the fixpoint of a clue list and the distinct-houses rule.

    A work list revisits only the clues whose values changed and the attributes that
    changed, so adding a clue to an already propagated state is cheap.
    """

    __slots__ = ("clues", "n", "m", "full", "watch")

    def __init__(self, clues: Sequence[Clue], n: int, m: int) -> None:
        self.clues: list[Clue] = []
        self.n, self.m, self.full = n, m, (1 << n) - 1
        self.watch: list[list[int]] = [[] for _ in range(n * m)]
        for clue in clues:
            self.add(clue)

    def add(self, clue: Clue) -> int:
        """Append a clue; its index."""
        i = len(self.clues)
        self.clues.append(clue)
        self.watch[clue[1]].append(i)
        if clue[2] != clue[1]:
            self.watch[clue[2]].append(i)
        return i

    def run(self, sets: list[int], start: Sequence[int] = (), moved: Sequence[int] = ()) -> bool:
        """Propagate in place from clues ``start`` and changed values ``moved``; ``False`` on
        a contradiction. ``sets`` must already be a fixpoint for everything else."""
        clues, watch, n, full = self.clues, self.watch, self.n, self.full
        apply, settle = narrow, exclusive  # local names: this loop is the sampler's hot path
        queued = [False] * len(clues)
        pending: list[int] = []
        dirty = [False] * self.m
        for i in start:
            if not queued[i]:
                queued[i] = True
                pending.append(i)
        for v in moved:
            dirty[v // n] = True
            for i in watch[v]:
                if not queued[i]:
                    queued[i] = True
                    pending.append(i)
        while True:
            while pending:
                i = pending.pop()
                queued[i] = False
                code, x, y, bit = clues[i]
                dx, dy = sets[x], sets[y]
                nx, ny = apply(code, dx, dy, bit)
                if nx != dx:
                    if not nx:
                        return False
                    sets[x] = nx
                    dirty[x // n] = True
                    for j in watch[x]:
                        if not queued[j]:
                            queued[j] = True
                            pending.append(j)
                if ny != dy and y != x:
                    if not ny:
                        return False
                    sets[y] = ny
                    dirty[y // n] = True
                    for j in watch[y]:
                        if not queued[j]:
                            queued[j] = True
                            pending.append(j)
            for a in range(self.m):
                if not dirty[a]:
                    continue
                dirty[a] = False
                lo = a * n
                group = sets[lo : lo + n]
                new = settle(group, full)
                if new is None:
                    return False
                if new != group:
                    sets[lo : lo + n] = new
                    for v in range(lo, lo + n):
                        if new[v - lo] != group[v - lo]:
                            for j in watch[v]:
                                if not queued[j]:
                                    queued[j] = True
                                    pending.append(j)
            if not pending:
                return True

    def has_solution(self, sets: list[int], start: Sequence[int] = (), moved: Sequence[int] = ()) -> bool:
        """Whether the clues admit a solution within ``sets`` (which this narrows)."""
        if not self.run(sets, start, moved):
            return False
        best, fewest = -1, self.n + 1
        for i, d in enumerate(sets):
            if d & (d - 1):
                count = d.bit_count()
                if count < fewest:
                    best, fewest = i, count
        if best < 0:
            return True
        d = sets[best]
        while d:
            low = d & -d
            d ^= low
            trial = sets[:]
            trial[best] = low
            if self.has_solution(trial, (), (best,)):
                return True
        return False


@dataclass(frozen=True)
class EinsteinParams(TaskParams):
    houses: int = knob(5, lo=2, hi=MAX_HOUSES, help="houses N")
    attributes: int = knob(5, lo=2, hi=MAX_HOUSES, help="attributes M (from a catalogue of ten categories)")
    kinds: str = knob("all", help=f"comma-separated clue kinds from {','.join(KINDS)}, or all")
    minimise: bool = knob(True, choices=(True, False), help="drop every clue the others make redundant")
    question: str = knob("owner", choices=QUESTIONS, help="owner: who owns X; grid: the full grid")

    def check(self) -> None:
        chosen = self.kind_list()
        unknown = [kind for kind in chosen if kind not in KINDS]
        if unknown or not chosen:
            raise ValueError(f"kinds must be 'all' or a comma-separated subset of {','.join(KINDS)}, "
                             f"got {self.kinds!r}")
        if not POSITIONAL & set(chosen):
            raise ValueError("kinds must include one of " + ", ".join(sorted(POSITIONAL))
                             + f" (the others never pin a unique solution), got {self.kinds!r}")

    def kind_list(self) -> tuple[str, ...]:
        if self.kinds == "all":
            return KINDS
        return tuple(dict.fromkeys(kind.strip() for kind in self.kinds.split(",") if kind.strip()))

    def max_clues(self) -> int:
        """Every kept clue shrinks the candidate sets, which hold N * M * (N - 1) spare houses."""
        return self.houses * self.attributes * (self.houses - 1)


def _random_clue(r: random.Random, code: int, grid: list[list[int]], n: int, m: int) -> Clue:
    """A clue of kind ``code`` true of the solution; ``grid[a][h]`` is the value index of
    attribute a in house h."""
    if code == AT or code == NOT_AT:
        a, h = r.randrange(m), r.randrange(n)
        x = grid[a][h]
        if code == NOT_AT:
            h = (h + 1 + r.randrange(n - 1)) % n
        return code, x, x, 1 << h
    if code == SAME or code == NOT_SAME:
        a = r.randrange(m)
        b = r.randrange(m - 1)
        b += b >= a
        h = r.randrange(n)
        k = h
        if code == NOT_SAME:
            k = (h + 1 + r.randrange(n - 1)) % n
        return code, grid[a][h], grid[b][k], 0
    a, b = r.randrange(m), r.randrange(m)
    if code == LEFT_OF or code == RIGHT_OF:
        h = r.randrange(n)
        k = r.randrange(n - 1)
        k += k >= h
        low, high = min(h, k), max(h, k)
    else:
        low = r.randrange(n - 1)
        high = low + 1
        if code == NEXT_TO and r.randrange(2):
            low, high = high, low
    if code in (RIGHT, RIGHT_OF):
        low, high = high, low
    return code, grid[a][low], grid[b][high], 0


class Einstein(Task):
    name = "einstein"
    version = 3
    Params = EinsteinParams
    summary = "zebra puzzle: N houses x M attributes, clues of nine kinds, unique solution"
    quickstart_sizes = ({"houses": 3, "attributes": 3}, {"houses": 4, "attributes": 4})
    benchmark_sizes = tuple({"houses": n, "attributes": n} for n in (3, 4, 5, 6, 7))

    def sample(self, params: EinsteinParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        # A stdlib generator seeded from the item's stream: same bytes, far cheaper draws.
        r = random.Random(int(rng.integers(2**63)))
        n, m = params.houses, params.attributes
        while True:  # the split part first: the clue search is the costly work
            names = sorted(r.sample(list(CATEGORIES), m), key=list(CATEGORIES).index)
            values = {name: sorted(r.sample(CATEGORIES[name], n), key=CATEGORIES[name].index) for name in names}
            # grid[a][h]: index (a * n + position) of the value of attribute a in house h
            grid = [[a * n + i for i in r.sample(range(n), n)] for a in range(m)]
            flat = [value for name in names for value in values[name]]
            question: dict[str, Any] = {"ask": GRID}
            if params.question == "owner":
                ask, given = r.sample(names, 2)
                question = {"ask": ask, "given": [given, r.choice(values[given])]}
            part = {"houses": n, "attributes": values, "question": question,
                    "solution": {name: [flat[grid[a][h]] for h in range(n)] for a, name in enumerate(names)}}
            if keep is None or keep(part):
                break
        clues = self._clues(params, r, grid)
        r.shuffle(clues)
        return {
            "houses": n,
            "attributes": values,
            "clues": [_clue_object(code, flat[x], flat[y], bit) for code, x, y, bit in clues],
            "question": question,
            "solution": part["solution"],
        }

    def split_part(self, problem: Mapping[str, Any]) -> Mapping[str, Any]:
        """Everything but the clues: the puzzle's solution and question decide its split, so
        a draw is kept or thrown away before its clues are searched, and no solution with
        its question appears in two splits, whatever the clues."""
        return {name: problem[name] for name in ("houses", "attributes", "question", "solution")}

    def _clues(self, params: EinsteinParams, r: random.Random, grid: list[list[int]]) -> list[Clue]:
        n, m = params.houses, params.attributes
        codes = [CODE[kind] for kind in params.kind_list()]
        sets = [(1 << n) - 1] * (n * m)
        adding = Propagator((), n, m)
        clues = adding.clues
        before: list[list[int]] = []  # before[i]: propagated sets of clues[:i]
        misses, patience = 0, 50 * n * n * m * m
        while any(d & (d - 1) for d in sets):
            clue = _random_clue(r, codes[r.randrange(len(codes))], grid, n, m)
            code, x, y, bit = clue
            if narrow(code, sets[x], sets[y], bit) == (sets[x], sets[y]):
                misses += 1
                if misses > patience:  # pragma: no cover - the positional kinds always progress
                    raise RuntimeError(f"no progress with clue kinds {params.kinds!r}")
                continue
            misses = 0
            before.append(sets)
            sets = sets[:]
            adding.run(sets, (adding.add(clue),))
        if not params.minimise:
            return clues
        needed: list[Clue] = []  # clues after i that minimisation kept, last first
        for i in range(len(clues) - 1, -1, -1):
            code, x, y, bit = clues[i]
            others = [(NEGATION[code], x, y, bit), *needed, *clues[:i]]
            if Propagator(others, n, m).has_solution(before[i][:], range(len(needed) + 1)):
                needed.append(clues[i])
        needed.reverse()
        return needed

    def prompt(self, params: EinsteinParams, problem: Mapping[str, Any]) -> list[str]:
        tokens: list[str] = []
        for name, values in problem["attributes"].items():
            tokens.append(name)
            tokens.extend(values)
        for i, clue in enumerate(problem["clues"], start=1):
            tokens.extend((f"c{i}", clue["kind"], clue["a"][1]))
            tokens.append(f"h{clue['house']}" if clue["kind"] in UNARY else clue["b"][1])
        question = problem["question"]
        tokens.append(QUERY)
        if question["ask"] == GRID:
            tokens.append(GRID)
        else:
            tokens.extend((question["ask"], question["given"][1]))
        return tokens

    def question(self, params: EinsteinParams, problem: Mapping[str, Any]) -> str:
        n = problem["houses"]
        names = list(problem["attributes"])
        lines = [
            f"There are {n} houses in a row, numbered 1 to {n} from left to right. One person lives "
            "in each house. Each person has exactly one value of each attribute below, and no two "
            "people share a value:",
        ]
        lines += [f"- {name}: {', '.join(values)}" for name, values in problem["attributes"].items()]
        lines.append("Clues:")
        lines += [f"{i}. {clue_sentence(c['kind'], c['a'][1], c['b'][1] if c['b'] else None, c['house'])}"
                  for i, c in enumerate(problem["clues"], start=1)]
        houses = "; ".join(f"house {h}: <{'> <'.join(names)}>" for h in range(1, n + 1))
        question = problem["question"]
        if question["ask"] == GRID:
            lines.append("Question: which values belong to each house?")
            form = f"Answer: {houses}"
        else:
            ask, given = question["ask"], question["given"][1]
            lines.append(f"Question: which {ask.lower()} belongs to {person(given)}?")
            form = f"Answer: <{ask.lower()}>; {houses}"
        first = "the asked value first, then " if question["ask"] != GRID else ""
        lines.append(
            f"Finish with a single line of the form\n{form}\ngiving {first}every house in order with "
            f"its values in the order {', '.join(names)}, using the value words exactly as listed above."
        )
        return "\n".join(lines)

    def trace(self, params: EinsteinParams, problem: Mapping[str, Any]) -> Trace:
        return _Solver(problem).run()

    def parse_answer(self, params: EinsteinParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        n = problem["houses"]
        known = {value for values in problem["attributes"].values() for value in values}
        who = problem["question"]["ask"] != GRID
        size = int(who) + n * (1 + len(problem["attributes"]))
        aliases = display_aliases()

        def read(statement: str) -> tuple[str, ...] | None:
            """Value words and house numbers in order. More tokens than an answer holds, or a
            house or value named twice (beyond the asked value's own house), is a hedge."""
            tokens = []
            for word in _ANSWER_WORD.findall(statement.lower()):
                if word[0].isdigit():
                    digits = word.lstrip("0")  # compared as text: a number may be any length
                    if digits and len(digits) <= len(str(n)) and int(digits) <= n:
                        tokens.append(f"h{digits}")
                    continue
                word = aliases.get(word, word)
                if word in known:
                    tokens.append(word)
            if len(tokens) > size or len(tokens) - len(set(tokens)) > int(who):
                raise HedgedAnswer("more than one grid")
            return tuple(tokens) or None

        return one_answer(text, read)

    def vocabulary(self, params: EinsteinParams) -> tuple[str, ...]:
        sets = tuple(_SET_TOKENS[mask] for mask in range(1, 1 << params.houses))
        clue_ids = tuple(f"c{i}" for i in range(1, params.max_clues() + 1))
        values = tuple(value for values in CATEGORIES.values() for value in values)
        return (*SPECIAL_TOKENS, STATE, FAIL, QUERY, GRID, *KINDS, *CATEGORIES, *values, *sets, *clue_ids)


_ANSWER_WORD = re.compile(r"[a-z]+|\d+")


def _clue_object(code: int, a: str, b: str, bit: int) -> dict[str, Any]:
    kind = KINDS[code]
    unary = kind in UNARY
    return {"kind": kind, "a": [CATEGORY_OF[a], a], "b": None if unary else [CATEGORY_OF[b], b],
            "house": bit.bit_length() if unary else None}


class _Solver:
    """The instrumented propagation-and-branching solver that writes the gold trace."""

    def __init__(self, problem: Mapping[str, Any]) -> None:
        self.n = n = problem["houses"]
        self.names = list(problem["attributes"])
        self.values = [value for values in problem["attributes"].values() for value in values]
        index = {value: i for i, value in enumerate(self.values)}
        self.full = (1 << n) - 1
        self.clues: list[tuple[Clue, tuple[str, ...]]] = []
        for i, clue in enumerate(problem["clues"], start=1):
            code, a = CODE[clue["kind"]], clue["a"][1]
            if clue["kind"] in UNARY:
                x, bit = index[a], 1 << (clue["house"] - 1)
                self.clues.append(((code, x, x, bit), (f"c{i}", clue["kind"], a)))
            else:
                self.clues.append(((code, index[a], index[clue["b"][1]], 0), (f"c{i}", clue["kind"], a)))
        self.question = problem["question"]
        self.out = TraceWriter()
        self.branches = self.backtracks = 0

    def run(self) -> Trace:
        sets = [self.full] * len(self.values)
        self.out.call(*self._state((), sets))
        solved = self._solve((), sets)
        if solved is None:
            raise ValueError("the puzzle has no solution")
        answer = self._answer(solved)
        n, m = self.n, len(self.names)
        stats = {
            "search_space_log10": round(m * math.log10(math.factorial(n)), 4),
            "clues": len(self.clues),
            "branches": self.branches,
            "backtracks": self.backtracks,
        }
        return Trace(tuple(self.out.tokens), answer, stats)

    def _state(self, label: tuple[str, ...], sets: Sequence[int]) -> list[str]:
        tokens = [*label, STATE]
        n = self.n
        for a, name in enumerate(self.names):
            tokens.append(name)
            for i in range(a * n, a * n + n):
                tokens.append(self.values[i])
                tokens.append(_SET_TOKENS[sets[i]])
        return tokens

    def _solve(self, label: tuple[str, ...], sets: list[int]) -> list[int] | None:
        """Run rounds in the open frame labelled ``label``; close it with the answer or a verdict."""
        out, values, n = self.out, self.values, self.n
        solved_by = out.ret if label else out.answer  # the root frame states the final answer
        while True:
            changed = False
            for (code, x, y, bit), head in self.clues:
                dx, dy = sets[x], sets[y]
                if entailed(code, dx, dy, bit):
                    out.emit(head[0])
                    continue
                if code in (AT, NOT_AT):
                    out.call(*head, _SET_TOKENS[dx], _SET_TOKENS[bit])
                else:
                    out.call(*head, _SET_TOKENS[dx], values[y], _SET_TOKENS[dy])
                nx, ny = narrow(code, dx, dy, bit)
                if not nx or not ny:
                    out.ret(head[0], FAIL)
                    out.ret(*label, FAIL)
                    return None
                delta = [head[0]]
                if nx != dx:
                    sets[x] = nx
                    delta += (values[x], _SET_TOKENS[nx])
                if ny != dy and y != x:
                    sets[y] = ny
                    delta += (values[y], _SET_TOKENS[ny])
                changed |= len(delta) > 1
                out.ret(*delta)
            for a, name in enumerate(self.names):
                lo = a * n
                group = sets[lo : lo + n]
                if all(_single(d) for d in group) and sum(group) == self.full:  # all placed, apart
                    out.emit(name)
                    continue
                work = [name]
                for i, d in enumerate(group):
                    work += (values[lo + i], _SET_TOKENS[d])
                out.call(*work)
                new = exclusive(group, self.full)
                if new is None:
                    out.ret(name, FAIL)
                    out.ret(*label, FAIL)
                    return None
                delta = [name]
                for i, (old, d) in enumerate(zip(group, new, strict=True)):
                    if old != d:
                        delta += (values[lo + i], _SET_TOKENS[d])
                sets[lo : lo + n] = new
                changed |= len(delta) > 1
                out.ret(*delta)
            if changed:
                out.tail(*self._state(label, sets))
                continue
            best, fewest = -1, n + 1
            for i, d in enumerate(sets):
                if d & (d - 1) and d.bit_count() < fewest:
                    best, fewest = i, d.bit_count()
            if best < 0:
                solved_by(*self._answer(sets))
                return sets
            low = sets[best] & -sets[best]
            guess = (values[best], _SET_TOKENS[low])
            trial = sets[:]
            trial[best] = low
            self.branches += 1
            out.call(*guess)
            solved = self._solve(guess, trial)
            if solved is not None:
                solved_by(*self._answer(solved))
                return solved
            self.backtracks += 1
            sets[best] &= ~low
            out.tail(*self._state(label, sets))

    def _answer(self, sets: Sequence[int]) -> tuple[str, ...]:
        n = self.n
        house_of = {value: sets[i].bit_length() for i, value in enumerate(self.values)}
        grid: list[str] = []
        for h in range(1, n + 1):
            grid.append(f"h{h}")
            for a in range(len(self.names)):
                grid.extend(v for v in self.values[a * n : a * n + n] if house_of[v] == h)
        if self.question["ask"] == GRID:
            return tuple(grid)
        ask = self.names.index(self.question["ask"])
        home = house_of[self.question["given"][1]]
        asked = next(v for v in self.values[ask * n : ask * n + n] if house_of[v] == home)
        return (asked, *grid)


TASK = Einstein()
