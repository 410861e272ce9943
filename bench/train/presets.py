"""Named model sizes: standard Llama-style causal LMs built from a config (no download).

``small`` and ``base`` follow the widths and depths of the PENCIL paper's models for SAT/QBF
(6 layers, width 384) and Einstein (8 layers, width 512); ``tiny`` trains in minutes on two
CPU cores. Rotary positions let a model run past the context it was trained at.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast


@dataclass(frozen=True)
class Preset:
    layers: int
    width: int
    heads: int
    mlp: int  # hidden size of the gated MLP
    lr: float
    batch_size: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(layers=4, width=128, heads=4, mlp=512, lr=2e-3, batch_size=32),
    "small": Preset(layers=6, width=384, heads=6, mlp=1024, lr=1e-3, batch_size=32),
    "base": Preset(layers=8, width=512, heads=8, mlp=1376, lr=6e-4, batch_size=32),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}") from None


def model_config(preset: Preset, tokenizer: PreTrainedTokenizerFast, context: int) -> LlamaConfig:
    if context < 2:
        raise ValueError(f"context must be >= 2, got {context}")
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.width,
        intermediate_size=preset.mlp,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.heads,
        max_position_embeddings=context,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )


def build_model(preset: Preset, tokenizer: PreTrainedTokenizerFast, context: int) -> LlamaForCausalLM:
    """A freshly initialised model (seed torch first for reproducible weights)."""
    return LlamaForCausalLM(model_config(preset, tokenizer, context))
