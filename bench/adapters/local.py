"""Adapters for models outside this package: a Python callable, or any program that speaks
JSON lines on stdin/stdout.

``python:MODULE:FUNCTION`` calls ``FUNCTION(request)`` with a :class:`Request`; it returns a
:class:`Completion`, or a plain string (taken as a continuation that ended on its own).

``cmd:COMMAND`` starts ``COMMAND`` once (split like a shell would, without a shell) and
writes one JSON object per request, one per line::

    {"context": "...", "stop": ["[RETURN]"], "max_tokens": 64}

The program answers each with one line ``{"text": "...", "finish_reason": "stop"|"length",
"stop": "[RETURN]"|null}`` (only ``text`` is required). A program that dies or writes a
malformed line fails that call; it is restarted for the next one.
"""

from __future__ import annotations

import importlib
import json
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from pencilbench.bench.adapters.base import AdapterError, Completion, Request
from pencilbench.bench.errors import UserError


def completion_from(data: Any, request: Request) -> Completion:
    """A completion from what a user's model returned (a string or a JSON-like object)."""
    if isinstance(data, Completion):
        return data
    if isinstance(data, str):
        return Completion(data)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        raise AdapterError(f"expected a string or an object with a 'text' string, got {str(data)[:80]!r}")
    finish = data.get("finish_reason", "stop")
    stop = data.get("stop")
    return Completion(data["text"], "length" if finish == "length" else "stop",
                      stop if stop in request.stop else None)


class PythonAdapter:
    """Calls a Python function; ``MODULE`` is imported from the current directory or the path."""

    def __init__(self, target: str) -> None:
        module_name, _, function_name = target.rpartition(":")
        if not module_name or not function_name:
            raise UserError(f"python model spec must be python:MODULE:FUNCTION, got python:{target}")
        if "" not in sys.path and os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # the console script does not put it there itself
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise UserError(f"cannot import {module_name}: {error}") from None
        function = getattr(module, function_name, None)
        if not callable(function):
            raise UserError(f"{module_name} has no callable {function_name!r}")
        self.function: Callable[[Request], Any] = function
        self.name = f"python:{target}"

    def complete(self, request: Request) -> Completion:
        return completion_from(self.function(request), request)


class CommandAdapter:
    """One long-lived subprocess; requests are answered one at a time, in order."""

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise UserError("cmd model spec needs a command, e.g. cmd:\"python my_model.py\"")
        self.name = f"cmd:{command}"
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> subprocess.Popen[str]:
        if self._process is None or self._process.poll() is not None:
            try:
                self._process = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 text=True, bufsize=1)
            except OSError as error:
                raise UserError(f"cannot start {self.argv[0]}: {error}") from None
        return self._process

    def complete(self, request: Request) -> Completion:
        with self._lock:
            process = self._start()
            message = {"context": request.context, "stop": list(request.stop),
                       "max_tokens": request.max_tokens}
            try:
                process.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
                process.stdin.flush()  # type: ignore[union-attr]
                line = process.stdout.readline()  # type: ignore[union-attr]
            except OSError as error:
                self._stop()
                raise AdapterError(f"model process failed: {error}") from None
            if not line:
                self._stop()
                raise AdapterError("model process exited without answering")
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                raise AdapterError(f"model process wrote a malformed line: {line[:80]!r}") from None
            return completion_from(data, request)

    def reset(self) -> None:
        """Kill the process after a timed-out call; the next call starts a fresh one."""
        process = self._process
        if process is not None:
            process.kill()

    def _stop(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            if self._process is not None:
                self._process.stdin.close()  # type: ignore[union-attr]
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._stop()
                self._process = None
