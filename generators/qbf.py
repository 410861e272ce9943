"""Random quantified Boolean formulas in prenex CNF: n variables, m = round(ratio * n)
clauses of three distinct variables, and a quantifier prefix.

Prefix styles: ``random`` gives each variable 1..n (in that order) an independent fair
quantifier, as PENCIL does (when every variable comes out universal, one of them, drawn at
random, is made existential); ``blocks`` splits 1..n into ``blocks`` contiguous blocks of
near-equal size with alternating quantifiers, the first one chosen by a coin (a single block
is existential).

Sampling avoids instances that need no search. Each clause draws three variables uniformly
until they are distinct and at least one of them is existential (a clause with no
existential variable is false under any universal choice), then a random sign for each; the
clauses have distinct variables, so none is a tautology. A formula that unit propagation with
universal reduction decides on its own (before any variable is chosen) is drawn again. The
label comes first, from the item's stratum (true when ``stratum < target``, so the shares of
any run of items are within a couple of items of ``target``), and whole formulas are drawn
until one has it; the label is computed on each candidate by an exact quantifier
elimination over bit sets of all assignments, which shares nothing with the traced search,
and every trace is checked against it. The item's split is tested last, on candidates that
passed both checks, so an item's first sample is always at home in its split.

Drawing, labelling and the propagation check run as one compiled loop that reads the
item's PCG64 stream itself: uniform numbers as ``Generator.random`` gives them, the
generator moving on in whole blocks of ``NUMBERS_PER_BLOCK`` numbers (``sample`` runs the
loop on its generator's state and writes the state back). Generation draws and solves a
chunk of items in one compiled call (``Qbf.solve_chunk``, every size): the draw, the traced
evaluation, and each item's prompt and answer ids, problem JSON and question.

Prompt: ``E 1 A 2 ... c1 l l l c2 l l l ... ?`` (``E`` exists, ``A`` for all).

Gold trace: evaluation along the prefix with early exit. For the next variable x of the
prefix, the solver writes ``-x [CALL] ... [SEP] r [RETURN]`` (x false), then, unless r
already decides (``True`` under an exists, ``False`` under a for all), ``x [CALL] ...
[SEP] r [RETURN]``; the frame's answer is the last r. The last variable of the prefix
needs no frame: once it is set, the leaf check follows it directly, ``x cJ False`` naming
the first clause the full assignment falsifies, or ``x True``. The live context holds the
prompt and at most four tokens per prefix level, so it grows linearly while the CoT grows
with the search tree.

Variables the prefix leaves out (only formulas users bring can have them) stay false, both in
the traced evaluation and in the elimination.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.compiled import kernel, room_for
from pencilbench.generators.pencil import ANSWER_ID, CALL_ID, RETURN_ID, SEP_ID, SPECIAL_TOKENS, tokens_of
from pencilbench.generators.sat import clause_lines, clause_tokens, clauses_json, put_clause_text
from pencilbench.generators.seeding import (
    SplitTest,
    Stream,
    json_bytes,
    json_int,
    json_int_rows,
    next_double,
    next_word,
    rng_state,
    set_rng_state,
    split_index,
)
from pencilbench.generators.task import Keep, Ragged, Solved, Task, TaskParams, Trace, knob

TRUE, FALSE, QUERY = "True", "False", "?"
QUANTIFIER_TOKENS = {"e": "E", "a": "A"}
WIDTH = 3
MAX_VARIABLES = 20  # truth tables hold 2^n bits
MAX_DRAWS = 5000  # formulas drawn for one label before the size is declared unworkable
NUMBERS_PER_BLOCK = 1024  # uniform numbers the generator draws at a time for the sampler

# Token ids of the vocabulary (see ``Qbf.vocabulary``): the fixed tokens, then the literals
# 1, -1, 2, -2, ..., then the clause names c1, c2, ...
_FIXED_TOKENS = (*SPECIAL_TOKENS, QUERY, TRUE, FALSE, *QUANTIFIER_TOKENS.values())
TRUE_ID, FALSE_ID = _FIXED_TOKENS.index(TRUE), _FIXED_TOKENS.index(FALSE)
FIRST_LITERAL_ID = len(_FIXED_TOKENS)

# Truth tables are bit sets over all assignments: assignment a (variable v true iff bit v-1
# of a) is bit a % 64 of word a // 64, so variables 1..6 vary inside a word and the others
# from word to word. TRUE_INSIDE[k]: the bits of a word where variable k+1 is true.
WORD_BITS = 6
TRUE_INSIDE = np.array([sum(1 << i for i in range(64) if i >> k & 1) for k in range(WORD_BITS)], dtype=np.uint64)
ALL_ONES = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class QbfParams(TaskParams):
    variables: int = knob(10, lo=3, hi=MAX_VARIABLES, help="variables n")
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

    def prefix_blocks(self) -> int:
        """Quantifier blocks of the prefix, 0 for a quantifier per variable at random."""
        return self.blocks if self.prefix == "blocks" else 0

    @classmethod
    def of(cls, problem: Mapping[str, Any]) -> QbfParams:
        """The size of a given formula (one a user brought): its quantifier blocks count as
        ``blocks``; ``ValueError`` when out of range."""
        n, prefix = problem["num_vars"], problem["prefix"]
        blocks = sum(1 for i, (kind, _) in enumerate(prefix) if i == 0 or prefix[i - 1][0] != kind)
        return cls(variables=n, ratio=len(problem["clauses"]) / max(n, 1), prefix="blocks", blocks=max(blocks, 1))


# A formula in the kernels: ``order`` holds the variables in prefix order, ``forall`` whether
# each prefix position is universal, and ``clauses`` one row of literals per clause, padded
# with zeros when the clauses differ in width.


@kernel
def _draw_formula(state: np.ndarray, blocks: int, universal: np.ndarray, clauses: np.ndarray) -> int:
    """Draw a prefix over variables 1..n in order (``universal[v - 1]``) and the clauses
    (sorted variables, random signs) into the given arrays, reading uniform numbers in
    [0, 1) from the PCG64 stream ``state`` (advanced in place); returns how many it read.

    One number gives all n coins of a random prefix (its top n bits, exactly fair) or the
    first block's coin; one number gives a clause's three variables and signs (uniform up to
    rounding at one part in 2^36); the clause is drawn again when its variables are not
    distinct or all universal.
    """
    n = universal.shape[0]
    number, read = next_double(state), 1
    if blocks == 0:
        coins = np.int64(number * (1 << n))
        for v in range(n):
            universal[v] = coins >> v & 1 == 1
        if coins == (1 << n) - 1:  # every variable universal: one of them turns existential
            universal[np.int64(next_double(state) * n)] = False
            read += 1
    else:
        first = np.int64(number * 2)
        v = 0
        for block in range(blocks):
            for _ in range(n // blocks + (block < n % blocks)):
                universal[v] = blocks > 1 and (block + first) % 2 == 1
                v += 1
    for j in range(clauses.shape[0]):
        while True:
            code = np.int64(next_double(state) * (8 * n * n * n))
            read += 1
            a, b, c, signs = code % n, code // n % n, code // (n * n) % n, code // (n * n * n)
            if a != b and b != c and a != c and not (universal[a] and universal[b] and universal[c]):
                break
        # Sorted variables; sign bit i belongs to the i-th smallest.
        a, b = min(a, b), max(a, b)
        a, c = min(a, c), max(a, c)
        b, c = min(b, c), max(b, c)
        clauses[j, 0] = (a + 1) if signs & 1 else -(a + 1)
        clauses[j, 1] = (b + 1) if signs & 2 else -(b + 1)
        clauses[j, 2] = (c + 1) if signs & 4 else -(c + 1)
    return read


def _work_arrays(params: QbfParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the draw fills: the prefix flags, the clause rows and the elimination's table."""
    n = params.variables
    return (np.zeros(n, dtype=np.bool_), np.zeros((params.clauses(), WIDTH), dtype=np.int64),
            np.empty(max(1, (1 << n) >> WORD_BITS), dtype=np.uint64))


def _candidates(params: QbfParams, rng: np.random.Generator, want: bool, checked: bool = True,
                split: int = -1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The formulas the compiled loop passes (``checked``: the truth ``want``, not decided by
    propagation, and at home in ``split`` unless it is -1; otherwise every formula drawn), at
    most ``MAX_DRAWS`` drawn in all, from one unbroken stream of ``rng``'s numbers.

    After each formula ``rng`` stands where the draw left it: past the last block of
    ``NUMBERS_PER_BLOCK`` numbers begun (see :func:`_draw_item`).
    """
    blocks = params.prefix_blocks()
    universal, clauses, table = _work_arrays(params)
    state, read, drawn = rng_state(rng), 0, 0
    while drawn < MAX_DRAWS:
        used, numbers, found = _draw_checked(state, blocks, want, checked, split, MAX_DRAWS - drawn,
                                             universal, clauses, table)
        drawn, read = drawn + used, read + numbers
        reached = state.copy()
        _finish_block(reached, read, NUMBERS_PER_BLOCK)
        set_rng_state(rng, reached)
        if not found:
            return
        yield universal.copy(), clauses.copy()


def draw_formulas(params: QbfParams, rng: np.random.Generator,
                  formulas: int) -> list[tuple[list[list[Any]], list[list[int]]]]:
    """``formulas`` (prefix, clauses) pairs as the sampler draws its candidates, before the
    label and the propagation check pass over them."""
    drawn = itertools.islice(_candidates(params, rng, want=True, checked=False), formulas)
    return [(_prefix_of(universal.tolist()), clauses.tolist()) for universal, clauses in drawn]


def _prefix_of(universal: list[bool]) -> list[list[Any]]:
    return [["a" if flag else "e", var] for var, flag in enumerate(universal, start=1)]


_PREFIX_KEY = np.frombuffer(b',"prefix":[', np.uint8)
_EXISTS, _FORALL = np.frombuffer(b'["e",', np.uint8), np.frombuffer(b'["a",', np.uint8)


@kernel
def home_index(universal: np.ndarray, clauses: np.ndarray) -> int:
    """The home split (an index into ``SPLITS``) of the problem a candidate makes, hashed
    from its canonical JSON written here, as ``home_split`` would hash it."""
    n = len(universal)
    out = np.empty(64 + 24 * clauses.size + 16 * n, np.uint8)
    at = clauses_json(out, clauses, n)
    at = json_bytes(out, at, _PREFIX_KEY)
    for v in range(n):
        if v:
            out[at] = 44  # ,
            at += 1
        at = json_bytes(out, at, _FORALL if universal[v] else _EXISTS)
        at = json_int(out, at, v + 1)
        out[at] = 93  # ]
        at += 1
    out[at] = 93
    out[at + 1] = 125  # }
    return split_index(out[: at + 2])


@kernel
def _clause_masks(clauses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clause j is false under assignment bits exactly when ``bits & care[j] ==
    falsify[j]`` (bit v-1 = variable v), unless ``never_false[j]`` (it holds x and -x)."""
    m = clauses.shape[0]
    care = np.zeros(m, dtype=np.int64)
    falsify = np.zeros(m, dtype=np.int64)
    never_false = np.zeros(m, dtype=np.bool_)
    for j in range(m):
        for literal in clauses[j]:
            if literal == 0:
                continue
            bit = np.int64(1) << (abs(literal) - 1)
            false_when_set = np.int64(bit if literal < 0 else 0)
            if care[j] & bit and falsify[j] & bit != false_when_set:
                never_false[j] = True
            care[j] |= bit
            falsify[j] |= false_when_set
    return care, falsify, never_false


@kernel
def _next_subset(subset: int, mask: int) -> int:
    """The subset of ``mask``'s bits that follows ``subset`` in increasing order; 0 after the
    last (all of ``mask``)."""
    return (subset - mask) & mask


@kernel
def _eliminated_truth(order: np.ndarray, forall: np.ndarray, care: np.ndarray, falsify: np.ndarray,
                      never_false: np.ndarray, table: np.ndarray) -> bool:
    """Truth by exact quantifier elimination over ``table`` (one bit per assignment, words
    as in ``TRUE_INSIDE``'s notes; overwritten): the satisfying set of the clauses, then the
    prefix's variables innermost first, exists an OR and for all an AND of the two halves.

    Only the words a step changes are visited: a clause's words are those whose index agrees
    with its variables 7 and up, and once a variable 7 or up is eliminated only the words
    with its index bit clear still matter (``live``).
    """
    live = table.shape[0] - 1  # word-index bits of the variables not eliminated yet
    table[:] = ALL_ONES
    for j in range(care.shape[0]):
        if never_false[j]:
            continue
        inside_false = ALL_ONES  # the bits of a word where the clause's variables 1..6 falsify it
        for k in range(WORD_BITS):
            if care[j] >> k & 1:
                inside_false &= TRUE_INSIDE[k] if falsify[j] >> k & 1 else ~TRUE_INSIDE[k]
        free, fixed = live & ~(care[j] >> WORD_BITS), falsify[j] >> WORD_BITS
        subset = 0
        while True:
            table[fixed | subset] &= ~inside_false
            subset = _next_subset(subset, free)
            if subset == 0:
                break
    for position in range(order.shape[0] - 1, -1, -1):
        k, exists = order[position] - 1, not forall[position]
        if k < WORD_BITS:  # the halves are bits 2^k apart in every word
            shift, low = np.uint64(1 << k), ~TRUE_INSIDE[k]
            w = 0
            while True:
                other = table[w] >> shift
                table[w] = (table[w] | other if exists else table[w] & other) & low
                w = _next_subset(w, live)
                if w == 0:
                    break
        else:  # the halves are whole words 2^(k-6) apart
            stride = 1 << (k - WORD_BITS)
            live &= ~stride
            w = 0
            while True:
                table[w] = table[w] | table[w | stride] if exists else table[w] & table[w | stride]
                w = _next_subset(w, live)
                if w == 0:
                    break
    return table[0] & np.uint64(1) == 1


@kernel
def truth_by_elimination(n: int, order: np.ndarray, forall: np.ndarray, clauses: np.ndarray) -> bool:
    """Truth of the formula by exact quantifier elimination over the bit set of all
    assignments; shares nothing with the traced search."""
    care, falsify, never_false = _clause_masks(clauses)
    table = np.empty(max(1, (1 << n) >> WORD_BITS), dtype=np.uint64)
    return _eliminated_truth(order, forall, care, falsify, never_false, table)


@kernel
def decided_by_propagation(n: int, order: np.ndarray, forall: np.ndarray, clauses: np.ndarray) -> bool:
    """Whether unit propagation with universal reduction decides the formula by itself (the
    prefix binds every variable)."""
    level = np.zeros(n + 1, dtype=np.int64)
    universal = np.zeros(n + 1, dtype=np.bool_)
    for position in range(order.shape[0]):
        level[order[position]] = position
        universal[order[position]] = forall[position]
    m = clauses.shape[0]
    # Only existential variables are ever set, so a clause's universal literals stay free:
    # all that matters of them is the outermost one's level (an existential literal is unit
    # when it is the clause's only free existential one and quantified before every universal).
    outermost = np.empty(m, dtype=np.int64)
    for j in range(m):
        outermost[j], existential = order.shape[0], False
        for literal in clauses[j]:
            if literal == 0:
                continue
            if universal[abs(literal)]:
                outermost[j] = min(outermost[j], level[abs(literal)])
            else:
                existential = True
        if not existential:
            return True  # false whatever the existential player does
    value = np.zeros(n + 1, dtype=np.int8)  # 1 true, -1 false, 0 not set
    units = np.empty(m, dtype=np.int64)
    while True:
        found, open_clause = 0, False
        for j in range(m):
            free, free_literal, satisfied = 0, 0, False
            for literal in clauses[j]:
                if literal == 0 or universal[abs(literal)]:
                    continue
                known = value[abs(literal)]
                if known == 0:
                    free += 1
                    free_literal = literal
                elif (known > 0) == (literal > 0):
                    satisfied = True
                    break
            if satisfied:
                continue
            open_clause = True
            if free == 0:
                return True  # false whatever the existential player does
            if free == 1 and outermost[j] > level[abs(free_literal)]:
                units[found] = free_literal
                found += 1
        if not open_clause:
            return True
        if found == 0:
            return False
        for u in range(found):
            literal = units[u]
            wanted = 1 if literal > 0 else -1
            if value[abs(literal)] == -wanted:
                return True  # two units ask for opposite values: a conflict
            value[abs(literal)] = wanted


@kernel
def _draw_checked(state: np.ndarray, blocks: int, want: bool, checked: bool, split: int, draws: int,
                  universal: np.ndarray, clauses: np.ndarray, table: np.ndarray) -> tuple[int, int, bool]:
    """Draw formulas from the stream ``state`` into ``universal`` and ``clauses`` until one
    has the truth ``want``, is not decided by propagation and has its home in ``split``
    (tested last, and not when -1; any formula when not ``checked``), at most ``draws`` of
    them; ``table`` is the elimination's work space.

    Returns the formulas drawn, the numbers read and whether the last one passed.
    """
    n = universal.shape[0]
    order = np.arange(1, n + 1)
    read = 0
    for drawn in range(draws):
        read += _draw_formula(state, blocks, universal, clauses)
        if not checked:
            return drawn + 1, read, True
        care, falsify, never_false = _clause_masks(clauses)
        if _eliminated_truth(order, universal, care, falsify, never_false, table) == want \
                and not decided_by_propagation(n, order, universal, clauses) \
                and (split < 0 or home_index(universal, clauses) == split):
            return drawn + 1, read, True
    return draws, read, False


@kernel
def _finish_block(state: np.ndarray, read: int, block: int) -> None:
    """Advance ``state`` past the rest of the block of ``block`` numbers that the last of
    ``read`` numbers came from: the sampler's generator hands out numbers a block at a time
    (as ``rng.random(block)`` would), so its state moves on in whole blocks."""
    for _ in range((block - read % block) % block):
        next_word(state)


@kernel
def _draw_item(state: np.ndarray, blocks: int, want: bool, split: int, block: int, universal: np.ndarray,
               clauses: np.ndarray, table: np.ndarray) -> bool:
    """One item's problem into ``universal`` and ``clauses``: the first formula of the
    stream ``state`` with the truth ``want``, not decided by propagation and at home in
    ``split`` (-1: any split), of at most ``MAX_DRAWS``; ``state`` ends past the last block
    of numbers begun. False when none of them passed."""
    _, read, found = _draw_checked(state, blocks, want, True, split, MAX_DRAWS, universal, clauses, table)
    _finish_block(state, read, block)
    return found


@kernel
def traced_evaluation(n: int, order: np.ndarray, forall: np.ndarray,
                      clauses: np.ndarray) -> tuple[np.ndarray, bool, int]:
    """Evaluate along the prefix with early exit, writing the trace of the module notes as
    token ids; returns the ids, the truth and the number of leaves checked.

    The recursion runs on explicit stacks: ``branch[d]`` is the value being tried at prefix
    position d, ``bits_above[d]`` the assignment of the positions before it.
    """
    care, falsify, never_false = _clause_masks(clauses)
    depth_count = order.shape[0]
    last = depth_count - 1
    branch = np.zeros(depth_count, dtype=np.int64)
    bits_above = np.zeros(depth_count, dtype=np.int64)
    ids = np.empty(4096, dtype=np.int32)
    length, leaves, depth = 0, 0, 0
    ids[length] = CALL_ID
    length += 1
    while True:
        if ids.shape[0] - length < 3 * depth_count + 8:  # room for one step and a full unwind
            ids = np.concatenate((ids, np.empty_like(ids)))
        var = order[depth]
        literal_id = FIRST_LITERAL_ID + 2 * (var - 1) + (1 - branch[depth])  # v, then -v
        ids[length] = literal_id
        length += 1
        bits = bits_above[depth] | (branch[depth] << (var - 1))
        if depth < last:
            ids[length] = CALL_ID
            length += 1
            depth += 1
            branch[depth], bits_above[depth] = 0, bits
            continue
        leaves += 1
        result = True
        for j in range(care.shape[0]):
            if not never_false[j] and bits & care[j] == falsify[j]:
                ids[length] = FIRST_LITERAL_ID + 2 * n + j
                length += 1
                result = False
                break
        verdict = TRUE_ID if result else FALSE_ID
        ids[length] = verdict
        length += 1
        while True:  # hand the result up through every frame it settles
            if branch[depth] == 0 and result != (not forall[depth]):
                branch[depth] = 1  # undecided: try the variable true
                break
            if depth == 0:  # the root frame closes with the answer
                ids[length], ids[length + 1], ids[length + 2], ids[length + 3] = SEP_ID, ANSWER_ID, verdict, RETURN_ID
                return ids[: length + 4], result, leaves
            depth -= 1
            ids[length], ids[length + 1], ids[length + 2] = SEP_ID, verdict, RETURN_ID
            length += 3


@kernel
def _well_formed(n: int, order: np.ndarray, clauses: np.ndarray) -> bool:
    """Whether the prefix names distinct variables of 1..n and every literal names one of
    1..n (or is 0, the padding of a short clause)."""
    bound = np.zeros(n + 1, dtype=np.bool_)
    for var in order:
        if not 1 <= var <= n or bound[var]:
            return False
        bound[var] = True
    for j in range(clauses.shape[0]):
        for literal in clauses[j]:
            if abs(literal) > n:
                return False
    return True


def formula_arrays(problem: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A problem's prefix order, universal flags and clause rows, as the kernels take them;
    ``ValueError`` when it names a variable outside 1..num_vars or quantifies one twice."""
    n, prefix, clauses = problem["num_vars"], problem["prefix"], problem["clauses"]
    if not 1 <= n <= MAX_VARIABLES:
        raise ValueError(f"num_vars must be in [1, {MAX_VARIABLES}], got {n}")
    if not prefix:
        raise ValueError("a QBF needs at least one quantified variable")
    order = np.array([var for _, var in prefix], dtype=np.int64)
    forall = np.array([kind == "a" for kind, _ in prefix], dtype=np.bool_)
    widths = set(map(len, clauses))
    width = max(widths, default=1)
    if len(widths) <= 1:
        literals = itertools.chain.from_iterable(clauses)
        rows = np.fromiter(literals, dtype=np.int64, count=len(clauses) * width).reshape(len(clauses), width)
    else:
        rows = np.zeros((len(clauses), width), dtype=np.int64)
        for j, clause in enumerate(clauses):
            rows[j, : len(clause)] = clause
    if not _well_formed(n, order, rows):
        raise ValueError(f"the prefix must name distinct variables, and it and the literals variables in "
                         f"[1, num_vars] = [1, {n}]")
    return order, forall, rows


# What a chunk writes for each item, as ``solve_problems`` would build it from ``sample``,
# ``prompt``, ``question`` and ``trace``: the problem's JSON text as ``json.dumps`` writes
# it, and the question from the same template ``Qbf.question`` fills.
QUERY_ID, EXISTS_ID, FORALL_ID = (_FIXED_TOKENS.index(token) for token in (QUERY, *QUANTIFIER_TOKENS.values()))
QUANTIFIER_WORDS = {"e": "exists", "a": "for all"}
QUESTION = (
    "Decide whether this quantified Boolean formula is true. Quantifiers, outermost "
    "first: {prefix}. The quantified part is the conjunction of these clauses; each "
    "clause holds when at least one of its literals is true, where k means variable k "
    "is true and -k means variable k is false:\n{clauses}\n"
    "Finish with a line 'Answer: True' or 'Answer: False'."
)


def _ascii(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("ascii"), np.uint8)


_QUESTION_START, _QUESTION_MIDDLE, _QUESTION_END = map(_ascii, re.split(r"\{prefix\}|\{clauses\}", QUESTION))
_EXISTS_WORD, _FORALL_WORD = _ascii(QUANTIFIER_WORDS["e"] + " "), _ascii(QUANTIFIER_WORDS["a"] + " ")
_PROBLEM_START, _PROBLEM_PREFIX = _ascii('{"num_vars": '), _ascii(', "prefix": [')
_PROBLEM_CLAUSES = _ascii('], "clauses": ')
_EXISTS_PAIR, _FORALL_PAIR, _PAIR_END, _NOTHING = _ascii('["e", '), _ascii('["a", '), _ascii("]"), _ascii("")


@kernel
def _write_prompt(out: np.ndarray, universal: np.ndarray, clauses: np.ndarray) -> None:
    """The prompt ``E 1 A 2 ... c1 l l l ... ?`` as token ids, into ``out`` (its length)."""
    n = universal.shape[0]
    for v in range(n):
        out[2 * v] = FORALL_ID if universal[v] else EXISTS_ID
        out[2 * v + 1] = FIRST_LITERAL_ID + 2 * v
    at = 2 * n
    for j in range(clauses.shape[0]):
        out[at] = FIRST_LITERAL_ID + 2 * n + j
        at += 1
        for literal in clauses[j]:
            out[at] = FIRST_LITERAL_ID + 2 * (abs(literal) - 1) + (literal < 0)
            at += 1
    out[at] = QUERY_ID


@kernel
def _write_prefix(out: np.ndarray, at: int, universal: np.ndarray, exists: np.ndarray, forall: np.ndarray,
                  close: np.ndarray) -> int:
    """Each variable's quantifier text (``exists`` or ``forall``), its number and ``close``,
    ", " apart, at ``out[at:]``; returns the position after them."""
    for v in range(universal.shape[0]):
        if v:
            out[at], out[at + 1] = 44, 32  # ", "
            at += 2
        at = json_bytes(out, at, forall if universal[v] else exists)
        at = json_int(out, at, v + 1)
        at = json_bytes(out, at, close)
    return at


@kernel
def _write_problem(out: np.ndarray, at: int, universal: np.ndarray, clauses: np.ndarray) -> int:
    """The problem's JSON text (``json.dumps`` of the dict ``sample`` returns) at
    ``out[at:]``; returns the position after it."""
    at = json_bytes(out, at, _PROBLEM_START)
    at = json_int(out, at, universal.shape[0])
    at = json_bytes(out, at, _PROBLEM_PREFIX)
    at = _write_prefix(out, at, universal, _EXISTS_PAIR, _FORALL_PAIR, _PAIR_END)
    at = json_bytes(out, at, _PROBLEM_CLAUSES)
    at = json_int_rows(out, at, clauses, True)
    out[at] = 125  # }
    return at + 1


@kernel
def _write_question(out: np.ndarray, at: int, universal: np.ndarray, clauses: np.ndarray) -> int:
    """The question (``QUESTION`` filled as ``Qbf.question`` fills it) at ``out[at:]``;
    returns the position after it."""
    at = json_bytes(out, at, _QUESTION_START)
    at = _write_prefix(out, at, universal, _EXISTS_WORD, _FORALL_WORD, _NOTHING)
    at = json_bytes(out, at, _QUESTION_MIDDLE)
    at = put_clause_text(out, at, clauses.ravel(), np.arange(0, clauses.size + 1, clauses.shape[1]))
    return json_bytes(out, at, _QUESTION_END)


@kernel
def _solve_items(states: np.ndarray, wants: np.ndarray, n: int, count: int, blocks: int, split: int,
                 block: int) -> tuple:
    """Draw and solve one item per row of ``states`` (its PCG64 state, as ``item_rng``
    gives it), with the truth ``wants[item]``: the draw of ``sample``, the traced evaluation,
    and the prompt, answer, problem JSON and question as ``solve_problems`` builds them.

    Returns the first item whose draw found no formula and the first whose traced truth
    differs from the elimination's (-1 when none; the run stops there), then the prompts,
    traces and answers as ragged rows of ids (values, offsets), the leaves checked, and the
    problems' and questions' ASCII texts as ragged rows of bytes.
    """
    items = states.shape[0]
    universal = np.zeros(n, dtype=np.bool_)
    clauses = np.zeros((count, WIDTH), dtype=np.int64)
    table = np.empty(max(1, (1 << n) >> WORD_BITS), dtype=np.uint64)
    order = np.arange(1, n + 1)
    prompt_length = 2 * n + (WIDTH + 1) * count + 1
    prompts = np.empty(items * prompt_length, dtype=np.int32)
    prompt_offsets = np.arange(items + 1) * prompt_length
    answers = np.empty(items, dtype=np.int32)
    answer_offsets = np.arange(items + 1)
    pencils = np.empty(items * 64 * n, dtype=np.int32)
    pencil_offsets = np.zeros(items + 1, dtype=np.int64)
    leaves = np.zeros(items, dtype=np.int64)
    # Room for any item's texts: beyond their fixed parts a variable takes at most 12 bytes
    # and a clause 18 (numbers of up to three characters), so 16 and 32 leave some to spare.
    problem_room = _PROBLEM_START.size + _PROBLEM_PREFIX.size + _PROBLEM_CLAUSES.size + 16 * n + 32 * count + 8
    question_room = _QUESTION_START.size + _QUESTION_MIDDLE.size + _QUESTION_END.size + 16 * n + 32 * count
    problems = np.empty(items * problem_room, dtype=np.uint8)
    problem_offsets = np.zeros(items + 1, dtype=np.int64)
    questions = np.empty(items * question_room, dtype=np.uint8)
    question_offsets = np.zeros(items + 1, dtype=np.int64)
    failed, wrong = -1, -1
    for item in range(items):
        state = states[item].copy()
        if not _draw_item(state, blocks, wants[item], split, block, universal, clauses, table):
            failed = item
            break
        ids, truth, checked = traced_evaluation(n, order, universal, clauses)
        if truth != wants[item]:
            wrong = item
            break
        at = pencil_offsets[item]
        pencils = room_for(pencils, at, ids.shape[0])
        pencils[at : at + ids.shape[0]] = ids
        pencil_offsets[item + 1] = at + ids.shape[0]
        leaves[item] = checked
        answers[item] = TRUE_ID if truth else FALSE_ID
        _write_prompt(prompts[item * prompt_length : (item + 1) * prompt_length], universal, clauses)
        problem_offsets[item + 1] = _write_problem(problems, problem_offsets[item], universal, clauses)
        question_offsets[item + 1] = _write_question(questions, question_offsets[item], universal, clauses)
    return (failed, wrong, prompts, prompt_offsets, pencils[: pencil_offsets[items]], pencil_offsets, answers,
            answer_offsets, leaves, problems[: problem_offsets[items]], problem_offsets,
            questions[: question_offsets[items]], question_offsets)


class Qbf(Task):
    name = "qbf"
    version = 3
    Params = QbfParams
    summary = "quantified Boolean formulas: True or False by search along the prefix"
    quickstart_sizes = ({"variables": 4}, {"variables": 6})
    benchmark_sizes = tuple({"variables": n} for n in range(3, 15))

    def sample(self, params: QbfParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        want = stratum < params.target
        universal, clauses, table = _work_arrays(params)
        state = rng_state(rng)
        found = _draw_item(state, params.prefix_blocks(), want, -1 if keep is None else keep.index,
                           NUMBERS_PER_BLOCK, universal, clauses, table)
        set_rng_state(rng, state)
        if not found:
            raise _no_formula(params, want)
        return {"num_vars": params.variables, "prefix": _prefix_of(universal.tolist()), "clauses": clauses.tolist()}

    def prompt(self, params: QbfParams, problem: Mapping[str, Any]) -> list[str]:
        tokens: list[str] = []
        for kind, var in problem["prefix"]:
            tokens += (QUANTIFIER_TOKENS[kind], str(var))
        return [*tokens, *clause_tokens(problem["clauses"]), QUERY]

    def question(self, params: QbfParams, problem: Mapping[str, Any]) -> str:
        prefix = ", ".join(f"{QUANTIFIER_WORDS[kind]} {var}" for kind, var in problem["prefix"])
        return QUESTION.format(prefix=prefix, clauses=clause_lines(problem["clauses"]))

    def trace(self, params: QbfParams, problem: Mapping[str, Any]) -> Trace:
        n = problem["num_vars"]
        order, forall, clauses = formula_arrays(problem)
        ids, truth, leaves = traced_evaluation(n, order, forall, clauses)
        if truth != truth_by_elimination(n, order, forall, clauses):
            raise _disagreement(truth)
        answer = (TRUE if truth else FALSE,)
        return Trace(tuple(tokens_of(ids, self.vocabulary(params))), answer, {"leaves": leaves}, ids=ids)

    def solve_chunk(self, params: QbfParams, stream: Stream, lo: int, hi: int) -> Solved:
        """Every size runs as one compiled call (:func:`_solve_items`): the draw is
        ``sample``'s own kernel, so the items are those of the one-at-a-time path."""
        wants = stream.strata(lo, hi) < params.target
        (failed, wrong, prompts, prompt_offsets, pencils, pencil_offsets, answers, answer_offsets, leaves,
         problems, problem_offsets, questions, question_offsets) = _solve_items(
            stream.states(lo, hi), wants, params.variables, params.clauses(), params.prefix_blocks(),
            SplitTest(stream.split).index, NUMBERS_PER_BLOCK)
        if failed >= 0:
            raise _no_formula(params, bool(wants[failed]))
        if wrong >= 0:
            raise _disagreement(not wants[wrong])
        return Solved(Ragged(problems, problem_offsets).texts(), Ragged(questions, question_offsets).texts(),
                      Ragged(prompts, prompt_offsets), Ragged(pencils, pencil_offsets),
                      Ragged(answers, answer_offsets), {"leaves": leaves})

    def parse_answer(self, params: QbfParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_verdict)

    def vocabulary(self, params: QbfParams) -> tuple[str, ...]:
        return _vocabulary(params.variables, params.clauses())


def _no_formula(params: QbfParams, want: bool) -> ValueError:
    kind = "true" if want else "false"
    return ValueError(f"qbf at {params.label()}: no {kind} formula that needs search in {MAX_DRAWS} draws; "
                      "change ratio, or move target away from 0 and 1")


def _disagreement(traced: bool) -> RuntimeError:
    return RuntimeError(f"the traced search answered {traced}, elimination gives {not traced}")


@functools.lru_cache(maxsize=64)
def _vocabulary(variables: int, clauses: int) -> tuple[str, ...]:
    """The fixed tokens, the literals 1, -1, 2, -2, ..., the clause names (the order the
    kernels' token ids follow)."""
    literals = tuple(str(lit) for v in range(1, variables + 1) for lit in (v, -v))
    names = tuple(f"c{j}" for j in range(1, clauses + 1))
    return (*_FIXED_TOKENS, *literals, *names)


_VERDICT = re.compile(r"\b(?:true|false)\b")


def _read_verdict(statement: str) -> tuple[str, ...] | None:
    verdict = single(_VERDICT.findall(statement.lower()))
    return None if verdict is None else (TRUE if verdict == "true" else FALSE,)

TASK = Qbf()
