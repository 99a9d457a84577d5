"""One engine's generated tokens for the selected prompt, with the divergence highlighted."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.cells import cell_len
from rich.text import Text
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

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
        self._lines: list[Any] = []  # the wrapped lines (Textual's formatted lines)
        self._strips: dict[int, Strip] = {}  # the lines drawn so far, as Strips
        self._as_content: Content | None = None  # ``content`` as Textual's Content
        self._formatted: dict[int, list[Any]] = {}  # width -> the wrapped lines
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
        self._wrapped, self._as_content, self._formatted = None, None, {}
        self._wrap()
        self.refresh()

    def _wrap(self) -> None:
        """Wrap ``content`` to the column's width (one column less when it needs the scrollbar).
        The lines are wrapped as a Static wraps them (Textual's Content); each becomes a Strip only
        when it is drawn."""
        region = self.content_region
        size = (region.width, region.height)
        if self._wrapped == size:
            return
        self._wrapped = size
        if region.width <= 0:
            self._lines, self._strips = [], {}
            return
        gutter = self.styles.scrollbar_size_vertical
        if gutter and region.width > gutter and self._at_least(region.width) > region.height:
            lines = self._format(region.width - gutter)  # it overflows even at full width: no need to wrap that
        else:
            lines = self._format(region.width)
            if len(lines) > region.height and gutter and region.width > gutter:
                lines = self._format(region.width - gutter)
        if lines is not self._lines:
            self._lines, self._strips = lines, {}
        virtual = Size(max((line.content.cell_length for line in lines), default=0), len(lines))
        if virtual != self.virtual_size:
            # without the reactive's layout: the column's own size does not depend on it
            self.set_reactive(TokenColumn.virtual_size, virtual)
            self._scroll_update(virtual)

    def _format(self, width: int) -> list[Any]:
        """The wrapped lines as ``Content.render_strips`` makes them (before they become Strips),
        kept per width: a column made shorter (the panel grew) needs no new wrap."""
        lines = self._formatted.get(width)
        if lines is None:
            lines = self._formatted[width] = self._wrap_at(width)
        return lines

    def _at_least(self, width: int) -> int:
        """A lower bound of the wrapped line count at ``width`` (each hard line's cells ÷ width)."""
        return sum(max(1, -(-cell_len(line) // width)) for line in self.content.plain.split("\n"))

    def _wrap_at(self, width: int) -> list[Any]:
        if self._as_content is None:
            self._as_content = Content.from_rich_text(self.content, console=self.app.console)
        get_rule = self.styles.get
        return self._as_content._wrap_and_format(
            width,
            align=get_rule("text_align", "left"),
            overflow=get_rule("text_overflow", "fold"),
            no_wrap=get_rule("text_wrap", "wrap") == "nowrap",
            line_pad=get_rule("line_pad", 0),
            tab_size=8,
            get_style=self._get_style,
        )

    def _strip(self, index: int) -> Strip:
        """Line ``index`` as a Strip (made once per wrap), as ``Visual.to_strips`` makes it."""
        strip = self._strips.get(index)
        if strip is None:
            strip = Strip(*self._lines[index].to_strip(self.visual_style))
            if self.auto_links and not self.screen._selecting:
                strip = strip._apply_link_style(self.link_style)
            self._strips[index] = strip
        return strip

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
        return self._strip(index).crop(scroll_x, scroll_x + width)

    def line_of(self, what: str) -> int | None:
        """The wrapped line (0-based, in the column's content) holding the divergent token
        (``what="mark"``) or the step cursor (``"cursor"``), found by their styles, or None."""
        self._wrap()
        attribute = "underline" if what == "mark" else "reverse"
        for number, line in enumerate(self._lines):
            if any(getattr(span.style, attribute, False) for span in line.content.spans):
                return number
        return None
