"""A tiny randomly initialised OPT model with the demo tokenizer (seed 004's architecture).

``python tests/tiny_opt.py DIR`` writes it to DIR (the README's seed-004 walk-through uses it).
Random weights scaled by 3 give margins like a trained model's (see FACTS, tiny models)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def build_tiny_opt(folder: str | Path, scale: float = 3.0, seed: int = 0) -> Path:
    """Write a 2-layer OPT (hidden 128, 4 heads) with the demo tokenizer to ``folder``."""
    import torch
    from transformers import OPTConfig, OPTForCausalLM

    from gendiff.engines.loading import demo_model_path

    folder = Path(folder)
    torch.manual_seed(seed)
    config = OPTConfig(
        vocab_size=2807,
        hidden_size=128,
        num_hidden_layers=2,
        ffn_dim=512,
        num_attention_heads=4,
        max_position_embeddings=512,
        word_embed_proj_dim=128,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=0,
        do_layer_norm_before=True,
    )
    model = OPTForCausalLM(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "layer_norm" not in name:
                parameter.mul_(scale)
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    return folder


if __name__ == "__main__":
    print(build_tiny_opt(sys.argv[1]))
