"""What a bisection's lines say: every number with what it counts and its unit, the positions
named as positions of the prompt + generated tokens, and the verdict (does the fork last) before
the details, in the summary table and in the panel (no model)."""

from __future__ import annotations

import re

from gendiff.cli.summary import key_value_chart, layer_chart
from gendiff.records.bisection import Bisection, KeyValueDiff, ModuleDiff, PositionDiff, PositionSplit

STEP, POSITION = 4, 14  # the token of step 4 is chosen from position 14's output
PROMPT_TOKENS = POSITION - STEP + 1  # position = prompt length + step - 1: the prompt is 0…10


def bisection() -> Bisection:
    def module(name, role, layer, equal, rel=0.0):
        return ModuleDiff(name, equal, rel, rel, role, layer)

    modules = (
        module("model.layers.0.self_attn.q_proj", "query projection", 0, True),
        module("model.layers.0", "layer output", 0, True),
        module("model.layers.1.self_attn.q_proj", "query projection", 1, True),
        module("model.layers.1.self_attn.o_proj", "attention output projection", 1, False, 4e-4),
        module("model.layers.1", "layer output", 1, False, 2e-3),
    )
    differing = tuple(PositionDiff(p, 2e-3, 0.1) for p in (3, 5, 12))
    key_values = (
        KeyValueDiff(0, "model.layers.0.self_attn.k_proj", "key projection", POSITION + 1, ()),
        KeyValueDiff(1, "model.layers.1.self_attn.k_proj", "key projection", POSITION + 1, differing),
    )
    splits = tuple(
        PositionSplit(p, "model.layers.0.self_attn.o_proj", "attention output projection", 0, 5e-4) for p in (3, 5, 12)
    )
    return Bisection(
        reference="hf-single",
        engine="hf-left",
        prompt_index=0,
        step=STEP,
        tolerance=1e-3,
        modules=modules,
        reproduced=True,
        position=POSITION,
        key_values=key_values,
        position_splits=splits,
    )


def test_every_line_says_what_its_numbers_count():
    lines = bisection().summary_lines()
    text = "\n".join(lines)
    # the positions are defined once: which are the prompt's, which the divergent one
    assert f"0–{PROMPT_TOKENS - 1} are the prompt" in text
    assert f"position {POSITION}" in lines[0]
    # a count of earlier positions says out of how many (every position before the divergent one)
    assert f"3 of {POSITION} earlier positions" in text
    # every scientific number is a relative difference and says so
    for line in lines:
        for _ in re.findall(r"\d\.\d+e[-+]\d+", line):
            assert "relative difference" in line, line
    # no bare "positions 3, 5" without the word position before the list and no "rel" shorthand
    assert not re.search(r"\brel\b", text)


def test_the_summary_charts_say_what_they_show():
    b = bisection()
    assert layer_chart(b).startswith(f"relative difference after each layer at position {POSITION}:")
    chart = key_value_chart(b)
    assert chart.startswith(f"earlier positions whose keys/values differ, of {POSITION}:")
    assert "L0 none" in chart and "L1 3 (positions 3, 5, 12; up to 2.0e-03 relative difference)" in chart


async def test_the_panel_says_the_verdict_before_where_it_starts(tmp_path):
    import dataclasses

    from app_helpers import app_for, hand_made_snapshot, plain

    from gendiff.io.snapshots import load_snapshot, save_snapshot
    from gendiff.records.reconvergence import Reconvergence

    path = hand_made_snapshot(tmp_path / "snap.json")
    snapshot = load_snapshot(path)
    first = snapshot.prompts[0]
    d = first.divergence_for("hf-left")
    b = dataclasses.replace(
        bisection(), step=d.step, position=len(first.token_ids) + d.step - 1, key_values=bisection().key_values[:1]
    )
    r = Reconvergence("hf-single", "hf-left", 0, d.step, 1, (d.step,), True)
    first.divergences = [
        dataclasses.replace(d, bisection=b, reconvergence=r) if x is d else x for x in first.divergences
    ]
    save_snapshot(snapshot, path)
    app = app_for(path)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        text = " ".join(plain(app.main.query_one("#panel"), width=78).split())
        assert text.index(f"re-convergence: {r.summary()}") < text.index("bisection: first differs at")
        assert f"relative difference 4.00e-04 at position {b.position}" in text
        # the rest of the bisection is b's view: the reading and the margins stay in the panel
        assert "positions count" not in text and "(b: earlier positions, per-layer chart)" in text
