"""``pencilbench train``: train a small causal LM on pencilbench data, and ``pencilbench
decode-speed``: time a trained model's decoding with and without the KV cache kept across
reductions (both need the ``train`` extra)."""

from __future__ import annotations

import argparse

from pencilbench.bench.errors import UserError


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a small transformer on CoT or PENCIL traces (saved in Hugging Face format)",
        description="Train a standard transformers causal LM from a preset on a dataset's CoT traces or "
                    "PENCIL segments. The model and tokenizer are written with save_pretrained, so "
                    "`pencilbench eval --model hf:OUT` loads them. Re-running the same command resumes "
                    "from the last checkpoint.")
    train.add_argument("--data", nargs="+", required=True, metavar="PATH",
                       help="training dataset(s), .jsonl or .parquet (records are concatenated)")
    train.add_argument("--format", required=True, choices=("cot", "pencil"),
                       help="cot: the whole trace after the prompt; pencil: the PENCIL segments")
    train.add_argument("--preset", default="tiny", choices=("tiny", "small", "base"),
                       help="tiny ~1M parameters, small ~10M (6x384), base ~25M (8x512)")
    train.add_argument("--context", type=int, required=True, metavar="N",
                       help="training context in tokens, counted as `eval --max-context` counts them; "
                            "instances that need more are left out and counted")
    train.add_argument("--out", required=True, metavar="DIR", help="output directory (model, checkpoints, log)")
    train.add_argument("--steps", type=int, default=1000, help="optimizer steps (default 1000)")
    train.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--batch-size", type=int, help="examples per step (default: the preset's)")
    train.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    train.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    train.add_argument("--checkpoint-every", type=int, default=200, metavar="S")
    train.add_argument("--eval-data", metavar="PATH",
                       help="held-out dataset evaluated through the harness every --eval-every steps "
                            "and at the end, in the mode matching --format with --max-context N")
    train.add_argument("--eval-every", type=int, default=0, metavar="S", help="0: only at the end")
    train.add_argument("--eval-limit", type=int, default=64, metavar="K", help="instances per evaluation")
    train.set_defaults(run=run_train)

    speed = commands.add_parser(
        "decode-speed", help="time hf: decoding with the KV cache kept across reductions against recomputing",
        description="Evaluate a Hugging Face model on a dataset twice through the harness, once keeping "
                    "the KV cache up to each reduction and once recomputing the context after every "
                    "reduction, and print generated tokens/s for both.")
    speed.add_argument("--model", required=True, metavar="PATH", help="model directory (as in hf:PATH)")
    speed.add_argument("--data", required=True, metavar="PATH", help="dataset, .jsonl or .parquet")
    speed.add_argument("--mode", default="pencil", choices=("cot", "pencil"))
    speed.add_argument("--max-context", type=int, metavar="N")
    speed.add_argument("--limit", type=int, default=64, metavar="K", help="first K records (default 64)")
    speed.add_argument("--batch", type=int, default=16, help="samples decoded together (default 16)")
    speed.add_argument("--repeats", type=int, default=3, help="rounds per way; the fastest counts (default 3)")
    speed.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    speed.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    speed.set_defaults(run=run_decode_speed)


def _set_threads(threads: int | None) -> None:
    try:
        import torch
    except ImportError as error:
        raise UserError(f"this command needs the optional extra: pip install 'pencilbench[train]' ({error})") from None
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def run_train(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    from pencilbench.bench.train.loop import TrainConfig, train

    config = TrainConfig(data=tuple(args.data), format=args.format, preset=args.preset, context=args.context,
                         out=args.out, steps=args.steps, device=args.device, seed=args.seed,
                         batch_size=args.batch_size, lr=args.lr, checkpoint_every=args.checkpoint_every,
                         eval_every=args.eval_every)
    evaluate = None
    if args.eval_data:
        from pencilbench.bench.train.evaluate import harness_evaluator

        evaluate = harness_evaluator(args.eval_data, config, limit=args.eval_limit)
    result = train(config, evaluate=evaluate)
    print(f"trained {result.parameters:,} parameters for {result.steps} steps "
          f"(from step {result.resumed_from}); loss {result.first_loss:.4f} -> {result.last_loss:.4f}; "
          f"model in {result.out}")
    return 0


def run_decode_speed(args: argparse.Namespace) -> int:
    _set_threads(args.threads)
    from pencilbench.bench.train.speed import decode_speed
    from pencilbench.generators.export import read_records

    if min(args.limit, args.batch, args.repeats) < 1:
        raise UserError("--limit, --batch and --repeats must be >= 1")
    try:
        records = read_records(args.data)[: args.limit]
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read dataset {args.data}: {error}") from None
    if not records:
        raise UserError(f"dataset {args.data} has no records")
    rows = decode_speed(args.model, records, mode=args.mode, max_context=args.max_context, batch=args.batch,
                        device=args.device, repeats=args.repeats)
    for row in rows:
        kind = "KV cache kept" if row.reuse_cache else "recomputed"
        print(f"{args.mode} {kind:>13}: {row.samples} samples, {row.generated_tokens} generated tokens in "
              f"{row.seconds:.2f} s = {row.tokens_per_second:,.0f} tokens/s; "
              f"{row.computed_tokens:,} of {row.context_tokens:,} context tokens computed")
    kept, recomputed = rows
    print(f"speed-up {kept.tokens_per_second / max(recomputed.tokens_per_second, 1e-9):.2f}x; "
          f"outputs identical: {'yes' if kept.outputs == recomputed.outputs else 'NO'}")
    return 0
