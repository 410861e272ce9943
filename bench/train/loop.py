"""The training loop: deterministic, checkpointed, resumable, with periodic evaluation.

An output directory holds the finished model and tokenizer (``save_pretrained``, so
``hf:DIR`` and any Hugging Face tool load it), ``checkpoint/`` (the latest checkpoint: the
model, tokenizer and optimizer state, replaced atomically), ``log.jsonl`` (loss, learning
rate and tokens/s every ``log_every`` steps, and every evaluation) and ``training.json`` (the
configuration and data statistics).

Determinism: the weights are initialised after seeding torch with ``seed``, and the batches
of epoch ``e`` are a pure function of ``(seed, e)``, so a run resumed from its checkpoint
continues exactly as if it had not stopped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from pencilbench.bench.errors import UserError
from pencilbench.bench.train.data import FORMATS, Examples, build_examples, collate, epoch_batches
from pencilbench.bench.train.presets import build_model, get_preset
from pencilbench.bench.train.tokenizer import build_tokenizer, dataset_vocabulary
from pencilbench.generators.export import read_records
from tqdm import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

CHECKPOINT = "checkpoint"
STATE = "state.pt"

# (model, tokenizer, step) -> figures to log; called every ``eval_every`` steps and at the end.
Evaluator = Callable[[Any, Any, int], Mapping[str, Any]]


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``data`` names one or more dataset files (their records are
    concatenated); ``batch_size`` and ``lr`` default to the preset's."""

    data: tuple[str, ...]
    format: str
    preset: str
    context: int
    out: str
    steps: int = 1000
    device: str = "cpu"
    seed: int = 0
    batch_size: int | None = None
    lr: float | None = None
    checkpoint_every: int = 200
    log_every: int = 10
    eval_every: int = 0  # 0: only at the end (when an evaluator is given)

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError("at least one dataset file is needed")
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        get_preset(self.preset)
        for name, lo in (("context", 2), ("steps", 1), ("checkpoint_every", 1), ("log_every", 1),
                         ("eval_every", 0), ("seed", 0)):
            if getattr(self, name) < lo:
                raise ValueError(f"{name} must be >= {lo}, got {getattr(self, name)}")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")

    def resolved(self) -> dict[str, Any]:
        """The settings that shape the trained weights: a resumed run must match them."""
        preset = get_preset(self.preset)
        return {"data": [str(Path(p).resolve()) for p in self.data], "format": self.format, "preset": self.preset,
                "context": self.context, "steps": self.steps, "seed": self.seed,
                "batch_size": self.batch_size or preset.batch_size, "lr": self.lr or preset.lr}


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    resumed_from: int
    first_loss: float  # mean loss over the first logged interval of this process
    last_loss: float  # mean loss over the last logged interval
    parameters: int
    data: Examples


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of steps (at most 200), then cosine decay to 10%."""
    warmup = max(1, min(200, steps // 20))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(config: TrainConfig, *, evaluate: Evaluator | None = None, progress: bool = True,
          echo: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) the run ``config`` describes; write the model to ``config.out``."""
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but torch sees no CUDA device")
    settings = config.resolved()
    hf_logging.disable_progress_bar()  # saving is quick; its bars would break ours
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    records = [record for path in config.data for record in read_records(path)]
    if not records:
        raise UserError(f"{', '.join(config.data)} hold no records")

    state = _load_state(out)
    if state is not None:
        if state["settings"] != settings:
            changed = sorted(k for k in settings if state["settings"].get(k) != settings[k])
            raise UserError(f"{out} holds a run with different settings ({', '.join(changed)}); "
                            "use another --out or the same settings to resume it")
        tokenizer = AutoTokenizer.from_pretrained(out / CHECKPOINT)
        model = AutoModelForCausalLM.from_pretrained(out / CHECKPOINT)
        start = state["step"]
    else:
        tokenizer = build_tokenizer(dataset_vocabulary(records))
        torch.manual_seed(config.seed)
        model = build_model(get_preset(config.preset), tokenizer, config.context)
        start = 0
    data = build_examples(records, config.format, tokenizer, config.context)
    echo(f"{data.instances} instances, {len(data.examples)} {config.format} examples, "
         f"{data.loss_tokens()} loss tokens; {data.over_length} instances longer than "
         f"--context {config.context} left out (longest needs {data.longest} tokens)")
    if not data.examples:
        raise UserError(f"every instance needs more than --context {config.context} tokens "
                        f"(the longest needs {data.longest})")

    device = torch.device(config.device)
    model.to(device).train()
    parameters = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"], betas=(0.9, 0.95), weight_decay=0.01)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        echo(f"resuming {out} at step {start} of {config.steps}")
    tokenizer.save_pretrained(out)
    _write_json(out / "training.json", {"settings": settings, "config": asdict(config), "parameters": parameters,
                                        "instances": data.instances, "examples": len(data.examples),
                                        "over_length": data.over_length, "longest": data.longest,
                                        "loss_tokens": data.loss_tokens()})
    log = _Log(out / "log.jsonl", start)

    lengths = [len(e.ids) for e in data.examples]
    batch_size = settings["batch_size"]
    per_epoch = math.ceil(len(lengths) / batch_size)
    epoch, order = -1, []
    losses: list[float] = []
    intervals: list[float] = []
    tokens = 0
    clock = time.perf_counter()
    bar = tqdm(total=config.steps, initial=start, desc="train", unit="step", disable=not progress)
    for step in range(start, config.steps):
        if step // per_epoch != epoch:
            epoch = step // per_epoch
            order = epoch_batches(lengths, batch_size, config.seed, epoch)
        batch = collate([data.examples[i] for i in order[step % per_epoch]], tokenizer.pad_token_id)
        batch = {k: v.to(device) for k, v in batch.items()}
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config.steps, settings["lr"])
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        tokens += int(batch["attention_mask"].sum())
        done = step + 1
        bar.update(1)
        if done % config.log_every == 0 or done == config.steps:
            elapsed = time.perf_counter() - clock
            mean = sum(losses) / len(losses)
            intervals.append(mean)
            bar.set_postfix(loss=f"{mean:.4f}", tok_s=f"{tokens / elapsed:,.0f}")
            log.write({"step": done, "loss": mean, "lr": optimizer.param_groups[0]["lr"],
                       "tokens_per_s": tokens / elapsed, "epoch": epoch})
            losses, tokens, clock = [], 0, time.perf_counter()
        if done % config.checkpoint_every == 0 or done == config.steps:
            _save_checkpoint(out, model, tokenizer, {"settings": settings, "step": done,
                                                     "optimizer": optimizer.state_dict()})
        if evaluate is not None and ((config.eval_every and done % config.eval_every == 0) or done == config.steps):
            model.eval()
            figures = dict(evaluate(model, tokenizer, done))
            model.train()
            log.write({"step": done, "eval": figures})
            bar.write(f"step {done}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))
            clock = time.perf_counter()  # evaluation time is not training throughput
    bar.close()
    model.save_pretrained(out)
    return TrainResult(out, config.steps, start, intervals[0] if intervals else math.nan,
                       intervals[-1] if intervals else math.nan, parameters, data)


class _Log:
    """``log.jsonl``; on resume, lines past the checkpoint's step are dropped (they are redone)."""

    def __init__(self, path: Path, start: int) -> None:
        self.path = path
        lines = path.read_text().splitlines() if path.is_file() else []
        kept = [line for line in lines if json.loads(line)["step"] <= start]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, entry: Mapping[str, Any]) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")


def _load_state(out: Path) -> dict[str, Any] | None:
    live, old = out / CHECKPOINT, out / (CHECKPOINT + ".old")
    if not live.exists() and old.exists():  # killed in the middle of the swap
        os.replace(old, live)
    path = live / STATE
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _save_checkpoint(out: Path, model: Any, tokenizer: Any, state: Mapping[str, Any]) -> None:
    """Write the checkpoint beside the old one, then swap, so a kill never leaves half of one."""
    fresh, old, live = out / (CHECKPOINT + ".new"), out / (CHECKPOINT + ".old"), out / CHECKPOINT
    shutil.rmtree(fresh, ignore_errors=True)
    model.save_pretrained(fresh)
    tokenizer.save_pretrained(fresh)
    torch.save(dict(state), fresh / STATE)
    if live.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(live, old)
    os.replace(fresh, live)
    shutil.rmtree(old, ignore_errors=True)


def _write_json(path: Path, value: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
