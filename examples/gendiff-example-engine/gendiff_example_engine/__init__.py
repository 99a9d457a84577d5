"""``plain-loop``: greedy decoding as a plain PyTorch loop, no KV cache (an example gendiff engine).

gendiff finds it through the ``gendiff.engines`` entry point in pyproject.toml. It implements the
Engine contract: class attributes declare what it can do, :meth:`load` loads the model, and
:meth:`decode` feeds the TraceBuilder gendiff hands it, one step per prompt and token.
"""

from __future__ import annotations

from gendiff.engines.base import Engine
from gendiff.engines.loading import load_model
from gendiff.engines.steps import TraceBuilder, steps_from_logits


class PlainLoop(Engine):
    name = "plain-loop"
    description = "plain PyTorch greedy loop, whole sequence every step, no KV cache (example plugin)"
    can_replay = True  # feeds builder.next_inputs and runs its forward passes inside builder.probing
    isolates_prompts = True  # one prompt at a time: nothing else shares its forward pass

    def load(self) -> None:
        # gendiff's loader caches the model per folder, dtype, attention and device
        self.loaded = load_model(self.model_path, self.spec.dtype, self.spec.attn, self.spec.device)

    def decode(self, builder: TraceBuilder) -> None:
        import torch

        model, tokenizer, device = self.loaded.model, self.loaded.tokenizer, self.loaded.device
        for row in builder.batches(1):
            if row.cancelled:
                break
            ids = list(row.prompts[0])
            # every call sees the whole sequence; the prompt's last token is the last position
            with torch.inference_mode(), row.probing(model, lambda _row, _call: (0, -1)):
                while not row.done:
                    logits = model(input_ids=torch.tensor([ids], device=device), use_cache=False).logits[:, -1]
                    steps = steps_from_logits(logits, row.settings.top_k, tokenizer)
                    row.add_rows(steps, logits=logits)  # the raw scores also feed --stats
                    ids.append(row.next_inputs(steps)[0])
