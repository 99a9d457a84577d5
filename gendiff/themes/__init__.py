"""gendiff's Textual themes. Each defines the colours gendiff's highlights use:

- ``diverge``: the first divergent token (background) and divergence headlines;
- ``diverge-text``: the text drawn on ``diverge``;
- ``after-diverge``: tokens after the first divergence (foreground tint);
- ``agree-dim``: the shared prefix (foreground, dim);
- ``chosen``: the chosen token in a top-k table.

Each also sets Textual's block-cursor backgrounds, so the prompt list's marks stay readable on
the highlighted row. tests/test_themes.py checks WCAG contrast (text 4.5:1, borders and marks
3:1) of every colour pair the app draws; ``gendiff.themes.contrast`` computes it.

``gendiff-contrast`` is safe for colour-blind users: agree vs diverge differ in lightness and
in style (reverse + bold + underline), not only in hue.
"""

from __future__ import annotations

from textual.theme import Theme

GENDIFF_DARK = Theme(
    name="gendiff-dark",
    primary="#5FA8D3",
    secondary="#C792EA",
    accent="#FFCB6B",
    warning="#FFCB6B",
    error="#FF5370",
    success="#C3E88D",
    background="#14161B",
    surface="#1C1F26",
    panel="#242833",
    dark=True,
    variables={
        "diverge": "#FF5370",
        "diverge-text": "#14161B",
        "after-diverge": "#F78C6C",
        "agree-dim": "#8B93A1",
        # the highlighted prompt row: dark enough that the ✗/✓/! marks keep 3:1 on it
        "block-cursor-background": "#2B3A52",
        "block-cursor-blurred-background": "#242B38",
        "chosen": "#C3E88D",
    },
)

GENDIFF_LIGHT = Theme(
    name="gendiff-light",
    primary="#1D4ED8",
    secondary="#7C3AED",
    accent="#B45309",
    warning="#B45309",
    error="#B91C1C",
    success="#15803D",
    background="#FAFAF7",
    surface="#F1F0EA",
    panel="#E5E3DA",
    dark=False,
    variables={
        "diverge": "#C0262D",
        "diverge-text": "#FFFFFF",
        "after-diverge": "#B45309",
        "agree-dim": "#656A73",
        "block-cursor-background": "#DCE6F7",
        "block-cursor-blurred-background": "#E8ECF2",
        "chosen": "#15803D",
    },
)

# Okabe–Ito palette: blue/orange are distinguishable in every common colour-vision deficiency,
# and agree (dim grey) vs diverge (bright orange, reversed, bold) also differ in lightness.
GENDIFF_CONTRAST = Theme(
    name="gendiff-contrast",
    primary="#56B4E9",
    secondary="#CC79A7",
    accent="#E69F00",
    warning="#E69F00",
    error="#D55E00",
    success="#009E73",
    background="#000000",
    surface="#111111",
    panel="#222222",
    dark=True,
    variables={
        "diverge": "#E69F00",
        "diverge-text": "#000000",
        "after-diverge": "#56B4E9",
        "agree-dim": "#8C8C8C",
        "block-cursor-background": "#333333",
        "block-cursor-blurred-background": "#222222",
        "chosen": "#F0E442",
    },
)

THEMES = (GENDIFF_DARK, GENDIFF_LIGHT, GENDIFF_CONTRAST)
DEFAULT_THEME = GENDIFF_DARK.name
