"""The packed engine: every prompt in one row, block-diagonal causal attention.

The prompts are concatenated into one sequence; a 4D additive mask lets each token see only
earlier tokens of its own segment, and position ids restart at 0 for each segment (or run on
across the row with ``positions=continuous``, the seed's "without reset"). Decoding appends
one new token per segment per step at the end of the row (KV cache), masked so that it sees
only its own segment, at its segment's own next position.
"""

from __future__ import annotations

from typing import Any

from gendiff.engines.hf import HFEngine
from gendiff.engines.penalties import decide
from gendiff.engines.steps import TraceBuilder
from gendiff.errors import GendiffError


def block_diagonal_mask(query_owner: Any, key_owner: Any, causal_offset: int | None, dtype: Any) -> Any:
    """Additive mask (1, 1, q, k): 0 where the query's segment owns the key (and, with
    ``causal_offset``, key index <= query index + offset), the dtype's minimum elsewhere."""
    import torch

    allowed = query_owner[:, None] == key_owner[None, :]
    if causal_offset is not None:
        q = torch.arange(len(query_owner), device=query_owner.device)[:, None] + causal_offset
        k = torch.arange(len(key_owner), device=key_owner.device)[None, :]
        allowed &= k <= q
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[None, None]


class Packed(HFEngine):
    name = "packed"
    description = "all prompts in one row, block-diagonal causal mask, positions per segment"
    options = {"positions": ("reset", "continuous"), "order": ("given", "reversed")}

    def decode(self, builder: TraceBuilder) -> None:
        rows = list(range(len(builder.prompts)))
        if self.option("order") == "reversed":
            rows.reverse()
        ordered = builder.batch(rows)  # segment i of the packed row is builder row rows[i]
        if not ordered.cancelled:
            try:
                self._decode(ordered, ordered.prompts)
            except (RuntimeError, ValueError, TypeError) as exc:
                if "mask" in str(exc).lower():
                    raise GendiffError(
                        f"packed: model {self.model_path} does not accept a custom 4D attention mask ({exc}); "
                        "Llama-family models do"
                    ) from None
                raise

    def _decode(self, builder: TraceBuilder, prompts: list[list[int]]) -> None:
        import torch
        from transformers import DynamicCache

        model, tokenizer, device = self.loaded.model, self.loaded.tokenizer, self.loaded.device
        dtype = model.dtype
        segments = len(prompts)
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        starts = torch.cumsum(lengths, 0) - lengths
        owner = torch.repeat_interleave(torch.arange(segments, device=device), lengths)
        total = int(lengths.sum())
        if self.option("positions") == "reset":
            positions = torch.arange(total, device=device) - starts[owner]
            next_positions = lengths.clone()
        else:
            positions = torch.arange(total, device=device)
            next_positions = starts + lengths
        input_ids = torch.tensor([t for p in prompts for t in p], device=device)[None]
        mask = block_diagonal_mask(owner, owner, 0, dtype)
        cache = DynamicCache(config=model.config)
        zero = torch.zeros(segments, dtype=torch.long, device=device)
        ends = (starts + lengths - 1).tolist()
        probing = builder.probing(model, lambda segment, call: (0, ends[segment] if call == 0 else segment))
        resolved = self.resolved_decoding()
        histories = [list(p) for p in prompts]  # each segment's own tokens, for the penalties
        with torch.inference_mode(), probing:
            logits = self.forward_last(input_ids, mask, positions[None], cache, zero, starts + lengths - 1)
            step_owner = torch.arange(segments, device=device)
            while True:
                chosen = decide(logits, resolved, histories, builder.settings.top_k, tokenizer, lengths.tolist())
                builder.add_rows(chosen)
                if builder.done:
                    break
                fed = builder.next_inputs(chosen)
                for history, token in zip(histories, fed):
                    history.append(token)
                tokens = torch.tensor([fed], device=device)
                owner = torch.cat([owner, step_owner])
                # every new token sees its own segment's prompt and earlier tokens, and itself
                mask = block_diagonal_mask(step_owner, owner, None, dtype)
                logits = self.forward_last(tokens, mask, next_positions[None], cache, zero, step_owner)
                next_positions = next_positions + 1
