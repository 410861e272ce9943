"""p-hop induction (Sanford, Hsu and Telgarsky 2024; Saunshi et al. 2025).

Positions are numbered 1..n. One hop from position i goes to the largest j <= i whose
predecessor holds the symbol at i: ``x[j-1] == x[i]``. Starting at the last position, the
answer is the symbol reached after p hops.

Every instance is well posed: each hop finds a match, never stays where it is, and lands on
a symbol different from the one it started from. The sampler builds the chain backwards
and fills the gaps so that no nearer match exists:

- hop k moves back by a gap g_k >= 1, geometric with mean a (the alphabet size); when the
  gaps need more than the n - 2 positions there is room for, they are a uniform composition
  into p parts of a total drawn uniformly from [p, n - 2];
- the chain starts from a uniform symbol t_0 at the last position; t_1, ..., t_p are each
  uniform among the a - 1 symbols other than the one before, except that after a hop of
  one position the next symbol is the one two back (it already sits there);
- position q_k (where hop k lands) holds t_k and its predecessor t_{k-1}; the other
  positions that hop k passes are uniform among the symbols other than t_{k-1}, and those
  before the last landing are uniform.

Each candidate costs one row of uniform numbers, and a draw builds a few candidates at once
in a compiled kernel, of which the first whose home split is the item's is kept (about one
in three is); a draw with none at home is followed by another.

The solver passes state by tail calls: the live frame ``[CALL] r i x`` holds the hops left,
the position and its symbol, and each hop replaces it by the next one, so the live context
is the prompt plus one frame. It is a kernel that writes token ids. Drawing, the split test,
the solver and the texts of a whole chunk of items run in one kernel call
(:meth:`Phop.solve_chunk`); ``sample`` runs the same compiled draw.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.compiled import kernel
from pencilbench.generators.pencil import ANSWER_ID, CALL_ID, RETURN_ID, SEP_ID, SPECIAL_TOKENS, tokens_of
from pencilbench.generators.seeding import (
    MAX_ATTEMPTS,
    SplitTest,
    Stream,
    Template,
    first_at_home,
    next_double,
    rng_state,
    set_rng_state,
    too_few_problems,
)
from pencilbench.generators.task import Keep, Ragged, Solved, Task, TaskParams, Trace, knob

SYMBOLS = tuple("abcdefghijklmnopqrstuvwxyz")
QUERY = "?"
MAX_LENGTH = 8192
NUMBERS = tuple(str(i) for i in range(MAX_LENGTH + 1))  # position and hop-count tokens
# Candidates built per draw: the split keeps about one in three, and a draw's fixed cost
# (a numpy call, a kernel call) outweighs a few more numbers at the sizes in use.
CANDIDATES = 3
# Token ids (see ``Phop.vocabulary``): the symbols, then "?", then the numbers 0, 1, 2, ...
FIRST_SYMBOL = len(SPECIAL_TOKENS)


@dataclass(frozen=True)
class PhopParams(TaskParams):
    alphabet: int = knob(4, lo=2, hi=len(SYMBOLS), help="number of distinct symbols")
    length: int = knob(256, lo=3, hi=MAX_LENGTH, help="sequence length n")
    hops: int = knob(16, lo=1, hi=256, help="hops p")

    def check(self) -> None:
        if self.hops > self.length - 2:
            raise ValueError(f"hops must be in [1, length - 2] = [1, {self.length - 2}], got {self.hops}")

    @functools.cached_property
    def split_template(self) -> Template:
        """The split part of a problem of this size as canonical JSON, its letters the
        variable bytes."""
        return Template.canonical(_problem("?" * self.length, self.hops), "?")

    @functools.cached_property
    def texts(self) -> tuple[Template, Template]:
        """A problem of this size as the record's JSON and as its question, its letters the
        variable bytes."""
        return (Template.of(json.dumps(_problem(["?"] * self.length, self.hops)), "?"),
                Template.of(_question(["\0"] * self.length, self.hops), "\0"))

    def uniforms(self) -> int:
        """Uniform numbers one candidate consumes: its gaps and their composition (hops +
        length - 2), its chain (hops + 1) and one per position (length)."""
        return 2 * self.length + 2 * self.hops - 1


class Phop(Task):
    name = "phop"
    version = 3
    Params = PhopParams
    summary = "p-hop induction: follow p induction-head hops back from the last symbol"
    quickstart_sizes = ({"length": 32, "hops": 4}, {"length": 64, "hops": 8})
    benchmark_sizes = (
        {"length": 256, "hops": 16},
        {"length": 256, "hops": 32},
        {"length": 1024, "hops": 64},
        {"length": 4096, "hops": 64},
    )

    def sample(self, params: PhopParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        # One draw of numbers for a few candidates; the first that ``keep`` accepts is the
        # problem, or the last one when none is (the dataset then asks again).
        state, template = rng_state(rng), params.split_template
        letters, _ = draw_letters(state, params.length, params.hops, params.alphabet, params.uniforms(),
                                  template.bytes, template.slots, -1 if keep is None else keep.index)
        set_rng_state(rng, state)
        return _problem(list(letters.tobytes().decode("ascii")), params.hops)

    def solve_chunk(self, params: PhopParams, stream: Stream, lo: int, hi: int) -> Solved:
        template, count = params.split_template, hi - lo
        letters, found, pencils, offsets, answers = solve_sequences(
            stream.states(lo, hi), params.length, params.hops, params.alphabet, params.uniforms(),
            template.bytes, template.slots, SplitTest(stream.split).index)
        if not found.all():
            raise too_few_problems(self.name, params.label(), stream.split)
        prompt = np.empty((count, params.length + 2), np.int32)
        prompt[:, :-2] = letters - FIRST_LETTER + FIRST_SYMBOL
        prompt[:, -2], prompt[:, -1] = _query_id(params.alphabet), _number_id(params.alphabet, params.hops)
        problem, question = params.texts
        spaced = np.zeros((count, 2 * params.length - 1), np.uint8)  # the letters one space apart
        spaced[:, ::2] = letters
        return Solved(problem.texts(letters), question.texts(spaced[:, ::2]),
                      Ragged(prompt.ravel(), np.arange(0, prompt.size + 1, prompt.shape[1], dtype=np.int64)),
                      Ragged(pencils, offsets), Ragged(answers, np.arange(count + 1, dtype=np.int64)), {})

    def split_part(self, problem: Mapping[str, Any]) -> Mapping[str, Any]:
        """The problem with its sequence as one string (symbols are single letters), which
        hashes in a fraction of the time of a list of one-letter strings."""
        return _problem("".join(problem["sequence"]), problem["hops"])

    def prompt(self, params: PhopParams, problem: Mapping[str, Any]) -> list[str]:
        return [*problem["sequence"], QUERY, str(problem["hops"])]

    def question(self, params: PhopParams, problem: Mapping[str, Any]) -> str:
        return _question(problem["sequence"], problem["hops"])

    def trace(self, params: PhopParams, problem: Mapping[str, Any]) -> Trace:
        letters = "".join(problem["sequence"])
        alphabet = SYMBOLS[: params.alphabet]
        if len(letters) != len(problem["sequence"]) or not set(letters) <= set(alphabet):
            raise ValueError(f"every symbol must be one of {' '.join(alphabet)}")
        ids, failed_hop, position = hop_trace(np.frombuffer(letters.encode("ascii"), np.uint8), problem["hops"],
                                              params.alphabet)
        if failed_hop:
            raise ValueError(f"hop {failed_hop} from position {position} finds no match")
        tokens = tokens_of(ids, self.vocabulary(params))
        return Trace(tuple(tokens), (tokens[-2],), ids=ids)

    def parse_answer(self, params: PhopParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_symbol)

    def vocabulary(self, params: PhopParams) -> tuple[str, ...]:
        numbers = NUMBERS[: max(params.length, params.hops) + 1]
        return (*SPECIAL_TOKENS, *SYMBOLS[: params.alphabet], QUERY, *numbers)


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _read_symbol(statement: str) -> tuple[str, ...] | None:
    """A symbol is a one-letter word (``c``, ``'c'``, ``C.``); every one counts as a
    candidate, inside or outside the task's alphabet."""
    symbol = single([word for word in _WORD.findall(statement.lower()) if len(word) == 1])
    return None if symbol is None else (symbol,)


def _problem(sequence: str | list[str], hops: int) -> dict[str, Any]:
    """A problem, or with the sequence as one string, its split part."""
    return {"sequence": sequence, "hops": hops}


def _question(sequence: list[str], hops: int) -> str:
    return (
        f"Here is a sequence of {len(sequence)} symbols, positions numbered from 1:\n"
        f"{' '.join(sequence)}\n"
        "One hop from position i goes to the largest position j <= i whose previous symbol "
        "(at position j-1) equals the symbol at position i. Start at the last position and "
        f"make {hops} hops. Which symbol is at the position you reach?\n"
        "Finish with a line of the form 'Answer: <symbol>'."
    )


@kernel
def _query_id(alphabet: int) -> int:
    return FIRST_SYMBOL + alphabet


@kernel
def _number_id(alphabet: int, number: int) -> int:
    return FIRST_SYMBOL + alphabet + 1 + number


@kernel
def hop_trace(letters: np.ndarray, hops: int, alphabet: int) -> tuple[np.ndarray, int, int]:
    """The gold trace of a sequence (ASCII letters) as token ids, and 0 and 0; or, when a
    hop finds no match, an empty trace, that hop's number and the position it started from."""
    ids = np.empty(9 + 6 * hops, np.int32)
    here, left = len(letters), hops
    symbol = FIRST_SYMBOL + letters[here - 1] - FIRST_LETTER
    ids[0], ids[1], ids[2], ids[3] = CALL_ID, _number_id(alphabet, left), _number_id(alphabet, here), symbol
    end = 4
    while left:
        # The largest j <= here whose predecessor (index j - 2) holds the symbol.
        k = here - 2
        while k >= 0 and FIRST_SYMBOL + letters[k] - FIRST_LETTER != symbol:
            k -= 1
        if k < 0:
            return ids[:0], hops - left + 1, here
        here, left, symbol = k + 2, left - 1, FIRST_SYMBOL + letters[k + 1] - FIRST_LETTER
        ids[end], ids[end + 1], ids[end + 2] = SEP_ID, CALL_ID, _number_id(alphabet, left)
        ids[end + 3], ids[end + 4], ids[end + 5] = _number_id(alphabet, here), symbol, RETURN_ID
        end += 6
    ids[end], ids[end + 1], ids[end + 2], ids[end + 3] = SEP_ID, ANSWER_ID, symbol, RETURN_ID
    return ids[: end + 4], 0, 0


@kernel
def draw_letters(state: np.ndarray, length: int, hops: int, alphabet: int, uniforms: int, template: np.ndarray,
                 slots: np.ndarray, split: int) -> tuple[np.ndarray, bool]:
    """One draw from a PCG64 stream (``state``, advanced): ``CANDIDATES`` sequences, one row
    of ``uniforms`` numbers each; the first whose home split is ``split`` (its split part's
    canonical JSON is ``template`` with the letters at ``slots``) and True, or the last and
    False when none is. ``split`` -1: the first, untested."""
    numbers = np.empty((CANDIDATES, uniforms))
    for candidate in range(CANDIDATES):
        for k in range(uniforms):
            numbers[candidate, k] = next_double(state)
    letters = build_sequences(numbers, length, hops, alphabet)
    if split < 0:
        return letters[0], True
    chosen = first_at_home(letters, template, slots, split)
    return letters[chosen], chosen >= 0  # -1: none at home, and the last


@kernel
def solve_sequences(states: np.ndarray, length: int, hops: int, alphabet: int, uniforms: int,
                    template: np.ndarray, slots: np.ndarray, split: int) -> tuple:
    """A chunk of items, one per PCG64 state: each draws until a candidate's home split is
    ``split`` (at most ``MAX_ATTEMPTS`` draws, as the dataset allows), and is solved. The
    letters (a row per item), whether each found a problem at home, the traces as rows of
    ids, and each answer's id."""
    count = len(states)
    letters = np.empty((count, length), np.uint8)
    found = np.zeros(count, np.bool_)
    offsets = np.zeros(count + 1, np.int64)
    answers = np.empty(count, np.int32)
    traces = np.empty(count * (9 + 6 * hops), np.int32)
    for item in range(count):
        state = states[item].copy()
        for _ in range(MAX_ATTEMPTS):
            letters[item], found[item] = draw_letters(state, length, hops, alphabet, uniforms, template, slots,
                                                      split)
            if found[item]:
                break
        ids, _, _ = hop_trace(letters[item], hops, alphabet)
        traces[offsets[item] : offsets[item] + len(ids)] = ids
        offsets[item + 1] = offsets[item] + len(ids)
        answers[item] = ids[len(ids) - 2]
    return letters, found, traces[: offsets[count]], offsets, answers


FIRST_LETTER = ord(SYMBOLS[0])


@kernel
def build_sequences(uniforms: np.ndarray, length: int, hops: int, alphabet: int) -> np.ndarray:
    """One well-posed sequence per row of ``uniforms`` (``PhopParams.uniforms()`` numbers
    each), as ASCII letters: a candidate's whole construction is one compiled pass."""
    sequences = np.empty((uniforms.shape[0], length), np.uint8)
    gaps = np.empty(hops, np.int64)
    chain = np.empty(hops + 1, np.int64)
    chain_start = length - 2 + hops
    fill_start = chain_start + hops + 1
    for row in range(uniforms.shape[0]):
        numbers = uniforms[row]
        draw_gaps(numbers[:chain_start], length, alphabet, gaps)
        draw_chain(numbers[chain_start:fill_start], gaps, alphabet, chain)
        place(numbers[fill_start:], gaps, chain, alphabet, sequences[row])
    return sequences


@kernel
def draw_gaps(numbers: np.ndarray, length: int, alphabet: int, gaps: np.ndarray) -> None:
    """Hop lengths: geometric with mean ``alphabet``, by inversion (g is the first k with
    (1 - 1/alphabet)^k below a uniform in (0, 1]; products only, so every machine draws the
    same); if they need more than ``length - 2`` positions, a uniform composition instead."""
    hops, room = len(gaps), length - 2
    stay = 1.0 - 1.0 / alphabet
    total = 0
    for k in range(hops):
        threshold = 1.0 - numbers[k]
        gap, tail = 1, stay
        while tail >= threshold and total + gap <= room:
            gap += 1
            tail *= stay
        gaps[k] = gap
        total += gap
        if total > room:
            break
    if total <= room:
        return
    # A total uniform in [hops, room], cut at hops - 1 of the points 1 .. total - 1 chosen
    # uniformly by selection sampling (each point is taken with probability needed/left).
    total = hops + int(numbers[hops] * (room - hops + 1))
    needed, previous, part = hops - 1, 0, 0
    for point in range(1, total):
        if needed == 0:
            break
        if numbers[hops + point] * (total - point) < needed:
            gaps[part] = point - previous
            previous, part, needed = point, part + 1, needed - 1
    gaps[hops - 1] = total - previous


@kernel
def draw_chain(numbers: np.ndarray, gaps: np.ndarray, alphabet: int, chain: np.ndarray) -> None:
    """Symbols met from the last position back: each differs from the one before, and after
    a one-position hop the next is the one two back, which already sits there."""
    chain[0] = int(numbers[0] * alphabet)
    for k in range(1, len(chain)):
        if k >= 2 and gaps[k - 1] == 1:
            chain[k] = chain[k - 2]
        else:
            chain[k] = (chain[k - 1] + 1 + int(numbers[k] * (alphabet - 1))) % alphabet


@kernel
def place(numbers: np.ndarray, gaps: np.ndarray, chain: np.ndarray, alphabet: int,
          sequence: np.ndarray) -> None:
    """Write the sequence (``numbers[i]`` draws position i + 1): the positions hop k passes
    avoid t_{k-1}, so no nearer match exists; then each landing q_k gets t_k and its
    predecessor t_{k-1}."""
    length = len(sequence)
    end = length
    for k in range(len(gaps)):
        start = end - gaps[k]
        avoid = chain[k]
        for position in range(start, end):  # 1-based positions q_k .. q_{k-1} - 1
            symbol = int(numbers[position - 1] * (alphabet - 1))
            sequence[position - 1] = FIRST_LETTER + symbol + (symbol >= avoid)
        end = start
    for position in range(1, end):
        sequence[position - 1] = FIRST_LETTER + int(numbers[position - 1] * alphabet)
    sequence[length - 1] = FIRST_LETTER + chain[0]
    landing = length
    for k in range(len(gaps)):
        landing -= gaps[k]
        sequence[landing - 1] = FIRST_LETTER + chain[k + 1]
        sequence[landing - 2] = FIRST_LETTER + chain[k]


TASK = Phop()
