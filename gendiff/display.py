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
