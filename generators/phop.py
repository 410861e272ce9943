"""p-hop induction (Sanford, Hsu and Telgarsky 2024; Saunshi et al. 2025).

Positions are numbered 1..n. One hop from position i goes to the largest j <= i whose
predecessor holds the symbol at i: ``x[j-1] == x[i]``. Starting at the last position, the
answer is the symbol reached after p hops.

Every instance is well posed: each hop finds a match, never stays where it is, and lands on
a symbol different from the one it started from. The sampler builds the chain backwards
and fills the gaps so that no nearer match exists.

The solver passes state by tail calls: the live frame ``[CALL] r i x`` holds the hops left,
the position and its symbol, and each hop replaces it by the next one, so the live context
is the prompt plus one frame.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pencilbench.generators.answers import one_answer, single
from pencilbench.generators.pencil import SPECIAL_TOKENS, TraceWriter
from pencilbench.generators.task import Keep, Task, TaskParams, Trace, knob

SYMBOLS = tuple("abcdefghijklmnopqrstuvwxyz")
QUERY = "?"


@dataclass(frozen=True)
class PhopParams(TaskParams):
    alphabet: int = knob(4, lo=2, hi=len(SYMBOLS), help="number of distinct symbols")
    length: int = knob(256, lo=3, hi=8192, help="sequence length n")
    hops: int = knob(16, lo=1, hi=256, help="hops p")

    def check(self) -> None:
        if self.hops > self.length - 2:
            raise ValueError(f"hops must be in [1, length - 2] = [1, {self.length - 2}], got {self.hops}")


class Phop(Task):
    name = "phop"
    version = 2
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
        # One cheap draw: the dataset applies ``keep`` to it.
        n, p, a = params.length, params.hops, params.alphabet
        gaps = rng.geometric(1.0 / a, size=p)
        if gaps.sum() > n - 2:
            # Too long for the sequence: a uniform composition of a total that fits.
            total = int(rng.integers(p, n - 1))
            cuts = np.sort(rng.choice(np.arange(1, total), size=p - 1, replace=False))
            gaps = np.diff(np.concatenate(([0], cuts, [total])))
        # Chain symbols t[0] (last position) .. t[p]: each differs from the one before; a
        # one-step hop lands on the symbol two hops back, which already sits there.
        steps = rng.integers(a - 1, size=p + 1).tolist()
        chain = [int(rng.integers(a))]
        for k in range(1, p + 1):
            if k >= 2 and gaps[k - 1] == 1:
                chain.append(chain[k - 2])
            else:
                chain.append((chain[k - 1] + 1 + steps[k]) % a)
        landing = n - np.cumsum(gaps)  # q_1 .. q_p
        x = rng.integers(a, size=n + 1)  # 1-based; x[0] is unused
        # Between landing q_k and q_{k-1}, nothing may match t[k-1]: no nearer hop target.
        avoid = np.repeat(np.array(chain[:p][::-1]), gaps[::-1])
        fill = rng.integers(a - 1, size=len(avoid))
        x[landing[-1] : n] = fill + (fill >= avoid)
        t = np.array(chain)
        x[n] = t[0]
        x[landing] = t[1:]
        x[landing - 1] = t[:-1]
        return {"sequence": [SYMBOLS[s] for s in x[1:].tolist()], "hops": p}

    def prompt(self, params: PhopParams, problem: Mapping[str, Any]) -> list[str]:
        return [*problem["sequence"], QUERY, str(problem["hops"])]

    def question(self, params: PhopParams, problem: Mapping[str, Any]) -> str:
        sequence = " ".join(problem["sequence"])
        return (
            f"Here is a sequence of {len(problem['sequence'])} symbols, positions numbered from 1:\n"
            f"{sequence}\n"
            "One hop from position i goes to the largest position j <= i whose previous symbol "
            "(at position j-1) equals the symbol at position i. Start at the last position and "
            f"make {problem['hops']} hops. Which symbol is at the position you reach?\n"
            "Finish with a line of the form 'Answer: <symbol>'."
        )

    def trace(self, params: PhopParams, problem: Mapping[str, Any]) -> Trace:
        x = problem["sequence"]
        here, left = len(x), problem["hops"]
        out = TraceWriter()
        out.call(str(left), str(here), x[here - 1])
        while left:
            symbol = x[here - 1]
            j = here
            while x[j - 2] != symbol:  # x[j - 2] is the symbol at position j - 1
                j -= 1
            here, left = j, left - 1
            out.tail(str(left), str(here), x[here - 1])
        out.answer(x[here - 1])
        return Trace(tuple(out.tokens), (x[here - 1],))

    def parse_answer(self, params: PhopParams, problem: Mapping[str, Any], text: str) -> tuple[str, ...] | None:
        return one_answer(text, _read_symbol)

    def vocabulary(self, params: PhopParams) -> tuple[str, ...]:
        numbers = tuple(str(i) for i in range(max(params.length, params.hops) + 1))
        return (*SPECIAL_TOKENS, *SYMBOLS[: params.alphabet], QUERY, *numbers)


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def _read_symbol(statement: str) -> tuple[str, ...] | None:
    """A symbol is a one-letter word (``c``, ``'c'``, ``C.``); every one counts as a
    candidate, inside or outside the task's alphabet."""
    symbol = single([word for word in _WORD.findall(statement.lower()) if len(word) == 1])
    return None if symbol is None else (symbol,)


TASK = Phop()
