"""Multi-operand addition: k operands of d decimal digits.

The gold solver adds column by column from the least significant digit. Within a column it
keeps a running total in a frame ``[CALL] @j #i total`` (column j, operand i next), writes
``+ digit`` for operand i, and replaces the frame by a tail call with the new total, so the
live context never holds more than one operand's work. A finished column leaves its digit
and opens the next column with the carry (carries have several digits when many operands
are added). A last frame turns the digits, written least significant first, into the
answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.pencil import CALL, SPECIAL_TOKENS, TraceWriter
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob

DIGITS = tuple("0123456789")


@dataclass(frozen=True)
class AdditionParams(TaskParams):
    operands: int = knob(2, lo=2, hi=128, help="how many numbers are added (k)")
    digits: int = knob(10, lo=1, hi=256, help="digits per operand (d), leading zeros allowed")

    def columns(self) -> int:
        """Columns the solver may visit: enough for the largest possible sum."""
        return self.digits + len(str(self.operands))


def _digit_tokens(value: int) -> tuple[str, ...]:
    return tuple(str(value))


class Addition(Task):
    name = "addition"
    version = 3
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
        # One cheap draw: the dataset applies ``keep`` to it.
        table = rng.integers(0, 10, size=(params.operands, params.digits))
        return {"operands": ["".join(map(str, row)) for row in table.tolist()]}

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
        operands = [operand[::-1] for operand in problem["operands"]]  # least significant first
        out = TraceWriter()
        out.call()
        out.call("@0", "#1", "0")
        written: list[str] = []
        carry, column = 0, 0
        while True:
            total = carry
            if column < params.digits:
                for i, operand in enumerate(operands, start=1):
                    total += int(operand[column])
                    out.emit("+", operand[column])  # "+" ends the total: totals vary in length
                    out.tail(f"@{column}", f"#{i + 1}", *_digit_tokens(total))
            digit, carry = str(total % 10), total // 10
            written.append(digit)
            column += 1
            if column < params.digits or carry:
                out.ret(digit, CALL, f"@{column}", "#1", *_digit_tokens(carry))
            else:
                out.ret(digit)
                break
        answer = _digit_tokens(int("".join(reversed(written))))
        out.answer(*answer)
        return Trace(tuple(out.tokens), answer)

    def parse_answer(self, params: AdditionParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_sum)

    def vocabulary(self, params: AdditionParams) -> tuple[str, ...]:
        columns = tuple(f"@{j}" for j in range(params.columns() + 1))
        operands = tuple(f"#{i}" for i in range(1, params.operands + 2))
        return (*SPECIAL_TOKENS, *DIGITS, "+", "=", *columns, *operands)


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

TASK = Addition()
