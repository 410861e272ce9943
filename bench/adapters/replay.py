"""Adapters that answer from the dataset itself: ``oracle`` (an upper bound that tests the
loop) and ``random`` (a floor). They find their record through ``Request.instance``.

The oracle replays the gold trace of the mode: the answer (direct), the chain of thought
(cot), or the PENCIL trace one call at a time (pencil: each call continues the live context
the harness sends back after a reduction, up to the next ``[RETURN]``). In the instruct
style it writes the same tokens followed by an ``Answer:`` line, as the worked example does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from pencilbench.bench.adapters.base import AdapterError, Completion, Request
from pencilbench.bench.prompts import answer_line, pieces
from pencilbench.generators.pencil import ANSWER, RETURN, Reducer
from pencilbench.generators.seeding import stable_id


def _capped(tokens: Sequence[str], request: Request, stop: str | None, tail: str = "") -> Completion:
    """``tokens`` (then ``tail``) as a completion that respects the request's token cap."""
    if len(tokens) > request.max_tokens:
        return Completion(" ".join(tokens[: request.max_tokens]), "length")
    return Completion(" ".join(tokens) + tail, "stop", stop)


class _ByInstance:
    """Finds the record a request is about by its instance id."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.records = {record["id"]: record for record in records}

    def record(self, request: Request) -> Mapping[str, Any]:
        try:
            return self.records[request.instance]  # type: ignore[index]
        except KeyError:
            raise AdapterError(f"no dataset record for instance {request.instance!r}",
                               retryable=False) from None


class OracleAdapter(_ByInstance):
    """Replays gold traces; must score 100% in every mode and style."""

    name = "oracle"

    def __init__(self, records: Sequence[Mapping[str, Any]], mode: str, style: str) -> None:
        super().__init__(records)
        self.mode, self.style = mode, style
        self._plans: dict[str, dict[str, tuple[list[str], str | None]]] = {}

    def complete(self, request: Request) -> Completion:
        record = self.record(request)
        instruct = self.style == "instruct"
        tail = "\n" + answer_line(record, record["answer"].split()) if instruct else ""
        if self.mode == "direct":
            return _capped([tail.strip()] if instruct else record["answer"].split(), request, None)
        if self.mode == "cot":
            return _capped(record["cot"].split(), request, None, tail)
        plan = self._plan(record)
        generated = request.generated
        # The lookup key: the live generated tokens with whitespace normalised.
        key = (" ".join(piece.strip() for piece in pieces(generated)) if instruct
               else " ".join(generated.split()))
        step = plan.get(key)
        if step is None:
            raise AdapterError("the live context is not one the gold trace passes through", retryable=False)
        tokens, stop = step
        if stop is None:  # the last step: the plan is not needed again
            del self._plans[record["id"]]
        completion = _capped(tokens, request, stop, tail if stop is None else "")
        if instruct and generated and not generated[-1].isspace():
            # Text continues the context directly: keep a space after the last word.
            completion = replace(completion, text=" " + completion.text)
        return completion

    def _plan(self, record: Mapping[str, Any]) -> dict[str, tuple[list[str], str | None]]:
        """Live generated text at each step of the gold trace -> what comes next."""
        plan = self._plans.get(record["id"])
        if plan is not None:
            return plan
        plan = {}
        reducer = Reducer()
        step: list[str] = []
        key = ""
        for token in record["pencil"].split():
            if token == RETURN:
                plan[key] = (step, RETURN)
                reducer.extend(step)
                reducer.push(RETURN)
                key, step = " ".join(reducer.context), []
            else:
                step.append(token)
        plan[key] = (step, None)
        self._plans[record["id"]] = plan
        return plan


def _size(record: Mapping[str, Any]) -> tuple[str, str]:
    return record["task"], json.dumps(record["params"], sort_keys=True)


class RandomAdapter(_ByInstance):
    """Emits as many tokens as the gold answer has, drawn uniformly from the tokens that
    answers of the same task and size use in the dataset; no reasoning. In the compact cot
    and pencil modes they follow ``[ANSWER]``, as a finished generation's answer does.
    Deterministic per request."""

    name = "random"

    def __init__(self, records: Sequence[Mapping[str, Any]], mode: str, style: str, seed: int = 0) -> None:
        super().__init__(records)
        self.mode, self.style, self.seed = mode, style, seed
        alphabets: dict[tuple[str, str], set[str]] = {}
        for record in records:
            alphabets.setdefault(_size(record), set()).update(record["answer"].split())
        self.alphabets = {size: sorted(tokens) for size, tokens in alphabets.items()}

    def complete(self, request: Request) -> Completion:
        record = self.record(request)
        alphabet = self.alphabets[_size(record)]
        entropy = [self.seed, stable_id(request.context)] + ([request.repeat] if request.repeat else [])
        rng = np.random.default_rng(entropy)
        picks = rng.integers(len(alphabet), size=len(record["answer"].split()))
        tokens = [alphabet[i] for i in picks.tolist()]
        if self.style == "instruct":
            return _capped([answer_line(record, tokens)], request, None)
        return _capped(tokens if self.mode == "direct" else [ANSWER, *tokens], request, None)
