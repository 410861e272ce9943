"""Multi-operand addition: k operands of d decimal digits.

The gold solver adds column by column from the least significant digit. Within a column it
keeps a running total in a frame ``[CALL] @j #i total`` (column j, operand i next), writes
``+ digit`` for operand i, and replaces the frame by a tail call with the new total, so the
live context never holds more than one operand's work. A finished column leaves its digit
and opens the next column with the carry (carries have several digits when many operands
are added). A last frame turns the digits, written least significant first, into the
answer. The solver is a compiled kernel that writes the trace as token ids.

Every digit of every operand is uniform and independent (leading zeros allowed). One draw
of uniform numbers makes a few candidate problems at once: the dataset keeps about one in
three (its split is a hash of the problem).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.compiled import kernel
from pencilbench.generators.pencil import ANSWER_ID, CALL_ID, RETURN_ID, SEP_ID, SPECIAL_TOKENS, tokens_of
from pencilbench.generators.seeding import JsonTemplate
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob

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
    def split_template(self) -> JsonTemplate:
        """A problem of this size as canonical JSON, its digits the variable bytes."""
        return JsonTemplate.of({"operands": ["0" * self.digits] * self.operands}, "0")


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
        d, size = params.digits, params.operands * params.digits
        digits = decimal_digits(rng.random(CANDIDATES * size)).reshape(CANDIDATES, size)
        chosen = 0 if keep is None else params.split_template.first_at_home(digits, keep.index)
        text = digits[chosen].tobytes().decode("ascii")  # -1, none accepted: the last one
        return {"operands": [text[i : i + d] for i in range(0, size, d)]}

    def prompt(self, params: AdditionParams, problem: Mapping[str, Any]) -> list[str]:
        tokens: list[str] = []
        for i, operand in enumerate(problem["operands"]):
            if i:
                tokens.append("+")
            tokens.extend(operand)
        tokens.append("=")
        return tokens

    def question(self, params: AdditionParams, problem: Mapping[str, Any]) -> str:
        numbers = "\n".join(problem["operands"])
        return (
            f"Add the following {len(problem['operands'])} numbers (leading zeros are allowed "
            f"and do not change a value):\n{numbers}\n"
            "Finish with a line of the form 'Answer: <sum>' giving the sum in decimal digits."
        )

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
def decimal_digits(uniforms: np.ndarray) -> np.ndarray:
    """One ASCII digit per uniform number in [0, 1)."""
    digits = np.empty(len(uniforms), np.uint8)
    for i in range(len(uniforms)):
        digits[i] = ord("0") + int(uniforms[i] * 10)
    return digits


@kernel
def column_trace(digits: np.ndarray, operands: int, columns: int) -> tuple[np.ndarray, int]:
    """The gold trace as token ids, and where its answer starts. ``digits`` holds the
    operands' ASCII digits one operand after another, most significant first."""
    width = len(digits) // operands
    first_operand = FIRST_COLUMN + columns + 1  # the id of "#1"
    longest = number_length(10 * operands)  # a column total is below 10 * operands
    ids = np.empty(8 + columns * ((operands + 1) * (7 + longest)), np.int32)
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
