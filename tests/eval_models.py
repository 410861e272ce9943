"""Small models for the harness tests, reachable as ``python:eval_models:NAME`` (with this
folder on the path) and, run as a script, as a JSON-lines model for ``cmd:``. They return
strings or JSON-like objects, so the script needs nothing from this package."""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def last_token(request: Any) -> str:
    """Answers with the last prompt token: deterministic and usually wrong."""
    return request.prompt.split()[-1]


def slow_last_token(request: Any) -> str:
    time.sleep(0.02)
    return last_token(request)


def bad_return(request: Any) -> dict[str, Any]:
    """A PENCIL model that writes a [RETURN] with no frame open."""
    return {"text": "7 8", "stop": "[RETURN]"}


def babble(request: Any) -> str:
    """Marker soup and junk, never an answer."""
    return "[SEP] ]] [CALL] <think> Answer: </think> @@@ \\boxed{"


def endless(request: Any) -> dict[str, Any]:
    """Ignores the token cap: always writes far more than asked."""
    return {"text": " ".join(["1"] * (request.max_tokens + 50)), "finish_reason": "length"}


def broken(request: Any) -> str:
    raise RuntimeError("model exploded")


OUTAGE = {"on": True}


def outage(request: Any) -> str:
    """``last_token`` behind a switch: fails while ``OUTAGE["on"]`` (tests flip it)."""
    if OUTAGE["on"]:
        raise ConnectionError("server down")
    return last_token(request)


def serve() -> None:
    """JSON lines on stdin/stdout: echo the last context token; ``crash`` in the context
    makes the process exit, ``garbage`` makes it write a malformed line."""
    for line in sys.stdin:
        message = json.loads(line)
        if "crash" in message["context"]:
            sys.exit(3)
        if "garbage" in message["context"]:
            print("{not json", flush=True)
            continue
        reply = {"text": message["context"].split()[-1], "finish_reason": "stop"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    serve()
