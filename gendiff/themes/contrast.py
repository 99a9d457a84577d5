"""WCAG 2 contrast of a theme's colours, as Textual draws them.

``theme_colours(theme)`` gives every variable a stylesheet can use (Textual's generated ones
such as ``$text`` and ``$surface-lighten-2`` plus gendiff's own); ``resolve`` turns a tcss colour
expression (``$primary 50%``, ``auto 87%``, ``#fff``) into the opaque colour drawn on a given
background; ``contrast_ratio`` is WCAG's (L1 + 0.05) / (L2 + 0.05), 1 … 21.
``USES`` lists the colour pairs gendiff's widgets draw from Python (marks, token text), so a test
and the user-theme validator check the same things.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from textual.color import Color
from textual.theme import Theme

TEXT_MINIMUM = 4.5  # WCAG AA for normal text
MARK_MINIMUM = 3.0  # WCAG AA for borders, icons and other non-text marks
DIM_FACTOR = 0.66  # Textual draws Rich's "dim" as the colour blended 66% over the background
STYLESHEET = Path(__file__).resolve().parent.parent / "tui" / "gendiff.tcss"
# minimum contrast per tcss property: text colours 4.5:1, borders 3:1
PROPERTY_MINIMUM = {
    "color": TEXT_MINIMUM,
    "border-title-color": TEXT_MINIMUM,
    **{name: MARK_MINIMUM for name in ("border", "border-left", "border-right", "border-top", "border-bottom")},
}
# widgets whose own DEFAULT_CSS gives them a background (an OptionList sits on $surface)
WIDGET_BACKGROUNDS = {"#prompts": "$surface", "#prompts:focus": "$surface"}


def relative_luminance(colour: Color) -> float:
    """WCAG relative luminance of an opaque sRGB colour, 0 (black) … 1 (white)."""

    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = colour.rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(foreground: Color, background: Color) -> float:
    """WCAG contrast ratio of two opaque colours (order does not matter)."""
    high, low = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def theme_colours(theme: Theme, defaults: dict[str, str] | None = None) -> dict[str, str]:
    """Every variable name (without ``$``) -> its colour expression, as Textual generates them."""
    colours = dict(defaults or {})
    colours.update(theme.to_color_system().generate())
    colours.update(theme.variables)
    return colours


def resolve(expression: str, colours: dict[str, str], on: Color) -> Color:
    """The opaque colour an expression like ``$primary 50%`` or ``auto 87%`` paints over ``on``."""
    parts = expression.split()
    alpha = 1.0
    if len(parts) == 2 and parts[1].endswith("%"):
        alpha = float(parts[1][:-1]) / 100
    name = parts[0]
    if name.startswith("$"):
        base = resolve(colours[name[1:]], colours, on)
        return on.blend(base, alpha) if alpha < 1 else base
    if name == "auto":
        return on + on.get_contrast_text(alpha)
    colour = Color.parse(name)
    return on + colour.multiply_alpha(alpha)


def dimmed(colour: Color, on: Color) -> Color:
    """Rich's ``dim`` as Textual renders it."""
    return on.blend(colour, DIM_FACTOR)


@dataclass(frozen=True)
class ColourUse:
    """One foreground drawn on one background by gendiff's Python code (not by tcss)."""

    what: str
    foreground: str  # a colour expression, e.g. "$diverge"
    background: str
    minimum: float
    dim: bool = False
    under: str = "$background"  # what a translucent background is drawn over


# The prompt list (an OptionList) sits on $surface; its highlighted row on the block cursor.
_ROW_BACKGROUNDS = ("$surface", "$block-cursor-background", "$block-cursor-blurred-background")
USES: tuple[ColourUse, ...] = (
    *(
        ColourUse(f"prompt-list mark {mark} on {bg}", f"${mark}", bg, MARK_MINIMUM, under="$surface")
        for mark in ("diverge", "success", "error")
        for bg in _ROW_BACKGROUNDS
    ),
    ColourUse("prompt-list text", "$foreground", "$surface", TEXT_MINIMUM),
    ColourUse("prompt-list highlighted text", "$block-cursor-foreground", "$block-cursor-background", TEXT_MINIMUM),
    ColourUse(
        "prompt-list highlighted text (unfocused)",
        "$block-cursor-blurred-foreground",
        "$block-cursor-blurred-background",
        TEXT_MINIMUM,
        under="$surface",
    ),
    ColourUse("prompt-list number (dim)", "$foreground", "$surface", TEXT_MINIMUM, dim=True),
    ColourUse("agreeing tokens", "$agree-dim", "$background", TEXT_MINIMUM),
    ColourUse("tokens after the divergence", "$after-diverge", "$background", TEXT_MINIMUM),
    ColourUse("the divergent token", "$diverge-text", "$diverge", TEXT_MINIMUM),
    ColourUse("the divergent token's cell", "$diverge", "$background", MARK_MINIMUM),
    ColourUse("engine note / error", "$error", "$background", TEXT_MINIMUM),
    ColourUse("panel: chosen mark", "$chosen", "$background", MARK_MINIMUM),
    ColourUse("panel: identical", "$success", "$background", TEXT_MINIMUM),
    ColourUse("panel: diagnosis found", "$accent", "$background", TEXT_MINIMUM),
    ColourUse("panel: penalties differ", "$warning", "$background", TEXT_MINIMUM),
    ColourUse("panel: hints and legend (dim)", "$foreground", "$background", TEXT_MINIMUM, dim=True),
    ColourUse("dialog: diagnosis bars", "$after-diverge", "$surface", MARK_MINIMUM),
    ColourUse("dialog: first difference", "$diverge", "$surface", TEXT_MINIMUM),
    ColourUse("dialog: dim text", "$foreground", "$surface", TEXT_MINIMUM, dim=True),
)


def use_ratio(use: ColourUse, colours: dict[str, str]) -> float:
    """The contrast ratio one ``ColourUse`` gets in a theme."""
    screen = Color.parse(colours["background"])
    background = resolve(use.background, colours, resolve(use.under, colours, screen))
    foreground = resolve(use.foreground, colours, background)
    if use.dim:
        foreground = dimmed(foreground, background)
    return contrast_ratio(foreground, background)


@dataclass(frozen=True)
class ColourRule:
    """One colour declaration of the stylesheet, with the background it is drawn on."""

    selector: str
    property: str
    expression: str
    background: str

    @property
    def minimum(self) -> float:
        return PROPERTY_MINIMUM[self.property]


def stylesheet_rules(source: str) -> list[ColourRule]:
    """The colour declarations (``color``, ``border-title-color``, borders) of a flat tcss file."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    rules = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", source):
        selector = selector.strip()
        declarations = {name.strip(): value.strip() for name, value in re.findall(r"([\w-]+)\s*:\s*([^;]+);", body)}
        # a rule's own background, else dialogs sit on $surface and the rest on the screen
        background = (
            declarations.get("background")
            or WIDGET_BACKGROUNDS.get(selector)
            or ("$surface" if "dialog" in selector else "$background")
        )
        for name, value in declarations.items():
            if name not in PROPERTY_MINIMUM:
                continue
            words = value.split()
            expression = " ".join(words[1:] if PROPERTY_MINIMUM[name] == MARK_MINIMUM else words)  # drop border style
            if expression and expression != "none":
                rules.append(ColourRule(selector, name, expression, background))
    return rules


def rule_ratio(rule: ColourRule, colours: dict[str, str]) -> float:
    """The contrast ratio one stylesheet rule gets in a theme."""
    on = resolve(rule.background, colours, Color.parse(colours["background"]))
    return contrast_ratio(resolve(rule.expression, colours, on), on)


def failures(theme: Theme, defaults: dict[str, str] | None = None, stylesheet: str | None = None) -> list[str]:
    """One line per colour pair (``USES`` and the stylesheet's rules) below its minimum in ``theme``."""
    colours = theme_colours(theme, defaults)
    lines = []
    for use in USES:
        ratio = use_ratio(use, colours)
        if ratio < use.minimum:
            lines.append(f"{theme.name}: {use.what}: {ratio:.2f} < {use.minimum}")
    for rule in stylesheet_rules(STYLESHEET.read_text() if stylesheet is None else stylesheet):
        ratio = rule_ratio(rule, colours)
        if ratio < rule.minimum:
            lines.append(
                f"{theme.name}: {rule.selector} {rule.property} ({rule.expression}): {ratio:.2f} < {rule.minimum}"
            )
    return lines
