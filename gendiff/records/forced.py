"""What an engine that can't replay its own decode loop reports when fed prompt + tokens in one
pass (vLLM's ``prompt_logprobs``, a vLLM server's ``echo`` + ``logprobs``, SGLang's
``input_top_logprobs``): per fed token, the logprobs of some or all of the vocabulary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ForcedPosition:
    """One fed token's distribution as the engine reported it: ``ids`` and their ``logprobs``
    (the whole vocabulary, or the engine's top k and the fed token). ``token``: the token fed."""

    token: int
    ids: tuple[int, ...]
    logprobs: tuple[float, ...]


@dataclass(frozen=True)
class ForcedPass:
    """Per row (its index in the pass), per fed token in order, the reported distributions.

    ``top_k``: None when every position covers the whole vocabulary; else the candidates asked
    per position (KL can then only be bounded from below). ``how``: one line on how the engine
    computed them (e.g. one prefill of prompt + tokens, not its decode steps)."""

    rows: dict[int, list[ForcedPosition]]
    top_k: int | None
    how: str
