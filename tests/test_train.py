"""Training: examples, tokenizer, determinism, resume, and a smoke run through `hf:` and eval."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pencilbench.bench.adapters import make_adapter  # noqa: E402
from pencilbench.bench.cli import main  # noqa: E402
from pencilbench.bench.errors import UserError  # noqa: E402
from pencilbench.bench.store import ResultStore  # noqa: E402
from pencilbench.bench.train.data import build_examples, collate, epoch_batches, record_token_examples  # noqa: E402
from pencilbench.bench.train.loop import TrainConfig, train  # noqa: E402
from pencilbench.bench.train.tokenizer import EOS, build_tokenizer, dataset_vocabulary  # noqa: E402
from pencilbench.generators.dataset import Spec, generate  # noqa: E402
from pencilbench.generators.export import write_records  # noqa: E402
from pencilbench.generators.registry import get_task  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

torch.set_num_threads(1)  # a 1M-parameter model gains nothing from more, and loses when cores are shared


@pytest.fixture(scope="module")
def records():
    small = list(generate(Spec("addition", {"operands": 2, "digits": 2}), 48))
    large = list(generate(Spec("addition", {"operands": 3, "digits": 4}), 8))
    return small + large


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, records):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    write_records(path, records)
    return path


def test_loss_covers_each_generated_token_once(records):
    for record in records[:5] + records[-3:]:
        (tokens, start), = record_token_examples(record, "cot")
        assert tokens[start:] == [*record["cot"].split(), EOS]
        pieces = record_token_examples(record, "pencil")
        trained = [token for tokens, start in pieces for token in tokens[start:]]
        assert trained == [*record["pencil"].split(), EOS]
        # The last segment is the fully reduced context, prompt then [ANSWER] and the answer,
        # and the end token.
        assert pieces[-1][0][1:] == [*record["prompt"].split(), "[ANSWER]", *record["answer"].split(), EOS]


def test_over_length_instances_are_left_out_whole_and_counted(records):
    tokenizer = build_tokenizer(dataset_vocabulary(records))
    cot_sizes = [len(r["prompt"].split()) + len(r["cot"].split()) for r in records]
    context = sorted(cot_sizes)[len(cot_sizes) // 2]
    data = build_examples(records, "cot", tokenizer, context)
    assert data.over_length == sum(size > context for size in cot_sizes) > 0
    assert data.instances == len(records) and data.longest == max(cot_sizes)
    assert sorted(len(e.ids) - 2 for e in data.examples) == sorted(s for s in cot_sizes if s <= context)
    pencil = build_examples(records, "pencil", tokenizer, context)
    assert pencil.over_length == 0  # PENCIL segments are short: every instance fits
    assert all(len(e.ids) - 1 <= context for e in pencil.examples)
    assert pencil.longest == max(r["stats"]["pencil_max_context"] for r in records)
    batch = collate(list(pencil.examples[:4]), tokenizer.pad_token_id)
    for row, example in enumerate(pencil.examples[:4]):
        labels = batch["labels"][row].tolist()
        assert labels[: example.loss_start] == [-100] * example.loss_start
        assert labels[example.loss_start : len(example.ids)] == list(example.ids[example.loss_start :])


def test_tokenizer_covers_every_declared_size_and_round_trips(tmp_path, records):
    words = dataset_vocabulary(records)
    task = get_task("addition")
    for params in ({"operands": 2, "digits": 2}, {"operands": 3, "digits": 4}):
        assert set(task.vocabulary(task.params(params))) <= set(words)
    tokenizer = build_tokenizer(words)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    text = records[-1]["prompt"] + " " + records[-1]["pencil"]
    ids = loaded(text)["input_ids"]
    assert ids[0] == loaded.bos_token_id and loaded.unk_token_id not in ids
    assert len(ids) == len(text.split()) + 1
    assert loaded.decode(ids[1:]) == text
    with pytest.raises(ValueError, match="reserved"):
        build_tokenizer(["1", EOS])


def test_batches_are_a_seeded_permutation():
    lengths = [i % 7 + 1 for i in range(100)]
    first = epoch_batches(lengths, 8, seed=3, epoch=0)
    assert first == epoch_batches(lengths, 8, seed=3, epoch=0)
    assert first != epoch_batches(lengths, 8, seed=3, epoch=1)
    assert sorted(i for batch in first for i in batch) == list(range(100))


def _weights(path):
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def test_resume_continues_exactly(tmp_path, dataset):
    def config(out):
        return TrainConfig(data=(str(dataset),), format="pencil", preset="tiny", context=64, out=str(out),
                           steps=6, batch_size=8, checkpoint_every=3, log_every=1, eval_every=3)

    straight = train(config(tmp_path / "straight"), progress=False, echo=lambda _: None)
    assert straight.resumed_from == 0

    def interrupt(model, tokenizer, step):
        raise KeyboardInterrupt  # the process dies right after the step-3 checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(config(tmp_path / "resumed"), evaluate=interrupt, progress=False, echo=lambda _: None)
    resumed = train(config(tmp_path / "resumed"), progress=False, echo=lambda _: None)
    assert resumed.resumed_from == 3
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]

    changed = TrainConfig(data=(str(dataset),), format="pencil", preset="tiny", context=64,
                          out=str(tmp_path / "resumed"), steps=6, batch_size=8, seed=1)
    with pytest.raises(UserError, match="seed"):
        train(changed, progress=False, echo=lambda _: None)


@pytest.mark.parametrize("fmt", ["pencil", "cot"])
def test_smoke_train_reload_and_evaluate(tmp_path, dataset, records, fmt, capsys):
    out = tmp_path / "model"
    result = train(TrainConfig(data=(str(dataset),), format=fmt, preset="tiny", context=64, out=str(out),
                               steps=30, batch_size=16, lr=3e-3, log_every=5), progress=False,
                   echo=lambda _: None)
    assert result.last_loss < 0.9 * result.first_loss
    assert result.data.over_length == (8 if fmt == "cot" else 0)  # CoT of 3 x 4 digits needs > 64

    adapter = make_adapter(f"hf:{out}")
    assert adapter.count_tokens(records[0]["prompt"]) == len(records[0]["prompt"].split())
    test = tmp_path / "test.jsonl"
    write_records(test, generate(Spec("addition", {"operands": 2, "digits": 2}, split="test"), 6))
    code = main(["eval", "--data", str(test), "--model", f"hf:{out}", "--mode", fmt, "--max-context", "64",
                 "--run-dir", str(tmp_path / "run"), "--concurrency", "4", "--quiet"])
    assert code == 0
    with ResultStore(tmp_path / "run") as store:
        samples = store.samples()
    assert len(samples) == 6 and (samples["generated_tokens"] > 0).all()
    assert "addition" in capsys.readouterr().out
    if fmt == "pencil":  # keeping the cache across reductions changes nothing but the speed
        assert main(["decode-speed", "--model", str(out), "--data", str(test), "--batch", "3",
                     "--max-context", "64"]) == 0
        assert "outputs identical: yes" in capsys.readouterr().out


def test_command_line_errors_are_one_line(tmp_path, dataset, capsys):
    base = ["train", "--data", str(dataset), "--format", "pencil", "--out", str(tmp_path / "m")]
    assert main([*base, "--context", "1"]) == 2
    assert main(["train", "--data", str(tmp_path / "missing.jsonl"), "--format", "cot", "--context", "64",
                 "--out", str(tmp_path / "m")]) == 2
    assert main([*base, "--context", "8", "--steps", "1"]) == 2  # nothing fits in 8 tokens
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("pencilbench: error:") for line in errors)
    assert "context" in errors[2]
