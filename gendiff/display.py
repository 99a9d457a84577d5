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
LOG_FLOOR, LOG_CEIL = -7.0, 0.0  # the axis of the per-layer charts: relative differences 1e-7 … 1


def log_fraction(value: float) -> float:
    """Where ``value`` sits on the fixed log axis 1e-7 … 1, as 0 … 1 (0 for zero)."""
    import math

    if value <= 0:
        return 0.0
    return max(0.0, min(1.0, (math.log10(value) - LOG_FLOOR) / (LOG_CEIL - LOG_FLOOR)))


def bar(value: float) -> str:
    """One block character for ``value`` on the fixed log axis; exactly zero is ``·``."""
    if value <= 0:
        return "·"
    return BARS[max(1, round(log_fraction(value) * (len(BARS) - 1)))]
