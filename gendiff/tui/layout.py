"""How the main screen divides the terminal (pure functions, no widgets).

- The prompt list takes a share of the width (``PROMPT_SHARE``), within sensible bounds.
- Below ``COLLAPSE_BELOW`` columns, or when each engine column would be narrower than
  ``MIN_COLUMN``, the engines collapse to two columns: the reference and the selected engine.
- In a comparison of two snapshots, each engine's A and B columns sit side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

COLLAPSE_BELOW = 100  # terminal columns
MIN_COLUMN = 18  # an engine column narrower than this (border and padding included) is unreadable
PROMPT_SHARE = 0.22
PROMPT_MIN, PROMPT_MAX = 24, 48
PROMPT_HEADER_LINES = 3  # the selected prompt's text above the columns, at most


@dataclass(frozen=True)
class Layout:
    prompt_width: int
    shown: tuple[str, ...]  # the engine columns on screen, in order
    collapsed: bool  # True: only the reference and the selected engine are shown


def prompt_width(width: int) -> int:
    """The prompt list's width for a terminal ``width`` columns wide."""
    return max(PROMPT_MIN, min(PROMPT_MAX, round(width * PROMPT_SHARE)))


def layout(width: int, labels: list[str], reference: str, selected: str | None) -> Layout:
    """Which engine columns fit a terminal ``width`` wide; ``labels`` in column order."""
    list_width = prompt_width(width)
    room = width - list_width - 3  # the columns' frame and scrollbar
    if width >= COLLAPSE_BELOW and room // max(1, len(labels)) >= MIN_COLUMN:
        return Layout(list_width, tuple(labels), False)
    other = (
        selected if selected in labels and selected != reference else next((x for x in labels if x != reference), None)
    )
    shown = tuple(label for label in (reference, other) if label is not None)
    return Layout(list_width, shown, len(shown) < len(labels))


def paired(labels: list[str], only: set[str] | None = None) -> list[str]:
    """Comparison columns ``engine@A, engine@B`` side by side, in A's engine order; ``only``
    (engine names without the side) keeps just those engines."""
    engines = list(dict.fromkeys(label.rsplit("@", 1)[0] for label in labels))
    ordered = []
    for engine in engines:
        if only is not None and engine not in only:
            continue
        ordered += [label for label in (f"{engine}@A", f"{engine}@B") if label in labels]
    return ordered
