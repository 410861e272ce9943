"""``pencilbench eval``: score a model on a dataset in one mode, resumably.

Results go to ``RUN_DIR/results.sqlite`` (one row per model, mode, style and instance,
committed as each sample finishes). Running the same command again skips the finished
samples and tries again those whose model call failed (``--no-retry-errors`` keeps them);
a run directory refuses to mix different budgets or prompt settings under one (model,
mode, style), and one eval at a time may write to it. Remote models (``cmd:``,
``openai:``) also cache their responses in ``RUN_DIR/cache.sqlite``, so calls made before
an interruption are not paid for twice.

Every record of the dataset is checked before the first model call. The exit status is
0 when every sample has an outcome, :data:`EXIT_MODEL_ERRORS` when some sample's model
call failed for good (with a one-line summary of the causes), 2 for bad input.
"""

from __future__ import annotations

import argparse
import http
import json
import os
import platform
import re
import sys
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pencilbench.bench.adapters import REMOTE, AdapterOptions, make_adapter, spec_kind
from pencilbench.bench.adapters.wrapper import CallPolicy, Client, ResponseCache
from pencilbench.bench.errors import UserError
from pencilbench.bench.harness import (
    MAX_REPLY_BYTES,
    MAX_SAMPLES,
    MODES,
    STYLES,
    EvalConfig,
    RunSummary,
    default_max_tokens,
    evaluate,
)
from pencilbench.bench.manifest import check_manifest
from pencilbench.bench.metrics import sampling_summary, summarize
from pencilbench.bench.parts import EXECUTORS
from pencilbench.bench.store import MODEL_ERROR, ResultStore, lock_run_dir
from pencilbench.bench.tables import format_table
from pencilbench.bench.verify import check_dataset
from pencilbench.generators import __version__
from pencilbench.generators.export import read_records
from tqdm import tqdm

# Settings that change results: a run directory keeps one value per (model, mode, style).
# ``max_tokens`` is the budget asked for (``None``: the default, which follows the dataset,
# so a suite that grows between runs can still be resumed); ``max_tokens_used`` is the value.
# ``suite`` ("NAME vN" from the dataset's manifest) keeps one suite version per evaluation.
CHECKED = ("max_tokens", "max_context", "max_reply_bytes", "base_url", "api", "temperature", "seed", "suite",
           "system_prompt", "chat_continuation")
# The exit status of an eval in which some sample's model call failed for good.
EXIT_MODEL_ERRORS = 3
_ATTEMPTS = re.compile(r" \(after \d+ attempts?\)$")
_HTTP = re.compile(r"^HTTP (\d{3})\b")


def register(commands: argparse._SubParsersAction) -> None:
    ev = commands.add_parser(
        "eval", help="evaluate a model on a dataset (direct, cot or pencil mode), resumably",
        description="Evaluate a model on a dataset. Re-running the same command resumes.",
    )
    ev.add_argument("--data", type=Path, required=True, help="dataset (.jsonl or .parquet)")
    ev.add_argument("--model", required=True,
                    help="oracle | random | python:MODULE:FUNCTION | cmd:COMMAND | openai:MODEL | hf:PATH")
    ev.add_argument("--mode", choices=MODES, required=True)
    ev.add_argument("--run-dir", type=Path, required=True, help="results folder (created if missing)")
    ev.add_argument("--limit", type=int, help="only the first K records of the dataset")
    add_model_arguments(ev)
    ev.add_argument("--export", type=Path, metavar="PATH",
                    help="also write every sample of the run directory to PATH (.jsonl or .parquet)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")
    add_executor_arguments(ev, "model calls run in Ray actors; this process alone writes the results")
    ev.set_defaults(run=run_eval)


def add_model_arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """How the model is called and its samples are run: the options of ``eval`` that ``run``
    takes too and hands on (:func:`model_argv`), defined once so that the two cannot drift."""
    return [
        parser.add_argument("--style", choices=STYLES, default="compact",
                            help="compact task tokens (default) or an instruct prompt in natural language"),
        parser.add_argument("--max-context", type=int, help="live context budget (default none)"),
        parser.add_argument("--max-tokens", type=int,
                            help="generated tokens per sample (default: compact 2 x longest gold trace + 64, "
                                 "instruct 4096)"),
        parser.add_argument("--max-reply-bytes", type=int,
                            help=f"bytes of model text stored per sample; a longer reply is cut and ends with "
                                 f"status reply_cut (default {MAX_REPLY_BYTES:,})"),
        parser.add_argument("--concurrency", type=int, default=1,
                            help="samples in flight at once: parallel calls, or the batch size of hf models "
                                 "(default 1)"),
        parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"),
        parser.add_argument("--api", choices=("completions", "chat"), default="completions",
                            help="OpenAI endpoint kind (default completions)"),
        parser.add_argument("--api-key-env", default="OPENAI_API_KEY",
                            help="environment variable holding the API key (default OPENAI_API_KEY)"),
        parser.add_argument("--temperature", type=float, default=0.0,
                            help="sampling temperature of openai models (default 0: greedy)"),
        parser.add_argument("--samples", type=int, default=1, metavar="K",
                            help="samples per instance, for pass@k and maj@k (default 1; use with "
                                 "--temperature)"),
        parser.add_argument("--system-prompt", help="system message for --api chat (default none)"),
        parser.add_argument("--chat-continuation", choices=("auto", "assistant", "user"), default="auto",
                            help="how --api chat continues a trace: assistant (vLLM continue_final_message), "
                                 "user (a fresh user turn with the work so far) or auto (assistant on vLLM, "
                                 "user elsewhere)"),
        parser.add_argument("--timeout", type=float,
                            help="seconds per model call (default 60 for cmd/openai models, none otherwise)"),
        parser.add_argument("--retries", type=int, default=4, help="retries per failed call (default 4)"),
        parser.add_argument("--backoff", type=float, default=0.5,
                            help="seconds before the first retry, doubling with each (jittered; default 0.5)"),
        parser.add_argument("--max-backoff", type=float, default=30.0,
                            help="the longest wait between retries, a server's Retry-After included (default 30)"),
        parser.add_argument("--retry-errors", action=argparse.BooleanOptionalAction, default=True,
                            help="on a rerun, try again the samples whose model call failed (default yes)"),
        parser.add_argument("--no-cache", action="store_true", help="do not cache cmd/openai responses"),
        parser.add_argument("--seed", type=int, default=0,
                            help="seed of the random model and of openai requests (those of sample K of an item "
                                 "send SEED + K; default 0)"),
        parser.add_argument("--device", default="cpu", help="torch device of hf models (default cpu)"),
    ]


def model_argv(args: argparse.Namespace) -> list[str]:
    """The options of :func:`add_model_arguments` that ``args`` sets to other than their
    defaults, as ``eval`` arguments."""
    argv: list[str] = []
    for action in add_model_arguments(argparse.ArgumentParser()):
        value = getattr(args, action.dest)
        if value == action.default:
            continue
        flag = action.option_strings[0]
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(action, argparse._StoreTrueAction):
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


def add_executor_arguments(parser: argparse.ArgumentParser, ray_help: str) -> None:
    """``--executor`` and ``--ray-address``, shared by the commands that can run on Ray."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help=f"where the work runs (default local); ray: {ray_help} (optional extra ray)")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="an existing Ray cluster (auto, or ray://HOST:10001); default: start a local Ray")


def check_executor(args: argparse.Namespace) -> None:
    if args.ray_address is not None and args.executor != "ray":
        raise UserError("--ray-address needs --executor ray")


def load_records(path: Path) -> list[dict[str, Any]]:
    """The dataset's records; ``UserError`` naming the bad records when any cannot be used."""
    try:
        records = read_records(path)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read dataset {path}: {error}") from None
    if not records:
        raise UserError(f"dataset {path} has no records")
    check_dataset(records, path)
    return records


def failure_cause(error: str | None) -> str:
    """What a failed sample's error says, without the attempt count, HTTP codes named."""
    cause = _ATTEMPTS.sub("", error or "unknown error")
    code = _HTTP.match(cause)
    if code is None:
        return cause
    try:
        phrase = http.HTTPStatus(int(code.group(1))).phrase.lower()
    except ValueError:
        return f"HTTP {code.group(1)}"
    return f"HTTP {code.group(1)} {phrase}"


def failure_summary(errors: list[str | None], total: int, key_env: str | None) -> str:
    """One line: how many samples failed and why (the commonest causes first), with a hint
    about the API key when the server refused it."""
    causes = Counter(failure_cause(error) for error in errors).most_common()
    if len(causes) == 1:
        why = causes[0][0]
    else:
        why = ", ".join(f"{cause} ({count})" for cause, count in causes[:2])
        why += f" and {len(causes) - 2} other causes" if len(causes) > 2 else ""
    line = f"{len(errors)} of {total} samples failed: {why}"
    if key_env is not None and any(cause.startswith(("HTTP 401", "HTTP 403")) for cause, _ in causes):
        line += f"; is {key_env} set?" if not os.environ.get(key_env) else f"; is the key in {key_env} valid?"
    return line + "; run the same command again to retry them"


def check_resume(store: ResultStore, model: str, mode: str, style: str, config: dict[str, Any]) -> None:
    """Refuse to add samples made with different settings to an existing evaluation."""
    frame = store.evaluations()
    earlier = frame[(frame["model"] == model) & (frame["mode"] == mode) & (frame["style"] == style)]
    if earlier.empty:
        return
    stored = json.loads(earlier["config"].iloc[0])
    for key in CHECKED:
        if key in stored and stored[key] != config.get(key):  # a key it lacks: an older version did not record it
            raise UserError(f"{store.path.parent} already holds {model} {mode} {style} with "
                            f"{key}={stored.get(key)!r}, not {config.get(key)!r}; use another --run-dir")


def size_label(params: str) -> str:
    return " ".join(f"{name}={value}" for name, value in json.loads(params).items())


def results_table(rows: list[dict[str, Any]]) -> str:
    """The per task and size table printed after an evaluation."""
    grid = [key for key in (rows[0] if rows else {}) if key.startswith("acc@")]
    headers = ["task", "size", "n", "acc", "95% CI", "partial", "parse fail", "stopped", "peak mean", "peak max",
               *grid]
    body = [[row["task"], size_label(row["params"]), row["n"], row["accuracy"],
             f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]", row["partial"], row["parse_failures"], row["stopped"],
             row["peak_mean"], row["peak_max"], *(row[key] for key in grid)] for row in rows]
    return format_table(headers, body)


def sampling_table(rows: list[dict[str, Any]]) -> str:
    """pass@1, pass@k and maj@k per task and size, for runs with several samples per instance."""
    k = rows[0]["k"] if rows else 1
    headers = ["task", "size", "instances", "pass@1", f"pass@{k}", f"maj@{k}"]
    body = [[row["task"], size_label(row["params"]), row["instances"], row["pass1"],
             "-" if row["passk"] is None else row["passk"], "-" if row["majk"] is None else row["majk"]]
            for row in rows]
    return format_table(headers, body)


def throughput(summary: RunSummary) -> str:
    seconds, cpu = max(summary.seconds, 1e-9), max(summary.cpu_seconds, 1e-9)
    retried = f", {summary.retried} failed before and tried again" if summary.retried else ""
    model_tokens = "" if summary.model_tokens is None else f" = {summary.model_tokens:,} model tokens by the server"
    return (f"{summary.written} samples in {summary.seconds:.2f} s: {summary.written / seconds:,.0f} samples/s, "
            f"{summary.tokens:,} generated tokens (words/pieces in the instruct style){model_tokens}, "
            f"{summary.tokens / seconds:,.0f} per s ({summary.tokens / cpu:,.0f} per CPU second), "
            f"{summary.calls} model calls ({summary.skipped} already done{retried})")


def load_notes(summary: RunSummary, concurrency: int) -> list[str]:
    """Lines on how many requests were in flight and whether the model served them at once."""
    load = summary.load
    if load is None or concurrency < 2 or not load.calls:
        return []
    lines = [f"requests in flight: {load.in_flight:.1f} on average (--concurrency {concurrency})"]
    at_once = load.served_at_once
    if at_once is not None:
        lines[0] += (f"; a call took {load.crowded:.2f} s in a full crowd and {load.alone:.2f} s alone, "
                     f"so the model served about {at_once:.1f} at once")
        if at_once < 1 + (concurrency - 1) / 2:  # nearer one at a time than all at once
            lines.append("note: --concurrency gave little speed-up: the server seems to answer one request at a "
                         "time; give it parallel slots (llama.cpp's llama-server -np N) or use one that batches")
    return lines


def run_eval(args: argparse.Namespace, bar: tqdm | None = None) -> int:
    """Evaluate as the arguments say; ``bar``: advance this progress bar of a larger job."""
    kind = spec_kind(args.model)
    check_executor(args)
    if args.concurrency < 1:
        raise UserError(f"--concurrency must be >= 1, got {args.concurrency}")
    if not 0 <= args.retries <= 100:
        raise UserError(f"--retries must be in [0, 100], got {args.retries}")
    for name, value in (("--backoff", args.backoff), ("--max-backoff", args.max_backoff)):
        if not 0 <= value <= 3600:
            raise UserError(f"{name} must be in [0, 3600] seconds, got {value}")
    if args.export is not None and args.export.suffix not in (".jsonl", ".parquet"):
        raise UserError(f"--export {args.export}: the file name must end in .jsonl or .parquet")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be >= 1, got {args.limit}")
    if not 1 <= args.samples <= MAX_SAMPLES:
        raise UserError(f"--samples must be in [1, {MAX_SAMPLES}], got {args.samples}")
    if args.system_prompt is not None and (kind != "openai" or args.api != "chat"):
        raise UserError("--system-prompt needs an openai model with --api chat")
    everything = load_records(args.data)
    records = everything[: args.limit] if args.limit else everything
    max_tokens = args.max_tokens or default_max_tokens(everything, args.mode, args.style)
    if args.max_reply_bytes is not None and args.max_reply_bytes < 1:
        raise UserError(f"--max-reply-bytes must be >= 1, got {args.max_reply_bytes}")
    config = EvalConfig(args.mode, args.style, max_tokens, args.max_context,
                        max_reply_bytes=args.max_reply_bytes or MAX_REPLY_BYTES, samples=args.samples)
    timeout = args.timeout if args.timeout is not None else (60.0 if kind in REMOTE else None)
    # The whole dataset, not the --limit slice: the random model's answer alphabet must not
    # depend on how far a run has got.
    options = AdapterOptions(everything, args.mode, args.style, base_url=args.base_url, api=args.api,
                             api_key_env=args.api_key_env, temperature=args.temperature,
                             timeout=timeout or 60.0, seed=args.seed, device=args.device,
                             system_prompt=args.system_prompt, continuation=args.chat_continuation)
    adapter = make_adapter(args.model, options)
    check = getattr(adapter, "check", None)
    if check is not None:
        check()
    manifest = check_manifest(args.data, len(everything))  # after every other check: a warning is no error
    key_env = args.api_key_env if kind == "openai" else None
    if key_env is not None and not os.environ.get(key_env):
        print(f"pencilbench: warning: {key_env} is not set; requests go without an API key", file=sys.stderr)
    settings = {"data": str(args.data), "mode": args.mode, "style": args.style,
                "max_tokens": args.max_tokens, "max_tokens_used": max_tokens,
                "max_context": args.max_context, "max_reply_bytes": args.max_reply_bytes,
                "base_url": args.base_url,
                "api": args.api if kind == "openai" else None,
                "temperature": args.temperature if kind in REMOTE else None,
                "seed": args.seed if kind in ("random", "openai") else None,
                "system_prompt": args.system_prompt,
                "chat_continuation": args.chat_continuation if kind == "openai" and args.api == "chat" else None,
                "samples": args.samples,
                "timeout": timeout, "retries": args.retries, "backoff": args.backoff,
                "max_backoff": args.max_backoff, "concurrency": args.concurrency,
                "suite": manifest.label if manifest is not None else None}
    versions = {"pencilbench": __version__, "python": platform.python_version(),
                "generators": sorted({record["generator_version"] for record in records}),
                "dataset": None if manifest is None else {
                    "suite": manifest.suite, "suite_version": manifest.suite_version, "files": dict(manifest.files)}}
    policy = CallPolicy(retries=args.retries, backoff=args.backoff, max_backoff=args.max_backoff,
                        timeout=timeout, concurrency=args.concurrency)
    with lock_run_dir(args.run_dir), ResultStore(args.run_dir, create=True) as store:
        check_resume(store, args.model, args.mode, args.style, settings)
        cache = None
        if kind in REMOTE and not args.no_cache:
            cache = ResponseCache(args.model, args.run_dir / "cache.sqlite",
                                  settings={key: settings[key] for key in CHECKED if key != "max_tokens"})
        store.start_evaluation(args.model, args.mode, args.style, settings, versions,
                               datetime.now(UTC).isoformat(timespec="seconds"))
        if args.executor == "ray":
            from pencilbench.bench.ray_executor import RayClient

            client: Client = RayClient(adapter, args.model, options, policy, cache=cache, address=args.ray_address)
        else:
            client = Client(adapter, policy, cache=cache)
        try:
            summary = evaluate(records, client, config, store, args.model,
                               progress=not args.quiet and sys.stderr.isatty(), retry_errors=args.retry_errors,
                               bar=bar)
        finally:
            client.close()
            close = getattr(adapter, "close", None)
            if close is not None:
                close()
        frame = store.samples()
        ids = {record["id"] for record in records}
        mine = frame[(frame["model"] == args.model) & (frame["mode"] == args.mode)
                     & (frame["style"] == args.style) & frame["instance_id"].isin(ids)
                     & (frame["repeat"] < args.samples)]
        print(f"{args.model} · {args.mode} · {args.style}: {throughput(summary)}")
        for line in load_notes(summary, args.concurrency):
            print(line)
        print(results_table(summarize(mine)))
        if args.samples > 1:
            print(sampling_table(sampling_summary(mine, args.samples)))
        # The random baseline writes no protocol at all; any other model that never reduces
        # is most likely behind a server that hides the [RETURN] it stopped on.
        if args.mode == "pencil" and summary.written and not summary.reductions and args.model != "random":
            print(f"pencilbench: warning: no sample of this pencil run performed a reduction "
                  f"({summary.written} samples); the model never wrote [RETURN] or its server hid it",
                  file=sys.stderr)
        statuses = mine["status"].value_counts()
        print("statuses: " + ", ".join(f"{name} {count}" for name, count in statuses.items()))
        if args.export is not None:
            count = store.export(args.export)
            print(f"exported {count} samples to {args.export}")
    failed = mine[mine["status"] == MODEL_ERROR]
    if failed.empty:
        return 0
    print(f"pencilbench: error: {failure_summary(list(failed['error']), len(mine), key_env)}", file=sys.stderr)
    return EXIT_MODEL_ERRORS


def evaluate_modes(data: Path, run_dir: Path, models: Sequence[str], modes: Sequence[str] = MODES,
                   extra: Sequence[str] = (), bar: tqdm | None = None) -> int:
    """Evaluate each model in each mode on a dataset as ``pencilbench eval`` would (``extra``:
    more of its arguments), printing each table (the evaluation step of ``quickstart`` and
    ``run``). Returns ``eval``'s exit status: :data:`EXIT_MODEL_ERRORS` when any evaluation
    left failed samples, so that the job reports them too."""
    parser = argparse.ArgumentParser(prog="pencilbench")
    register(parser.add_subparsers())
    status = 0
    for model in models:
        for mode in modes:
            print()
            status = max(status, run_eval(parser.parse_args(["eval", "--data", str(data), "--model", model,
                                                             "--mode", mode, "--run-dir", str(run_dir), *extra]),
                                          bar))
    return status
