"""Every gendiff theme meets WCAG contrast: text ≥ 4.5:1, borders and marks ≥ 3:1.

Reads the colours the way Textual draws them: the Theme objects, the tcss rules of
gendiff.tcss that use them (on the background each rule sits on), and the pairs gendiff's
widgets draw from Python (``gendiff.themes.contrast.USES``).
"""

from __future__ import annotations

import pytest
from textual.color import Color

from gendiff.themes import THEMES
from gendiff.themes.contrast import (
    MARK_MINIMUM,
    STYLESHEET,
    USES,
    contrast_ratio,
    failures,
    resolve,
    rule_ratio,
    stylesheet_rules,
    theme_colours,
    use_ratio,
)


def test_contrast_ratio_matches_wcag_reference_values() -> None:
    assert contrast_ratio(Color(0, 0, 0), Color(255, 255, 255)) == pytest.approx(21.0)
    assert contrast_ratio(Color(255, 255, 255), Color(255, 255, 255)) == pytest.approx(1.0)
    # WCAG's worked example: #777 on white is just under 4.5
    assert contrast_ratio(Color.parse("#777777"), Color(255, 255, 255)) == pytest.approx(4.48, abs=0.01)


def test_resolve_blends_translucent_colours_over_their_background() -> None:
    colours = {"primary": "#ffffff"}
    assert resolve("$primary 50%", colours, Color(0, 0, 0)).rgb in {(127, 127, 127), (128, 128, 128)}
    assert resolve("auto 100%", colours, Color(0, 0, 0)).rgb == (255, 255, 255)


def test_the_stylesheet_rules_are_found() -> None:
    rules = stylesheet_rules(STYLESHEET.read_text())
    found = {(rule.selector, rule.property) for rule in rules}
    assert ("EngineColumn", "border") in found
    assert ("#prompts", "border") in found
    assert ("#run-line", "color") in found
    assert next(r for r in rules if r.selector == "#run-line").background == "$panel"
    assert len(found) >= 10


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_every_colour_meets_wcag(theme) -> None:
    colours = theme_colours(theme)
    low = [
        f"{r.selector} {r.property}: {r.expression} on {r.background} = {rule_ratio(r, colours):.2f}"
        for r in stylesheet_rules(STYLESHEET.read_text())
        if rule_ratio(r, colours) < r.minimum
    ]
    low += [f"{u.what}: {use_ratio(u, colours):.2f}" for u in USES if use_ratio(u, colours) < u.minimum]
    assert not low, "\n".join(low)
    assert failures(theme) == []


def test_a_white_on_white_border_is_caught() -> None:
    # the bug this guards: gendiff-light drew unselected columns $surface-lighten-2 on $background
    light = next(t for t in THEMES if t.name == "gendiff-light")
    colours = theme_colours(light)
    on = Color.parse(colours["background"])
    assert contrast_ratio(resolve("$surface-lighten-2", colours, on), on) < MARK_MINIMUM
    bad = "EngineColumn { border: round $surface-lighten-2; }"
    assert any("EngineColumn border" in line for line in failures(light, stylesheet=bad))
