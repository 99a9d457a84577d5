"""The conformance verdict as data (no model): round trips, the note a labelled engine's
divergences carry, the summary line, the schema, and where the cache lives."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import step, trace

from gendiff.records.conformance import AGREES, DIFFERS, ERROR, LABEL, REFUSE, Verdict, labelled
from gendiff.records.divergence import Divergence, compare

NOTE = "padding leaks into this model's state: transformers' left-padded generate differs from unpadded"


def verdict(**fields) -> Verdict:
    base = dict(engine="hf-left", mode=LABEL, status=DIFFERS, tolerance=1e-4, prompt_lengths=(19, 3, 11, 6))
    base.update(new_tokens=4, max_logit_diff=1.96, worst_prompt=1, worst_step=2, worst_scale=2.5, worst_diff=1.96)
    return Verdict(**{**base, "note": NOTE, **fields})


def pair(reference_verdict: Verdict | None, other_verdict: Verdict | None):
    ref = trace("hf-single", [step(5, (5, -0.2), (6, -2.0))])
    other = trace("hf-left", [step(6, (6, -0.2), (5, -2.0))])
    ref = replace(ref, settings={"conformance": reference_verdict.to_dict()} if reference_verdict else {})
    other = replace(other, settings={"conformance": other_verdict.to_dict()} if other_verdict else {})
    return ref, other


def test_verdict_round_trips_and_says_where_it_differed():
    v = verdict()
    assert Verdict.from_dict(v.to_dict()) == v
    where = v.where()
    assert where.startswith("probe prompt 2 of 3 tokens, step 2: max |logit diff| 1.9600")
    assert "float32 rounding allows 0.0003" in where  # 1e-4 of the step's logit scale 2.5
    crashed = verdict(status=ERROR, error="RuntimeError: boom", worst_prompt=None)
    assert crashed.where() == "the probe failed: RuntimeError: boom"


def test_a_labelled_engine_that_differs_puts_its_note_on_the_divergence():
    d = compare(*pair(None, verdict()))
    assert d.conformance_note.startswith(f"hf-left: {NOTE} (probe prompt 2 of 3 tokens, step 2")
    assert d.classification == "wide-flip"  # the classification is the margin's; the note says why
    assert Divergence.from_dict(d.to_dict()).conformance_note == d.conformance_note
    # the reference's own verdict counts too: its tokens are the ones compared against
    assert compare(*pair(verdict(), None)).conformance_note.startswith("hf-single: ")


def test_no_note_when_the_probe_agreed_or_the_engine_is_refused_instead():
    assert compare(*pair(None, verdict(status=AGREES, note=None))).conformance_note is None
    assert compare(*pair(None, verdict(mode=REFUSE))).conformance_note is None
    assert compare(*pair(None, verdict(status=ERROR, note=None))).conformance_note is None
    assert compare(*pair(None, None)).conformance_note is None
    assert labelled({"conformance": {"engine": "x"}}) is None  # unreadable: no label, no crash


def test_the_summary_prints_the_note_under_the_divergence():
    from helpers import two_engine_snapshot

    from gendiff.cli.summary import summary_table

    snapshot = two_engine_snapshot(6)
    prompt = snapshot.prompts[0]
    ref, other = prompt.traces["hf-single"], prompt.traces["hf-left"]
    other = replace(other, settings={"conformance": verdict().to_dict()})
    prompt.traces["hf-left"] = other
    prompt.divergences[0] = compare(ref, other)
    lines = summary_table(snapshot).splitlines()
    at = next(i for i, line in enumerate(lines) if "DIVERGED" in line)
    assert lines[at + 1].strip().startswith(f"hf-left: {NOTE}")


def test_snapshot_schema_takes_the_verdict_and_the_note():
    from helpers import two_engine_snapshot

    from gendiff.errors import GendiffError
    from gendiff.io.snapshots import validate

    snapshot = two_engine_snapshot(6)
    data = snapshot.to_dict()
    data["engines"][1]["conformance"] = verdict().to_dict()
    data["prompts"][0]["divergences"][0]["conformance_note"] = "hf-left: " + NOTE
    validate(data, "made here")
    data["engines"][1]["conformance"]["status"] = "probably"
    with pytest.raises(GendiffError):
        validate(data, "made here")


def test_verdicts_are_cached_under_xdg_cache_home(monkeypatch, tmp_path):
    from gendiff.engines.conformance import cache_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "gendiff" / "verify"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir().parts[-3:] == (".cache", "gendiff", "verify")
