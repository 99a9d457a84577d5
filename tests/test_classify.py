"""Classification of divergences on hand-made traces: the numbers of bfloat16 and float32 runs."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from gendiff.records.classify import EXACT_TIE, NEAR_TIE, WIDE_FLIP, is_exact_tie, reading, ulp
from gendiff.records.divergence import compare
from gendiff.records.trace import TokenStep, TopToken, Trace


def logit_step(token_id: int, *candidates: tuple[int, float]) -> TokenStep:
    """A step from (id, logit) candidates, best first; logprobs from a log_softmax over them."""
    norm = math.log(sum(math.exp(logit) for _, logit in candidates))
    top = tuple(TopToken(i, f"t{i}", logit - norm, logit) for i, logit in candidates)
    return TokenStep(token_id, f"t{token_id}", next(t.logprob for t in top if t.token_id == token_id), top)


def pair(ref_step: TokenStep, other_step: TokenStep, dtype: str) -> tuple[Trace, Trace]:
    agree = logit_step(5, (5, 9.0), (6, 2.0))
    settings = {"dtype": dtype}
    ref = Trace("ref", 0, (1, 2), (agree, ref_step), "length", settings)
    other = Trace("other", 0, (1, 2), (agree, other_step), "length", settings)
    return ref, other


def test_ulp_matches_torch():
    torch = pytest.importorskip("torch")
    for dtype in ("bfloat16", "float16", "float32"):
        for value in (0.3, 1.0, 3.0, 3.99, 4.0, 12.5, -7.25):
            exact = torch.tensor(value, dtype=getattr(torch, dtype))
            up = torch.nextafter(exact, torch.tensor(math.inf, dtype=exact.dtype))
            assert float(up - exact) == ulp(dtype, float(exact)), (dtype, value)


def test_bfloat16_exact_tie_is_classified_exact_tie():
    # two candidates on the same bfloat16 value (2.015625 is on the 1/64 grid between 2 and 4)
    ref_step = logit_step(10, (10, 2.015625), (11, 2.015625), (12, 1.0))
    other_step = logit_step(11, (11, 2.03125), (10, 2.015625), (12, 1.0))
    d = compare(*pair(ref_step, other_step, "bfloat16"))
    assert d.reference_margin == 0.0
    assert d.classification == EXACT_TIE
    assert d.cross_top_k is True
    assert "exact tie" in reading(d)


def test_one_bfloat16_grid_step_is_a_near_tie_not_a_tie():
    # 4.0 and the next lower bfloat16 value 4 - 1/64: one unit apart (the unit at 4 is 1/32)
    ref_step = logit_step(10, (10, 4.0), (11, 4.0 - 1 / 64))
    other_step = logit_step(11, (11, 4.0), (10, 4.0 - 1 / 64))
    d = compare(*pair(ref_step, other_step, "bfloat16"))
    assert not is_exact_tie(ref_step, "bfloat16")
    assert d.reference_margin == pytest.approx(1 / 64)
    assert d.classification == NEAR_TIE


def test_float32_one_ulp_apart_is_not_a_tie_but_equal_is():
    apart = logit_step(10, (10, 10.0 + ulp("float32", 10.0)), (11, 10.0))
    assert not is_exact_tie(apart, "float32")
    assert is_exact_tie(apart, "bfloat16")  # the same two numbers are one bfloat16 value
    equal = logit_step(10, (10, 10.0), (11, 10.0))
    d = compare(*pair(equal, logit_step(11, (11, 10.5), (10, 10.0)), "float32"))
    assert d.classification == EXACT_TIE


def test_wide_flip_and_cross_top_k_false():
    ref_step = logit_step(10, (10, 6.0), (11, 3.0))
    other_step = logit_step(12, (12, 7.0), (13, 1.0))  # neither chooses a token the other recorded
    d = compare(*pair(ref_step, other_step, "bfloat16"))
    assert d.classification == WIDE_FLIP
    assert d.cross_top_k is False
    assert "more than rounding" in reading(d) and "cross-top-k" not in reading(d)
    # in plain words: whose token is outside whose top candidates, and the bound that leaves:
    # other's choice is 7.0 - 1.0 = 6 logprob above the lowest candidate it recorded, ref's 6.0 - 3.0 = 3
    assert (
        "ref's token is not among other's top 2, so how far other ranked it below its own choice "
        "is only a bound: at least 6.0000"
    ) in reading(d)
    assert (
        "other's token is not among ref's top 2, so how far ref ranked it below its own choice is only a bound: at least 3.0000"
        in reading(d)
    )


def test_logprob_only_tie_and_fragile_threshold():
    # an engine that gives logprobs only (vLLM): equal logprobs are a tie, 0.01 apart a near-tie
    tied = TokenStep(
        10, "a", -1.726818561553955, (TopToken(10, "a", -1.726818561553955), TopToken(11, "b", -1.726818561553955))
    )
    other = TokenStep(11, "b", -1.7, (TopToken(11, "b", -1.7), TopToken(10, "a", -1.72)))
    assert compare(*pair(tied, other, "bfloat16")).classification == EXACT_TIE
    near = replace(tied, top=(tied.top[0], replace(tied.top[1], logprob=-1.736818561553955)))
    ref, oth = pair(near, other, "bfloat16")
    assert compare(ref, oth).classification == NEAR_TIE
    assert compare(ref, oth, fragile_threshold=0.005).classification == WIDE_FLIP


def test_length_error_identical():
    step = logit_step(5, (5, 9.0), (6, 2.0))
    ref = Trace("ref", 0, (1,), (step, step), "length", {"dtype": "float32"})
    short = Trace("other", 0, (1,), (step,), "eos", {"dtype": "float32"})
    d = compare(ref, short)
    assert d.classification == "length" and d.cross_top_k is None
    assert compare(ref, ref).classification is None
    failed = Trace.failed("other", 0, [1], "boom", {})
    assert compare(ref, failed).classification == "error"


def test_classification_round_trips_through_json():
    from gendiff.records.divergence import Divergence

    d = compare(*pair(logit_step(10, (10, 2.0), (11, 2.0)), logit_step(11, (11, 2.0), (10, 2.0)), "bfloat16"))
    back = Divergence.from_dict(d.to_dict())
    assert back.classification == EXACT_TIE and back.cross_top_k is True


def test_one_bfloat16_step_above_the_threshold_is_still_a_near_tie():
    # logits 8…16: one bfloat16 step is 1/16 = 0.0625, above the 0.05 threshold, still rounding
    ref_step = logit_step(10, (10, 10.0625), (11, 10.0))
    other_step = logit_step(11, (11, 10.0625), (10, 10.0))
    assert compare(*pair(ref_step, other_step, "bfloat16")).classification == NEAR_TIE
    # the same margin in float32 is 500 000 grid steps: a wide flip
    assert compare(*pair(ref_step, other_step, "float32")).classification == WIDE_FLIP


# (dtype, top logit, fragile threshold): where two grid steps exceed the threshold, so the
# grid rule decides. bfloat16 at 4…8 and float16 at 64…128 with the default threshold; float32's
# two steps at 5.0 are 9.5e-7, so its boundary is tested with the threshold off.
GRID_CASES = [("bfloat16", 5.0, 0.05), ("float16", 100.0, 0.05), ("float32", 5.0, 0.0)]


@pytest.mark.parametrize(("dtype", "top", "threshold"), GRID_CASES)
def test_exactly_two_grid_steps_is_a_near_tie_and_one_step_more_a_wide_flip(dtype, top, threshold):
    torch = pytest.importorskip("torch")
    kind = getattr(torch, dtype)
    top_value = torch.tensor(top, dtype=kind)
    down = torch.tensor(-math.inf, dtype=kind)
    below = [top_value]
    for _ in range(3):  # the next three representable values below the top logit
        below.append(torch.nextafter(below[-1], down))
    two_steps, three_steps = float(below[2]), float(below[3])
    step_size = ulp(dtype, top)
    assert float(top_value) - two_steps == 2 * step_size  # same binade: exactly two grid steps
    assert 2 * step_size > threshold  # the grid rule, not the threshold, decides

    def classification(second: float) -> str:
        ref_step = logit_step(10, (10, float(top_value)), (11, second))
        other_step = logit_step(11, (11, float(top_value)), (10, second))
        return compare(*pair(ref_step, other_step, dtype), fragile_threshold=threshold).classification

    assert classification(two_steps) == NEAR_TIE
    assert classification(three_steps) == WIDE_FLIP


def test_two_bfloat16_steps_at_4_to_8_is_a_near_tie_with_float32_logprob_rounding():
    # the case: logits 4.0625 and 4.0 (two steps of 1/32) with logprobs from a real
    # float32 log_softmax, whose margin is not exactly 0.0625
    torch = pytest.importorskip("torch")
    logits = torch.tensor([4.0625, 4.0, 1.0, -3.0], dtype=torch.bfloat16).float()
    logprobs = torch.log_softmax(logits, dim=-1).tolist()
    top = tuple(TopToken(i, f"t{i}", logprobs[i], float(logits[i])) for i in (0, 1))
    ref_step = TokenStep(0, "t0", logprobs[0], top)
    other_step = TokenStep(1, "t1", -0.5, (TopToken(1, "t1", -0.5, 5.0), TopToken(0, "t0", -0.9, 4.6)))
    ref = Trace("ref", 0, (1, 2), (ref_step,), "length", {"dtype": "bfloat16"})
    other = Trace("other", 0, (1, 2), (other_step,), "length", {"dtype": "bfloat16"})
    d = compare(ref, other)
    assert d.reference_margin == pytest.approx(0.0625, abs=1e-6)
    assert d.classification == NEAR_TIE


def test_infinite_or_nan_scores_are_undetermined_not_a_crash():
    import math

    from gendiff.records.classify import ulp

    assert ulp("bfloat16", math.inf) == math.inf and ulp("float32", math.nan) == math.inf


def test_the_summary_says_in_words_whether_each_token_is_in_the_others_top_k():
    from gendiff.cli.summary import summary_table
    from gendiff.records.snapshot import PromptResult, Snapshot

    def snapshot_of(other_step):
        ref, other = pair(logit_step(10, (10, 6.0), (11, 3.0)), other_step, "float32")
        result = PromptResult("p", [1, 2], {"ref": ref, "other": other}, [compare(ref, other)], id=0)
        engines = [{"label": e, "name": "hf-single", "settings": {}} for e in ("ref", "other")]
        return Snapshot({"name": "m", "dtype": "float32"}, {"top_k": 2}, "ref", engines, [result])

    outside = summary_table(snapshot_of(logit_step(12, (12, 7.0), (13, 1.0))))  # neither token in the other's two
    inside = summary_table(snapshot_of(logit_step(11, (11, 7.0), (10, 6.5))))  # each in the other's two
    assert "in each other's top 2: no" in outside and "in each other's top 2: yes" in inside
    assert "cross-top-k" not in outside + inside
