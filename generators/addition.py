"""Multi-operand addition: k operands of d decimal digits.

The gold solver adds column by column from the least significant digit. Within a column it
keeps a running total in a frame ``[CALL] @j #i total`` (column j, operand i next), writes
``+ digit`` for operand i, and replaces the frame by a tail call with the new total, so the
live context never holds more than one operand's work. A finished column leaves its digit
and opens the next column with the carry (carries have several digits when many operands
are added). A last frame turns the digits, written least significant first, into the
answer. The solver is a compiled kernel that writes the trace as token ids.

Every digit of every operand is uniform and independent (leading zeros allowed). One draw
of uniform numbers makes a few candidate problems at once, of which the first whose home
split is the item's is kept (about one in three is); a draw with none at home is followed by
another. Drawing, the split test, the solver and the texts of a whole chunk of items run in
one kernel call (:meth:`Addition.solve_chunk`); ``sample`` runs the same compiled draw.
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

DIGITS = tuple("0123456789")
# Ids of the vocabulary's tokens (see ``Addition.vocabulary``): digits, "+" and "=", then the
# column tokens @0, @1, ... and the operand tokens #1, #2, ...
FIRST_DIGIT = len(SPECIAL_TOKENS)
PLUS = FIRST_DIGIT + len(DIGITS)
FIRST_COLUMN = PLUS + 2
# Candidate problems per draw: the split keeps about one in three, and a draw's fixed cost
# (a numpy call, a kernel call) outweighs a few more digits at the sizes in use.
CANDIDATES = 6


@dataclass(frozen=True)
class AdditionParams(TaskParams):
    operands: int = knob(2, lo=2, hi=128, help="how many numbers are added (k)")
    digits: int = knob(10, lo=1, hi=256, help="digits per operand (d), leading zeros allowed")

    def columns(self) -> int:
        """Columns the solver may visit: enough for the largest possible sum."""
        return self.digits + len(str(self.operands))

    @functools.cached_property
    def tokens(self) -> tuple[str, ...]:
        """The vocabulary of this size, built once (every trace turns ids into these)."""
        columns = tuple(f"@{j}" for j in range(self.columns() + 1))
        operands = tuple(f"#{i}" for i in range(1, self.operands + 2))
        return (*SPECIAL_TOKENS, *DIGITS, "+", "=", *columns, *operands)

    @functools.cached_property
    def split_template(self) -> Template:
        """A problem of this size as canonical JSON, its digits the variable bytes."""
        return Template.canonical(_problem(["0" * self.digits] * self.operands), "0")

    @functools.cached_property
    def texts(self) -> tuple[Template, Template]:
        """A problem of this size as the record's JSON and as its question, its digits the
        variable bytes."""
        return (Template.of(json.dumps(_problem(["?" * self.digits] * self.operands)), "?"),
                Template.of(_question(["\0" * self.digits] * self.operands), "\0"))


def _problem(operands: list[str]) -> dict[str, Any]:
    return {"operands": operands}


def _question(operands: list[str]) -> str:
    numbers = "\n".join(operands)
    return (
        f"Add the following {len(operands)} numbers (leading zeros are allowed "
        f"and do not change a value):\n{numbers}\n"
        "Finish with a line of the form 'Answer: <sum>' giving the sum in decimal digits."
    )


class Addition(Task):
    name = "addition"
    version = 4
    Params = AdditionParams
    summary = "sum of k operands of d digits, column by column with carries"
    quickstart_sizes = ({"operands": 2, "digits": 5}, {"operands": 8, "digits": 3})
    benchmark_sizes = (
        {"operands": 2, "digits": 10},
        {"operands": 8, "digits": 3},
        {"operands": 32, "digits": 3},
        {"operands": 64, "digits": 10},
        {"operands": 2, "digits": 200},
    )

    def sample(self, params: AdditionParams, rng: np.random.Generator, stratum: float,
               keep: Keep | None = None) -> dict[str, Any]:
        # One draw of digits for a few candidates; the first that ``keep`` accepts is the
        # problem, or the last one when none is (the dataset then asks again).
        state, template = rng_state(rng), params.split_template
        digits, _ = draw_digits(state, params.operands * params.digits, template.bytes, template.slots,
                                -1 if keep is None else keep.index)
        set_rng_state(rng, state)
        text, d = digits.tobytes().decode("ascii"), params.digits
        return _problem([text[i : i + d] for i in range(0, len(text), d)])

    def solve_chunk(self, params: AdditionParams, stream: Stream, lo: int, hi: int) -> Solved:
        template = params.split_template
        digits, found, pencils, pencil_offsets, answers, answer_offsets = solve_digits(
            stream.states(lo, hi), params.operands, params.digits, params.columns(), template.bytes,
            template.slots, SplitTest(stream.split).index)
        if not found.all():
            raise too_few_problems(self.name, params.label(), stream.split)
        problem, question = params.texts
        count = hi - lo
        prompt = np.empty((count, params.operands * (params.digits + 1)), np.int32)
        prompt.reshape(count, params.operands, params.digits + 1)[:, :, :-1] = (
            digits.reshape(count, params.operands, params.digits) - ord("0") + FIRST_DIGIT)
        prompt.reshape(count, params.operands, params.digits + 1)[:, :, -1] = PLUS
        prompt[:, -1] = PLUS + 1  # "="
        return Solved(problem.texts(digits), question.texts(digits),
                      Ragged(prompt.ravel(), np.arange(0, prompt.size + 1, prompt.shape[1], dtype=np.int64)),
                      Ragged(pencils, pencil_offsets), Ragged(answers, answer_offsets), {})

    def prompt(self, params: AdditionParams, problem: Mapping[str, Any]) -> list[str]:
        tokens: list[str] = []
        for i, operand in enumerate(problem["operands"]):
            if i:
                tokens.append("+")
            tokens.extend(operand)
        tokens.append("=")
        return tokens

    def question(self, params: AdditionParams, problem: Mapping[str, Any]) -> str:
        return _question(problem["operands"])

    def trace(self, params: AdditionParams, problem: Mapping[str, Any]) -> Trace:
        operands = problem["operands"]
        if len(operands) != params.operands or any(len(operand) != params.digits for operand in operands):
            raise ValueError(f"a problem of this size has {params.operands} operands of {params.digits} digits")
        digits = "".join(operands).encode()
        if not digits.isdigit():
            raise ValueError("operands must be decimal digits")
        ids, answer_start = column_trace(np.frombuffer(digits, np.uint8), params.operands, params.columns())
        tokens = tokens_of(ids, params.tokens)
        return Trace(tuple(tokens), tuple(tokens[answer_start:-1]), ids=ids)

    def parse_answer(self, params: AdditionParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_sum)

    def vocabulary(self, params: AdditionParams) -> tuple[str, ...]:
        return params.tokens


# One digit per word ("1 6 2"), as compact tokens are written, or digits with commas.
_NUMBER = re.compile(r"-?\d(?: \d)+(?![\d,])|-?\d[\d,]*")


def _numbers(statement: str) -> list[str]:
    """Every number a statement names, as digits without leading zeros (a minus sign kept).
    Single digits one space apart are one number (``1 6 2``), commas group thousands
    (``1,234,567``), and anything else separates numbers (``12 13``, ``12,13``, ``12 or 13``).
    No ``int()``: a sum may have more digits than Python converts."""
    found = []
    for chunk in _NUMBER.findall(statement):
        chunk = chunk.replace(" ", "")
        sign, groups = ("-", chunk[1:]) if chunk[0] == "-" else ("", chunk)
        parts = groups.rstrip(",").split(",")
        if len(parts) > 1 and 1 <= len(parts[0]) <= 3 and all(len(part) == 3 for part in parts[1:]):
            parts = ["".join(parts)]
        found.extend(sign + (part.lstrip("0") or "0") for part in parts if part)
    return found


def _read_sum(statement: str) -> tuple[str, ...] | None:
    number = single(_numbers(statement))
    return None if number is None else tuple(number)


@kernel
def draw_digits(state: np.ndarray, size: int, template: np.ndarray, slots: np.ndarray,
                split: int) -> tuple[np.ndarray, bool]:
    """One draw from a PCG64 stream (``state``, advanced): ``CANDIDATES`` candidates of
    ``size`` ASCII digits, one uniform number each; the first whose home split is ``split``
    (its canonical JSON is ``template`` with the digits at ``slots``) and True, or the last
    and False when none is. ``split`` -1: the first, untested."""
    digits = np.empty((CANDIDATES, size), np.uint8)
    for candidate in range(CANDIDATES):
        for k in range(size):
            digits[candidate, k] = ord("0") + int(next_double(state) * 10)
    if split < 0:
        return digits[0], True
    chosen = first_at_home(digits, template, slots, split)
    return digits[chosen], chosen >= 0  # -1: none at home, and the last


@kernel
def solve_digits(states: np.ndarray, operands: int, width: int, columns: int, template: np.ndarray,
                 slots: np.ndarray, split: int) -> tuple:
    """A chunk of items, one per PCG64 state: each draws until a candidate's home split is
    ``split`` (at most ``MAX_ATTEMPTS`` draws, as the dataset allows), and is solved. The
    digits (a row per item), whether each found a problem at home, and the traces and the
    answers as rows of ids (values, offsets)."""
    count, size = len(states), operands * width
    digits = np.empty((count, size), np.uint8)
    found = np.zeros(count, np.bool_)
    offsets, answer_offsets = np.zeros(count + 1, np.int64), np.zeros(count + 1, np.int64)
    traces = np.empty(count * trace_bound(operands, columns), np.int32)
    answers = np.empty(count * columns, np.int32)
    for item in range(count):
        state = states[item].copy()
        for _ in range(MAX_ATTEMPTS):
            digits[item], found[item] = draw_digits(state, size, template, slots, split)
            if found[item]:
                break
        ids, answer_start = column_trace(digits[item], operands, columns)
        traces[offsets[item] : offsets[item] + len(ids)] = ids
        offsets[item + 1] = offsets[item] + len(ids)
        answer = ids[answer_start : len(ids) - 1]
        answers[answer_offsets[item] : answer_offsets[item] + len(answer)] = answer
        answer_offsets[item + 1] = answer_offsets[item] + len(answer)
    return digits, found, traces[: offsets[count]], offsets, answers[: answer_offsets[count]], answer_offsets


@kernel
def trace_bound(operands: int, columns: int) -> int:
    """Ids a trace of this size holds at most."""
    return 8 + columns * ((operands + 1) * (7 + number_length(10 * operands)))


@kernel
def column_trace(digits: np.ndarray, operands: int, columns: int) -> tuple[np.ndarray, int]:
    """The gold trace as token ids, and where its answer starts. ``digits`` holds the
    operands' ASCII digits one operand after another, most significant first."""
    width = len(digits) // operands
    first_operand = FIRST_COLUMN + columns + 1  # the id of "#1"
    ids = np.empty(trace_bound(operands, columns), np.int32)
    # Element by element: tuple slice assignments cost seconds of first-call compile time.
    ids[0], ids[1], ids[2], ids[3], ids[4] = CALL_ID, CALL_ID, FIRST_COLUMN, first_operand, FIRST_DIGIT
    end = 5  # [CALL] [CALL] @0 #1 0
    written = np.empty(columns, np.int64)  # the sum's digits, least significant first
    carry, column, more = 0, 0, True
    while more:
        total = carry
        if column < width:
            for i in range(operands):
                digit = digits[i * width + width - 1 - column] - ord("0")
                total += digit
                # + digit [SEP] [CALL] @column #next total [RETURN]
                ids[end], ids[end + 1], ids[end + 2] = PLUS, FIRST_DIGIT + digit, SEP_ID
                ids[end + 3], ids[end + 4], ids[end + 5] = CALL_ID, FIRST_COLUMN + column, first_operand + i + 1
                end = write_number(ids, end + 6, total)
                ids[end] = RETURN_ID
                end += 1
        written[column] = total % 10
        carry = total // 10
        column += 1
        more = column < width or carry > 0
        ids[end], ids[end + 1] = SEP_ID, FIRST_DIGIT + total % 10
        end += 2
        if more:  # the column's digit, then a frame for the next column: @column #1 carry
            ids[end], ids[end + 1], ids[end + 2] = CALL_ID, FIRST_COLUMN + column, first_operand
            end = write_number(ids, end + 3, carry)
        ids[end] = RETURN_ID
        end += 1
    ids[end], ids[end + 1] = SEP_ID, ANSWER_ID
    answer_start = end + 2
    end = answer_start
    top = column - 1
    while top > 0 and written[top] == 0:  # no leading zeros
        top -= 1
    for j in range(top, -1, -1):
        ids[end] = FIRST_DIGIT + written[j]
        end += 1
    ids[end] = RETURN_ID
    return ids[: end + 1], answer_start


@kernel
def number_length(value: int) -> int:
    """Decimal digits of a number >= 0."""
    length = 1
    while value >= 10:
        value //= 10
        length += 1
    return length


@kernel
def write_number(ids: np.ndarray, end: int, value: int) -> int:
    """Write the digit ids of a number >= 0 at ``end``; return the new end."""
    length = number_length(value)
    for j in range(length):
        ids[end + length - 1 - j] = FIRST_DIGIT + value % 10
        value //= 10
    return end + length


TASK = Addition()
