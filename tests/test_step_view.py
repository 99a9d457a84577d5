"""The step explorer's view shows every engine's top-k at a step, with margins and marks."""

from __future__ import annotations

from helpers import step

from gendiff.display import number
from gendiff.tui.widgets.step_view import step_text


def test_every_engine_with_its_margin_and_candidates():
    ref = step(5, (5, -0.5), (6, -0.51), (7, -3.0))
    other = step(6, (6, -0.49), (5, -0.50), (7, -3.1))
    text = step_text(4, [("hf-single", ref), ("packed", other), ("hf-left", None)], "hf-single", {}, 4).plain
    lines = text.splitlines()
    assert lines[0] == "step 4 · the first divergence"
    assert lines[1].startswith("hf-single (ref)  chose t5  margin " + number(ref.margin))
    assert lines[2].strip() == f"1 t5 {number(-0.5)} ◀ · 2 t6 {number(-0.51)} · 3 t7 {number(-3.0)}"
    assert lines[3].endswith("≠ ref") and f"margin {number(other.margin)}" in lines[3]
    assert "◁" in lines[4] and lines[4].index("◁") > lines[4].index("t5")
    assert lines[5] == "hf-left  stopped before this step"


def test_a_step_before_the_divergence_says_where_it_is():
    same = step(5, (5, -0.5), (6, -2.0))
    text = step_text(1, [("hf-single", same), ("packed", same)], "hf-single", {}, 4).plain
    assert "the first divergence is at step 4" in text and "≠ ref" not in text


def test_candidates_break_between_items_never_inside_one():
    ref = step(5, *[(5 + i, -0.5 - i * 1.25) for i in range(8)])
    for width in (30, 41, 57, 80):
        lines = step_text(0, [("hf-single", ref)], "hf-single", {}, None, width).plain.splitlines()[2:]
        items = [item.strip() for line in lines for item in line.split(" · ")]
        assert [item.split()[0] for item in items] == [str(r) for r in range(1, 9)]  # every rank, in order
        for rank, item in enumerate(items):
            assert item.split()[2] == number(ref.top[rank].logprob)  # each number whole, beside its token
        assert all(len(line) <= width for line in lines)
