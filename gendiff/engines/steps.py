"""Turn a batch of raw next-token logits into TokenSteps, and collect them into Traces."""

from __future__ import annotations

import threading
import time
from typing import Any

from gendiff.engines.base import GenerationSettings, OnStep
from gendiff.engines.loading import PromptTokenizer
from gendiff.trace import TokenStep, TopToken, Trace


def steps_from_logits(logits: Any, top_k: int, tokenizer: PromptTokenizer) -> list[TokenStep]:
    """``logits``: (rows, vocab) tensor of raw scores. Greedy = argmax in float32 (ties: lowest id)."""
    import torch

    scores = logits.float()
    logprobs = torch.log_softmax(scores, dim=-1)
    k = min(top_k, scores.shape[-1])
    top_logits, top_ids = torch.topk(scores, k, dim=-1)
    chosen = torch.argmax(scores, dim=-1)
    top_logprobs = torch.gather(logprobs, -1, top_ids)
    chosen_logprobs = torch.gather(logprobs, -1, chosen[:, None])[:, 0]
    rows = []
    for ids, lps, lgs, choice, choice_lp in zip(
        top_ids.tolist(), top_logprobs.tolist(), top_logits.tolist(), chosen.tolist(), chosen_logprobs.tolist()
    ):
        # exact ties (common in bfloat16) ranked by id, as argmax breaks them: the choice comes first
        ranked = sorted(zip(ids, lps, lgs), key=lambda c: (-c[2], c[0]))
        top = tuple(TopToken(i, tokenizer.piece(i), lp, lg) for i, lp, lg in ranked)
        rows.append(TokenStep(choice, tokenizer.piece(choice), choice_lp, top))
    return rows


class TraceBuilder:
    """Collects the steps of a batch of prompts, applying EOS and cancellation the same way everywhere."""

    def __init__(
        self,
        engine: str,
        settings_record: dict[str, Any],
        prompt_indices: list[int],
        prompts: list[list[int]],
        settings: GenerationSettings,
        eos_token_id: int | None,
        on_step: OnStep | None,
        cancel: threading.Event | None,
    ) -> None:
        self.engine = engine
        self.settings_record = settings_record
        self.prompt_indices = prompt_indices
        self.prompts = prompts
        self.settings = settings
        self.eos = eos_token_id if settings.stop_at_eos else None
        self.on_step = on_step
        self.cancel = cancel
        self.steps: list[list[TokenStep]] = [[] for _ in prompts]
        self.finish: list[str | None] = [None] * len(prompts)
        self.started = time.perf_counter()

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @property
    def done(self) -> bool:
        return all(reason is not None for reason in self.finish) or self.cancelled

    def active(self, row: int) -> bool:
        return self.finish[row] is None

    def add(self, row: int, step: TokenStep) -> None:
        """Record the next step of ``row`` (ignored once that row has finished)."""
        if self.finish[row] is not None:
            return
        self.steps[row].append(step)
        if self.on_step is not None:
            self.on_step(self.prompt_indices[row], len(self.steps[row]) - 1, step)
        if self.eos is not None and step.token_id == self.eos:
            self.finish[row] = "eos"
        elif len(self.steps[row]) >= self.settings.max_new_tokens:
            self.finish[row] = "length"

    def add_rows(self, rows: list[TokenStep], row_ids: list[int] | None = None) -> None:
        for row, step in zip(row_ids if row_ids is not None else range(len(rows)), rows):
            self.add(row, step)

    def traces(self) -> list[Trace]:
        elapsed = time.perf_counter() - self.started
        return [
            Trace(
                engine=self.engine,
                prompt_index=index,
                prompt_token_ids=tuple(prompt),
                steps=tuple(steps),
                finish_reason=reason or ("cancelled" if self.cancelled else "length"),
                settings=self.settings_record,
                wall_time_s=elapsed,
            )
            for index, prompt, steps, reason in zip(self.prompt_indices, self.prompts, self.steps, self.finish)
        ]
