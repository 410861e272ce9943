"""OpenAI-compatible HTTP endpoints (vLLM, llama.cpp server, Ollama, hosted APIs), with the
standard library only.

``api="completions"`` posts the whole context as ``prompt``. ``api="chat"`` sends the
prompt as the user message (after ``system_prompt``, when given). What the model wrote so
far is continued in one of two ways (``continuation``): ``assistant`` sends it as an
assistant message to be continued (vLLM's ``continue_final_message``); ``user`` sends the
prompt and the work so far as one fresh user turn, for servers that ignore
``continue_final_message`` (llama.cpp, hosted APIs). ``auto`` picks ``assistant`` once a
response carried vLLM's ``stop_reason`` field, ``user`` otherwise. Decoding is greedy
unless a temperature is given; ``seed`` (plus the request's repeat number) is sent when
given. The API key is read from an environment variable (``OPENAI_API_KEY`` by default);
no key means no ``Authorization`` header, which local servers accept. Redirects are
followed, but the key goes only to the scheme, host and port of ``base_url``: a redirect
elsewhere is followed without it.

Stop strings. Endpoints do not echo a matched stop string; the adapter reads which one
matched from ``stop_reason`` (vLLM) or ``stopping_word`` (llama.cpp's own server). A
server that reports neither (llama-cpp-python, hosted APIs) leaves it open whether a stop
string or the end of text ended the reply: the completion says so (``stop_unknown``) and
the harness infers it from the trace (see ``bench.harness``).

Finish reasons are cross-checked against the server's token count when it gives one: a
``length`` finish with fewer tokens than asked for is the server's own context window
running out (``server_limit``), and a ``stop`` finish that used every token asked for,
with no stop string matched (as far as the server says), is a ``length`` finish.

Every transport fault (refused or dropped connection, timeout, HTTP 408/409/429/5xx,
malformed JSON, no choices) raises a retryable :class:`AdapterError`; HTTP 429 and 503
pass their ``Retry-After`` on (seconds or an HTTP date; the wrapper caps it). Other HTTP
errors (a bad request) are not retried. Only the first bytes of an error body are read.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import math
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from pencilbench.bench.adapters.base import AdapterError, Completion, Request
from pencilbench.bench.errors import UserError

RETRYABLE_HTTP = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
ERROR_BODY_BYTES = 200


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port or {"http": 80, "https": 443}.get(parts.scheme)


class _KeepKeyHome(urllib.request.HTTPRedirectHandler):
    """Follows redirects, dropping the ``Authorization`` header when one leaves the origin
    the request was first sent to."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            home = getattr(req, "pencilbench_origin", _origin(req.full_url))
            new.pencilbench_origin = home  # type: ignore[attr-defined]
            if _origin(new.full_url) != home:
                new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_KeepKeyHome)
CONTINUATIONS = ("auto", "assistant", "user")
# The fresh user turn of the ``user`` continuation: the prompt, then the work so far.
CONTINUE_NOTE = "\n\nYour work so far is below. Continue it exactly where it stops, without repeating it.\n\n"


class OpenAIAdapter:
    def __init__(self, model: str, base_url: str, *, api: str = "completions",
                 api_key_env: str = "OPENAI_API_KEY", temperature: float = 0.0,
                 timeout: float = 60.0, seed: int | None = None, system_prompt: str | None = None,
                 continuation: str = "auto") -> None:
        if not model:
            raise UserError("openai model spec needs a model name, e.g. openai:gpt-4o-mini")
        if api not in ("completions", "chat"):
            raise ValueError(f"api must be one of completions, chat, got {api!r}")
        if continuation not in CONTINUATIONS:
            raise ValueError(f"continuation must be one of {', '.join(CONTINUATIONS)}, got {continuation!r}")
        if system_prompt is not None and api != "chat":
            raise UserError("--system-prompt needs --api chat (a completions endpoint has no system role)")
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"--base-url must start with http:// or https://, got {base_url!r}")
        self.model, self.api, self.temperature, self.timeout = model, api, temperature, timeout
        self.seed, self.system_prompt, self.continuation = seed, system_prompt, continuation
        self.reports_stop = False  # set once a response names the stop string that matched
        self.base_url = base_url.rstrip("/")
        self.api_key = os.environ.get(api_key_env) or None
        self.name = f"openai:{model}"

    def check(self) -> None:
        """Fail fast when nothing answers at the base URL (an HTTP error still means it is there)."""
        try:
            _OPENER.open(self._request("GET", "/models"), timeout=min(self.timeout, 10)).close()
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise UserError(f"cannot reach {self.base_url}: {reason}") from None

    def complete(self, request: Request) -> Completion:
        body: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens,
                                "temperature": self.temperature}
        if self.seed is not None:
            body["seed"] = self.seed + request.repeat
        if request.stop:
            body["stop"] = list(request.stop)
        if self.api == "completions":
            body["prompt"] = request.context
            path = "/completions"
        else:
            messages = [] if self.system_prompt is None else [{"role": "system", "content": self.system_prompt}]
            if not request.generated:
                messages.append({"role": "user", "content": request.prompt})
            elif self.continuation == "assistant" or (self.continuation == "auto" and self.reports_stop):
                messages += [{"role": "user", "content": request.prompt},
                             {"role": "assistant", "content": request.generated}]
                body.update(continue_final_message=True, add_generation_prompt=False)
            else:
                messages.append({"role": "user", "content": request.prompt.rstrip() + CONTINUE_NOTE
                                 + request.generated})
            body["messages"] = messages
            path = "/chat/completions"
        data = self._post(path, body)
        return self._parse(data, request)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = None if body is None else json.dumps(body).encode()
        return urllib.request.Request(self.base_url + path, data=payload, headers=headers, method=method)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        try:
            with _OPENER.open(self._request("POST", path, body), timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read(ERROR_BODY_BYTES).decode(errors="replace")
            raise AdapterError(f"HTTP {error.code}: {detail}", retryable=error.code in RETRYABLE_HTTP,
                               retry_after=_retry_after(error.headers.get("Retry-After"))) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            raise AdapterError(f"{type(error).__name__}: {getattr(error, 'reason', error)}") from None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise AdapterError(f"malformed JSON in response: {raw[:80]!r}") from None

    def _parse(self, data: Any, request: Request) -> Completion:
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise AdapterError("response has no choices")
        choice = choices[0]
        if self.api == "completions":
            text = choice.get("text")
        else:
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else None
        finish = choice.get("finish_reason")
        if text is None and finish is not None:
            text = ""
        if not isinstance(text, str):
            raise AdapterError("response choice has no text")
        reported = "stop_reason" in choice or "stopping_word" in choice or "stopping_word" in data
        self.reports_stop = self.reports_stop or reported
        matched = choice.get("stop_reason", choice.get("stopping_word", data.get("stopping_word")))
        matched = matched if matched in request.stop else None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        produced = _int_or_none(usage.get("completion_tokens"))
        finish = "length" if finish == "length" else "stop"
        if produced is not None and matched is None:
            if finish == "length" and produced < request.max_tokens:
                finish = "server_limit"
            elif finish == "stop" and produced >= request.max_tokens and (reported or not request.stop):
                finish = "length"
        return Completion(text, finish, matched, _int_or_none(usage.get("prompt_tokens")), produced,
                          stop_unknown=finish == "stop" and matched is None and not reported
                          and bool(request.stop))


def _retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: a number of seconds or an HTTP date
    (RFC 9110); ``None`` for anything else. Negative and past values mean 0; a huge or
    infinite value is passed on for the wrapper to cap."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) else None
