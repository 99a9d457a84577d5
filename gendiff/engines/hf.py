"""Hugging Face transformers engines: hf-single, hf-left (``generate``) and hf-right (own loop)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from gendiff.engines.architecture import (
    NO_CACHE,
    RECURRENT,
    RECURRENT_STATE,
    Architecture,
    architecture_of,
    transformers_version,
)
from gendiff.engines.base import Engine
from gendiff.engines.conformance import found_to_differ
from gendiff.engines.loading import LoadedModel, load_model
from gendiff.engines.masks import full_size_cache, layer_masks
from gendiff.engines.penalties import build_processors, decide_and_feed
from gendiff.engines.settings import EngineSpec, GenerationSettings
from gendiff.engines.steps import TraceBuilder, steps_from_logits
from gendiff.errors import GendiffError
from gendiff.records.decoding import READS_FROM_MODEL, resolve, supported

_generate_lock = threading.Lock()


class HFEngine(Engine):
    """Shared by the engines that run a transformers model loaded by :mod:`loading`."""

    can_replay = True  # every decode loop feeds builder.next_inputs and runs inside builder.probing
    loaded: LoadedModel

    def __init__(self, spec: EngineSpec, model_path: str) -> None:
        super().__init__(spec, model_path)
        # up front, from config.json only: a pair that can't run is refused before any model work
        self.architecture = architecture_of(str(model_path))
        reason = self.refusal(self.architecture) if self.architecture is not None else None
        if reason:
            raise GendiffError(f"engine {spec.label}: {reason}")

    def refusal(self, arch: Architecture) -> str | None:
        """Why this engine can't run ``arch`` as specified (one line, with what to do), or None."""
        if self.spec.attn == "sdpa" and arch.supports_sdpa is False:
            return (
                f"model {arch.name} has no sdpa attention in transformers {transformers_version()}; pass --attn eager"
            )
        return None

    def load(self) -> None:
        self.loaded = load_model(self.model_path, self.spec.dtype, self.spec.attn, self.spec.device)

    def settings_record(self) -> dict[str, Any]:
        record = super().settings_record()
        record["resolved_decoding"] = self.resolved_decoding()
        return record

    def resolved_decoding(self) -> dict[str, Any]:
        """The penalties this engine applies (see :func:`gendiff.decoding.resolve`)."""
        model_config = self.loaded.model.generation_config.to_dict()
        return resolve(self.spec.decoding, model_config, supported(self.name), READS_FROM_MODEL[self.name])

    def decode_in_batches(
        self, builder: TraceBuilder, decode: Callable[[TraceBuilder, list[list[int]]], None], size: int | None = None
    ) -> None:
        """Split into batches of ``size`` (default ``batch_size``) and ``decode`` each into its own view."""
        for batch in builder.batches(size or self.spec.batch_size):
            if not batch.cancelled:
                decode(batch, batch.prompts)

    def forward_last(
        self, input_ids: Any, attention_mask: Any, position_ids: Any, cache: Any, rows: Any, positions: Any
    ) -> Any:
        """Run the whole ``*ForCausalLM`` forward, with the LM head applied at (rows, positions) only.

        The model's own forward runs, so its logit post-processing applies (Granite's
        ``logits_scaling``, Cohere's ``logit_scale``, Gemma2's final soft-capping); a pre-hook on
        the output embedding first gathers the hidden states we read, so the head's matmul has
        one row per sequence, as in ``generate``, and shapes alone don't add drift.
        Returns (len(rows), vocab) logits.
        """
        model = self.loaded.model
        with _head_reads_only(model.get_output_embeddings(), rows, positions):
            out = model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
            )
        return out.logits


@contextmanager
def _head_reads_only(head: Any, rows: Any, positions: Any) -> Iterator[None]:
    """While inside, ``head`` called from this thread sees hidden[rows, positions] (a 2D batch) only."""
    owner = threading.get_ident()

    def gather(module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if threading.get_ident() != owner or args[0].dim() != 3:
            return None  # another thread sharing the cached model: untouched
        return (args[0][rows, positions], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


class GenerateEngine(HFEngine):
    """Engines that call ``model.generate`` and watch the raw logits with a logits processor."""

    def run_generate(self, builder: TraceBuilder, prompts: list[list[int]], use_cache: bool = True) -> None:
        import torch
        from transformers import (
            GenerationConfig,
            LogitsProcessor,
            LogitsProcessorList,
            StoppingCriteria,
            StoppingCriteriaList,
        )

        model, tokenizer = self.loaded.model, self.loaded.tokenizer
        top_k = builder.settings.top_k
        width = max(len(p) for p in prompts)
        # the penalties as generate() builds them from a generation config, on the same input_ids
        # (left pads included); gendiff's config sets none, so generate() adds no processor of its own
        penalties = build_processors(self.resolved_decoding(), width)
        raw: list[Any] = [None]

        class KeepRawLogits(LogitsProcessor):
            # first processor: the raw scores, before any penalty
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                raw[0] = scores.clone()
                return scores

        class RecordLogits(LogitsProcessor):
            # last processor: sees the scores generate() takes its argmax of
            def __call__(self, input_ids: Any, scores: Any) -> Any:
                chosen = steps_from_logits(raw[0], top_k, tokenizer, scores if penalties else None)
                builder.add_rows(chosen, logits=raw[0])
                # teacher forcing: make the token fed back the argmax generate() takes
                for row, (step, token) in enumerate(zip(chosen, builder.next_inputs(chosen))):
                    if token != step.token_id:
                        scores[row] = float("-inf")
                        scores[row, token] = 0.0
                return scores

        class StopWhenCancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), builder.cancelled, dtype=torch.bool, device=input_ids.device)

        input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # left padding: real tokens at the right end
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention_mask[row, width - len(ids) :] = 1
        config = GenerationConfig(
            max_new_tokens=builder.settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=builder.eos,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=use_cache,
        )
        device = self.loaded.device
        probing = builder.probing(model, lambda row, call: (row, -1))
        with _blank_generation_defaults(model), torch.inference_mode(), probing:
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                generation_config=config,
                logits_processor=LogitsProcessorList([KeepRawLogits(), *penalties, RecordLogits()]),
                stopping_criteria=StoppingCriteriaList([StopWhenCancelled()]),
            )
        generated = output[:, width:].tolist()
        for row, steps in enumerate(builder.steps):
            forced = builder.forced[row] or []
            fed = [forced[i] if i < len(forced) else s.token_id for i, s in enumerate(steps)]
            if fed != generated[row][: len(steps)]:
                raise RuntimeError(
                    f"{self.spec.label}: generate() chose other tokens than the argmax of the recorded scores; "
                    "a logits processor from the model's generation config is active"
                )


@contextmanager
def _blank_generation_defaults(model: Any) -> Iterator[None]:
    """generate() fills unset values from the model's generation_config (repetition penalty
    included: the vLLM-vs-HF seed); hide it so greedy means argmax of raw logits here."""
    from transformers import GenerationConfig

    with _generate_lock:
        saved = model.generation_config
        model.generation_config = GenerationConfig()
        try:
            yield
        finally:
            model.generation_config = saved


class HFSingle(GenerateEngine):
    name = "hf-single"
    description = "transformers generate(), one prompt at a time, no padding"
    options = {"cache": ("on", "off")}
    isolates_prompts = True  # each prompt runs alone: a replay needs only that prompt

    def decode(self, builder: TraceBuilder) -> None:
        use_cache = self.option("cache") == "on"
        self.decode_in_batches(builder, lambda batch, prompts: self.run_generate(batch, prompts, use_cache), 1)


class HFLeft(GenerateEngine):
    name = "hf-left"
    description = "transformers generate(), batched, left padding, positions from the mask"
    applies = frozenset({"dtype", "attn", "device", "batch_size"})
    conformance = "label"  # what transformers does is the finding, not a reason to refuse
    conformance_note = (
        "padding leaks into this model's state: transformers' left-padded generate differs from unpadded "
        "in float32 on this model"
    )
    conformance_batch_note = (
        "the prompts of a batch leak into each other on this model: transformers' batched generate differs "
        "from one prompt at a time in float32 even without padding"
    )

    def decode(self, builder: TraceBuilder) -> None:
        self.decode_in_batches(builder, self.run_generate)


class HFRight(HFEngine):
    """Right padding, decoded correctly: each row's first token comes from its own last real
    position, and each new token gets the row's own next position id. New tokens are appended
    after the padded block with the pad slots masked, so the KV cache still works. On models
    with sliding-window layers the cache keeps every slot and a 4D mask applies each row's
    own window by position (see :mod:`masks`)."""

    name = "hf-right"
    description = "batched, right padding, own decode loop (each row at its own next position)"
    applies = frozenset({"dtype", "attn", "device", "batch_size"})
    conformance = "refuse"  # gendiff's own loop: checked on each model before it runs

    def decode(self, builder: TraceBuilder) -> None:
        self.decode_in_batches(builder, self._decode)

    def refusal(self, arch: Architecture) -> str | None:
        return super().refusal(arch) or own_loop_refusal(self.spec.label, arch, found_to_differ(self.model_path))

    def _decode(self, builder: TraceBuilder, prompts: list[list[int]]) -> None:
        import torch

        model, tokenizer, device = self.loaded.model, self.loaded.tokenizer, self.loaded.device
        rows = len(prompts)
        width = max(len(p) for p in prompts)
        lengths = torch.tensor([len(p) for p in prompts], device=device)
        input_ids = torch.full((rows, width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for row, ids in enumerate(prompts):  # right padding: real tokens from position 0
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(device), mask.to(device)
        positions = torch.arange(width, device=device).expand(rows, width)
        row_index = torch.arange(rows, device=device)
        arch = self.architecture
        windowed = arch is not None and arch.sliding
        # with a window: every slot's owner row (-1: padding) and position, for the 4D masks
        key_seq = torch.where(mask.bool(), row_index[:, None], -1)
        key_index = positions
        seq_column = row_index[:, None]

        def attention(query_seq: Any, query_index: Any) -> Any:
            if not windowed:
                return mask  # 2D: the model builds its own causal mask (and ALiBi, for bloom)
            return layer_masks(arch, query_seq, query_index, key_seq, key_index, model.dtype)

        cache = full_size_cache(model)
        probing = builder.probing(model, lambda row, call: (row, len(prompts[row]) - 1 if call == 0 else -1))
        resolved = self.resolved_decoding()
        histories = [list(p) for p in prompts]  # each row's own tokens, for the penalties
        with torch.inference_mode(), probing:
            query_seq = row_index[:, None].expand(rows, width)
            logits = self.forward_last(
                input_ids, attention(query_seq, positions), positions, cache, row_index, lengths - 1
            )
            next_positions = lengths.clone()
            while True:
                fed = decide_and_feed(builder, logits, resolved, histories, tokenizer, lengths.tolist())
                if fed is None:
                    break
                tokens = torch.tensor(fed, device=device)[:, None]
                mask = torch.cat([mask, torch.ones((rows, 1), dtype=mask.dtype, device=device)], dim=1)
                key_seq = torch.cat([key_seq, seq_column], dim=1)
                key_index = torch.cat([key_index, next_positions[:, None]], dim=1)
                new_positions = next_positions[:, None]
                logits = self.forward_last(
                    tokens, attention(seq_column, new_positions), new_positions, cache, row_index, -1
                )
                next_positions = next_positions + 1


def own_loop_refusal(label: str, arch: Architecture, differing: frozenset[str] = frozenset()) -> str | None:
    """Why an engine with its own decode loop and masks (hf-right, packed) can't run ``arch``, or
    None. The engines it recommends are only those right on such a model (``safe_engines``),
    none of ``differing`` (found to differ on it by the conformance probe)."""
    use = f"use {arch.safe_engines(differing)}"
    if arch.cache == RECURRENT_STATE or RECURRENT in arch.layer_kinds:
        return (
            f"model {arch.name} carries a recurrent state from token to token (not just attention over a "
            f"cache); {label} can only mask attention, so pads or other prompts would run through that state; {use}"
        )
    others = arch.unsupported_layer_kinds()
    if others:
        return (
            f"model {arch.name} has {', '.join(others)} layers; {label} builds full and sliding-window "
            f"attention masks only; {use}"
        )
    if arch.cache == NO_CACHE:
        return f"model {arch.name} has no KV cache in transformers; {label} decodes with one; {use}"
    if arch.window_by_slot:
        return (
            f"model {arch.name} applies its local-attention window ({arch.sliding_window} tokens) itself, by "
            f"cache slot, so {label}'s pads or other prompts' tokens would fall inside it; {use}"
        )
    if arch.sliding and arch.mixed and not arch.accepts_mask_mapping:
        return (
            f"model {arch.name} mixes full and sliding-window layers but its decoder takes no per-layer "
            f"masks; {label} cannot apply the window; {use}"
        )
    return None


def check_context(prompts: list[list[int]], settings: GenerationSettings, max_length: int | None) -> None:
    """Refuse prompts that don't fit the model's context with the new tokens."""
    for index, ids in enumerate(prompts):
        problem = settings.context_problem(len(ids), max_length)
        if problem:
            raise GendiffError(f"prompt {index + 1}: {problem}; shorten it or lower --max-new-tokens")
