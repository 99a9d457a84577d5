"""One engine's generated tokens for the selected prompt, with the divergence highlighted."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from gendiff.display import inert, visible
from gendiff.records.trace import TokenStep


def token_piece(text: str) -> str:
    """A token as drawn: every whitespace character visible (␣ ↵ ⇥ ␍, others ⍽), empty as ∅."""
    shown = visible(text)
    if any(c.isspace() for c in shown):
        shown = "".join("⍽" if c.isspace() else c for c in shown)
    return shown or "∅"


def token_text(steps: list[TokenStep], mark: int | None, colours: dict[str, str], cursor: int | None = None) -> Text:
    """Agreeing prefix dim, the token at ``mark`` reversed and bold, the rest tinted.

    Whitespace inside tokens is drawn (␣ ↵ ⇥), so a plain space can only be a token boundary:
    tokens are separated by one space, and wrapping (which breaks at spaces) never splits a
    token unless it is wider than the column. A newline token also breaks the line. The text
    carries at most three style spans (prefix, mark, rest), not one per token: a 256-token
    column then lays out in a fraction of the time. ``cursor`` (the step explorer's step) is
    drawn reversed and bold with ``◂`` in place of the space after it (readable without colour,
    and the layout does not move as the cursor does).
    """
    pieces = []
    for step in steps:
        piece = token_piece(step.text)
        # after a newline token the line break is the boundary
        pieces.append(piece + ("\n" if "\n" in step.text else " "))
    cursor_span = None
    if cursor is not None and 0 <= cursor < len(steps):
        at = sum(len(p) for p in pieces[:cursor])
        cursor_span = (at, at + len(pieces[cursor]) - 1)
        if pieces[cursor].endswith(" "):
            pieces[cursor] = pieces[cursor][:-1] + "◂"
    text = Text("".join(pieces))
    if mark is None or mark >= len(steps):
        if cursor_span:
            text.stylize("bold reverse", *cursor_span)
        return text
    start = sum(len(p) for p in pieces[:mark])
    end = start + len(pieces[mark]) - 1  # the separator after the mark stays plain
    text.stylize(colours.get("agree-dim", "grey50"), 0, start)
    text.stylize(
        f"bold underline {colours.get('diverge-text', 'black')} on {colours.get('diverge', 'red')}", start, end
    )
    text.stylize(colours.get("after-diverge", "yellow"), end, len(text))
    if cursor_span:
        text.stylize("bold reverse", *cursor_span)  # last, so it shows on the divergent token too
    return text


class TokenColumn(Static):
    """A column of tokens (its frame, with the engine and its foot, is the EngineColumn around it)."""

    DEFAULT_CSS = """
    TokenColumn { width: 1fr; height: auto; padding: 0 1; }
    """

    def __init__(self, label: str, **kwargs: object) -> None:
        super().__init__("", **kwargs)
        self.label = label

    def show(
        self, steps: list[TokenStep], mark: int | None, note: str | None = None, cursor: int | None = None
    ) -> None:
        colours = self.app.theme_variables
        text = token_text(steps, mark, colours, cursor)
        if note:
            text.append(("\n" if steps else "") + inert(note), style=f"italic {colours.get('error', 'red')}")
        elif not steps:
            text.append("—", style="dim")
        self.update(text)

    def line_of(self, what: str) -> int | None:
        """The wrapped line (0-based, in the column's content) holding the divergent token
        (``what="mark"``) or the step cursor (``"cursor"``), found by their styles, or None."""
        content = self.content
        width = self.content_region.width
        if not isinstance(content, Text) or width <= 0:
            return None
        needle = "underline" if what == "mark" else "reverse"
        for number, line in enumerate(content.wrap(self.app.console, width)):
            if any(needle in str(span.style) for span in line.spans):
                return number
        return None
