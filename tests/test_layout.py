"""The main screen's division of the terminal."""

from __future__ import annotations

from gendiff.tui.layout import COLLAPSE_BELOW, PROMPT_MAX, PROMPT_MIN, layout, paired, prompt_width

ENGINES = ["hf-single", "hf-left", "hf-right", "packed"]


def test_prompt_list_width_is_proportional_and_bounded():
    assert prompt_width(80) == PROMPT_MIN
    assert prompt_width(160) == round(160 * 0.22)
    assert prompt_width(400) == PROMPT_MAX
    assert prompt_width(120) < prompt_width(200)


def test_wide_terminals_show_every_engine():
    wide = layout(200, ENGINES, "hf-single", "packed")
    assert wide.shown == tuple(ENGINES) and not wide.collapsed


def test_narrow_terminals_show_the_reference_and_the_selected_engine():
    narrow = layout(80, ENGINES, "hf-single", "packed")
    assert narrow.shown == ("hf-single", "packed") and narrow.collapsed
    assert layout(COLLAPSE_BELOW - 1, ENGINES, "hf-single", None).shown == ("hf-single", "hf-left")
    # two engines never collapse to fewer
    assert layout(80, ENGINES[:2], "hf-single", "hf-left").collapsed is False


def test_many_engines_collapse_even_when_wide():
    many = [f"e{i}" for i in range(10)]
    assert layout(120, many, "e0", "e5").shown == ("e0", "e5")


def test_comparison_columns_pair_each_engine():
    labels = ["hf-single@A", "hf-left@A", "packed@A", "hf-single@B", "hf-left@B", "packed@B"]
    assert paired(labels) == ["hf-single@A", "hf-single@B", "hf-left@A", "hf-left@B", "packed@A", "packed@B"]
    assert paired(labels, only={"packed"}) == ["packed@A", "packed@B"]
    assert paired(["x@A", "y@A", "x@B"]) == ["x@A", "x@B", "y@A"]
