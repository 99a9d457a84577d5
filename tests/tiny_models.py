"""Tiny random-weight causal LMs of many transformers architectures, built locally (no download).

Each model is built from its transformers config class with the demo tokenizer (vocab 2807,
bos = eos = 0, pad = 1), 2 layers, hidden 128, 4 heads of 32, and its random weights scaled up
so that margins between candidates look like a real model's (see /work/shared/FACTS.md). The
folder holds ``save_pretrained`` output plus the demo tokenizer files, so ``--model DIR`` works.

    from tiny_models import ARCHITECTURES, build_tiny_model
    folder = build_tiny_model("gemma2", tmp_path)   # -> tmp_path / "gemma2"

``tiny_model_dir`` (a session-scoped fixture in conftest.py) caches one folder per architecture.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

VOCAB = 2807
BOS = EOS = 0
PAD = 1
HIDDEN = 128
HEADS = 4
LAYERS = 2
WINDOW = 16  # small enough that prompts of 4-43 tokens cross it
SEED = 1234
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# the fields every config takes under some name; per-architecture spelling below
_COMMON: dict[str, Any] = {
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": 4 * HIDDEN,
    "num_hidden_layers": LAYERS,
    "num_attention_heads": HEADS,
    "num_key_value_heads": 2,
    "head_dim": HIDDEN // HEADS,
    "max_position_embeddings": 512,
    "bos_token_id": BOS,
    "eos_token_id": EOS,
    "pad_token_id": PAD,
    "tie_word_embeddings": False,
}
_MOE = {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 2 * HIDDEN}
# two layers: one sliding, one full, so mixed-layer models exercise both masks
_MIXED = {"layer_types": ["sliding_attention", "full_attention"], "sliding_window": WINDOW}


def _gpt2_style(**extra: Any) -> dict[str, Any]:
    return {
        "vocab_size": VOCAB,
        "n_embd": HIDDEN,
        "n_layer": LAYERS,
        "n_head": HEADS,
        "n_positions": 512,
        "bos_token_id": BOS,
        "eos_token_id": EOS,
        "pad_token_id": PAD,
        **extra,
    }


# architecture -> (model_type, config overrides, weight scale); the scale keeps margins realistic
_SPECS: dict[str, tuple[str, dict[str, Any], float]] = {
    "llama": ("llama", {}, 3.0),
    "qwen2": ("qwen2", {}, 3.0),
    "qwen3": ("qwen3", {}, 3.0),
    "mistral": ("mistral", {"sliding_window": WINDOW}, 3.0),
    "gemma": ("gemma", {"tie_word_embeddings": True}, 3.0),  # Gemma and Cohere tie, as their real models do
    "gemma2": (
        "gemma2",
        {
            **_MIXED,
            "final_logit_softcapping": 5.0,
            "attn_logit_softcapping": 20.0,
            "query_pre_attn_scalar": 32,
            "tie_word_embeddings": True,
        },
        3.0,
    ),
    "gemma3": ("gemma3_text", {**_MIXED, "query_pre_attn_scalar": 32, "tie_word_embeddings": True}, 3.0),
    "cohere": ("cohere", {"logit_scale": 0.25, "tie_word_embeddings": True}, 3.0),
    "cohere2": ("cohere2", {**_MIXED, "logit_scale": 0.25, "tie_word_embeddings": True}, 3.0),
    "granite": ("granite", {"logits_scaling": 4.0}, 3.0),
    "phi": ("phi", {"num_key_value_heads": HEADS, "partial_rotary_factor": 0.5}, 3.0),
    "phi3": ("phi3", {}, 3.0),
    "gpt_neox": ("gpt_neox", {"use_parallel_residual": True, "num_key_value_heads": HEADS}, 3.0),
    "gpt2": ("gpt2", _gpt2_style(), 3.0),
    "gpt_bigcode": ("gpt_bigcode", _gpt2_style(multi_query=True), 3.0),
    "opt": ("opt", {"ffn_dim": 4 * HIDDEN, "word_embed_proj_dim": HIDDEN, "num_key_value_heads": HEADS}, 3.0),
    "bloom": ("bloom", {"n_embed": HIDDEN, "n_layer": LAYERS, "n_head": HEADS}, 1.0),
    "falcon": ("falcon", {"head_dim": None, "multi_query": True, "alibi": False}, 3.0),
    "gptj": ("gptj", _gpt2_style(rotary_dim=16), 3.0),
    "starcoder2": ("starcoder2", {"sliding_window": None}, 3.0),
    "olmo2": ("olmo2", {}, 3.0),
    "mixtral": ("mixtral", {"num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": None}, 3.0),
    "qwen2_moe": ("qwen2_moe", {**_MOE, "shared_expert_intermediate_size": 2 * HIDDEN}, 3.0),
    "lfm2": ("lfm2", {"layer_types": ["conv", "full_attention"]}, 3.0),  # short-conv layers
    "gpt_oss": ("gpt_oss", {**_MIXED, "num_local_experts": 4, "num_experts_per_tok": 2}, 3.0),
    # local attention in GPT-Neo's own words (attention_types / window_size, not layer_types)
    "gpt_neo": ("gpt_neo", {"attention_types": [[["global", "local"], 1]], "window_size": WINDOW}, 3.0),
    # no attention: a recurrent state that ignores attention_mask
    "rwkv": (
        "rwkv",
        {"attention_hidden_size": HIDDEN, "intermediate_size": 4 * HIDDEN, "context_length": 512},
        1.0,
    ),
    # no KV cache in transformers
    "openai-gpt": ("openai-gpt", _gpt2_style(), 3.0),
    # lightning (linear) attention + full attention: transformers lets left pads into its state
    "minimax": (
        "minimax",
        {
            "layer_types": ["linear_attention", "full_attention"],
            "num_local_experts": 4,
            "num_experts_per_tok": 2,
            "block_size": 16,
            "sliding_window": None,
        },
        3.0,
    ),
    "mamba": ("mamba", {"state_size": 16, "expand": 2, "conv_kernel": 4}, 1.0),
    # ALiBi from the slot index, no position_ids (bloom's come from the mask)
    "mpt": ("mpt", {"d_model": HIDDEN, "n_heads": HEADS, "n_layers": LAYERS, "max_seq_len": 512}, 1.0),
}
ARCHITECTURES: list[str] = list(_SPECS)


def demo_tokenizer_dir() -> Path:
    from gendiff.demo import demo_model_path

    return demo_model_path()


def tiny_config(arch: str) -> Any:
    """The transformers config of the tiny ``arch`` model."""
    from transformers import AutoConfig

    model_type, overrides, _scale = _SPECS[arch]
    kwargs = dict(_COMMON)
    if model_type in ("gpt2", "gpt_bigcode", "gptj", "openai-gpt"):
        kwargs = {}
    kwargs.update(overrides)
    # None drops a common field the config spells differently or derives (falcon's head_dim)
    kwargs = {key: value for key, value in kwargs.items() if value is not None or key == "sliding_window"}
    return AutoConfig.for_model(model_type, **kwargs)


def build_tiny_model(arch: str, root: Path) -> Path:
    """Build the tiny ``arch`` model into ``root / arch`` (once; reused if already there) and return the folder."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    folder = Path(root) / arch
    if (folder / "config.json").is_file():
        return folder
    _model_type, _overrides, scale = _SPECS[arch]
    config = tiny_config(arch)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:  # matrices only: norms keep their scale of 1
                param.mul_(scale)
    model.generation_config.pad_token_id = PAD
    model.generation_config.bos_token_id = BOS
    model.generation_config.eos_token_id = EOS
    folder.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()  # "Writing model shards" would land in tests' captured stderr
    model.save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(demo_tokenizer_dir() / name, folder / name)
    return folder
