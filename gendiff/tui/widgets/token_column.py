"""One engine's generated tokens for the selected prompt, with the divergence highlighted."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.visual import Visual, visualize

from gendiff.display import inert, visible


def token_piece(text: str) -> str:
    """A token as drawn: every whitespace character visible (␣ ↵ ⇥ ␍, others ⍽), empty as ∅."""
    shown = visible(text)
    if any(c.isspace() for c in shown):
        shown = "".join("⍽" if c.isspace() else c for c in shown)
    return shown or "∅"


def token_text(texts: Sequence[str], mark: int | None, colours: dict[str, str], cursor: int | None = None) -> Text:
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
    for token in texts:
        piece = token_piece(token)
        # after a newline token the line break is the boundary
        pieces.append(piece + ("\n" if "\n" in token else " "))
    cursor_span = None
    if cursor is not None and 0 <= cursor < len(texts):
        at = sum(len(p) for p in pieces[:cursor])
        cursor_span = (at, at + len(pieces[cursor]) - 1)
        if pieces[cursor].endswith(" "):
            pieces[cursor] = pieces[cursor][:-1] + "◂"
    text = Text("".join(pieces))
    if mark is None or mark >= len(texts):
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


class TokenColumn(ScrollView):
    """A column of tokens drawn with Textual's line API: the text is wrapped once per change (or
    width), and only the lines in view are drawn. A new prompt or a streamed token changes what it
    draws, never the screen's layout (the column's size comes from the stylesheet), so a key that
    moves between prompts repaints the columns without a relayout. ``content`` is the Text shown."""

    DEFAULT_CSS = """
    TokenColumn { width: 1fr; height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    """

    def __init__(self, label: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.label = label
        self.content = Text("")
        self._lines: list[Strip] = []
        self._wrapped: tuple[int, int] | None = None  # (width, height) the lines were wrapped for

    def render(self) -> Text:
        """What the column shows (its lines are drawn by ``render_line``)."""
        return self.content

    def show(self, texts: Sequence[str], mark: int | None, note: str | None = None, cursor: int | None = None) -> None:
        """``texts``: the chosen tokens' texts; ``mark``: the divergent step; ``cursor``: the step explorer's."""
        colours = self.app.theme_variables
        text = token_text(texts, mark, colours, cursor)
        if note:
            text.append(("\n" if texts else "") + inert(note), style=f"italic {colours.get('error', 'red')}")
        elif not texts:
            text.append("—", style="dim")
        if text == self.content:
            return  # a tick of a run that did not touch this column
        self.content = text
        self._wrapped = None
        self._wrap()
        self.refresh()

    def _wrap(self) -> None:
        """Wrap ``content`` to the column's width (one column less when it needs the scrollbar)."""
        region = self.content_region
        size = (region.width, region.height)
        if self._wrapped == size:
            return
        self._wrapped = size
        if region.width <= 0:
            self._lines = []
            return
        visual = visualize(self, self.content, markup=False)
        style = self.visual_style
        lines = Visual.to_strips(self, visual, region.width, None, style)
        gutter = self.styles.scrollbar_size_vertical
        if len(lines) > region.height and gutter and region.width > gutter:
            lines = Visual.to_strips(self, visual, region.width - gutter, None, style)
        self._lines = lines
        virtual = Size(max((line.cell_length for line in lines), default=0), len(lines))
        if virtual != self.virtual_size:
            # without the reactive's layout: the column's own size does not depend on it
            self.set_reactive(TokenColumn.virtual_size, virtual)
            self._scroll_update(virtual)

    def on_resize(self) -> None:
        self._wrap()

    def render_line(self, y: int) -> Strip:
        self._wrap()
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        # unpadded: the frame pads each line to the column's width with its own background
        if not 0 <= index < len(self._lines):
            return Strip([])
        return self._lines[index].crop(scroll_x, scroll_x + width)

    def line_of(self, what: str) -> int | None:
        """The wrapped line (0-based, in the column's content) holding the divergent token
        (``what="mark"``) or the step cursor (``"cursor"``), found by their styles, or None."""
        self._wrap()
        attribute = "underline" if what == "mark" else "reverse"
        for number, line in enumerate(self._lines):
            if any(segment.style is not None and getattr(segment.style, attribute) for segment in line):
                return number
        return None
