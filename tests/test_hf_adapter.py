"""The Hugging Face adapter on a tiny randomly initialised model (no download)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from pencilbench.bench.adapters.base import Request  # noqa: E402
from pencilbench.bench.adapters.hf import HFAdapter  # noqa: E402
from pencilbench.bench.train.presets import Preset, model_config  # noqa: E402
from pencilbench.bench.train.tokenizer import build_tokenizer  # noqa: E402

WORDS = [*"0123456789", "+", "=", "@0", "@1", "#1"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = build_tokenizer(WORDS)
    config = model_config(Preset(layers=2, width=32, heads=4, mlp=64, lr=1e-3, batch_size=4), tokenizer, 256)
    config.initializer_range = 1.0  # large weights: greedy outputs that vary with the context
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def reference(adapter: HFAdapter, request: Request) -> list[str]:
    """Greedy decoding recomputing the whole sequence at every token."""
    ids = adapter.tokenizer(request.context)["input_ids"]
    out: list[str] = []
    with torch.no_grad():
        while len(out) < request.max_tokens:
            token = int(adapter.model(torch.tensor([ids])).logits[0, -1].argmax())
            ids.append(token)
            out.append(adapter.tokenizer.convert_ids_to_tokens(token))
            if token == adapter.eos_id or out[-1] in request.stop:
                break
    return out


CONTEXTS = [
    "1 2 + 3 4 =",
    "1 2 + 3 4 = [CALL] @0 #1 5",
    "1 2 + 3 4 = 7",
    "9 9 9 + 0 0 1 = [CALL] @1",
    "5 =",
]


def test_cached_decoding_matches_recomputing(saved):
    cached = HFAdapter(saved, max_batch_size=3)
    plain = HFAdapter(saved, reuse_cache=False)
    outputs = set()
    for context in CONTEXTS:  # sequential requests sharing prefixes, as in PENCIL mode
        request = Request(context, max_tokens=12)
        want = reference(plain, request)
        outputs.update(want)
        assert cached.complete(request).text.split() == [t for t in want if t != "[EOS]"]
        assert plain.complete(request).text == cached.complete(request).text
    assert cached.stats["computed_tokens"] < plain.stats["computed_tokens"]
    assert len(outputs) >= 5  # the model's outputs depend on its context


def test_batches_match_single_requests(saved):
    adapter = HFAdapter(saved, max_batch_size=4)
    requests = [Request(c, max_tokens=3 + i) for i, c in enumerate(CONTEXTS)]
    batched = adapter.complete_batch(requests)
    computed = adapter.stats["computed_tokens"]
    again = adapter.complete_batch(requests[::-1])[::-1]  # now mostly served from the cache
    assert adapter.stats["computed_tokens"] - computed < computed
    single = [HFAdapter(saved, reuse_cache=False).complete(r) for r in requests]
    assert batched == single == again
    assert all(c.completion_tokens <= r.max_tokens for c, r in zip(batched, requests, strict=True))


def test_stop_strings_end_the_completion(saved):
    adapter = HFAdapter(saved)
    free = adapter.complete(Request("1 2 + 3 4 =", max_tokens=8))
    assert free.finish_reason == "length" and free.completion_tokens == 8
    tokens = free.text.split()
    first = next(i for i, t in enumerate(tokens) if i >= 2 and tokens.index(t) == i)
    stop = tokens[first]
    stopped = adapter.complete(Request("1 2 + 3 4 =", stop=("[NEVER]", stop), max_tokens=8))
    assert stopped.stop == stop and stopped.finish_reason == "stop"
    assert stopped.text.split() == tokens[:first]
    assert stopped.completion_tokens == first + 1


def test_token_counting_and_zero_budget(saved):
    adapter = HFAdapter(saved)
    assert adapter.count_tokens("1 2 [CALL] @0 [RETURN]") == 5
    empty = adapter.complete(Request("1 =", max_tokens=0))
    assert empty.text == "" and empty.finish_reason == "length"
    assert adapter.name == f"hf:{saved}"
