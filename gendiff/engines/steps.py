"""The framework's side of the Engine contract: the TraceBuilder it hands to ``Engine.decode``
and ``steps_from_logits`` (raw logits -> TokenSteps). ``gendiff.engines.base.run_engine`` builds
the builder and collects the traces."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from gendiff.engines.loading import PromptTokenizer
from gendiff.engines.probe import Probe
from gendiff.engines.settings import GenerationSettings, OnStep
from gendiff.records.chat import ChatMessage
from gendiff.records.trace import TokenStep, TopToken, Trace

DistributionObserver = Callable[[list[int], list[int], Any], None]
"""observer(prompt_indices, step_indices, logits): each row's full raw next-token scores, as chosen."""


def steps_from_logits(logits: Any, top_k: int, tokenizer: PromptTokenizer, processed: Any = None) -> list[TokenStep]:
    """``logits``: (rows, vocab) tensor of raw scores; ``processed``: the same after the engine's
    penalties, or None. Greedy = argmax in float32 of the processed scores if given, else of the
    raw ones (ties: lowest id); with ``processed`` the raw scores are kept too (raw_top)."""
    decided = _ranked(processed if processed is not None else logits, top_k, tokenizer, None)
    if processed is None:
        return [TokenStep(choice, tokenizer.piece(choice), lp, top) for choice, lp, top in decided]
    raw = _ranked(logits, top_k, tokenizer, [choice for choice, _, _ in decided])
    return [
        TokenStep(choice, tokenizer.piece(choice), lp, top, raw_lp, raw_top)
        for (choice, lp, top), (_, raw_lp, raw_top) in zip(decided, raw)
    ]


def _ranked(
    logits: Any, top_k: int, tokenizer: PromptTokenizer, chosen_ids: list[int] | None
) -> list[tuple[int, float, tuple[TopToken, ...]]]:
    """Per row: (chosen id, its logprob, the top-k). ``chosen_ids`` None: the argmax is chosen."""
    import torch

    scores = logits.float()
    logprobs = torch.log_softmax(scores, dim=-1)
    k = min(top_k, scores.shape[-1])
    top_logits, top_ids = torch.topk(scores, k, dim=-1)
    if chosen_ids is None:
        chosen = torch.argmax(scores, dim=-1)
    else:
        chosen = torch.tensor(chosen_ids, dtype=torch.long, device=scores.device)
    top_logprobs = torch.gather(logprobs, -1, top_ids)
    chosen_logprobs = torch.gather(logprobs, -1, chosen[:, None])[:, 0]
    rows = []
    for ids, lps, lgs, choice, choice_lp in zip(
        top_ids.tolist(), top_logprobs.tolist(), top_logits.tolist(), chosen.tolist(), chosen_logprobs.tolist()
    ):
        # exact ties (common in bfloat16) ranked by id, as argmax breaks them: the choice comes first
        ranked = sorted(zip(ids, lps, lgs), key=lambda c: (-c[2], c[0]))
        top = tuple(TopToken(i, tokenizer.piece(i), lp, lg) for i, lp, lg in ranked)
        rows.append((choice, choice_lp, top))
    return rows


class TraceBuilder:
    """What an engine's :meth:`~gendiff.engines.base.Engine.decode` fills in: built by gendiff for
    each run, it holds the prompts, the settings, EOS, cancellation, progress callbacks, teacher
    forcing and the probe, and applies EOS, length and forcing the same way for every engine.

    Rows are the prompts of this builder, 0-based. :meth:`batch` and :meth:`batches` give views
    over some of its rows (local row numbers, shared state), so a batched engine decodes each
    batch into its own view and gendiff still collects one trace per prompt from the builder.
    """

    def __init__(
        self,
        engine: str,
        settings_record: dict[str, Any],
        prompt_indices: list[int],
        prompts: list[list[int]],
        settings: GenerationSettings,
        eos_token_id: int | None,
        on_step: OnStep | None = None,
        cancel: threading.Event | None = None,
        forced: dict[int, list[int]] | None = None,
        probe: Probe | None = None,
        observer: DistributionObserver | None = None,
        on_finish: Callable[[Trace], None] | None = None,
        chats: dict[int, tuple[ChatMessage, ...]] | None = None,
    ) -> None:
        self.engine = engine
        self.settings_record = settings_record
        self.settings = settings
        self.eos = eos_token_id if settings.stop_at_eos else None
        self.on_step = on_step
        self.cancel = cancel
        self.probe = probe
        self.observer = observer
        self.on_finish = on_finish
        self.started = time.perf_counter()
        # shared by every view: indexed by the builder's own (global) row
        self._prompt_indices = list(prompt_indices)
        self._prompts = prompts
        self._steps: list[list[TokenStep]] = [[] for _ in prompts]
        self._finish: list[str | None] = [None] * len(prompts)
        # teacher forcing: per row, the tokens fed back instead of the engine's own choice
        self._forced: list[list[int] | None] = [(forced or {}).get(index) for index in prompt_indices]
        self._fed: list[int | None] = [None] * len(prompts)
        self._chats = [(chats or {}).get(index) for index in prompt_indices]
        self._errors: list[str | None] = [None] * len(prompts)  # rows failed on their own (fail())
        self._rows = list(range(len(prompts)))  # this view's rows, as global rows

    def batch(self, rows: Iterable[int]) -> TraceBuilder:
        """A view over some of this builder's rows (in the order given), sharing its state."""
        view = copy.copy(self)
        view._rows = [self._rows[row] for row in rows]
        return view

    def batches(self, size: int) -> Iterator[TraceBuilder]:
        """Views over consecutive runs of ``size`` rows (the last may be shorter)."""
        for start in range(0, len(self._rows), size):
            yield self.batch(range(start, min(start + size, len(self._rows))))

    @property
    def prompts(self) -> list[list[int]]:
        """Token ids of each row's prompt."""
        return [self._prompts[g] for g in self._rows]

    def chat(self, row: int) -> tuple[ChatMessage, ...] | None:
        """The messages a chat prompt's ids were rendered from (its row), None for a text prompt."""
        return self._chats[self._rows[row]]

    @property
    def prompt_indices(self) -> list[int]:
        """Each row's prompt index in the run (what traces and the probe call it)."""
        return [self._prompt_indices[g] for g in self._rows]

    @property
    def steps(self) -> list[list[TokenStep]]:
        return [self._steps[g] for g in self._rows]

    @property
    def finish(self) -> list[str | None]:
        return [self._finish[g] for g in self._rows]

    @property
    def forced(self) -> list[list[int] | None]:
        """Per row, the tokens teacher forcing feeds back (None: the engine's own choices)."""
        return [self._forced[g] for g in self._rows]

    @property
    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    @property
    def done(self) -> bool:
        """Every row of this view has finished, or the run was cancelled: stop decoding."""
        return all(self._finish[g] is not None for g in self._rows) or self.cancelled

    def active(self, row: int) -> bool:
        return self._finish[self._rows[row]] is None

    def add(self, row: int, step: TokenStep) -> None:
        """Record the next step of ``row`` (ignored once that row has finished).

        The token fed back is the engine's own choice, or under teacher forcing the forced
        one; EOS and the end of a forced stream finish the row."""
        g = self._rows[row]
        if self._finish[g] is not None:
            return
        index = len(self._steps[g])
        forced = self._forced[g]
        fed = forced[index] if forced is not None and index < len(forced) else step.token_id
        self._steps[g].append(step)
        self._fed[g] = fed
        if self.on_step is not None:
            self.on_step(self._prompt_indices[g], index, step)
        if self.eos is not None and fed == self.eos:
            self._finished(g, "eos")
        elif index + 1 >= self.settings.max_new_tokens or (forced is not None and index + 1 >= len(forced)):
            self._finished(g, "length")

    def _finished(self, g: int, reason: str) -> None:
        """Row ``g`` is done (``eos``, ``length`` or ``error``): its trace goes to ``on_finish`` at once."""
        self._finish[g] = reason
        if self.on_finish is not None:
            self.on_finish(self._trace(g, time.perf_counter() - self.started))

    def fail(self, row: int, error: str) -> None:
        """Mark ``row`` failed (its trace: no steps, finish reason ``error``, this line) while
        the other rows go on: a served engine whose request for one prompt failed."""
        g = self._rows[row]
        self._errors[g] = error
        self._finished(g, "error")

    def next_inputs(self, chosen: list[TokenStep]) -> list[int]:
        """The tokens for the next forward pass, one per row of this view: each row's choice,
        or its forced token."""
        return [
            fed if forced is not None and fed is not None else step.token_id
            for step, forced, fed in zip(chosen, self.forced, (self._fed[g] for g in self._rows))
        ]

    def row_of(self, prompt_index: int) -> int | None:
        indices = self.prompt_indices
        return indices.index(prompt_index) if prompt_index in indices else None

    def probing(self, model: Any, locate: Callable[[int, int], tuple[int, int]]) -> AbstractContextManager[None]:
        """Hooks for the probe, if it targets a prompt of this view; wrap the decode loop in it.

        ``locate(row, call)``: the (batch row, position) of that row's last token in forward call
        number ``call`` (0 = prefill) of the model's decoder."""
        row = None if self.probe is None else self.row_of(self.probe.prompt_index)
        if row is None:
            return nullcontext()
        return self.probe.attach(model, row, len(self.prompts[row]), lambda call: locate(row, call))

    def add_rows(self, rows: list[TokenStep], row_ids: list[int] | None = None, logits: Any = None) -> None:
        """Record one step of several rows; ``logits`` (rows, vocab), the raw scores the steps came
        from, go to the distribution observer first (for the rows still running)."""
        ids = list(row_ids if row_ids is not None else range(len(rows)))
        if logits is not None and self.observer is not None:
            rows_global = [self._rows[row] for row in ids]
            live = [i for i, g in enumerate(rows_global) if self._finish[g] is None]
            if live:
                scores = logits if len(live) == len(ids) else logits[live]
                self.observer(
                    [self._prompt_indices[rows_global[i]] for i in live],
                    [len(self._steps[rows_global[i]]) for i in live],
                    scores,
                )
        for row, step in zip(ids, rows):
            self.add(row, step)

    def traces(self) -> list[Trace]:
        """One Trace per row of this view; unfinished rows end ``cancelled`` or ``length``."""
        elapsed = time.perf_counter() - self.started
        return [self._trace(g, elapsed) for g in self._rows]

    def _trace(self, g: int, elapsed: float) -> Trace:
        return Trace(
            engine=self.engine,
            prompt_index=self._prompt_indices[g],
            prompt_token_ids=tuple(self._prompts[g]),
            steps=() if self._errors[g] else tuple(self._steps[g]),
            finish_reason=self._finish[g] or ("cancelled" if self.cancelled else "length"),
            settings=self.settings_record,
            error=self._errors[g],
            wall_time_s=elapsed,
        )
