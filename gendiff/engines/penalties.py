"""The penalty processors of the HF engines, and raw + processed scores -> TokenSteps.

Repetition penalty and no-repeat n-grams are transformers' own processors, built with the
arguments ``generate()`` gives them. Frequency and presence penalties, which transformers
lacks, are :class:`OutputPenaltyProcessor`: OpenAI's definition (vLLM's too), additive, over
the generated tokens only. See :mod:`gendiff.decoding` for the semantics table.
"""

from __future__ import annotations

from typing import Any

from gendiff.engines.steps import TraceBuilder, steps_from_logits
from gendiff.records.decoding import active
from gendiff.records.trace import TokenStep


class OutputPenaltyProcessor:
    """``score[t] -= frequency * count(t) + presence * (count(t) > 0)``, counting only the tokens
    after the first ``prompt_length`` of each row of ``input_ids`` (the generated ones)."""

    def __init__(self, frequency: float, presence: float, prompt_length: int) -> None:
        self.frequency = frequency
        self.presence = presence
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        output = input_ids[:, self.prompt_length :]
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, output, torch.ones_like(output, dtype=scores.dtype))
        return scores - self.frequency * counts - self.presence * (counts > 0).to(scores.dtype)


def build_processors(resolved: dict[str, Any] | None, prompt_length: int) -> list[Any]:
    """The processors for the active penalties, in generate()'s order (repetition penalty,
    then n-grams), then gendiff's additive ones (vLLM also adds those after the multiplicative
    one). ``prompt_length``: the width of the prompt part of ``input_ids``. Empty: raw greedy."""
    settings = active(resolved)
    processors: list[Any] = []
    if not settings:
        return processors
    from transformers import NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    if "repetition_penalty" in settings:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty=float(settings["repetition_penalty"])))
    if "no_repeat_ngram_size" in settings:
        processors.append(NoRepeatNGramLogitsProcessor(int(settings["no_repeat_ngram_size"])))
    if "frequency_penalty" in settings or "presence_penalty" in settings:
        processors.append(
            OutputPenaltyProcessor(
                float(settings.get("frequency_penalty", 0.0)),
                float(settings.get("presence_penalty", 0.0)),
                prompt_length,
            )
        )
    return processors


def apply_processors(processors: list[Any], input_ids: Any, scores: Any) -> Any:
    """Run ``processors`` on a float32 copy of ``scores`` (raw scores are left untouched)."""
    processed = scores.float().clone()
    for processor in processors:
        processed = processor(input_ids, processed)
    return processed


def apply_per_row(
    resolved: dict[str, Any] | None, histories: list[list[int]], prompt_lengths: list[int], logits: Any
) -> Any:
    """Processed scores for rows with different histories (hf-right, packed): each row gets the
    processors on its own tokens, prompt included and no pads, as generate() on it alone would.
    Returns None when no penalty is active."""
    import torch

    if not active(resolved):
        return None
    rows = []
    for row, (history, length) in enumerate(zip(histories, prompt_lengths)):
        ids = torch.tensor([history], dtype=torch.long, device=logits.device)
        rows.append(apply_processors(build_processors(resolved, length), ids, logits[row : row + 1]))
    return torch.cat(rows, dim=0)


def decide(
    logits: Any,
    resolved: dict[str, Any] | None,
    histories: list[list[int]],
    top_k: int,
    tokenizer: Any,
    prompt_lengths: list[int],
) -> list[TokenStep]:
    """The steps of a batch whose rows have their own histories: penalties applied per row
    (raw scores kept alongside) when any is active, else plain raw greedy."""
    processed = apply_per_row(resolved, histories, prompt_lengths, logits)
    return steps_from_logits(logits, top_k, tokenizer, processed)


def decide_and_feed(
    builder: TraceBuilder,
    logits: Any,
    resolved: dict[str, Any] | None,
    histories: list[list[int]],
    tokenizer: Any,
    prompt_lengths: list[int],
) -> list[int] | None:
    """One step of an own decode loop whose rows have their own histories (hf-right, packed):
    :func:`decide` each row's step from ``logits`` and record it in ``builder`` (raw logits
    handed on for --stats). Returns None once the builder is done, else the token to feed each
    row next (the forced one under replay), already appended to its history."""
    chosen = decide(logits, resolved, histories, builder.settings.top_k, tokenizer, prompt_lengths)
    builder.add_rows(chosen, logits=logits)
    if builder.done:
        return None
    fed = builder.next_inputs(chosen)
    for history, token in zip(histories, fed):
        history.append(token)
    return fed
