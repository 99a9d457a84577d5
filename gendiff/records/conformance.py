"""A conformance verdict: one engine's decode on one model, checked against the unpadded computation.

Before gendiff's own decode loops (hf-right, packed) run on a model, a short float32 probe runs
the engine on a few prompts of different lengths (so rows are padded and packed) and compares
every step's logits with plain forward passes of each prompt alone
(:mod:`gendiff.engines.conformance`). The verdict is plain data: stored in the engine's settings
record (so every trace and the snapshot's engine entry carry it) and read back here to label
divergences. Engines checked in ``label`` mode (hf-left: transformers' own padded ``generate``)
are not refused when they differ; their divergences carry :func:`conformance_note` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gendiff.display import number

AGREES = "agrees"
DIFFERS = "differs"
ERROR = "error"  # the probe itself failed (the engine crashed on the model)

REFUSE = "refuse"  # gendiff's own decode loop: refused when it differs
LABEL = "label"  # a library's own batched path: its divergences are labelled when it differs


@dataclass(frozen=True)
class Verdict:
    """What the probe found for one engine on one model (float32).

    ``max_logit_diff`` is the largest |engine logit - unpadded logit| over every probe prompt and
    step (at the engine's top-k candidates and the unpadded top-1); ``worst_*`` name where the
    worst step relative to the tolerance was: the probe prompt (0-based, its length in
    ``prompt_lengths``), the step, that step's logit scale (max |logit| of the unpadded
    computation, at least 1) and its difference. ``tolerance`` is relative to that scale.
    ``note`` is the line a ``label``-mode engine's divergences carry when it differs."""

    engine: str
    mode: str
    status: str
    tolerance: float
    prompt_lengths: tuple[int, ...]
    new_tokens: int
    max_logit_diff: float | None = None
    worst_prompt: int | None = None
    worst_step: int | None = None
    worst_scale: float | None = None
    worst_diff: float | None = None
    error: str | None = None
    note: str | None = None
    without_padding: bool | None = None  # when it differs: a batch of one length (no pads) differs too
    options: dict[str, Any] = field(default_factory=dict, compare=False)
    key: str = ""
    seconds: float = 0.0
    cached: bool = False

    @property
    def agrees(self) -> bool:
        return self.status == AGREES

    def where(self) -> str:
        """One phrase: where the engine differed most, and by how much (or the error)."""
        if self.status == ERROR:
            return f"the probe failed: {self.error}"
        if self.worst_prompt is None:
            return f"max |logit diff| {number(self.max_logit_diff or 0.0)}"
        length = self.prompt_lengths[self.worst_prompt]
        limit = self.tolerance * (self.worst_scale or 1.0)
        also = {True: "; a batch without padding differs too", False: "; a batch without padding agrees"}.get(
            self.without_padding, ""
        )
        return (
            f"probe prompt {self.worst_prompt + 1} of {length} tokens, step {self.worst_step}: "
            f"max |logit diff| {number(self.worst_diff or 0.0)}, float32 rounding allows {number(limit)}{also}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "mode": self.mode,
            "status": self.status,
            "tolerance": self.tolerance,
            "prompt_lengths": list(self.prompt_lengths),
            "new_tokens": self.new_tokens,
            "max_logit_diff": self.max_logit_diff,
            "worst_prompt": self.worst_prompt,
            "worst_step": self.worst_step,
            "worst_scale": self.worst_scale,
            "worst_diff": self.worst_diff,
            "error": self.error,
            "note": self.note,
            "without_padding": self.without_padding,
            "options": dict(self.options),
            "key": self.key,
            "seconds": self.seconds,
            "cached": self.cached,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verdict:
        return cls(
            engine=str(data["engine"]),
            mode=str(data["mode"]),
            status=str(data["status"]),
            tolerance=float(data["tolerance"]),
            prompt_lengths=tuple(int(n) for n in data.get("prompt_lengths") or ()),
            new_tokens=int(data.get("new_tokens") or 0),
            max_logit_diff=_opt_float(data.get("max_logit_diff")),
            worst_prompt=_opt_int(data.get("worst_prompt")),
            worst_step=_opt_int(data.get("worst_step")),
            worst_scale=_opt_float(data.get("worst_scale")),
            worst_diff=_opt_float(data.get("worst_diff")),
            error=data.get("error"),
            note=data.get("note"),
            without_padding=data.get("without_padding"),
            options=dict(data.get("options") or {}),
            key=str(data.get("key") or ""),
            seconds=float(data.get("seconds") or 0.0),
            cached=bool(data.get("cached")),
        )


def labelled(settings: dict[str, Any] | None) -> Verdict | None:
    """The verdict in an engine's settings record when it labels that engine's divergences
    (a ``label``-mode engine the probe found to differ), else None."""
    data = (settings or {}).get("conformance")
    if not isinstance(data, dict):
        return None
    try:
        verdict = Verdict.from_dict(data)
    except (KeyError, TypeError, ValueError):
        return None
    return verdict if verdict.mode == LABEL and verdict.status == DIFFERS and verdict.note else None


def conformance_note(reference: Any, other: Any) -> str | None:
    """The line a divergence between two Traces carries when either engine's own batched path
    differs from the unpadded model (its recorded verdict), e.g. hf-left on a model whose state
    the left pads leak into; None otherwise. Each side: ``engine: note (where)``."""
    parts = []
    for trace in (reference, other):
        verdict = labelled(trace.settings)
        if verdict is not None:
            parts.append(f"{trace.engine}: {verdict.note} ({verdict.where()})")
    return "; ".join(parts) or None


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)
