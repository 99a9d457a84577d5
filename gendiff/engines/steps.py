"""Turn a batch of raw next-token logits into TokenSteps, and collect them into Traces."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from gendiff.engines.base import GenerationSettings, OnStep
from gendiff.engines.loading import PromptTokenizer
from gendiff.trace import TokenStep, TopToken, Trace

if TYPE_CHECKING:
    from gendiff.engines.probe import Probe

DistributionObserver = Callable[[list[int], list[int], Any], None]
"""observer(prompt_indices, step_indices, logits): each row's full raw next-token scores, as chosen."""


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
        forced: dict[int, list[int]] | None = None,
        probe: Probe | None = None,
        observer: DistributionObserver | None = None,
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
        # teacher forcing: per row, the tokens fed back instead of the engine's own choice
        self.forced: list[list[int] | None] = [(forced or {}).get(index) for index in prompt_indices]
        self.fed: list[int | None] = [None] * len(prompts)
        self.probe = probe
        self.observer = observer
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
        """Record the next step of ``row`` (ignored once that row has finished).

        The token fed back is the engine's own choice, or under teacher forcing the forced
        one; EOS and the end of a forced stream finish the row."""
        if self.finish[row] is not None:
            return
        index = len(self.steps[row])
        forced = self.forced[row]
        fed = forced[index] if forced is not None and index < len(forced) else step.token_id
        self.steps[row].append(step)
        self.fed[row] = fed
        if self.on_step is not None:
            self.on_step(self.prompt_indices[row], index, step)
        if self.eos is not None and fed == self.eos:
            self.finish[row] = "eos"
        elif index + 1 >= self.settings.max_new_tokens or (forced is not None and index + 1 >= len(forced)):
            self.finish[row] = "length"

    def next_inputs(self, chosen: list[TokenStep]) -> list[int]:
        """The tokens for the next forward pass: each row's choice, or its forced token."""
        return [
            fed if forced is not None and fed is not None else step.token_id
            for step, forced, fed in zip(chosen, self.forced, self.fed)
        ]

    def row_of(self, prompt_index: int) -> int | None:
        return self.prompt_indices.index(prompt_index) if prompt_index in self.prompt_indices else None

    def probing(self, model: Any, locate: Callable[[int, int], tuple[int, int]]) -> AbstractContextManager[None]:
        """Hooks for the probe, if it targets a prompt of this batch. ``locate(row, call)``: the
        (batch row, position) of that row's last token in forward call number ``call`` (0 = prefill)."""
        row = None if self.probe is None else self.row_of(self.probe.prompt_index)
        if row is None:
            return nullcontext()
        return self.probe.attach(model, row, lambda call: locate(row, call))

    def add_rows(self, rows: list[TokenStep], row_ids: list[int] | None = None, logits: Any = None) -> None:
        """Record one step of several rows; ``logits`` (rows, vocab), the raw scores the steps came
        from, go to the distribution observer first (for the rows still running)."""
        ids = list(row_ids if row_ids is not None else range(len(rows)))
        if logits is not None and self.observer is not None:
            live = [i for i, row in enumerate(ids) if self.finish[row] is None]
            if live:
                scores = logits if len(live) == len(ids) else logits[live]
                self.observer(
                    [self.prompt_indices[ids[i]] for i in live], [len(self.steps[ids[i]]) for i in live], scores
                )
        for row, step in zip(ids, rows):
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
