"""A local OpenAI-compatible server for the fault tests: it answers as the oracle does,
from a dataset, and injects faults.

    python tests/openai_server.py DATASET [--faults] [--poison ID ...] [--chaos RATE --seed S] [--delay S]

It prints its port on the first line of stdout. With ``--faults`` the first attempt of a quarter of
the requests fails (chosen by a hash of the request, so every run sees the same faults): HTTP
500, 429 with ``Retry-After: 1``, a timeout (no answer for 3 s), a dropped connection,
malformed JSON, or an empty ``choices`` list; the second attempt succeeds. Requests for a
poisoned record always get HTTP 500. With ``--chaos RATE`` any attempt fails with
probability RATE, drawn from a generator seeded with ``--seed``: the faults above, or a 429
whose ``Retry-After`` is one of :data:`RETRY_AFTERS`. ``--delay`` slows every answer down.
``GET /stats`` returns how often each fault was served.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pencilbench.bench.adapters.base import Request  # noqa: E402
from pencilbench.bench.adapters.replay import OracleAdapter  # noqa: E402
from pencilbench.generators.export import read_records  # noqa: E402

FAULTS = ("500", "429", "timeout", "drop", "badjson", "empty")
RETRY_AFTERS = ("1", "3600", "inf", "nan", "-5", "Fri, 31 Dec 9999 23:59:59 GMT", "soon")


class State:
    def __init__(self, records, faults: bool, poison: set[str], chaos: float = 0.0, seed: int = 0,
                 delay: float = 0.0) -> None:
        self.records = records
        self.oracles = {mode: OracleAdapter(records, mode, "compact") for mode in ("direct", "cot", "pencil")}
        self.faults, self.poison = faults, poison
        self.chaos, self.random, self.delay = chaos, random.Random(seed), delay
        self.attempts: dict[str, int] = {}
        self.stats: dict[str, int] = {}
        self.lock = threading.Lock()

    def find(self, context: str):
        """The record whose prompt starts the context (the longest, token-aligned)."""
        best = None
        for record in self.records:
            prompt = record["prompt"]
            if context.startswith(prompt) and context[len(prompt):len(prompt) + 1] in ("", " "):
                if best is None or len(prompt) > len(best["prompt"]):
                    best = record
        return best

    def fault_for(self, key: str, record_id: str) -> str:
        with self.lock:
            attempt = self.attempts.get(key, 0)
            self.attempts[key] = attempt + 1
            if record_id in self.poison:
                fault = "500"
            elif self.chaos:
                fault = self.random.choice(FAULTS) if self.random.random() < self.chaos else "ok"
            elif not self.faults or attempt > 0:
                fault = "ok"
            else:
                slot = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % (4 * len(FAULTS))
                fault = FAULTS[slot] if slot < len(FAULTS) else "ok"
            self.stats[fault] = self.stats.get(fault, 0) + 1
            return fault


def make_handler(state: State):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.endswith("/stats"):
                with state.lock:
                    self._send(200, json.dumps(state.stats).encode())
            else:
                self._send(200, json.dumps({"data": [{"id": "oracle"}]}).encode())

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            chat = self.path.endswith("/chat/completions")
            if chat:
                messages = body["messages"]
                prompt = messages[0]["content"]
                generated = messages[1]["content"] if len(messages) > 1 else ""
            else:
                context = body["prompt"]
                record = state.find(context)
                prompt = record["prompt"] if record else context
                generated = context[len(prompt):]
            record = state.find(prompt)
            if record is None:
                self._send(400, b'{"error": "unknown prompt"}')
                return
            stop = tuple(body.get("stop") or ())
            mode = body["model"]  # the tests name the model after the mode it replays
            key = json.dumps([self.path, prompt, generated, stop])
            fault = state.fault_for(key, record["id"])
            time.sleep(state.delay)
            if fault == "500":
                self._send(500, b'{"error": "boom"}')
            elif fault == "429":
                wait = state.random.choice(RETRY_AFTERS) if state.chaos else "1"
                self._send(429, b'{"error": "slow down"}', {"Retry-After": wait})
            elif fault == "timeout":
                time.sleep(3)
                self.close_connection = True
            elif fault == "drop":
                self.close_connection = True
            elif fault == "badjson":
                self._send(200, b'{"choices": [{"text": ')
            elif fault == "empty":
                self._send(200, json.dumps({"choices": []}).encode())
            else:
                request = Request(prompt + generated, stop, body["max_tokens"], len(prompt), record["id"])
                completion = state.oracles[mode].complete(request)
                choice = {"index": 0, "finish_reason": completion.finish_reason, "stop_reason": completion.stop}
                if chat:
                    choice["message"] = {"role": "assistant", "content": completion.text}
                else:
                    choice["text"] = completion.text
                self._send(200, json.dumps({"choices": [choice], "usage": {"prompt_tokens": 1}}).encode())

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--poison", nargs="*", default=[])
    parser.add_argument("--chaos", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    state = State(read_records(args.dataset), args.faults, set(args.poison), args.chaos, args.seed, args.delay)
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
