"""The packed engine: every prompt in one row, block-diagonal causal attention.

The prompts are concatenated into one sequence; a 4D additive mask lets each token see only
earlier tokens of its own segment, and position ids restart at 0 for each segment (or run on
across the row with ``positions=continuous``, the seed's "without reset"). Decoding appends
one new token per segment per step at the end of the row (KV cache), masked so that it sees
only its own segment, at its segment's own next position. On sliding-window layers each token
sees only the last ``window`` tokens of its own segment (the mask reads each slot's index in its
segment, see :mod:`masks`). ALiBi models (bloom, mpt) are refused: their biases are built for
the whole row (from a 2D padding mask or the slot index) and can't restart per segment.
"""

from __future__ import annotations

from gendiff.engines.architecture import FULL, Architecture
from gendiff.engines.conformance import found_to_differ
from gendiff.engines.hf import HFEngine, own_loop_refusal
from gendiff.engines.masks import full_size_cache, layer_masks
from gendiff.engines.penalties import decide_and_feed
from gendiff.engines.steps import TraceBuilder
from gendiff.errors import GendiffError


class Packed(HFEngine):
    name = "packed"
    description = "all prompts in one row, block-diagonal causal mask, positions per segment"
    options = {"positions": ("reset", "continuous"), "order": ("given", "reversed")}
    conformance = "refuse"  # gendiff's own loop: checked on each model before it runs
    deliberate_options = frozenset({"positions"})  # continuous positions are the experiment, not a bug

    def refusal(self, arch: Architecture) -> str | None:
        if arch.alibi:
            return (
                f"model {arch.name} uses ALiBi position biases, which transformers builds for the whole row "
                f"(from a 2D padding mask or the slot index) and cannot restart for each packed segment; "
                f"use {arch.safe_engines(found_to_differ(self.model_path))}"
            )
        return super().refusal(arch) or own_loop_refusal(self.spec.label, arch, found_to_differ(self.model_path))

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

        model, tokenizer, device = self.loaded.model, self.loaded.tokenizer, self.loaded.device
        arch = self.architecture or _FULL_ONLY
        segments = len(prompts)
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        starts = torch.cumsum(lengths, 0) - lengths
        owner = torch.repeat_interleave(torch.arange(segments, device=device), lengths)
        total = int(lengths.sum())
        # each slot's index within its own segment: causality and windows go by it
        index = torch.arange(total, device=device) - starts[owner]
        if self.option("positions") == "reset":
            positions = index
            next_positions = lengths.clone()
        else:
            positions = torch.arange(total, device=device)
            next_positions = starts + lengths
        input_ids = torch.tensor([t for p in prompts for t in p], device=device)[None]
        mask = layer_masks(arch, owner[None], index[None], owner[None], index[None], model.dtype)
        cache = full_size_cache(model)
        zero = torch.zeros(segments, dtype=torch.long, device=device)
        ends = (starts + lengths - 1).tolist()
        probing = builder.probing(model, lambda segment, call: (0, ends[segment] if call == 0 else segment))
        resolved = self.resolved_decoding()
        histories = [list(p) for p in prompts]  # each segment's own tokens, for the penalties
        with torch.inference_mode(), probing:
            logits = self.forward_last(input_ids, mask, positions[None], cache, zero, starts + lengths - 1)
            step_owner = torch.arange(segments, device=device)
            step_index = lengths.clone()
            while True:
                fed = decide_and_feed(builder, logits, resolved, histories, tokenizer, lengths.tolist())
                if fed is None:
                    break
                tokens = torch.tensor([fed], device=device)
                owner = torch.cat([owner, step_owner])
                index = torch.cat([index, step_index])
                # every new token sees its own segment's earlier tokens (within the window), and itself
                mask = layer_masks(arch, step_owner[None], step_index[None], owner[None], index[None], model.dtype)
                logits = self.forward_last(tokens, mask, next_positions[None], cache, zero, step_owner)
                next_positions = next_positions + 1
                step_index = step_index + 1


# a model whose config could not be read up front: plain block-diagonal causal masks
_FULL_ONLY = Architecture("?", "?", (FULL,), None, False, None, False)
