"""Standard-library stand-ins for real OpenAI-compatible servers, driven by a scripted
model that follows the gold traces, so the default test run can check what the
``integration`` tox environment checks against a real llama.cpp server.

Flavours, as the real servers answer:
- ``llamacpp`` (llama-cpp-python's ``llama_cpp.server``): the text stops before a matched
  stop string, and nothing says which one matched or whether one did (no ``stop_reason``);
  chat ignores ``continue_final_message``: a trailing assistant message starts a fresh
  assistant turn, which comes back empty.
- ``vllm``: ``stop_reason`` names the matched stop string (``null`` at the end of text) and
  ``continue_final_message`` continues the assistant message.

The scripted model counts whitespace-separated words as its tokens. It writes the gold
trace of the record whose prompt starts the context (the mode is the model name), then, in
the instruct style, what a base model does after its answer: a blank line and the next
``Problem:``, rambling on for ``RAMBLE`` words; in the compact style it ends its text.
``[RETURN]`` is written out and cut by the server when it is a stop string.

    python tests/fake_servers.py DATASET --flavour llamacpp [--port P] [--delay S] [--serial]

prints its port on the first line of stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pencilbench.bench.adapters.base import Request  # noqa: E402
from pencilbench.bench.adapters.openai import CONTINUE_NOTE  # noqa: E402
from pencilbench.bench.adapters.replay import OracleAdapter  # noqa: E402
from pencilbench.bench.harness import MODES  # noqa: E402
from pencilbench.bench.prompts import instruct_prompt  # noqa: E402
from pencilbench.generators.export import read_records  # noqa: E402
from pencilbench.generators.pencil import RETURN  # noqa: E402

FLAVOURS = ("llamacpp", "vllm")
RAMBLE = 5000
_WORD = re.compile(r"\S+")


class ScriptedModel:
    """Continues a context the way the gold trace of its record goes on."""

    def __init__(self, records: Sequence[Mapping[str, Any]]) -> None:
        self.oracles = {(mode, style): OracleAdapter(records, mode, style)
                        for mode in MODES for style in ("compact", "instruct")}
        # (mode, prompt) -> (record, style); compact prompts are shared by every mode
        self.prompts: dict[tuple[str, str], tuple[Mapping[str, Any], str]] = {}
        for record in records:
            for mode in MODES:
                self.prompts[(mode, record["prompt"])] = (record, "compact")
                self.prompts[(mode, instruct_prompt(record, mode))] = (record, "instruct")

    def split(self, mode: str, context: str) -> tuple[Mapping[str, Any], str, str, str] | None:
        """(record, style, prompt, generated) of a context, or ``None`` for a stranger."""
        best = None
        for (kind, prompt), (record, style) in self.prompts.items():
            if kind != mode or not context.startswith(prompt):
                continue
            if style == "compact" and context[len(prompt):len(prompt) + 1] not in ("", " "):
                continue
            if best is None or len(prompt) > len(best[2]):
                best = (record, style, prompt, context[len(prompt):])
        return best

    def chat_prompt(self, mode: str, text: str) -> str | None:
        """The prompt a chat user message holds (the adapter may strip trailing space)."""
        for kind, prompt in self.prompts:
            if kind == mode and prompt.rstrip() == text.rstrip():
                return prompt
        return None

    def write(self, mode: str, context: str) -> str | None:
        """Everything the model would write after ``context`` if nothing stopped it."""
        found = self.split(mode, context)
        if found is None:
            return None
        record, style, prompt, generated = found
        request = Request(prompt + generated, (RETURN,), 10**9, len(prompt), record["id"])
        completion = self.oracles[(mode, style)].complete(request)
        if completion.stop == RETURN:
            return f"{completion.text} {RETURN} and so on"
        if style == "instruct":
            return completion.text + "\n\nProblem:\n" + " ".join(["more"] * RAMBLE)
        return completion.text


def finish(raw: str, stop: Sequence[str], max_tokens: int) -> tuple[str, str, str | None, int]:
    """What a server returns of ``raw``: (text, finish_reason, matched stop, tokens)."""
    cut = [(i, s) for s in stop if (i := raw.find(s)) >= 0]
    matched = None
    if cut:
        at, matched = min(cut)
        raw = raw[:at]
    words = list(_WORD.finditer(raw))
    used = len(words) + (matched is not None)
    if used > max_tokens:
        keep = words[max_tokens - 1].end() if max_tokens else 0
        return raw[:keep], "length", None, max_tokens
    return raw, "stop", matched, used


class State:
    def __init__(self, records: Sequence[Mapping[str, Any]], flavour: str, delay: float, serial: bool) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {', '.join(FLAVOURS)}, got {flavour!r}")
        self.model = ScriptedModel(records)
        self.flavour, self.delay = flavour, delay
        self.busy = threading.Lock() if serial else None
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append(body)
        if self.busy is not None:
            with self.busy:
                time.sleep(self.delay)
        else:
            time.sleep(self.delay)
        mode = body["model"]
        chat = path.endswith("/chat/completions")
        if chat:
            raw = self._chat(mode, body)
        else:
            raw = self.model.write(mode, body["prompt"])
        if raw is None:
            return 400, {"error": {"message": "the scripted model does not know this prompt"}}
        text, reason, matched, used = finish(raw, tuple(body.get("stop") or ()), int(body["max_tokens"]))
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        if self.flavour == "vllm":
            choice["stop_reason"] = matched
        return 200, {"id": "x", "object": "text_completion", "model": mode, "choices": [choice],
                     "usage": {"prompt_tokens": 1, "completion_tokens": used, "total_tokens": used + 1}}

    def _chat(self, mode: str, body: dict[str, Any]) -> str | None:
        messages = [m for m in body["messages"] if m["role"] != "system"]
        if messages[-1]["role"] == "assistant":
            if self.flavour == "vllm" and body.get("continue_final_message"):
                prompt = self.model.chat_prompt(mode, messages[-2]["content"])
                return None if prompt is None else self.model.write(mode, prompt + messages[-1]["content"])
            return ""  # a fresh assistant turn after a finished one: the model has nothing to add
        content = messages[-1]["content"]
        head, note, generated = content.partition(CONTINUE_NOTE)
        prompt = self.model.chat_prompt(mode, head)
        if prompt is None:
            return None
        return self.model.write(mode, prompt + (generated if note else ""))


def make_server(records: Sequence[Mapping[str, Any]], flavour: str, *, port: int = 0, delay: float = 0.0,
                serial: bool = False) -> tuple[ThreadingHTTPServer, State]:
    """A server (not yet serving) and its state; ``serve_forever`` it on a thread."""
    state = State(records, flavour, delay, serial)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._send(200, {"object": "list", "data": [{"id": mode} for mode in MODES]})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(*state.answer(self.path, body))

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server, state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset")
    parser.add_argument("--flavour", choices=FLAVOURS, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--serial", action="store_true")
    args = parser.parse_args()
    server, _ = make_server(read_records(args.dataset), args.flavour, port=args.port, delay=args.delay,
                            serial=args.serial)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
