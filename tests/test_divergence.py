import pytest
from helpers import step, trace

from gendiff.records.divergence import compare, first_difference
from gendiff.records.trace import Trace


def test_identical_traces_have_no_divergence_but_report_drift_and_fragile_steps():
    ref = trace("ref", [step(5, (5, -0.1), (6, -2.5)), step(7, (7, -0.69), (8, -0.70))])
    other = trace("other", [step(5, (5, -0.1004), (6, -2.5)), step(7, (7, -0.6902), (8, -0.6999))])
    d = compare(ref, other)
    assert d.step is None and d.reason == "identical" and not d.diverged
    assert d.max_drift_before == pytest.approx(0.0004)
    assert d.fragile_steps == (1,)  # margin 0.01 < 0.05; step 0 margin 2.4 is not fragile
    assert d.agreeing_steps == 2


def test_divergence_at_step_zero():
    ref = trace("ref", [step(5, (5, -0.69), (6, -0.70))])
    other = trace("other", [step(6, (6, -0.69), (5, -0.695))])
    d = compare(ref, other)
    assert d.step == 0 and d.reason == "token"
    assert d.reference_margin == pytest.approx(0.01)
    assert d.other_margin == pytest.approx(0.005)
    assert d.flip_gap == pytest.approx(0.005)  # other: own choice -0.69 minus ref's choice -0.695
    assert d.reference_gap == pytest.approx(0.01)
    assert d.max_drift_before == 0.0 and d.fragile_steps == ()


def test_divergence_mid_way_reports_prefix_drift_only():
    common = [step(1, (1, -0.2), (2, -3.0)), step(3, (3, -0.5), (4, -0.52))]
    ref = trace("ref", common + [step(9, (9, -0.60), (10, -0.61)), step(11, (11, -0.1), (12, -5.0))])
    other_prefix = [step(1, (1, -0.2003), (2, -3.0)), step(3, (3, -0.501), (4, -0.52))]
    other = trace("other", other_prefix + [step(10, (10, -0.605), (9, -0.607)), step(13, (13, -0.1), (12, -5.0))])
    d = compare(ref, other)
    assert d.step == 2
    assert d.reference_step.token_id == 9 and d.other_step.token_id == 10
    assert d.max_drift_before == pytest.approx(0.001)
    assert d.fragile_steps == (1,)
    assert d.flip_gap == pytest.approx(0.002)


def test_flip_gap_is_none_when_reference_choice_is_outside_other_top_k():
    ref = trace("ref", [step(5, (5, -0.1), (6, -3.0))])
    other = trace("other", [step(7, (7, -0.1), (8, -3.0))])
    d = compare(ref, other)
    assert d.step == 0 and d.flip_gap is None and d.reference_gap is None


def test_one_side_shorter_is_a_length_divergence():
    ref = trace("ref", [step(1, (1, -0.1), (2, -2.0)), step(0, (0, -0.1), (2, -2.0))], finish="eos")
    other = trace(
        "other", [step(1, (1, -0.1), (2, -2.0)), step(0, (0, -0.1), (2, -2.0)), step(4, (4, -1.0), (2, -2.0))]
    )
    d = compare(ref, other)
    assert d.reason == "length" and d.step == 2 and d.diverged
    assert d.reference_step is None and d.other_step.token_id == 4
    assert "ref stopped (eos) after 2 tokens" in d.detail


def test_tie_at_top_1_margin_zero():
    # both candidates have the same logprob: the reference picks 5 (lowest id), the other 6
    ref = trace("ref", [step(5, (5, -0.6931), (6, -0.6931))])
    other = trace("other", [step(6, (6, -0.6931), (5, -0.6931))])
    d = compare(ref, other)
    assert d.step == 0 and d.reference_margin == 0.0 and d.other_margin == 0.0 and d.flip_gap == 0.0


def test_error_trace_is_an_error_divergence():
    ref = trace("ref", [step(1, (1, -0.1), (2, -2.0))])
    failed = Trace.failed("other", 0, [1, 2, 3], "boom", {})
    d = compare(ref, failed)
    assert d.reason == "error" and d.diverged and "boom" in d.detail


def test_different_prompt_ids_are_refused():
    with pytest.raises(ValueError):
        compare(trace("a", [], prompt=(1,)), trace("b", [], prompt=(2,)))


def test_empty_traces_are_identical():
    assert compare(trace("a", []), trace("b", [])).reason == "identical"


def test_first_difference_on_growing_streams():
    assert first_difference([1, 2, 3], [1, 2]) is None
    assert first_difference([1, 2, 3], [1, 5]) == 1
