"""Model adapters and the one table that turns a model spec string into an adapter.

Specs: ``oracle``, ``random``, ``python:MODULE:FUNCTION``, ``cmd:COMMAND``,
``openai:MODEL`` (with ``base_url``) and ``hf:PATH`` (needs the optional ``hf`` extra;
imported only when asked for, so torch stays optional).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pencilbench.bench.adapters.base import Adapter, AdapterError, Completion, Request
from pencilbench.bench.errors import UserError


@dataclass(frozen=True)
class AdapterOptions:
    """What adapters may need besides their spec. ``records`` feed the replay adapters;
    ``base_url``, ``api``, ``api_key_env``, ``temperature``, ``timeout``, ``seed``,
    ``system_prompt`` and ``continuation`` the HTTP one; ``device`` (``cpu``, ``cuda``,
    ``cuda:1``) the Hugging Face one."""

    records: Sequence[Mapping[str, Any]] = ()
    mode: str = "pencil"
    style: str = "compact"
    base_url: str | None = None
    api: str = "completions"
    api_key_env: str = "OPENAI_API_KEY"
    temperature: float = 0.0
    timeout: float = 60.0
    seed: int = 0
    device: str = "cpu"
    system_prompt: str | None = None
    continuation: str = "auto"


def _oracle(rest: str, options: AdapterOptions) -> Adapter:
    from pencilbench.bench.adapters.replay import OracleAdapter

    return OracleAdapter(options.records, options.mode, options.style)


def _random(rest: str, options: AdapterOptions) -> Adapter:
    from pencilbench.bench.adapters.replay import RandomAdapter

    return RandomAdapter(options.records, options.mode, options.style, options.seed)


def _python(rest: str, options: AdapterOptions) -> Adapter:
    from pencilbench.bench.adapters.local import PythonAdapter

    return PythonAdapter(rest)


def _cmd(rest: str, options: AdapterOptions) -> Adapter:
    from pencilbench.bench.adapters.local import CommandAdapter

    return CommandAdapter(rest)


def _openai(rest: str, options: AdapterOptions) -> Adapter:
    from pencilbench.bench.adapters.openai import OpenAIAdapter

    if not options.base_url:
        raise UserError("openai models need --base-url, e.g. --base-url http://127.0.0.1:8000/v1")
    return OpenAIAdapter(rest, options.base_url, api=options.api, api_key_env=options.api_key_env,
                         temperature=options.temperature, timeout=options.timeout, seed=options.seed,
                         system_prompt=options.system_prompt, continuation=options.continuation)


def _hf(rest: str, options: AdapterOptions) -> Adapter:
    try:
        module = importlib.import_module("pencilbench.bench.adapters.hf")
    except ImportError as error:
        raise UserError("hf models need the optional extra: "
                        f"pip install 'torch==2.13.0' 'pencilbench[train]' ({error})") from None
    return module.HFAdapter(rest, device=options.device)


# prefix -> (factory, whether the prefix takes an argument after ':')
SPECS: dict[str, tuple[Callable[[str, AdapterOptions], Adapter], bool]] = {
    "oracle": (_oracle, False),
    "random": (_random, False),
    "python": (_python, True),
    "cmd": (_cmd, True),
    "openai": (_openai, True),
    "hf": (_hf, True),
}

# Adapters that run outside this process: they get timeouts and a persistent response cache.
REMOTE = frozenset({"cmd", "openai"})


def spec_kind(spec: str) -> str:
    """The prefix of a model spec; ``UserError`` for an unknown one."""
    kind, sep, rest = spec.partition(":")
    if kind not in SPECS:
        raise UserError(f"unknown model spec {spec!r}; use one of oracle, random, python:MODULE:FUNCTION, "
                        "cmd:COMMAND, openai:MODEL, hf:PATH")
    takes_argument = SPECS[kind][1]
    if takes_argument and not rest:
        raise UserError(f"model spec {kind}: needs an argument after the colon, e.g. {kind}:NAME")
    if not takes_argument and sep:
        raise UserError(f"model spec {kind} takes no argument, got {spec!r}")
    return kind


def make_adapter(spec: str, options: AdapterOptions = AdapterOptions()) -> Adapter:
    """The adapter a model spec names."""
    kind = spec_kind(spec)
    return SPECS[kind][0](spec.partition(":")[2], options)


__all__ = ["Adapter", "AdapterError", "AdapterOptions", "Completion", "Request", "REMOTE", "SPECS",
           "make_adapter", "spec_kind"]
