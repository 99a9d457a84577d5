"""Text formatting shared by the CLI summary and the TUI: visible whitespace, fixed-width numbers."""

from __future__ import annotations

_VISIBLE = str.maketrans({" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"})


def visible(text: str) -> str:
    """Show whitespace: space ␣, newline ↵, tab ⇥ (so two tokens that differ only in it look different)."""
    return text.translate(_VISIBLE)


def number(value: float | None, digits: int = 4) -> str:
    """A logprob/margin with enough digits to see a 1e-3 difference; '—' for unknown."""
    if value is None:
        return "—"
    if value != 0 and abs(value) < 10**-digits:
        return f"{value:.1e}"
    return f"{value:.{digits}f}"


def shorten(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


BARS = " ▁▂▃▄▅▆▇█"


def bar(value: float, peak: float) -> str:
    """One block character for ``value`` on a log scale from peak/1e4 (blank) to ``peak`` (full);
    exactly zero is ``·``."""
    import math

    if value <= 0 or peak <= 0:
        return "·"
    level = 1 + (math.log10(value / peak) + 4) / 4 * (len(BARS) - 2)
    return BARS[max(1, min(len(BARS) - 1, round(level)))]
