"""What kind of divergence this is: a tie, a near-tie, a wide flip, a length or an error, and
the one-line reading of it in words a user reads without the docs.

Pure functions of the numbers a Divergence already holds (no torch), so the CLI summary, the
panel and the snapshot all read the same classification.

- ``exact-tie``: the reference's top two are the same number in the run's dtype. Low-precision
  logits sit on a coarse grid (bfloat16 keeps 8 significant bits: steps of 1/64 between 2 and 4,
  1/16 between 8 and 16), so two candidates often share a value and the argmax picks by id;
  any drift at all decides the other way. In float32 the grid is 65536 times finer.
- ``near-tie``: not tied, but the reference's margin is under the fragile threshold, or at most
  two grid steps of the dtype (in bfloat16 that is wider: 0.0625 for logits between 4 and 8,
  0.125 between 8 and 16). The grid rule reads the recorded logits (two values on the grid differ
  by an exact number of steps); the logprob margin, which float32 log_softmax rounds, would put a
  margin of exactly two steps a hair either side of the limit.
- ``wide-flip``: the margin is wider than rounding explains; a penalty, position, mask or
  tokenization difference (or an engine bug) is more likely.
- ``length``: one side stopped earlier; ``error``: an engine failed.
- ``undetermined``: a token divergence whose margin wasn't recorded (``--top-k 1``).
"""

from __future__ import annotations

import math
from typing import Any

from gendiff.display import number

EXACT_TIE = "exact-tie"
NEAR_TIE = "near-tie"
WIDE_FLIP = "wide-flip"
LENGTH = "length"
ERROR = "error"
UNDETERMINED = "undetermined"
CLASSIFICATIONS = (EXACT_TIE, NEAR_TIE, WIDE_FLIP, LENGTH, ERROR, UNDETERMINED)

# explicit mantissa bits: the spacing of representable numbers at 2**e is 2**(e - bits)
MANTISSA_BITS = {"float32": 23, "bfloat16": 7, "float16": 10}
# float32 log_softmax adds rounding of a few ulps of its operands to a logprob margin
LOGPROB_ROUNDING_ULPS = 4
# a margin of one or two grid steps of the dtype is within rounding, even above the fragile
# threshold: one bfloat16 step at logits 8…16 is 1/16 = 0.0625
NEAR_TIE_ULPS = 2

READINGS = {
    EXACT_TIE: "exact tie: the reference's top two are equal at the run's precision, so any drift flips it; "
    "consistent with rounding, not proof of it (a mask or position bug drifts too)",
    NEAR_TIE: "near-tie: the reference's top two were {margin} apart, within rounding of each other, so small drift "
    "(shape, order, kernel, dtype) flips it; consistent with rounding, not proof of it",
    WIDE_FLIP: "wide flip: a margin of {margin} is more than rounding; suspect a penalty, position, mask or "
    "tokenization difference, or a bug",
    LENGTH: "length: one side stopped earlier (end-of-sequence or the token limit), not a different token",
    ERROR: "error: {detail}",
    UNDETERMINED: "undetermined: the margin wasn't recorded; run with --top-k 2 or more",
}


def ulp(dtype: str, magnitude: float) -> float:
    """The spacing of ``dtype``'s representable numbers at ``magnitude`` (one unit in the last place)."""
    bits = MANTISSA_BITS.get(dtype, MANTISSA_BITS["float32"])
    if not math.isfinite(magnitude):
        return math.inf  # no grid out there (an engine that gave inf or NaN scores)
    exponent = math.floor(math.log2(abs(magnitude))) if magnitude else -126
    return 2.0 ** (max(exponent, -126) - bits)


def is_exact_tie(step: Any, dtype: str) -> bool:
    """True when the step's top two candidates are the same number at ``dtype``'s resolution.

    With logits (recorded as the model's own values, so on ``dtype``'s grid): they differ by
    less than half a unit in the last place of ``dtype`` at the smaller magnitude; two different
    grid values are at least one unit apart. Without logits (engines that give only logprobs),
    both logprobs came out of one float32 log_softmax: equal inputs give equal outputs, so only
    a few float32 ulps of rounding are allowed.
    """
    if step is None or len(step.top) < 2:
        return False
    first, second = step.top[0], step.top[1]
    if first.logit is not None and second.logit is not None:
        smaller = min(abs(first.logit), abs(second.logit))
        return abs(first.logit - second.logit) < 0.5 * ulp(dtype, smaller)
    rounding = LOGPROB_ROUNDING_ULPS * ulp("float32", max(1.0, abs(first.logprob), abs(second.logprob)))
    return abs(first.logprob - second.logprob) <= rounding


def grid_limit(step: Any, dtype: str) -> float | None:
    """Two grid steps of ``dtype`` at the top logit's magnitude (bfloat16 logits of 4…8: 0.0625,
    8…16: 0.125); None when the step has no logits (engines that give only logprobs)."""
    top = step.top[0] if step is not None and step.top else None
    if top is None or top.logit is None:
        return None
    return NEAR_TIE_ULPS * ulp(dtype, top.logit)


def within_rounding(step: Any, margin: float, dtype: str, fragile_threshold: float) -> bool:
    """True when a flip at ``step`` (reference margin ``margin``) is a near-tie: the margin is
    under the fragile threshold, or the top two logits are at most two grid steps of ``dtype``
    apart (inclusive: one or two steps are both rounding)."""
    if margin < fragile_threshold:
        return True
    limit = grid_limit(step, dtype)
    if limit is None or len(step.top) < 2 or step.top[1].logit is None:
        return False
    return step.top[0].logit - step.top[1].logit <= limit


def classify(divergence: Any, dtype: str, fragile_threshold: float) -> str | None:
    """The classification of a Divergence (None when identical). ``dtype``: the reference's."""
    if divergence.reason == "identical":
        return None
    if divergence.reason == "error":
        return ERROR
    if divergence.reason == "length":
        return LENGTH
    if divergence.reference_margin is None or not math.isfinite(divergence.reference_margin):
        return UNDETERMINED  # no margin to read (or an inf/NaN one: nothing can be said of rounding)
    if is_exact_tie(divergence.reference_step, dtype):
        return EXACT_TIE
    if within_rounding(divergence.reference_step, divergence.reference_margin, dtype, fragile_threshold):
        return NEAR_TIE
    return WIDE_FLIP


def cross_top_k(reference_step: Any, other_step: Any) -> bool | None:
    """vLLM's model-test rule at the first mismatch: each side's chosen token is in the other
    side's recorded top-k. None when a side has no step there (length, error)."""
    if reference_step is None or other_step is None:
        return None
    return (
        reference_step.logprob_of(other_step.token_id) is not None
        and other_step.logprob_of(reference_step.token_id) is not None
    )


def outside_top_k(divergence: Any) -> list[str]:
    """In plain words, each chosen token the other engine did not record among its top
    candidates: how far that engine ranked it below its own choice is then only a bound (at
    least the gap down to its lowest recorded candidate), and the flip gap shows ``—``."""
    notes = []
    sides = (
        (divergence.reference, divergence.reference_step, divergence.engine, divergence.other_step),
        (divergence.engine, divergence.other_step, divergence.reference, divergence.reference_step),
    )
    for chooser, chosen, ranker, ranking in sides:
        if chosen is None or ranking is None or not ranking.top or ranking.logprob_of(chosen.token_id) is not None:
            continue
        bound = ranking.logprob - min(candidate.logprob for candidate in ranking.top)
        notes.append(
            f"{chooser}'s token is not among {ranker}'s top {len(ranking.top)}, so how far {ranker} ranked it "
            f"below its own choice is only a bound: at least {number(bound)}"
        )
    return notes


RECHECK_HINT = "a float32 re-check tells (f, or --recheck float32)"


def reading(divergence: Any, recheck_hint: str = RECHECK_HINT) -> str:
    """One sentence on what the classification (and the margin it rests on) means for the user;
    a tie not yet re-checked ends with ``recheck_hint`` (the app says so while its re-check runs)."""

    kind = divergence.classification
    if kind is None:
        return ""
    text = READINGS[kind].format(margin=number(divergence.reference_margin), detail=divergence.detail)
    if kind in (EXACT_TIE, NEAR_TIE, WIDE_FLIP) and divergence.cross_top_k is False:
        text += "".join(f"; {note}" for note in outside_top_k(divergence))
    if kind in (EXACT_TIE, NEAR_TIE) and getattr(divergence, "recheck", None) is None:
        text += f"; {recheck_hint}"
    return text
