"""Compare a reference Trace with another: where they first differ, and how close it was."""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from gendiff.defaults import FRAGILE_THRESHOLD
from gendiff.records.bisection import Bisection
from gendiff.records.classify import classify, cross_top_k
from gendiff.records.conformance import conformance_note
from gendiff.records.decoding import note_for_traces
from gendiff.records.recheck import Recheck
from gendiff.records.reconvergence import Reconvergence
from gendiff.records.trace import TokenStep, Trace

# reasons
IDENTICAL = "identical"
TOKEN = "token"
LENGTH = "length"
ERROR = "error"


@dataclass(frozen=True)
class Divergence:
    """The first difference between ``reference`` and ``engine`` on one prompt.

    ``step`` is None when the two token streams are identical. Margins are top-1 minus top-2
    logprob on each side at ``step``. ``flip_gap`` is, in the other engine, logprob of its own
    choice minus logprob of the reference's choice (None when that token is outside its top-k);
    ``reference_gap`` is the same seen from the reference. ``max_drift_before`` is the largest
    |Δ logprob| of the chosen token over the agreeing prefix. ``fragile_steps`` are agreeing
    steps whose reference margin is below the threshold: where the next flip could happen.
    """

    reference: str
    engine: str
    prompt_index: int
    step: int | None
    reason: str
    detail: str
    reference_step: TokenStep | None
    other_step: TokenStep | None
    reference_margin: float | None
    other_margin: float | None
    flip_gap: float | None
    reference_gap: float | None
    max_drift_before: float
    fragile_steps: tuple[int, ...]
    agreeing_steps: int
    bisection: Bisection | None = None  # filled in by gendiff.diagnosis on request
    reconvergence: Reconvergence | None = None
    classification: str | None = None  # see gendiff.classify; None when identical
    cross_top_k: bool | None = None
    recheck: Recheck | None = None  # filled in by gendiff.recheck on request
    # one line when the two engines apply penalties differently (gendiff.decoding)
    decoding_note: str | None = None
    # one line when either engine's own batched path differs from the unpadded model in float32
    # (the conformance probe's verdict, gendiff.records.conformance): a real divergence of that
    # engine on this model, e.g. hf-left's left pads leaking into a recurrent state
    conformance_note: str | None = None

    @property
    def diverged(self) -> bool:
        """True for a token or length difference, and for a failed engine."""
        return self.reason != IDENTICAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "reference": self.reference,
            "prompt_index": self.prompt_index,
            "step": self.step,
            "reason": self.reason,
            "detail": self.detail,
            "reference_token": self.reference_step.to_dict() if self.reference_step else None,
            "other_token": self.other_step.to_dict() if self.other_step else None,
            "margins": {"reference": self.reference_margin, "other": self.other_margin},
            "flip_gap": self.flip_gap,
            "reference_gap": self.reference_gap,
            "max_drift_before": self.max_drift_before,
            "fragile_steps": list(self.fragile_steps),
            "agreeing_steps": self.agreeing_steps,
            "bisection": self.bisection.to_dict() if self.bisection else None,
            "reconvergence": self.reconvergence.to_dict() if self.reconvergence else None,
            "classification": self.classification,
            "cross_top_k": self.cross_top_k,
            "recheck": self.recheck.to_dict() if self.recheck else None,
            "decoding_note": self.decoding_note,
            "conformance_note": self.conformance_note,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Divergence:
        ref_step, other_step = data.get("reference_token"), data.get("other_token")
        margins = data.get("margins") or {}
        return cls(
            reference=data["reference"],
            engine=data["engine"],
            prompt_index=int(data["prompt_index"]),
            step=data["step"],
            reason=data["reason"],
            detail=data.get("detail", ""),
            reference_step=TokenStep.from_dict(ref_step) if ref_step else None,
            other_step=TokenStep.from_dict(other_step) if other_step else None,
            reference_margin=margins.get("reference"),
            other_margin=margins.get("other"),
            flip_gap=data.get("flip_gap"),
            reference_gap=data.get("reference_gap"),
            max_drift_before=float(data.get("max_drift_before") or 0.0),
            fragile_steps=tuple(data.get("fragile_steps") or ()),
            agreeing_steps=int(data.get("agreeing_steps") or 0),
            bisection=Bisection.from_dict(data["bisection"]) if data.get("bisection") else None,
            reconvergence=Reconvergence.from_dict(data["reconvergence"]) if data.get("reconvergence") else None,
            classification=data.get("classification"),
            cross_top_k=data.get("cross_top_k"),
            recheck=Recheck.from_dict(data["recheck"]) if data.get("recheck") else None,
            decoding_note=data.get("decoding_note"),
            conformance_note=data.get("conformance_note"),
        )


def first_divergence(reference: Trace, other: Trace) -> int | None:
    """Index of the first step whose token differs, or where one side has ended; None if identical."""
    ref_view, other_view = _view(reference.steps, "token_id"), _view(other.steps, "token_id")
    if ref_view is not None and other_view is not None:  # columnar steps: the arrays compared in C
        if ref_view == other_view:
            return None
        ref_ids, other_ids = ref_view.tolist(), other_view.tolist()
    else:
        ref_ids, other_ids = reference.token_ids, other.token_ids
        if ref_ids == other_ids:
            return None
    found = first_difference(ref_ids, other_ids)
    return found if found is not None else min(len(ref_ids), len(other_ids))


def _view(steps: Sequence[TokenStep], name: str, count: int | None = None) -> Any:
    """A columnar trace's (first ``count``) rows of a column as the array's slice; None for plain steps."""
    if getattr(steps, "view", None) is None:
        return None
    return (steps if count is None else steps.prefix(count)).view(name)  # type: ignore[attr-defined]


def _drift(reference: Sequence[TokenStep], other: Sequence[TokenStep], count: int) -> float:
    """The largest |Δ logprob| of the chosen tokens over the first ``count`` steps (0.0 for none)."""
    ref_view, other_view = _view(reference, "logprob", count), _view(other, "logprob", count)
    # equal values (compared in C; NaN is never equal) drift by 0.0, unless the first is infinite:
    # inf - inf is NaN, and a NaN first is what max() returns below
    if ref_view is not None and other_view is not None and ref_view == other_view:
        if not len(ref_view) or math.isfinite(ref_view[0]):
            return 0.0
    return max(map(abs, map(operator.sub, _logprobs(reference, count), _logprobs(other, count))), default=0.0)


def _fragile(steps: Sequence[TokenStep], count: int, threshold: float) -> tuple[int, ...]:
    """The first ``count`` steps whose margin is below ``threshold``."""
    margins = getattr(steps, "margins_below", None)
    if margins is not None:  # columnar steps: top-1 minus top-2 straight from the arrays
        return margins(count, float(threshold))
    return tuple([i for i, margin in enumerate(_margins(steps, count)) if margin is not None and margin < threshold])


def _logprobs(steps: Sequence[TokenStep], count: int) -> list[float]:
    """The chosen tokens' logprobs of the first ``count`` steps (columnar steps: read from their arrays)."""
    prefix = getattr(steps, "prefix", None)
    return prefix(count).logprobs if prefix is not None else [s.logprob for s in steps[:count]]


def _margins(steps: Sequence[TokenStep], count: int) -> list[float | None]:
    prefix = getattr(steps, "prefix", None)
    return prefix(count).margins if prefix is not None else [s.margin for s in steps[:count]]


def compare(reference: Trace, other: Trace, fragile_threshold: float = FRAGILE_THRESHOLD) -> Divergence:
    """Compare two traces of the same prompt. See :class:`Divergence` for the fields; the
    classification is read at the reference's dtype (its trace settings; float32 if unknown)."""
    found = _compare(reference, other, fragile_threshold)
    dtype = str(reference.settings.get("dtype") or "float32")
    return replace(
        found,
        classification=classify(found, dtype, fragile_threshold),
        cross_top_k=cross_top_k(found.reference_step, found.other_step) if found.reason == TOKEN else None,
    )


def _compare(reference: Trace, other: Trace, fragile_threshold: float) -> Divergence:
    if reference.prompt_token_ids != other.prompt_token_ids:
        raise ValueError(
            f"prompt {reference.prompt_index}: {reference.engine} and {other.engine} saw different token ids"
        )
    step = first_divergence(reference, other)
    agreeing = len(reference.steps) if step is None else step
    drift = _drift(reference.steps, other.steps, agreeing)
    fragile = _fragile(reference.steps, agreeing, fragile_threshold)
    fields: dict[str, Any] = dict(
        reference=reference.engine,
        engine=other.engine,
        prompt_index=reference.prompt_index,
        max_drift_before=drift,
        fragile_steps=fragile,
        agreeing_steps=agreeing,
        decoding_note=note_for_traces(reference, other),
        conformance_note=conformance_note(reference, other),
    )
    empty = dict(reference_step=None, other_step=None, reference_margin=None, other_margin=None)

    if reference.finish_reason == "error" or other.finish_reason == "error":
        failed = reference if reference.finish_reason == "error" else other
        return Divergence(
            step=None,
            reason=ERROR,
            detail=f"{failed.engine} failed: {failed.error}",
            flip_gap=None,
            reference_gap=None,
            **empty,
            **fields,
        )
    if step is None:
        return Divergence(
            step=None, reason=IDENTICAL, detail="identical", flip_gap=None, reference_gap=None, **empty, **fields
        )

    ref_step = reference.steps[step] if step < len(reference.steps) else None
    other_step = other.steps[step] if step < len(other.steps) else None
    if ref_step is None or other_step is None:
        shorter, longer = (reference, other) if ref_step is None else (other, reference)
        detail = (
            f"{shorter.engine} stopped ({shorter.finish_reason}) after {len(shorter.steps)} tokens; "
            f"{longer.engine} went on to {len(longer.steps)}"
        )
        return Divergence(
            step=step,
            reason=LENGTH,
            detail=detail,
            reference_step=ref_step,
            other_step=other_step,
            reference_margin=ref_step.margin if ref_step else None,
            other_margin=other_step.margin if other_step else None,
            flip_gap=None,
            reference_gap=None,
            **fields,
        )

    other_on_ref_choice = other_step.logprob_of(ref_step.token_id)
    ref_on_other_choice = ref_step.logprob_of(other_step.token_id)
    return Divergence(
        step=step,
        reason=TOKEN,
        detail=f"{ref_step.text!r} vs {other_step.text!r}",
        reference_step=ref_step,
        other_step=other_step,
        reference_margin=ref_step.margin,
        other_margin=other_step.margin,
        flip_gap=None if other_on_ref_choice is None else other_step.logprob - other_on_ref_choice,
        reference_gap=None if ref_on_other_choice is None else ref_step.logprob - ref_on_other_choice,
        **fields,
    )


def first_difference(reference_ids: Sequence[int], other_ids: Sequence[int]) -> int | None:
    """First index where two (possibly still growing) token streams differ, over their common length."""
    for index, (a, b) in enumerate(zip(reference_ids, other_ids)):
        if a != b:
            return index
    return None
