"""The demo model with a chat template, copied into a test's folder (the shipped one has none)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gendiff.demo import demo_model_path

# ChatML-like, with BOS written by the template itself (so a doubled BOS would show)
CHATML = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_demo_model(folder: Path, template: str = CHATML) -> Path:
    """A copy of the demo model in ``folder``/chat-demo whose tokenizer_config.json has ``template``."""
    model = folder / "chat-demo"
    shutil.copytree(demo_model_path(), model)
    config_path = model / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["chat_template"] = template
    config_path.write_text(json.dumps(config))
    return model


def greedy_by_hand(model_dir: Path, ids: list[int], steps: int) -> list[int]:
    """A plain float32 greedy loop without KV cache: the whole sequence through the model each step."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    sequence = list(ids)
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([sequence])).logits[0, -1]
            sequence.append(int(torch.argmax(logits)))
    return sequence[len(ids) :]
