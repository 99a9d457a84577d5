"""Every gendiff theme meets WCAG contrast: text ≥ 4.5:1, borders and marks ≥ 3:1.

Reads the colours the way Textual draws them: the Theme objects, the tcss rules of
gendiff.tcss that use them (on the background each rule sits on), and the pairs gendiff's
widgets draw from Python (``gendiff.themes.contrast.USES``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.color import Color

from gendiff.themes import THEMES
from gendiff.themes.contrast import (
    MARK_MINIMUM,
    TEXT_MINIMUM,
    contrast_ratio,
    failures,
    resolve,
    theme_colours,
)

TCSS = Path(__file__).resolve().parent.parent / "gendiff" / "tui" / "gendiff.tcss"
# widgets whose own DEFAULT_CSS gives them a background (an OptionList sits on $surface)
WIDGET_BACKGROUNDS = {"#prompts": "$surface", "#prompts:focus": "$surface"}
COLOUR_PROPERTIES = {
    "color": TEXT_MINIMUM,
    "border-title-color": TEXT_MINIMUM,
    **{name: MARK_MINIMUM for name in ("border", "border-left", "border-right", "border-top", "border-bottom")},
}


def tcss_colour_rules() -> list[tuple[str, str, str, str]]:
    """(selector, property, colour expression, background expression) for each colour in gendiff.tcss."""
    source = re.sub(r"/\*.*?\*/", "", TCSS.read_text(), flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", source):
        selector = selector.strip()
        declarations = dict(
            (name.strip(), value.strip()) for name, value in re.findall(r"([\w-]+)\s*:\s*([^;]+);", body)
        )
        # a rule's own background, else dialogs sit on $surface and the rest on the screen
        background = (
            declarations.get("background")
            or WIDGET_BACKGROUNDS.get(selector)
            or ("$surface" if "dialog" in selector else "$background")
        )
        for name, value in declarations.items():
            if name not in COLOUR_PROPERTIES:
                continue
            words = value.split()
            expression = " ".join(words[1:] if COLOUR_PROPERTIES[name] == MARK_MINIMUM else words)
            if expression and expression != "none":
                rules.append((selector, name, expression, background))
    return rules


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
    found = {(selector, name) for selector, name, _, _ in tcss_colour_rules()}
    assert ("TokenColumn", "border") in found
    assert ("#prompts", "border") in found
    assert len(found) >= 10


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_stylesheet_colours_meet_wcag(theme) -> None:
    colours = theme_colours(theme)
    screen = Color.parse(colours["background"])
    low = []
    for selector, name, expression, background in tcss_colour_rules():
        on = resolve(background, colours, screen)
        ratio = contrast_ratio(resolve(expression, colours, on), on)
        if ratio < COLOUR_PROPERTIES[name]:
            low.append(f"{selector} {name}: {expression} on {background} = {ratio:.2f}")
    assert not low, "\n".join(low)


@pytest.mark.parametrize("theme", THEMES, ids=lambda t: t.name)
def test_widget_colours_meet_wcag(theme) -> None:
    assert failures(theme) == []


def test_a_white_on_white_border_is_caught() -> None:
    # the bug this guards: gendiff-light drew unselected columns $surface-lighten-2 on $background
    light = next(t for t in THEMES if t.name == "gendiff-light")
    colours = theme_colours(light)
    on = Color.parse(colours["background"])
    assert contrast_ratio(resolve("$surface-lighten-2", colours, on), on) < MARK_MINIMUM
