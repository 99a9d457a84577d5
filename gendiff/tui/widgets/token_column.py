"""One engine's generated tokens for the selected prompt, with the divergence highlighted."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from itertools import accumulate

from rich._wrap import divide_line
from rich.cells import cell_len
from rich.segment import Segment
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style as VisualStyle

from gendiff.display import inert, visible


@lru_cache(maxsize=1 << 16)  # a vocabulary's worth: a column of 256 tokens draws from it
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


class _Wrapped:
    """One column text wrapped at one width: per drawn line, its hard line and the character
    range in it, as Textual's Content wraps it (``Content._wrap_and_format``: at spaces, a word
    wider than the width folded, every line but a hard line's last stripped of its trailing
    spaces, each cut to the width); the Strips are made when a line is drawn."""

    __slots__ = ("lines", "strips", "widest")

    def __init__(self, hard: list[str], width: int) -> None:
        self.lines: list[tuple[int, int, int]] = []  # (hard line, start, end)
        self.strips: dict[int, Strip] = {}
        widest = 0
        for y, line in enumerate(hard):
            starts = [0, *divide_line(line, width, fold=True)]
            for index, start in enumerate(starts):
                last = index == len(starts) - 1
                end = len(line) if last else starts[index + 1]
                piece = line[start:end] if last else line[start:end].rstrip()
                while cell_len(piece) > width:
                    piece = piece[:-1]
                self.lines.append((y, start, start + len(piece)))
                widest = max(widest, cell_len(piece))
        self.widest = widest


class TokenColumn(ScrollView):
    """A column of tokens drawn with Textual's line API: the text is wrapped once per change (or
    width), and only the lines in view become Strips. A new prompt or a streamed token changes
    what it draws, never the screen's layout (the column's size comes from the stylesheet), so a
    key that moves between prompts repaints the columns without a relayout. The last few texts
    shown keep their wrapped lines and Strips, so going back to a prompt (``p`` after ``n``)
    draws from them. ``content`` is the Text shown."""

    DEFAULT_CSS = """
    TokenColumn { width: 1fr; height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    """
    KEPT = 16  # texts whose wrapped lines are kept (the prompts visited last)

    def __init__(self, label: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.label = label
        self.content = Text("")
        self._kept: OrderedDict[tuple[object, ...], dict[int, _Wrapped]] = OrderedDict()
        self._by_width: dict[int, _Wrapped] = {}  # the shown text's wraps, per width
        self._hard: list[str] = [""]  # the shown text's hard lines
        self._offsets: list[int] = [0]  # where each hard line starts in ``content.plain``
        self._spans: list[tuple[int, int, VisualStyle]] = []  # the text's spans, as Textual styles
        self._shown: _Wrapped | None = None  # the wrap drawn now
        self._wrapped: tuple[int, int] | None = None  # (width, height) it was chosen for
        self._style: object = None  # the widget style the Strips were made with

    @property
    def _lines(self) -> list[tuple[int, int, int]]:
        """The drawn lines (hard line, start, end)."""
        self._wrap()
        return self._shown.lines if self._shown is not None else []

    @property
    def _strips(self) -> dict[int, Strip]:
        """The lines of the drawn wrap made into Strips so far."""
        return self._shown.strips if self._shown is not None else {}

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
        key = (text.plain, *((span.start, span.end, str(span.style)) for span in text.spans))
        by_width = self._kept.pop(key, None)
        self._kept[key] = self._by_width = {} if by_width is None else by_width
        while len(self._kept) > self.KEPT:
            self._kept.popitem(last=False)
        self._hard = text.plain.split("\n")
        self._offsets = list(accumulate((len(line) + 1 for line in self._hard[:-1]), initial=0))
        get_style, theme = self.app.console.get_style, self.app.ansi_theme
        self._spans = [
            (span.start, span.end, VisualStyle.from_rich_style(get_style(str(span.style)), theme))
            for span in text.spans
        ]
        self._wrapped = self._shown = None
        self._wrap()
        self.refresh()

    def _wrap(self) -> None:
        """Choose the wrap for the column's width (one column less when it needs the scrollbar)."""
        region = self.content_region
        size = (region.width, region.height)
        if self._wrapped == size and self._shown is not None:
            return
        self._wrapped = size
        if region.width <= 0:
            self._shown = _Wrapped([], 1)
            return
        gutter = self.styles.scrollbar_size_vertical
        if gutter and region.width > gutter and self._at_least(region.width) > region.height:
            wrapped = self._format(region.width - gutter)  # it overflows even at full width: no need to wrap that
        else:
            wrapped = self._format(region.width)
            if len(wrapped.lines) > region.height and gutter and region.width > gutter:
                wrapped = self._format(region.width - gutter)
        self._shown = wrapped
        virtual = Size(wrapped.widest, len(wrapped.lines))
        if virtual != self.virtual_size:
            # without the reactive's layout: the column's own size does not depend on it
            self.set_reactive(TokenColumn.virtual_size, virtual)
            self._scroll_update(virtual)

    def _format(self, width: int) -> _Wrapped:
        """The shown text wrapped at ``width``, kept per width: a column made shorter (the panel
        grew) needs no new wrap."""
        wrapped = self._by_width.get(width)
        if wrapped is None:
            wrapped = self._by_width[width] = _Wrapped(self._hard, width)
        return wrapped

    def _at_least(self, width: int) -> int:
        """A lower bound of the wrapped line count at ``width`` (each hard line's cells ÷ width)."""
        return sum(max(1, -(-cell_len(line) // width)) for line in self._hard)

    def _strip(self, index: int) -> Strip:
        """Drawn line ``index`` as a Strip (made once per wrap and widget style): the widget's
        style under the spans that cover each part, with the offsets text selection reads."""
        assert self._shown is not None
        style = self.visual_style
        if style is not self._style:
            self._style = style
            for wrapped in (w for kept in self._kept.values() for w in kept.values()):
                wrapped.strips.clear()  # another theme: every kept Strip has old colours
        strip = self._shown.strips.get(index)
        if strip is None:
            y, start, end = self._shown.lines[index]
            line, base = self._hard[y], self._offsets[y]
            cuts = sorted(
                {start, end, *(c - base for s, e, _ in self._spans for c in (s, e) if start < c - base < end)}
            )
            segments = []
            for left, right in zip(cuts, cuts[1:]):
                styled = style
                for s, e, span_style in self._spans:
                    if s <= base + left and base + right <= e:
                        styled = styled + span_style
                segments.append(Segment(line[left:right], styled.rich_style_with_offset(left, y)))
            strip = self._shown.strips[index] = Strip(segments, cell_len(line[start:end]))
        return strip

    def on_resize(self) -> None:
        self._wrap()

    def render_line(self, y: int) -> Strip:
        self._wrap()
        scroll_x, scroll_y = self.scroll_offset
        width = self.scrollable_content_region.width
        index = scroll_y + y
        # unpadded: the frame pads each line to the column's width with its own background
        if self._shown is None or not 0 <= index < len(self._shown.lines):
            return Strip([])
        return self._strip(index).crop(scroll_x, scroll_x + width)

    def line_of(self, what: str) -> int | None:
        """The drawn line (0-based, in the column's content) holding the divergent token
        (``what="mark"``) or the step cursor (``"cursor"``), found by their styles, or None."""
        self._wrap()
        attribute = "underline" if what == "mark" else "reverse"
        for s, _, span_style in self._spans:
            if getattr(span_style, attribute, False):
                return next(
                    (
                        n
                        for n, (y, start, end) in enumerate(self._lines)
                        if start <= s - self._offsets[y] < max(end, start + 1)
                    ),
                    None,
                )
        return None
